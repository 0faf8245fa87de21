package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/internal/netest"
	"github.com/evoucher/evoucher/xml/message"
)

// distributeUsage is the usage line of `evbench distribute`.
const distributeUsage = "usage: evbench distribute [-terminals N] [-codes N] [-sales N] [-money=true|false] [-servers N] [-server-pool N] [-floor-conns N] [-bin bin/evoucher] [-keep]"

// runDistribute is `evbench distribute`: terminals order stock all at once over HTTPS with
// client certificates, then report their sales all at once; the floor is the bare SQL
// reservation of the same rows at the same concurrency.
func runDistribute(args []string) error {
	fs := flag.NewFlagSet("distribute", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, distributeUsage); fs.PrintDefaults() }
	terminals := fs.Int("terminals", 100, "terminals ordering at once")
	codes := fs.Int("codes", 1000, "codes each terminal orders")
	// 900, not 1,000: goxmldsig v1.6.1 validates no document of more than about 1,000
	// elements, and a report has one element per sale (970 is the most that verify).
	sales := fs.Int("sales", 900, "sales in each terminal's report (at most -codes; at most 970 verify)")
	money := fs.Bool("money", true, "give every retailer money terms (prepaid, charged on shipment, 5% commission; 2% platform margin) and the funds for its stock, "+
		"so each shipment is priced and charged under its retailer's, the operator's and the margin's account locks; false: retailers without terms, nothing charged")
	servers := fs.Int("servers", 1, "evoucher server processes on the one database; terminals are spread over them")
	serverPool := fs.Int("server-pool", 0, "PostgreSQL pool size of each server (0: the server's default)")
	floorConns := fs.Int("floor-conns", 0, "connections of the floor's pool (0: as many as the shipments the servers build at once in all)")
	bin := fs.String("bin", "bin/evoucher", "the evoucher binary")
	keep := fs.Bool("keep", false, "keep the work directory and database")
	_ = fs.Parse(args)
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		return errors.New("DATABASE_URL is not set: run `make bench-distribute`")
	}
	if *terminals < 1 || *codes < 1 || *servers < 1 || *sales > *codes {
		return errors.New(distributeUsage)
	}
	return distribute(context.Background(), distConfig{admin: admin, bin: *bin, terminals: *terminals, codes: *codes, sales: *sales,
		servers: *servers, serverPool: *serverPool, floorConns: *floorConns, keep: *keep, money: *money})
}

type distConfig struct {
	admin, bin                       string
	terminals, codes, sales, servers int
	serverPool, floorConns           int
	keep, money                      bool
}

// timing is the outcome of one burst of requests.
type timing struct {
	wall      time.Duration
	latencies []time.Duration
}

func (t timing) pct(p float64) time.Duration {
	if len(t.latencies) == 0 {
		return 0
	}
	s := slices.Clone(t.latencies)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func distribute(ctx context.Context, c distConfig) error {
	work, err := os.MkdirTemp("", "evbench-distribute-")
	if err != nil {
		return err
	}
	if !c.keep {
		defer os.RemoveAll(work)
	}
	if err := netest.UseTokenDir(filepath.Join(work, "tokens")); err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) }
	n, err := netest.New(ctx, netest.Config{AdminURL: c.admin, Bin: c.bin, Dir: filepath.Join(work, "net"), ServerPoolConns: c.serverPool, Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		if c.keep {
			fmt.Println("kept", work, "and database", n.DBURL)
			return
		}
		if err := n.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "evbench: closing the network:", err)
		}
	}()
	total := c.terminals * c.codes
	money := "retailers with money terms (prepaid, charged on shipment)"
	if !c.money {
		money = "retailers without money terms (nothing charged)"
	}
	fmt.Printf("distribute benchmark: %d terminals × %d codes = %d codes, %d server process(es), sales reports of %d, %s\n",
		c.terminals, c.codes, total, c.servers, c.sales, money)

	srvs := make([]*netest.Server, c.servers)
	for i := range srvs {
		if srvs[i], err = n.StartServer(ctx); err != nil {
			return err
		}
	}
	pins, err := n.Upload(ctx, srvs[0], netest.Stock{Operator: "OP-BENCH", Product: "B10", Batch: "LOT-1", Codes: total})
	if err != nil {
		return err
	}
	clear(pins) // only the count matters here
	// Shops of ten terminals and two vendor cards each: every shipment carries three key shares.
	var terms []*netest.Terminal
	for r := 0; r*10 < c.terminals; r++ {
		s := netest.Shop{Retailer: fmt.Sprintf("R-%03d", r), Vendors: []string{fmt.Sprintf("V-%03d-1", r), fmt.Sprintf("V-%03d-2", r)}}
		for i := r * 10; i < min(c.terminals, r*10+10); i++ {
			s.Terminals = append(s.Terminals, fmt.Sprintf("T-%04d", i))
		}
		ts, err := n.AddShop(ctx, srvs[r%len(srvs)], s)
		if err != nil {
			return err
		}
		if c.money {
			// Funds for exactly its terminals' stock: 10.00 EUR a code less 5%.
			funds := fmt.Sprintf("%d.00", len(ts)*c.codes*10*95/100)
			for _, args := range [][]string{
				{"money", "account", "set", s.Retailer, "--mode", "prepaid", "--currency", "EUR", "--settle", "on-shipment"},
				{"money", "commission", "set", s.Retailer, "OP-BENCH", "B10", "--bps", "500"},
				{"money", "topup", s.Retailer, funds, "--method", "bank", "--reference", "BENCH-" + s.Retailer},
			} {
				if _, err := n.CLI(ctx, nil, args...); err != nil {
					return err
				}
			}
		}
		terms = append(terms, ts...)
	}
	if c.money {
		if _, err := n.CLI(ctx, nil, "money", "margin", "set", "OP-BENCH", "B10", "--bps", "200"); err != nil {
			return err
		}
	}
	// The floor's copy of the vault, taken before anything is shipped.
	// A second copy has, in addition, an index that serves the reservation's ORDER BY
	// (codes_stock lacks the id): what a migration adding it would give.
	for _, q := range []string{
		`CREATE TABLE floor_codes (LIKE codes INCLUDING ALL)`,
		`INSERT INTO floor_codes OVERRIDING SYSTEM VALUE SELECT * FROM codes`,
		`CREATE TABLE floor_codes_ordered (LIKE codes INCLUDING ALL)`,
		`INSERT INTO floor_codes_ordered OVERRIDING SYSTEM VALUE SELECT * FROM codes`,
		`CREATE INDEX ON floor_codes_ordered (operator_id, product, expires_on, id) WHERE state = 'in_vault'`,
		`VACUUM ANALYZE codes`, `VACUUM ANALYZE floor_codes`, `VACUUM ANALYZE floor_codes_ordered`,
	} {
		if _, err := n.DB.Exec(ctx, q); err != nil {
			return fmt.Errorf("floor table: %w", err)
		}
	}

	// Orders: each terminal signs its order and opens its connection first, then all send.
	orders := make([][]byte, len(terms))
	for i, t := range terms {
		if orders[i], err = t.Order("OP-BENCH", "B10", c.codes); err != nil {
			return err
		}
	}
	cpu0, pg0 := serverCPU(srvs), backendCPU(ctx, n.DB)
	answers, ship, err := burst(ctx, terms, srvs, orders)
	if err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	shipCPU, shipPG := serverCPU(srvs)-cpu0, backendCPUSince(ctx, n.DB, pg0)
	shipped, unverifiable := 0, 0
	held := make([][]string, len(terms))
	for i, a := range answers {
		sh, err := terms[i].OpenShipment(a)
		if err != nil && strings.Contains(err.Error(), "traversal limit") {
			// goxmldsig v1.6.1 validates no document of more than about 1,000 elements (its
			// fixed traversal budget), and a shipment has one element per code. Count the
			// codes anyway; xmlsec1 checks below that the signature itself is sound.
			unverifiable++
			sh, err = readShipment(a)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", terms[i].ID, err)
		}
		shipped += len(sh.Codes)
		for _, code := range sh.Codes {
			held[i] = append(held[i], code.Serial)
		}
	}
	if unverifiable > 0 {
		if err := xmlsec1Verify(work, filepath.Join(n.Center, "ca.pem"), answers[0]); err != nil {
			return err
		}
		fmt.Printf("WARNING  %d of %d shipments of %d codes do not verify on the terminal: goxmldsig v1.6.1 stops at its traversal limit "+
			"(about 1,000 elements; a shipment has one per code, so about 940 codes at most); xmlsec1 verifies them\n", unverifiable, len(answers), c.codes)
	}
	if shipped != total {
		return fmt.Errorf("%d codes shipped, %d ordered from a vault of %d", shipped, total, total)
	}
	codesPerS := float64(shipped) / ship.wall.Seconds()
	fmt.Printf("ship     %d orders of %d codes at once: %d codes in %.3f s = %.0f codes/s; order latency p50 %.1f ms, p99 %.1f ms; CPU: servers %.2f s, PostgreSQL %.2f s\n",
		len(terms), c.codes, shipped, ship.wall.Seconds(), codesPerS, ms(ship.pct(0.50)), ms(ship.pct(0.99)), shipCPU.Seconds(), shipPG.Seconds())

	conns := c.floorConns
	if conns == 0 {
		conns = c.servers * shippingSlots()
	}
	floor, floorPG, err := floorReserve(ctx, n, "floor_codes", len(terms), c.codes, conns)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	ratio := ship.wall.Seconds() / floor.wall.Seconds()
	fmt.Printf("floor    plain UPDATE … FOR UPDATE SKIP LOCKED … RETURNING of the same %d rows, %d at once in batches of %d, %d connections (as many as the servers build shipments at once): %.3f s = %.0f rows/s (p50 %.1f ms, p99 %.1f ms); CPU: PostgreSQL %.2f s\n",
		total, len(terms), c.codes, conns, floor.wall.Seconds(), float64(total)/floor.wall.Seconds(), ms(floor.pct(0.50)), ms(floor.pct(0.99)), floorPG.Seconds())
	ordered, orderedPG, err := floorReserve(ctx, n, "floor_codes_ordered", len(terms), c.codes, conns)
	if err != nil {
		return fmt.Errorf("floor with an index for the ORDER BY: %w", err)
	}
	fmt.Printf("floor'   the same with an index on (operator_id, product, expires_on, id) WHERE state = 'in_vault' (the schema's codes_stock_order, migration 0007, created again): %.3f s = %.0f rows/s (p50 %.1f ms, p99 %.1f ms); CPU: PostgreSQL %.2f s\n",
		ordered.wall.Seconds(), float64(total)/ordered.wall.Seconds(), ms(ordered.pct(0.50)), ms(ordered.pct(0.99)), orderedPG.Seconds())

	// Sales: each terminal reports its first c.sales codes as sold, in one report.
	reports := make([][]byte, len(terms))
	now := time.Now().UTC()
	for i, t := range terms {
		ss := make([]message.Sale, c.sales)
		for j := range ss {
			ss[j] = message.Sale{Serial: held[i][j], Ticket: fmt.Sprintf("K-%06d", j+1), Vendor: t.Cards[0].Vendor, Time: now}
		}
		if reports[i], err = t.Report(1, ss, nil); err != nil {
			return err
		}
	}
	cpu0, pg0 = serverCPU(srvs), backendCPU(ctx, n.DB)
	answers, rep, err := burst(ctx, terms, srvs, reports)
	if err != nil {
		return fmt.Errorf("sales reports: %w", err)
	}
	repCPU, repPG := serverCPU(srvs)-cpu0, backendCPUSince(ctx, n.DB, pg0)
	for i, a := range answers {
		rc, err := terms[i].OpenReceipt(a)
		if err != nil || rc.Status != message.StatusAccepted {
			return fmt.Errorf("%s: report receipt %+v: %v", terms[i].ID, rc, err)
		}
	}
	sold := c.sales * len(terms)
	salesPerS := float64(sold) / rep.wall.Seconds()
	fmt.Printf("report   %d sales reports of %d sales at once: %d sales in %.3f s = %.0f sales/s; report latency p50 %.1f ms, p99 %.1f ms; CPU: servers %.2f s, PostgreSQL %.2f s\n",
		len(terms), c.sales, sold, rep.wall.Seconds(), salesPerS, ms(rep.pct(0.50)), ms(rep.pct(0.99)), repCPU.Seconds(), repPG.Seconds())

	tot, err := n.CheckInvariants(ctx, total)
	if err != nil {
		return fmt.Errorf("invariants after the run: %w", err)
	}
	if tot.Sold != sold || tot.Shipped != total-sold || tot.InVault != 0 {
		return fmt.Errorf("after the run: %d sold, %d shipped, %d in the vault; want %d, %d, 0", tot.Sold, tot.Shipped, tot.InVault, sold, total-sold)
	}
	fmt.Printf("checked  invariants: every code in one state and place, none in two shipment documents, %d shipments, %d sales\n", tot.Shipments, tot.Sales)
	if c.money {
		var charged int
		if err := n.DB.QueryRow(ctx, `SELECT count(*) FROM ledger_transactions WHERE kind = 'shipment' AND codes = $1`, c.codes).Scan(&charged); err != nil {
			return err
		}
		if charged != tot.Shipments {
			return fmt.Errorf("%d shipments charged of %d", charged, tot.Shipments)
		}
		fmt.Printf("checked  money: every shipment charged to its retailer\n")
	}
	fmt.Printf("targets  codes/s %.0f (≥ 100000), p99 %.0f ms (≤ 250), floor ratio %.2f (≤ 2), sales/s %.0f (≥ 20000)\n",
		codesPerS, ms(ship.pct(0.99)), ratio, salesPerS)
	fmt.Printf("{\"bench\":\"distribute\",\"terminals\":%d,\"codes\":%d,\"codes_per_s\":%v,\"p50_ms\":%v,\"p99_ms\":%v,\"floor_ratio\":%v,\"report_sales_per_s\":%v}\n",
		len(terms), shipped, round(codesPerS), round(ms(ship.pct(0.50))), round(ms(ship.pct(0.99))), round(ratio), round(salesPerS))
	return nil
}

// burst sends docs[i] from terms[i], spread over the servers, all at once after every
// terminal has its connection open, and returns the answers and the timing from the first
// send to the last answer.
func burst(ctx context.Context, terms []*netest.Terminal, srvs []*netest.Server, docs [][]byte) ([][]byte, timing, error) {
	answers := make([][]byte, len(terms))
	errs := make([]error, len(terms))
	lat := make([]time.Duration, len(terms))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	var t0 time.Time
	for i, t := range terms {
		ready.Add(1)
		done.Go(func() {
			srv := srvs[i%len(srvs)]
			err := t.Connect(ctx, srv)
			ready.Done()
			if err != nil {
				errs[i] = err
				return
			}
			<-start
			s := time.Now()
			answers[i], errs[i] = t.Exchange(ctx, srv, docs[i])
			lat[i] = time.Since(s)
		})
	}
	ready.Wait()
	t0 = time.Now()
	close(start)
	done.Wait()
	wall := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return nil, timing{}, err
	}
	return answers, timing{wall: wall, latencies: lat}, nil
}

// floorReserve reserves the rows of table (a copy of codes) with the statement Ship uses, n
// reservations of batch rows at once, each its own transaction, over a pool of conns
// connections. It returns their timing and the CPU PostgreSQL spent.
func floorReserve(ctx context.Context, net *netest.Network, table string, n, batch, conns int) (timing, time.Duration, error) {
	cfg, err := pgxpool.ParseConfig(net.DBURL)
	if err != nil {
		return timing{}, 0, err
	}
	cfg.MaxConns, cfg.MinConns = int32(conns), int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return timing{}, 0, err
	}
	defer pool.Close()
	// Open every connection before the clock starts, as the servers' pools are.
	held := make([]*pgxpool.Conn, conns)
	for i := range held {
		if held[i], err = pool.Acquire(ctx); err != nil {
			return timing{}, 0, err
		}
	}
	for _, c := range held {
		c.Release()
	}
	errs := make([]error, n)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	exp := time.Now().UTC()
	for i := range n {
		wg.Go(func() {
			<-start
			s := time.Now()
			errs[i] = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, `WITH picked AS (
						SELECT id FROM `+table+` WHERE operator_id = $1 AND product = $2 AND state = 'in_vault' AND expires_on > $5::date
						ORDER BY expires_on, id LIMIT $3 FOR UPDATE SKIP LOCKED)
					UPDATE `+table+` c SET state = 'shipped', shipment_id = $4 FROM picked WHERE c.id = picked.id
					RETURNING c.serial, c.batch_id, c.part, c.pin_ct, c.expires_on`, "OP-BENCH", "B10", batch, fmt.Sprintf("FLOOR-%d", i), exp)
				if err != nil {
					return err
				}
				got := 0
				for rows.Next() {
					got++
				}
				if err := rows.Err(); err != nil {
					return err
				}
				if got != batch {
					return fmt.Errorf("reserved %d rows, want %d", got, batch)
				}
				return nil
			})
			lat[i] = time.Since(s)
		})
	}
	pg0 := backendCPU(ctx, net.DB)
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	return timing{wall: wall, latencies: lat}, backendCPUSince(ctx, net.DB, pg0), errors.Join(errs...)
}

// shippingSlots is how many shipments a server builds at once: codevault's default
// (Config.Shipping), the larger of 4 and the CPUs. The rest of its orders wait for a slot.
func shippingSlots() int {
	return max(4, runtime.NumCPU())
}

// serverCPU is the CPU time (user + system) the server processes used so far.
func serverCPU(srvs []*netest.Server) time.Duration {
	var total time.Duration
	for _, s := range srvs {
		total += procCPU(s.Pid())
	}
	return total
}

// procCPU is a process's CPU time (user + system) from /proc, 0 when unreadable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold blanks) start after the last ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// readShipment reads a Shipment without checking its signature.
func readShipment(raw []byte) (message.Shipment, error) {
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		return message.Shipment{}, err
	}
	return message.ReadShipment(doc.Root())
}

// xmlsec1Verify checks a center document's signature with xmlsec1 against the platform CA.
func xmlsec1Verify(work, ca string, doc []byte) error {
	path := filepath.Join(work, "shipment.xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		return err
	}
	out, err := exec.Command("xmlsec1", "--verify", "--trusted-pem", ca, "--id-attr:Id", "urn:evoucher:exchange:1:Shipment", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xmlsec1 --verify of a shipment: %v\n%s", err, out)
	}
	return nil
}

package netest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/netest"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/xml/message"
)

// procDir is this test process's directory: the built binary and the token directory.
var procDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if procDir, err = os.MkdirTemp("", "netest-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(procDir)
	if err := netest.UseTokenDir(filepath.Join(procDir, "tokens")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

var build struct {
	once sync.Once
	bin  string
	err  error
}

// mustBin returns the evoucher binary: EVOUCHER_BIN, or one built once for this process.
func mustBin(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		if build.bin = os.Getenv("EVOUCHER_BIN"); build.bin != "" {
			return
		}
		build.bin = filepath.Join(procDir, "evoucher")
		out, err := exec.Command("go", "build", "-o", build.bin, "github.com/evoucher/evoucher/cmd/evoucher").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build ./cmd/evoucher: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		tb.Fatal(build.err)
	}
	return build.bin
}

// mustNetwork initialises a center on a fresh database; it is torn down when the test ends,
// after the servers' logs are shown if the test failed.
func mustNetwork(tb testing.TB) *netest.Network {
	tb.Helper()
	n, err := netest.New(context.Background(), netest.Config{AdminURL: testdb.AdminURL(tb), Bin: mustBin(tb), Dir: tb.TempDir(), Logf: tb.Logf})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Log(n.ServerLogs())
		}
		if err := n.Close(); err != nil {
			tb.Error(err)
		}
	})
	return n
}

func mustServer(tb testing.TB, n *netest.Network) *netest.Server {
	tb.Helper()
	s, err := n.StartServer(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustUpload(tb testing.TB, n *netest.Network, srv *netest.Server, codes int) map[string]string {
	tb.Helper()
	pins, err := n.Upload(context.Background(), srv, netest.Stock{Operator: "OP-A", Product: "P10", Batch: "LOT-1", Codes: codes})
	if err != nil {
		tb.Fatal(err)
	}
	return pins
}

// TestTwoServersScarceStock: two server processes on one database, 200 terminals ordering
// at once over HTTPS with client certificates, spread over both, on stock for half of them.
// Every code is shipped once, none twice, none lost, and every shipment reached its terminal.
func TestTwoServersScarceStock(t *testing.T) {
	ctx := context.Background()
	n := mustNetwork(t)
	servers := []*netest.Server{mustServer(t, n), mustServer(t, n)}
	const stock, shops, perShop, each = 1000, 4, 50, 10
	pins := mustUpload(t, n, servers[0], stock)
	var terms []*netest.Terminal
	for r := range shops {
		s := netest.Shop{Retailer: fmt.Sprintf("R-%d", r), Vendors: []string{fmt.Sprintf("V-%d", r)}}
		for i := range perShop {
			s.Terminals = append(s.Terminals, fmt.Sprintf("T-%d-%02d", r, i))
		}
		ts, err := n.AddShop(ctx, servers[r%2], s)
		if err != nil {
			t.Fatal(err)
		}
		terms = append(terms, ts...)
	}

	// Each terminal signs its order and opens its connection, then all send at once.
	type result struct {
		raw []byte
		err error
	}
	results := make([]result, len(terms))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, term := range terms {
		ready.Add(1)
		done.Go(func() {
			srv := servers[i%2]
			order, err := term.Order("OP-A", "P10", each)
			if err == nil {
				err = term.Connect(ctx, srv)
			}
			ready.Done()
			if err != nil {
				results[i].err = err
				return
			}
			<-start
			results[i].raw, results[i].err = term.Exchange(ctx, srv, order)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()

	shipped, outOfStock := 0, 0
	perServer := map[string]int{}
	got := map[string][]string{} // shipment id → serials, as the terminals received them
	owner := map[string]string{} // serial → shipment
	for i, r := range results {
		if evoucher.ReasonOf(r.err) == "out_of_stock" {
			outOfStock++
			continue
		}
		if r.err != nil {
			t.Fatalf("%s: %v", terms[i].ID, r.err)
		}
		sh, err := terms[i].OpenShipment(r.raw)
		if err != nil {
			t.Fatalf("%s cannot open its shipment: %v", terms[i].ID, err)
		}
		if len(sh.Codes) == 0 || len(sh.Codes) > each {
			t.Fatalf("%s ordered %d and got %d codes", terms[i].ID, each, len(sh.Codes))
		}
		for _, c := range sh.Codes {
			if other, ok := owner[c.Serial]; ok {
				t.Fatalf("serial %s was shipped in %s and %s", c.Serial, other, sh.ShipmentID)
			}
			if _, ok := pins[c.Serial]; !ok {
				t.Fatalf("serial %s was never uploaded", c.Serial)
			}
			owner[c.Serial] = sh.ShipmentID
			got[sh.ShipmentID] = append(got[sh.ShipmentID], c.Serial)
		}
		shipped += len(sh.Codes)
		perServer[servers[i%2].Name] += len(sh.Codes)
		// The two keys open what the center sealed: every 10th shipment, its first code.
		if i%10 == 0 {
			pin, err := terms[i].Reveal(sh, terms[i].Cards[0], sh.Codes[0].Serial)
			if err != nil || string(pin) != pins[sh.Codes[0].Serial] {
				t.Fatalf("%s: reveal of %s: %v", terms[i].ID, sh.Codes[0].Serial, err)
			}
		}
	}
	t.Logf("%d codes shipped in %d shipments (per server %v); %d orders found the vault empty", shipped, len(got), perServer, outOfStock)
	// Twice as much was ordered as there was: every code leaves, each exactly once.
	if shipped != stock {
		t.Fatalf("%d codes shipped from a stock of %d ordered twice over", shipped, stock)
	}
	for _, s := range servers {
		if perServer[s.Name] == 0 {
			t.Fatalf("%s shipped nothing: the orders were not spread over both servers", s.Name)
		}
	}

	tot, err := n.CheckInvariants(ctx, stock)
	if err != nil {
		t.Fatal(err)
	}
	if tot.InVault != 0 || tot.Shipped != stock || tot.ShipmentCodes != stock || tot.DocumentSerials != stock {
		t.Fatalf("after the orders: %d in the vault, %d shipped, shipments count %d, documents hold %d; want 0, %d, %d, %d",
			tot.InVault, tot.Shipped, tot.ShipmentCodes, tot.DocumentSerials, stock, stock, stock)
	}
	// Nothing shipped that no terminal received, and the rows are what the terminals got.
	if tot.Shipments != len(got) {
		t.Fatalf("%d shipments stored, %d received", tot.Shipments, len(got))
	}
	for id, serials := range got {
		if !slices.Equal(tot.SerialsByShipment[id], serials) {
			t.Fatalf("shipment %s: stored %v, received %v", id, tot.SerialsByShipment[id], serials)
		}
	}
}

// TestCheckInvariantsCatches: each way the database can break an invariant is reported.
func TestCheckInvariantsCatches(t *testing.T) {
	ctx := context.Background()
	n := mustNetwork(t)
	srv := mustServer(t, n)
	const stock = 50
	mustUpload(t, n, srv, stock)
	terms, err := n.AddShop(ctx, srv, netest.Shop{Retailer: "R-C", Terminals: []string{"T-C1", "T-C2"}, Vendors: []string{"V-C"}})
	if err != nil {
		t.Fatal(err)
	}
	var ships []message.Shipment
	for _, term := range terms {
		order, _ := term.Order("OP-A", "P10", 10)
		raw, err := term.Exchange(ctx, srv, order)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := term.OpenShipment(raw)
		if err != nil {
			t.Fatal(err)
		}
		ships = append(ships, sh)
	}
	a, b := ships[0], ships[1]
	report, _ := terms[0].Report(1, []message.Sale{{Serial: a.Codes[0].Serial, Ticket: "K-1", Vendor: "V-C", Time: time.Now().UTC()}}, nil)
	if _, err := terms[0].Exchange(ctx, srv, report); err != nil {
		t.Fatal(err)
	}
	tot, err := n.CheckInvariants(ctx, stock)
	if err != nil {
		t.Fatal(err)
	}
	if tot.InVault != 30 || tot.Shipped != 19 || tot.Sold != 1 || tot.Sales != 1 || tot.Shipments != 2 || tot.ReportSeq["T-C1"] != 1 {
		t.Fatalf("totals %+v", tot)
	}
	exec := func(t *testing.T, sql string, args ...any) {
		t.Helper()
		if _, err := n.DB.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, tamper, undo string
		args, undoArgs     []any
		uploaded           int
		want               string
	}{
		{name: "ErrCodeLost", uploaded: stock + 1, want: "were uploaded"},
		{name: "ErrSerialInTwoDocuments", want: "is in two shipments",
			tamper: `UPDATE shipments SET log_index = (SELECT log_index FROM shipments WHERE id = $1) WHERE id = $2`,
			args:   []any{a.ShipmentID, b.ShipmentID},
			undo:   `UPDATE shipments SET log_index = $2 WHERE id = $1`, undoArgs: []any{b.ShipmentID, mustLogIndex(t, n, b.ShipmentID)}},
		{name: "ErrCodeNotInItsDocument", want: "that shipment's document does not hold it",
			tamper: `UPDATE codes SET shipment_id = $2 WHERE serial = $1`, args: []any{a.Codes[1].Serial, b.ShipmentID},
			undo: `UPDATE codes SET shipment_id = $2 WHERE serial = $1`, undoArgs: []any{a.Codes[1].Serial, a.ShipmentID}},
		{name: "ErrShipmentCount", want: "its document says",
			tamper: `UPDATE shipments SET count = count + 1 WHERE id = $1`, undo: `UPDATE shipments SET count = count - 1 WHERE id = $1`, args: []any{a.ShipmentID}},
		{name: "ErrSoldWithoutSale", want: "sales recorded for",
			tamper: `UPDATE codes SET state = 'sold', sold_at = now() WHERE serial = $1`, undo: `UPDATE codes SET state = 'shipped', sold_at = NULL WHERE serial = $1`,
			args: []any{b.Codes[0].Serial}},
		{name: "ErrSaleByAnotherTerminal", want: "which was not shipped to it",
			tamper: `UPDATE sales SET terminal_id = 'T-C2'`, undo: `UPDATE sales SET terminal_id = 'T-C1'`},
		{name: "ErrReportSeqBehind", want: "its last report taken is 0",
			tamper: `UPDATE terminals SET report_seq = 0 WHERE id = 'T-C1'`, undo: `UPDATE terminals SET report_seq = 1 WHERE id = 'T-C1'`},
		{name: "ErrReportNotLogged", want: "1 recorded documents not logged",
			tamper: `UPDATE messages SET log_message = NULL WHERE type = 'SalesReport'`,
			undo: `UPDATE messages m SET log_message = (SELECT id FROM log_messages l WHERE l.message_id = m.message_id::text)
				WHERE type = 'SalesReport'`},
		{name: "ErrSequencedAndQueued", want: "1 in both",
			tamper: `INSERT INTO log_pending (message, leaf_hash) SELECT message, leaf_hash FROM log_leaves WHERE idx = 0`,
			undo:   `DELETE FROM log_pending`},
		{name: "ErrDeliveredInSentShipment", want: "disagree with their shipment's state",
			tamper: `UPDATE codes SET state = 'delivered' WHERE serial = $1`, undo: `UPDATE codes SET state = 'shipped' WHERE serial = $1`,
			args: []any{b.Codes[2].Serial}},
	} {
		t.Run(c.name, func(t *testing.T) {
			uploaded := stock
			if c.uploaded != 0 {
				uploaded = c.uploaded
			}
			if c.tamper != "" {
				exec(t, c.tamper, c.args...)
				undoArgs := c.undoArgs
				if undoArgs == nil {
					undoArgs = c.args
				}
				defer exec(t, c.undo, undoArgs...)
			}
			_, err := n.CheckInvariants(ctx, uploaded)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a violation saying %q", err, c.want)
			}
		})
	}
	if _, err := n.CheckInvariants(ctx, stock); err != nil {
		t.Fatalf("after undoing every change: %v", err)
	}
}

func mustLogIndex(tb testing.TB, n *netest.Network, shipment string) int64 {
	tb.Helper()
	var idx int64
	if err := n.DB.QueryRow(context.Background(), `SELECT log_index FROM shipments WHERE id = $1`, shipment).Scan(&idx); err != nil {
		tb.Fatal(err)
	}
	return idx
}

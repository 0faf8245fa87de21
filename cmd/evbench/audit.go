package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/migrations"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// auditUsage is the usage line of `evbench audit`.
const auditUsage = "usage: evbench audit [-entries N] [-writers N] [-append N] [-batch N] [-docs N] [-center-every N] [-cpuprofile FILE] [-keep]"

type auditConfig struct {
	admin       string
	entries     int // entries in the log the auditor verifies
	writers     int // concurrent writers of the append phase
	appends     int // entries appended one per transaction (part of entries), and as many again batch per transaction
	batch       int // messages per transaction of the second append run (0: none)
	docs        int // distinct signed documents, cycled through
	centerEvery int // one document in centerEvery is a PurchaseOrder signed by the center
	cpuProfile  string
	keep        bool
}

// runAudit is `evbench audit`: the append rate of concurrent writers, one message per
// transaction, then the time an auditor takes to verify the whole log from scratch, every
// message's signature included, read in-process from the database through auditlog.Log.
func runAudit(args []string) error {
	fs := flag.NewFlagSet("audit", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, auditUsage); fs.PrintDefaults() }
	c := auditConfig{}
	fs.IntVar(&c.entries, "entries", 1_000_000, "entries in the log the auditor verifies")
	fs.IntVar(&c.writers, "writers", 8, "concurrent writers of the append phase")
	fs.IntVar(&c.appends, "append", 50_000, "entries the writers append one per transaction on its own, as many in BEGIN … COMMIT, and as many again -batch per transaction (at most a third of -entries; the rest of the log is built 1,000 per transaction)")
	fs.IntVar(&c.batch, "batch", 10, "messages per transaction of the second append run (0: no second run)")
	fs.IntVar(&c.docs, "docs", 2_000, "distinct signed documents, cycled through to fill the log")
	fs.IntVar(&c.centerEvery, "center-every", 4, "one document in N is a PurchaseOrder signed by the center's RSA-3072 token key; the rest are terminals' (RSA-2048)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the verification to this file")
	fs.BoolVar(&c.keep, "keep", false, "keep the database")
	_ = fs.Parse(args)
	c.admin = os.Getenv("DATABASE_URL")
	if c.admin == "" {
		return errors.New("DATABASE_URL is not set: run `make bench-audit`")
	}
	if c.entries < 1 || c.writers < 1 || c.docs < 1 || c.centerEvery < 1 || c.appends < 0 || c.batch < 0 {
		return errors.New(auditUsage)
	}
	c.appends = min(c.appends, c.entries/3)
	cflog.Level = cflog.LevelWarning // not a line per certificate issued
	return benchAudit(context.Background(), c)
}

// auditParties are the signers of the benchmark's documents: the center's token key and some
// terminals' software keys, all certified by the platform CA in the token.
type auditParties struct {
	ca         *x509.Certificate
	crl        []byte
	centerKey  crypto.Signer
	centerCert *x509.Certificate
	terminals  []auditSigner
	log        *auditlog.Signer
	close      func()
}

type auditSigner struct {
	entity string
	key    *rsa.PrivateKey
	cert   *x509.Certificate
}

func benchAudit(ctx context.Context, c auditConfig) error {
	dbName := "evbench_" + randHex(6)
	dbURL, err := withDatabase(c.admin, dbName)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return err
	}
	defer func() {
		if c.keep {
			fmt.Println("kept database", dbName)
			return
		}
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
	}()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(c.writers + 4)
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := migrations.Up(ctx, db); err != nil {
		return err
	}
	cores := runtime.GOMAXPROCS(0)
	fmt.Printf("audit benchmark: %d entries, %d writers, %d cores, PostgreSQL %s\n", c.entries, c.writers, cores, dbName)

	parties, err := auditSetup(ctx, db)
	if err != nil {
		return err
	}
	defer parties.close()
	t0 := time.Now()
	docs, err := auditDocs(parties, c.docs, c.centerEvery)
	if err != nil {
		return err
	}
	var centerDocs, bytes int
	for _, d := range docs {
		bytes += len(d.Data)
		if d.Sender == message.Center {
			centerDocs++
		}
	}
	fmt.Printf("docs     %d distinct signed documents (%d PurchaseOrders by the center's RSA-3072 token key, %d StockOrders, ShipmentAcks and SalesReports by %d terminals' RSA-2048 keys), %.0f bytes on average, signed in %.2f s; the log cycles through them\n",
		len(docs), centerDocs, len(docs)-centerDocs, len(parties.terminals), float64(bytes)/float64(len(docs)), time.Since(t0).Seconds())

	// One message per transaction through the queue (as the center logs what terminals and
	// operators send, and its receipts): first as a transaction of its own, then inside
	// BEGIN … COMMIT with the writer waiting for its entry's index as a receipt does; then
	// through the locked path (the index inside the transaction, as a shipment needs it); then
	// batch per transaction through the queue.
	runs := []appendRun{
		{queue: true, alone: true},
		{queue: true, batch: 1, wait: true},
		{alone: true},
		{queue: true, batch: c.batch},
	}
	var appendPerS float64
	built := 0
	for i, r := range runs {
		if (!r.alone && r.batch == 0) || built+c.appends > c.entries {
			continue
		}
		perS, err := auditAppend(ctx, db, docs, built, c.appends, c.writers, r)
		if err != nil {
			return err
		}
		if i == 0 {
			appendPerS = perS
		}
		built += c.appends
	}
	t0 = time.Now()
	if err := auditBuild(ctx, db, docs, built, c.entries); err != nil {
		return err
	}
	fmt.Printf("build    %d more entries, 1,000 per transaction, in %.2f s\n", c.entries-built, time.Since(t0).Seconds())
	// Autovacuum would otherwise visit the freshly written gigabytes while the auditor reads
	// them, and take the cores the verification is timed on.
	t0 = time.Now()
	if _, err := db.Exec(ctx, `VACUUM (ANALYZE) log_messages, log_leaves, log_nodes`); err != nil {
		return err
	}
	fmt.Printf("vacuum   the log's tables in %.2f s (before the verification, as autovacuum would after the build)\n", time.Since(t0).Seconds())

	l, err := auditlog.New(db, parties.log, nil)
	if err != nil {
		return err
	}
	cp, err := l.Sign(ctx)
	if err != nil {
		return err
	}
	if cp.Size != uint64(c.entries) {
		return fmt.Errorf("the log has %d entries, want %d", cp.Size, c.entries)
	}
	src := &auditSource{log: l, note: cp.Note, crl: parties.crl}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	debug.SetGCPercent(auditGCPercent) // as `evoucher audit verify` does
	cpu0, pg0 := processCPU(), backendCPU(ctx, db)
	t0 = time.Now()
	st, sum, err := auditlog.Audit(ctx, src, parties.log.VerifierKey(), parties.ca, nil)
	verifyS := time.Since(t0).Seconds()
	cpuS, pgS := (processCPU() - cpu0).Seconds(), backendCPUSince(ctx, db, pg0).Seconds()
	if c.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	verified := 0
	for _, n := range sum.Counts {
		verified += n
	}
	if st.Size != uint64(c.entries) || verified != c.entries {
		return fmt.Errorf("audit verified %d messages of a log of %d, want %d", verified, st.Size, c.entries)
	}
	fmt.Printf("verify   %d entries from scratch in %.2f s = %.0f entries/s (checkpoint, tree recomputed, every message's XML signature and signer checked; in-process source on auditlog.Log, pages of 1,000 from PostgreSQL); process CPU %.1f s = %.0f µs per entry, PostgreSQL %.1f s = %.0f µs per entry\n",
		c.entries, verifyS, float64(c.entries)/verifyS, cpuS, cpuS*1e6/float64(c.entries), pgS, pgS*1e6/float64(c.entries))
	byType := map[string]int{}
	for k, n := range sum.Counts {
		byType[strings.SplitN(k, " ", 2)[0]] += n
	}
	fmt.Printf("verified")
	for _, t := range slices.Sorted(maps.Keys(byType)) {
		fmt.Printf(" %d %s", byType[t], t)
	}
	fmt.Printf(" (%d type and sender pairs)\n", len(sum.Counts))

	t2048, t3072, err := rsaVerifyTimes(parties)
	if err != nil {
		return err
	}
	d2048, err := dsigVerifyTime(parties.terminals[0].key, 2000)
	if err != nil {
		return err
	}
	d3072, err := dsigVerifyTime(parties.centerKey, 500)
	if err != nil {
		return err
	}
	// The issue's floor: every entry an RSA-2048 signature checked by crypto/rsa. The mix
	// floor: this log's signatures, each at the best of crypto/rsa and xml/dsig.
	floor := float64(c.entries) * t2048.Seconds() / float64(cores)
	center := c.entries * centerDocs / len(docs)
	mixFloor := (float64(c.entries-center)*min(t2048, d2048).Seconds() + float64(center)*min(t3072, d3072).Seconds()) / float64(cores)
	fmt.Printf("floor    one verification (measured here, one goroutine): RSA-2048 %.1f µs with crypto/rsa, %.1f µs as xml/dsig does; RSA-3072 %.1f µs with crypto/rsa, %.1f µs as xml/dsig does; entries × RSA-2048 (crypto/rsa) / %d cores = %.2f s; this log's mix (%d RSA-3072), each at its best, = %.2f s\n",
		us(t2048), us(d2048), us(t3072), us(d3072), cores, floor, center, mixFloor)
	fmt.Printf("ratio    verify / floor = %.2f, verify / mix floor = %.2f (target: verify ≤ 25 s on 2 cores); append %.0f messages/s, queued one per transaction (target ≥ 10,000)\n",
		verifyS/floor, verifyS/mixFloor, appendPerS)
	fmt.Printf("{\"bench\":\"audit\",\"append_per_s\":%v,\"verify_entries\":%d,\"verify_s\":%v}\n", round(appendPerS), c.entries, round(verifyS))
	return nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// auditSetup makes a SoftHSM2 token holding the CA, center-sign and log keys, the CA and the
// certificates, and revokes one terminal so the CRL is not empty.
func auditSetup(ctx context.Context, db *pgxpool.Pool) (*auditParties, error) {
	dir, err := os.MkdirTemp("", "evbench-audit-")
	if err != nil {
		return nil, err
	}
	p := &auditParties{close: func() { _ = os.RemoveAll(dir) }}
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()
	module, err := pkcs11.FindSoftHSMModule()
	if err != nil {
		return nil, err
	}
	conf, err := pkcs11.SoftHSMDir(filepath.Join(dir, "softhsm"))
	if err != nil {
		return nil, err
	}
	// libsofthsm2 reads its configuration from the environment, once per process.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return nil, err
	}
	pin := pkcs11.PIN(randHex(8))
	if err := pkcs11.InitSoftHSMToken(conf, "evbench-audit", pkcs11.PIN(randHex(8)), pin); err != nil {
		return nil, err
	}
	tok, err := pkcs11.Open(pkcs11.Config{Module: module, TokenLabel: "evbench-audit", PIN: pin})
	if err != nil {
		return nil, err
	}
	p.close = func() { _ = tok.Close(); _ = os.RemoveAll(dir) }
	caKey, _, err := tok.RSAKey("ca", 3072)
	if err != nil {
		return nil, err
	}
	if p.ca, _, err = pki.EnsureCA(ctx, db, caKey, "ca"); err != nil {
		return nil, err
	}
	a, err := pki.New(pki.Config{DB: db, CA: p.ca, CAKey: caKey})
	if err != nil {
		return nil, err
	}
	centerKey, _, err := tok.RSAKey("center-sign", 3072)
	if err != nil {
		return nil, err
	}
	p.centerKey = centerKey
	if p.centerCert, _, err = a.EnsureCertificate(ctx, centerKey, pki.RoleCenterSign, "center", nil); err != nil {
		return nil, err
	}
	logKey, _, err := tok.ECDSAKey("log")
	if err != nil {
		return nil, err
	}
	if p.log, err = auditlog.NewSigner("evbench.example/log", logKey); err != nil {
		return nil, err
	}
	for i := range 9 {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		entity := fmt.Sprintf("T-%02d", i+1)
		der, err := pki.NewCSR(key, entity)
		if err != nil {
			return nil, err
		}
		csr, err := pki.ParseCSR(der)
		if err != nil {
			return nil, err
		}
		cert, err := a.Issue(ctx, pki.IssueRequest{CSR: csr, Role: pki.RoleTerminal, Entity: entity})
		if err != nil {
			return nil, err
		}
		p.terminals = append(p.terminals, auditSigner{entity: entity, key: key, cert: cert})
	}
	// The last terminal is revoked: it signs nothing, but every signer is looked up in a CRL
	// that lists it.
	revoked := p.terminals[len(p.terminals)-1]
	p.terminals = p.terminals[:len(p.terminals)-1]
	if _, err := a.Revoke(ctx, pki.SerialOf(revoked.cert), "keyCompromise"); err != nil {
		return nil, err
	}
	if p.crl, err = a.CRL(ctx); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// auditDocs signs n distinct documents: one in centerEvery a PurchaseOrder from the center,
// the others a terminal's StockOrder, ShipmentAck or SalesReport.
func auditDocs(p *auditParties, n, centerEvery int) ([]auditlog.Entry, error) {
	out := make([]auditlog.Entry, n)
	errs := make([]error, n)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				out[i], errs[i] = auditDoc(p, i, centerEvery)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func auditDoc(p *auditParties, i, centerEvery int) (auditlog.Entry, error) {
	id := uuid.NewString()
	now := time.Now().UTC()
	var doc = message.BuildPurchaseOrder(message.PurchaseOrder{
		Envelope: message.Envelope{ID: "po-" + id, MessageID: id, Sender: message.Center, Recipient: "OP-A", Created: now},
		OrderID:  "PO-" + id[:8], Product: "P10", Quantity: 100 + i, Reason: fmt.Sprintf("vault stock %d below reorder level 1000", i%1000)})
	key, cert := p.centerKey, p.centerCert
	if i%centerEvery != 0 {
		k := i - i/centerEvery - 1 // the terminals' documents before this one
		t := p.terminals[k%len(p.terminals)]
		key, cert = t.key, t.cert
		env := message.Envelope{ID: "m-" + id, MessageID: id, Sender: t.entity, Recipient: message.Center, Created: now}
		switch k / len(p.terminals) % 3 {
		case 0:
			doc = message.BuildStockOrder(message.StockOrder{Envelope: env, Operator: "OP-A", Product: "P10", Quantity: 1 + i%500})
		case 1:
			serials := make([]string, 100)
			for j := range serials {
				serials[j] = fmt.Sprintf("%012d", 100_000_000_000+i*100+j)
			}
			doc = message.BuildShipmentAck(message.ShipmentAck{Envelope: env, ShipmentID: "S-" + id[:8], Count: len(serials), SerialsDigest: message.SerialsDigest(serials)})
		default:
			r := message.SalesReport{Envelope: env, Seq: int64(1 + i)}
			for j := range 1 + k%4 {
				r.Sales = append(r.Sales, message.Sale{Serial: fmt.Sprintf("%012d", 100_000_000_000+i*10+j), Ticket: fmt.Sprintf("TK-%d-%d", i, j),
					Vendor: "V-01", Time: now.Add(-time.Duration(j) * time.Minute)})
			}
			r.Stock = []message.StockLevel{{Operator: "OP-A", Product: "P10", Count: 40 + i%60}}
			doc = message.BuildSalesReport(r)
		}
	}
	raw, err := dsig.SignBytes(doc, key, cert)
	if err != nil {
		return auditlog.Entry{}, err
	}
	env, err := readEnvelope(raw)
	if err != nil {
		return auditlog.Entry{}, err
	}
	return auditlog.Entry{Type: env.Type, Sender: env.Sender, Recipient: env.Recipient, MessageID: env.MessageID, Time: env.Created, Data: raw}, nil
}

func readEnvelope(raw []byte) (message.Envelope, error) {
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		return message.Envelope{}, err
	}
	return message.ReadEnvelope(doc.Root())
}

// appendSequenceEvery is how often the queue is sequenced while writers append without
// waiting for their indexes.
const appendSequenceEvery = 5 * time.Millisecond

// appendRun is how auditAppend's writers append.
type appendRun struct {
	queue bool // through the queue (auditlog.Enqueue), sequenced meanwhile; else auditlog.Append, under the log's lock
	alone bool // one message per transaction, the append its only statement (no BEGIN or COMMIT)
	batch int  // else, messages per transaction, between BEGIN and COMMIT
	wait  bool // each writer waits for its message's index after the commit, as a receipt does
}

func (r appendRun) String() string {
	var s string
	switch {
	case r.alone:
		s = "one per transaction, on its own"
	case r.batch == 1:
		s = "one per transaction, in BEGIN … COMMIT"
	default:
		s = fmt.Sprintf("%d per transaction", r.batch)
	}
	if r.wait {
		s += ", each writer waiting for its index"
	}
	if r.queue {
		return "queued, " + s
	}
	return "locked, " + s
}

// auditAppend has writers append n entries, docs from..from+n cycled, as r says, and returns
// the messages appended per second: through the queue, until the last is sequenced, with a
// sequencer running meanwhile as the center's receipts and checkpoints keep one busy. It
// prints the rate, the latency of a transaction and the CPU time per message of this process
// and of PostgreSQL's backends.
func auditAppend(ctx context.Context, db *pgxpool.Pool, docs []auditlog.Entry, from, n, writers int, r appendRun) (float64, error) {
	if n == 0 {
		return 0, nil
	}
	batch := max(r.batch, 1)
	txs := (n + batch - 1) / batch
	lat := make([]time.Duration, txs)
	errs := make([]error, writers)
	seq := auditlog.NewSequencer(db)
	var next atomic.Int64
	var wg sync.WaitGroup
	debug.SetGCPercent(auditGCPercent) // as `evoucher audit verify` does
	cpu0, pg0 := processCPU(), backendCPU(ctx, db)
	t0 := time.Now()
	// The sequencer, as the center runs it, every few milliseconds while the writers write,
	// and once after.
	seqCtx, stopSeq := context.WithCancel(ctx)
	defer stopSeq()
	sequencer := make(chan error, 1)
	if r.queue {
		go func() { sequencer <- seq.Run(seqCtx, appendSequenceEvery) }()
	} else {
		sequencer <- context.Canceled
	}
	for w := range writers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < txs; i = int(next.Add(1) - 1) {
				es := make([]*auditlog.Entry, 0, batch)
				for j := i * batch; j < min((i+1)*batch, n); j++ {
					e := docs[(from+j)%len(docs)]
					es = append(es, &e)
				}
				t := time.Now()
				if err := appendOnce(ctx, db, seq, r, es); err != nil {
					errs[w] = err
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	stopSeq()
	if err := <-sequencer; !errors.Is(err, context.Canceled) {
		return 0, err
	}
	if r.queue {
		if err := seq.Sync(ctx); err != nil {
			return 0, err
		}
	}
	wall := time.Since(t0)
	cpu, pg := processCPU()-cpu0, backendCPUSince(ctx, db, pg0)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	var size, pending int64
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM log_leaves), (SELECT count(*) FROM log_pending)`).Scan(&size, &pending); err != nil {
		return 0, err
	}
	if size != int64(from+n) || pending != 0 {
		return 0, fmt.Errorf("after appending %d entries the log has %d leaves and %d pending, want %d and 0", n, size, pending, from+n)
	}
	slices.Sort(lat)
	perS := float64(n) / wall.Seconds()
	var sequencing string
	if entries, runs := seq.Stats(); r.queue && runs > 0 {
		sequencing = fmt.Sprintf("; %d sequencings, %.1f entries each", runs, float64(entries)/float64(runs))
	}
	fmt.Printf("append   %d messages, %s, %d concurrent writers: %.2f s = %.0f messages/s; transaction latency p50 %.2f ms, p99 %.2f ms%s; CPU per message: evbench %.0f µs, PostgreSQL %.0f µs\n",
		n, r, writers, wall.Seconds(), perS, lat[txs/2].Seconds()*1000, lat[min(txs-1, txs*99/100)].Seconds()*1000, sequencing,
		cpu.Seconds()*1e6/float64(n), pg.Seconds()*1e6/float64(n))
	return perS, nil
}

// appendOnce appends es as r says.
func appendOnce(ctx context.Context, db *pgxpool.Pool, seq *auditlog.Sequencer, r appendRun, es []*auditlog.Entry) error {
	add := func(q auditlog.Querier) ([]int64, error) {
		if r.queue {
			return auditlog.Enqueue(ctx, q, es...)
		}
		_, err := auditlog.Append(ctx, q, es...)
		return nil, err
	}
	if r.alone {
		_, err := add(db)
		return err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	ids, err := add(tx)
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	if r.wait && r.queue {
		_, err = seq.Index(ctx, ids[0])
	}
	return err
}

// backendCPU is the CPU time used so far by each PostgreSQL backend connected to db's
// database, when the server runs on this machine (else empty).
func backendCPU(ctx context.Context, db *pgxpool.Pool) map[int]time.Duration {
	out := map[int]time.Duration{}
	rows, err := db.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return out
	}
	pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
	for _, pid := range pids {
		if d := procCPU(int(pid)); d > 0 {
			out[int(pid)] = d
		}
	}
	return out
}

// backendCPUSince is the CPU db's backends used since before was sampled.
func backendCPUSince(ctx context.Context, db *pgxpool.Pool, before map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range backendCPU(ctx, db) {
		d += t - before[pid]
	}
	return d
}

// auditBuild appends entries [from, to) in transactions of 1,000.
func auditBuild(ctx context.Context, db *pgxpool.Pool, docs []auditlog.Entry, from, to int) error {
	const batch = 1000
	for i := from; i < to; i += batch {
		es := make([]*auditlog.Entry, 0, batch)
		for j := i; j < min(i+batch, to); j++ {
			e := docs[j%len(docs)]
			es = append(es, &e)
		}
		tx, err := db.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := auditlog.Append(ctx, tx, es...); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// auditSource serves the log in-process from the database, as the center's API does without
// the HTTP and JSON around it.
type auditSource struct {
	log  *auditlog.Log
	note []byte
	crl  []byte
}

func (s *auditSource) Checkpoint(context.Context) ([]byte, error) { return s.note, nil }
func (s *auditSource) Entries(ctx context.Context, from, to uint64) ([]auditlog.Entry, error) {
	return s.log.Entries(ctx, from, to)
}
func (s *auditSource) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	return s.log.ConsistencyProof(ctx, from, to)
}
func (s *auditSource) CRL(context.Context) ([]byte, error) { return s.crl, nil }

// rsaVerifyTimes measures one PKCS #1 v1.5 SHA-256 verification with a terminal's RSA-2048
// key and with the center's RSA-3072 key, on one goroutine, taking the best of five runs.
func rsaVerifyTimes(p *auditParties) (t2048, t3072 time.Duration, err error) {
	d := sha256.Sum256([]byte("evbench"))
	measure := func(key crypto.Signer, n int) (time.Duration, error) {
		sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			return 0, err
		}
		pub := key.Public().(*rsa.PublicKey)
		best := time.Duration(1<<63 - 1)
		for range 5 {
			t0 := time.Now()
			for range n {
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
					return 0, err
				}
			}
			best = min(best, time.Since(t0)/time.Duration(n))
		}
		return best, nil
	}
	if t2048, err = measure(p.terminals[0].key, 2000); err != nil {
		return 0, 0, err
	}
	t3072, err = measure(p.centerKey, 500)
	return t2048, t3072, err
}

// dsigVerifyTime measures a signature check as xml/dsig makes it under a key its Verifier
// keeps (dsig.RSAVerifier: a Montgomery exponentiation on the key's kept constants, its
// loops in assembly), on a real signature by key (a value as large as the modulus: a
// small one, such as N - k, squares into small numbers and measures half the cost), best of
// five.
func dsigVerifyTime(key crypto.Signer, n int) (time.Duration, error) {
	d := sha256.Sum256([]byte("evbench"))
	sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return 0, err
	}
	verify := dsig.RSAVerifier(key.Public().(*rsa.PublicKey))
	best := time.Duration(1<<63 - 1)
	for range 5 {
		t0 := time.Now()
		for range n {
			if err := verify(d[:], sig); err != nil {
				return 0, err
			}
		}
		best = min(best, time.Since(t0)/time.Duration(n))
	}
	return best, nil
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// auditGCPercent is `evoucher audit verify`'s garbage collector target (cmd/evoucher).
const auditGCPercent = 400

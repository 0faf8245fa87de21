package codevault_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pos"
	"github.com/evoucher/evoucher/retailer"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

type shop struct {
	term  *pos.Terminal
	cards map[string]pos.Card
}

// mustShop records retailer R-1 with terminal id and vendor cards; every key is in a token of
// its own (the terminal's, and one per card).
func (f *fixture) mustShop(t *testing.T, retailerID, terminalID string, vendors ...string) shop {
	t.Helper()
	ctx := context.Background()
	if _, err := f.shops.Retailer(ctx, retailerID); err != nil {
		if err := f.shops.CreateRetailer(ctx, retailer.Retailer{ID: retailerID, Name: retailerID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.shops.AddTerminal(ctx, retailer.Terminal{ID: terminalID, Retailer: retailerID, Name: terminalID}); err != nil {
		t.Fatal(err)
	}
	issue := func(role pki.Role, entity string) (pos.KeyPair, party) {
		tok := testhsm.MustToken(t)
		key, _, err := tok.RSAKey(string(role), 2048)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := pki.NewCSR(key, entity)
		req, _ := pki.ParseCSR(csr)
		cert, err := f.ca.Issue(ctx, pki.IssueRequest{CSR: req, Role: role, Entity: entity})
		if err != nil {
			t.Fatal(err)
		}
		return key, party{key: key, cert: cert}
	}
	tk, tp := issue(pki.RoleTerminal, terminalID)
	s := shop{term: &pos.Terminal{ID: terminalID, Key: tk, Cert: tp.cert, CA: f.ca.CA()}, cards: map[string]pos.Card{}}
	for _, v := range vendors {
		if err := f.shops.AddVendor(ctx, retailer.Vendor{ID: v, Retailer: retailerID, Name: v}); err != nil {
			t.Fatal(err)
		}
		k, p := issue(pki.RoleVendor, v)
		s.cards[v] = pos.Card{Vendor: v, Key: k, Cert: p.cert}
	}
	return s
}

func terminalPeer(id string) pki.Identity { return pki.Identity{Role: pki.RoleTerminal, Entity: id} }

func (f *fixture) stock(t *testing.T, first, n int) []message.Code {
	t.Helper()
	cs := codes(first, n)
	for _, d := range f.seal(t, "OP-A", f.opA, fmt.Sprintf("B-%d", first), cs, 1000) {
		if _, err := f.vault.Receive(context.Background(), peer("OP-A"), d); err != nil {
			t.Fatal(err)
		}
	}
	return cs
}

func TestDistribution(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	cs := f.stock(t, 110_000_000_000, 40)
	pins := map[string]string{}
	for _, c := range cs {
		pins[c.Serial] = string(c.PIN)
	}
	s := f.mustShop(t, "R-1", "T-1", "V-1", "V-2")
	other := f.mustShop(t, "R-2", "T-2", "V-9")

	info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-1", Operator: "OP-A", Product: "P10", Quantity: 10})
	if err != nil {
		t.Fatal(err)
	}
	if info.Count != 10 || f.count(t, `SELECT count(*) FROM codes WHERE shipment_id = $1 AND state = 'shipped'`, info.ID) != 10 {
		t.Fatalf("shipment %+v", info)
	}
	sh, err := s.term.OpenShipment(info.Document)
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.VendorShares) != 2 || len(sh.Codes) != 10 {
		t.Fatalf("shipment has %d vendor shares and %d codes", len(sh.VendorShares), len(sh.Codes))
	}
	if sh.Retailer != "R-1" || sh.RetailerName != "R-1" { // mustShop names a retailer after its id
		t.Fatalf("shipment for retailer %q named %q, want R-1 named R-1", sh.Retailer, sh.RetailerName)
	}
	// Earliest expiry first: all codes expire the same day here, so lowest ids first.
	if sh.Codes[0].Serial != cs[0].Serial {
		t.Fatalf("first code shipped is %s, want %s", sh.Codes[0].Serial, cs[0].Serial)
	}

	t.Run("TwoKeysOpenACode", func(t *testing.T) {
		for _, v := range []string{"V-1", "V-2"} {
			pin, err := s.term.Reveal(sh, s.cards[v], sh.Codes[3].Serial)
			if err != nil || string(pin) != pins[sh.Codes[3].Serial] {
				t.Fatalf("card %s: %v", v, err)
			}
		}
	})
	t.Run("ErrOneShareAlone", func(t *testing.T) {
		ts, err := xenc.UnwrapKey(sh.TerminalShare, s.term.Cert, s.term.Key)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := xenc.UnwrapKey(sh.VendorShares["V-1"], s.cards["V-1"].Cert, s.cards["V-1"].Key)
		if err != nil {
			t.Fatal(err)
		}
		for name, k := range map[string][]byte{"terminal share": ts, "card share": vs} {
			b, _ := aes.NewCipher(k)
			g, _ := cipher.NewGCM(b)
			c := sh.Codes[0].Sealed
			if _, err := g.Open(nil, c[:12], c[12:], message.ShipmentAAD(sh.ShipmentID, sh.Codes[0].Serial)); err == nil {
				t.Fatalf("the %s alone decrypted a code", name)
			}
		}
	})
	t.Run("LaterCardGetsShares", func(t *testing.T) {
		if err := f.shops.AddVendor(ctx, retailer.Vendor{ID: "V-3", Retailer: "R-1", Name: "V-3"}); err != nil {
			t.Fatal(err)
		}
		tok := testhsm.MustToken(t)
		key, _, _ := tok.RSAKey("card", 2048)
		csr, _ := pki.NewCSR(key, "V-3")
		req, _ := pki.ParseCSR(csr)
		cert, err := f.ca.Issue(ctx, pki.IssueRequest{CSR: req, Role: pki.RoleVendor, Entity: "V-3"})
		if err != nil {
			t.Fatal(err)
		}
		card := pos.Card{Vendor: "V-3", Key: key, Cert: cert}
		if _, err := s.term.Reveal(sh, card, sh.Codes[6].Serial); evoucher.ReasonOf(err) != "no_share" {
			t.Fatalf("a card enrolled later opened a code before its share came: %v", err)
		}
		ups, err := f.vault.ShareUpdates(ctx, "T-1")
		if err != nil || len(ups) != 1 {
			t.Fatalf("%d share updates (%v), want 1", len(ups), err)
		}
		local := sh
		local.VendorShares = maps.Clone(sh.VendorShares)
		if err := s.term.ApplyShares(&local, ups[0]); err != nil {
			t.Fatal(err)
		}
		pin, err := s.term.Reveal(local, card, sh.Codes[6].Serial)
		if err != nil || string(pin) != pins[sh.Codes[6].Serial] {
			t.Fatalf("the later card cannot open the code: %v", err)
		}
		if again, err := f.vault.ShareUpdates(ctx, "T-1"); err != nil || len(again) != 0 {
			t.Fatalf("shares sent twice: %d %v", len(again), err)
		}
		if err := other.term.ApplyShares(&local, ups[0]); evoucher.ReasonOf(err) != "not_for_us" {
			t.Fatalf("another terminal applied T-1's shares: %v", err)
		}
	})
	t.Run("ErrOtherTerminal", func(t *testing.T) {
		if _, err := other.term.OpenShipment(info.Document); evoucher.ReasonOf(err) != "not_for_us" {
			t.Fatalf("another terminal opened the shipment: %v", err)
		}
		if _, err := s.term.Reveal(sh, other.cards["V-9"], sh.Codes[0].Serial); evoucher.ReasonOf(err) != "no_share" {
			t.Fatalf("another retailer's card: %v", err)
		}
		ack, _ := other.term.Ack(sh)
		if _, err := f.vault.Receive(ctx, terminalPeer("T-2"), ack); evoucher.ReasonOf(err) != "not_your_shipment" {
			t.Fatalf("a terminal acked another's shipment: %v", err)
		}
	})

	ack, err := s.term.Ack(sh)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.vault.Receive(ctx, terminalPeer("T-1"), ack)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := s.term.OpenReceipt(resp); err != nil || rc.Status != message.StatusAccepted {
		t.Fatalf("ack receipt %+v %v", rc, err)
	}
	checkReceiptEntry(t, f, s.term, ack, resp)
	if f.count(t, `SELECT count(*) FROM codes WHERE shipment_id = $1 AND state = 'delivered'`, info.ID) != 10 ||
		f.count(t, `SELECT count(*) FROM shipments WHERE id = $1 AND state = 'confirmed'`, info.ID) != 1 {
		t.Fatal("ack did not confirm the shipment")
	}

	sale := func(i int, ticket string) message.Sale {
		return message.Sale{Serial: sh.Codes[i].Serial, Ticket: ticket, Vendor: "V-1", Time: time.Now().UTC()}
	}
	r1, _ := s.term.Report(1, []message.Sale{sale(0, "K-1"), sale(1, "K-2"), sale(2, "K-3")}, nil)
	resp, err = f.vault.Receive(ctx, terminalPeer("T-1"), r1)
	if err != nil {
		t.Fatal(err)
	}
	checkReceiptEntry(t, f, s.term, r1, resp)
	if f.count(t, `SELECT count(*) FROM codes WHERE shipment_id = $1 AND state = 'sold'`, info.ID) != 3 ||
		f.count(t, `SELECT count(*) FROM sales WHERE terminal_id = 'T-1'`) != 3 {
		t.Fatal("sales not recorded")
	}
	t.Run("SameReportAgainChangesNothing", func(t *testing.T) {
		before := f.counts(t)
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), r1); err != nil {
			t.Fatal(err)
		}
		if f.counts(t) != before {
			t.Fatal("a repeated report changed the vault")
		}
	})
	t.Run("ErrReportReplayed", func(t *testing.T) {
		r, _ := s.term.Report(1, []message.Sale{sale(5, "K-9")}, nil)
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), r); evoucher.ReasonOf(err) != "report_replayed" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("ErrReportGap", func(t *testing.T) {
		r, _ := s.term.Report(3, []message.Sale{sale(5, "K-9")}, nil)
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), r); evoucher.ReasonOf(err) != "report_gap" {
			t.Fatalf("%v", err)
		}
		if f.count(t, `SELECT count(*) FROM alarms WHERE kind = 'report_gap' AND subject = 'T-1' AND state = 'open'`) != 1 {
			t.Fatal("no report_gap alarm")
		}
		if f.count(t, `SELECT count(*) FROM codes WHERE serial = $1 AND state = 'sold'`, sh.Codes[5].Serial) != 0 {
			t.Fatal("a refused report sold a code")
		}
	})
	t.Run("ErrCodeNeverShippedHere", func(t *testing.T) {
		r, _ := s.term.Report(2, []message.Sale{{Serial: cs[39].Serial, Ticket: "K-7", Vendor: "V-1", Time: time.Now()}}, nil)
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), r); evoucher.ReasonOf(err) != "not_your_code" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("OnlineAuthorization", func(t *testing.T) {
		if err := f.vault.Authorize(ctx, "T-1", sale(4, "K-4")); err != nil {
			t.Fatal(err)
		}
		if f.count(t, `SELECT count(*) FROM sales s JOIN codes c ON c.id = s.code_id WHERE c.serial = $1 AND s.report_seq IS NULL AND c.state = 'sold'`, sh.Codes[4].Serial) != 1 {
			t.Fatal("authorised sale not recorded")
		}
		// The same sale in the next report is the same sale, counted once.
		r, _ := s.term.Report(2, []message.Sale{sale(4, "K-4")}, nil)
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), r); err != nil {
			t.Fatal(err)
		}
		if f.count(t, `SELECT count(*) FROM sales WHERE terminal_id = 'T-1'`) != 4 {
			t.Fatal("an authorised sale was counted twice")
		}
		if err := f.vault.Authorize(ctx, "T-1", sale(4, "K-5")); evoucher.ReasonOf(err) != "sold_twice" {
			t.Fatalf("a code sold twice: %v", err)
		}
		if err := f.vault.Authorize(ctx, "T-2", sale(5, "K-6")); evoucher.ReasonOf(err) != "not_your_code" {
			t.Fatalf("another terminal sold T-1's code: %v", err)
		}
	})
	t.Run("Return", func(t *testing.T) {
		back := []string{sh.Codes[8].Serial, sh.Codes[9].Serial}
		rt, err := s.term.Return(sh, s.cards["V-2"], back, f.centerEnc.cert)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), rt); err != nil {
			t.Fatal(err)
		}
		if f.count(t, `SELECT count(*) FROM codes WHERE serial = ANY($1) AND state = 'in_vault' AND shipment_id IS NULL`, back) != 2 {
			t.Fatal("returned codes are not back in the vault")
		}
		// A sold code cannot be returned.
		rt2, _ := s.term.Return(sh, s.cards["V-2"], []string{sh.Codes[0].Serial}, f.centerEnc.cert)
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), rt2); evoucher.ReasonOf(err) != "not_returnable" {
			t.Fatalf("return of a sold code: %v", err)
		}
	})
	t.Run("RevokedCardRefused", func(t *testing.T) {
		if _, err := f.ca.Revoke(ctx, pki.SerialOf(s.cards["V-2"].Cert), "keyCompromise"); err != nil {
			t.Fatal(err)
		}
		crl, err := f.ca.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.term.CheckCard(s.cards["V-2"].Cert, crl); evoucher.ReasonOf(err) != "revoked" {
			t.Fatalf("a terminal accepted a revoked card: %v", err)
		}
		if id, err := s.term.CheckCard(s.cards["V-1"].Cert, crl); err != nil || id.Entity != "V-1" {
			t.Fatalf("a valid card refused: %v", err)
		}
		next, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-1", Operator: "OP-A", Product: "P10", Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		nsh, err := s.term.OpenShipment(next.Document)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := nsh.VendorShares["V-2"]; ok || nsh.VendorShares["V-1"] == nil {
			t.Fatalf("a shipment after the revocation has shares for %v", maps.Keys(nsh.VendorShares))
		}
	})
	t.Run("RevokedTerminalQuarantined", func(t *testing.T) {
		if _, err := f.ca.Revoke(ctx, pki.SerialOf(s.term.Cert), "keyCompromise"); err != nil {
			t.Fatal(err)
		}
		// 10 shipped − 4 sold − 2 returned = 4 on the shelf, plus the 1 shipped after V-2's
		// revocation: 5 quarantined.
		q, err := f.vault.Quarantined(ctx, "OP-A", "T-1")
		if err != nil || len(q) != 5 {
			t.Fatalf("%d quarantined (%v), want 5", len(q), err)
		}
		if _, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-1", Operator: "OP-A", Product: "P10", Quantity: 1}); err == nil {
			t.Fatal("a revoked terminal got stock")
		}
	})
	// Every shipment, ack, report, return and receipt is in the exchange log.
	for _, typ := range []string{"Shipment", "ShipmentAck", "SalesReport", "StockReturn", "Receipt", "KeyShareUpdate"} {
		if f.count(t, `SELECT count(*) FROM log_entries WHERE type = $1`, typ) == 0 {
			t.Fatalf("no %s in the exchange log", typ)
		}
	}
	// A shipment's document is kept once, as its log entry.
	if n := f.count(t, `SELECT count(*) FROM shipments s LEFT JOIN log_entries l ON l.idx = s.log_index
		WHERE l.idx IS NULL OR l.type <> 'Shipment' OR l.message_id <> s.message_id::text`); n != 0 {
		t.Fatalf("%d shipments are not in the log as sent", n)
	}
	// The database's view: every code outside the vault is in exactly one shipment.
	if n := f.count(t, `SELECT count(*) FROM codes WHERE (state IN ('shipped','delivered','sold','quarantined')) <> (shipment_id IS NOT NULL)`); n != 0 {
		t.Fatalf("%d codes out of place", n)
	}
}

// TestConcurrentOrders: many terminals order at once on scarce stock; afterwards no code is in
// two shipments, none is lost, and the shipments add up.
func TestConcurrentOrders(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	f.stock(t, 120_000_000_000, 150)
	const terminals = 20
	for i := range terminals {
		id := fmt.Sprintf("T-%02d", i)
		f.mustShop(t, "R-C", id, fmt.Sprintf("V-%02d", i))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	shipped, outOfStock := 0, 0
	for i := range terminals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: fmt.Sprintf("T-%02d", i), Operator: "OP-A", Product: "P10", Quantity: 10})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				shipped += info.Count
			case evoucher.ReasonOf(err) == "out_of_stock":
				outOfStock++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if shipped != 150 {
		t.Fatalf("%d codes shipped from a stock of 150 (%d orders found none)", shipped, outOfStock)
	}
	if n := f.count(t, `SELECT coalesce(sum(count), 0) FROM shipments`); n != 150 {
		t.Fatalf("shipments count %d codes", n)
	}
	if n := f.count(t, `SELECT count(*) FROM codes WHERE state = 'shipped' AND shipment_id IS NOT NULL`); n != 150 {
		t.Fatalf("%d codes shipped in the database", n)
	}
	// No serial in two signed shipment documents: what left the center, not just the rows.
	rows, err := f.db.Query(ctx, `SELECT l.data FROM shipments s JOIN log_entries l ON l.idx = s.log_index`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		sh, err := message.ReadShipment(parseDoc(t, raw).Root())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sh.Codes {
			if seen[c.Serial] {
				t.Fatalf("serial %s is in two shipments", c.Serial)
			}
			seen[c.Serial] = true
		}
	}
	rows.Close()
	if len(seen) != 150 {
		t.Fatalf("the shipment documents hold %d serials, want 150", len(seen))
	}
}

// TestShipmentRetailerName: a shipment carries its retailer's name from the registry for the
// tickets, its spaces collapsed, its control characters dropped (ESC cannot be written in XML)
// and cut to what every terminal accepts.
func TestShipmentRetailerName(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	f.stock(t, 140_000_000_000, 2)
	long := "  Corner\tSh\x1bop\u202e  " + strings.Repeat("x", message.MaxRetailerName)
	if err := f.shops.CreateRetailer(ctx, retailer.Retailer{ID: "R-CORNER", Name: long}); err != nil {
		t.Fatal(err)
	}
	s := f.mustShop(t, "R-CORNER", "T-CORNER", "V-C")
	info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-CORNER", Operator: "OP-A", Product: "P10", Quantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.term.OpenShipment(info.Document)
	if err != nil {
		t.Fatal(err)
	}
	want := ("Corner Shop " + strings.Repeat("x", message.MaxRetailerName))[:message.MaxRetailerName]
	if sh.Retailer != "R-CORNER" || sh.RetailerName != want {
		t.Fatalf("shipment for %q named %q, want R-CORNER named %q", sh.Retailer, sh.RetailerName, want)
	}
}

// TestLargeShipment: a shipment and a report far beyond a thousand items still verify (the
// signature library refuses documents of more than about a thousand elements).
func TestLargeShipment(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	f.stock(t, 130_000_000_000, 1500)
	s := f.mustShop(t, "R-L", "T-L", "V-L")
	info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-L", Operator: "OP-A", Product: "P10", Quantity: 1500})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.term.OpenShipment(info.Document)
	if err != nil || len(sh.Codes) != 1500 {
		t.Fatalf("a 1500-code shipment does not verify: %v", err)
	}
	sales := make([]message.Sale, 1200)
	for i := range sales {
		sales[i] = message.Sale{Serial: sh.Codes[i].Serial, Ticket: fmt.Sprintf("K %d/%d", i, 7), Vendor: "V-L", Time: time.Now().UTC()}
	}
	r, err := s.term.Report(1, sales, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.vault.Receive(ctx, terminalPeer("T-L"), r); err != nil {
		t.Fatalf("a 1200-sale report: %v", err)
	}
	if n := f.count(t, `SELECT count(*) FROM sales WHERE terminal_id = 'T-L' AND ticket = 'K 5/7'`); n != 1 {
		t.Fatal("a ticket with a space and a slash did not come through")
	}
	if n := f.count(t, `SELECT count(*) FROM codes WHERE shipment_id = $1 AND state = 'sold'`, info.ID); n != 1200 {
		t.Fatalf("%d sold, want 1200", n)
	}
}

// A shipment's signed document is kept once, as its exchange-log entry: the terminal's sync,
// the acknowledgement and a retried StockOrder all read it back from there, byte-exact.
func TestShipmentDocumentInLog(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	f.stock(t, 130_000_000_000, 20)
	s := f.mustShop(t, "R-1", "T-1", "V-1")
	order, err := s.term.Order("OP-A", "P10", 6)
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.vault.Receive(ctx, terminalPeer("T-1"), order)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.term.OpenShipment(first)
	if err != nil || len(sh.Codes) != 6 {
		t.Fatalf("shipment of %d codes: %v", len(sh.Codes), err)
	}
	t.Run("RetryGetsTheSameShipment", func(t *testing.T) {
		again, err := f.vault.Receive(ctx, terminalPeer("T-1"), order)
		if err != nil || string(again) != string(first) {
			t.Fatalf("a retry of the order got another answer (%v)", err)
		}
		if n := f.count(t, `SELECT count(*) FROM shipments`); n != 1 {
			t.Fatalf("%d shipments after a retry, want 1", n)
		}
		if n := f.count(t, `SELECT count(*) FROM codes WHERE state = 'shipped'`); n != 6 {
			t.Fatalf("%d codes shipped after a retry, want 6", n)
		}
	})
	t.Run("StoredOnce", func(t *testing.T) {
		if n := f.count(t, `SELECT count(*) FROM log_entries WHERE data = $1`, first); n != 1 {
			t.Fatalf("the shipment is %d times in the log", n)
		}
		if n := f.count(t, `SELECT count(*) FROM messages m JOIN shipments s ON s.log_index = m.response_index
			WHERE m.type = 'StockOrder' AND m.response IS NULL`); n != 1 {
			t.Fatal("the order's answer is not the shipment's log entry")
		}
	})
	t.Run("SyncReadsTheLog", func(t *testing.T) {
		pending, err := f.vault.PendingShipments(ctx, "T-1")
		if err != nil || len(pending) != 1 || string(pending[0]) != string(first) {
			t.Fatalf("%d pending shipments (%v), want the one sent", len(pending), err)
		}
	})
	t.Run("AckChecksTheLoggedSerials", func(t *testing.T) {
		ack, err := s.term.Ack(sh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), ack); err != nil {
			t.Fatal(err)
		}
		if n := f.count(t, `SELECT count(*) FROM codes WHERE state = 'delivered'`); n != 6 {
			t.Fatalf("%d codes delivered, want 6", n)
		}
	})
	t.Run("ErrShipmentWithoutLogEntry", func(t *testing.T) {
		_, err := f.db.Exec(ctx, `INSERT INTO shipments (id, terminal_id, operator_id, product, count, kek_label, key_wrapped, share_wrapped, message_id, created_at)
			SELECT 'S-forged', terminal_id, operator_id, product, 1, kek_label, key_wrapped, share_wrapped, gen_random_uuid(), now() FROM shipments`)
		if err == nil {
			t.Fatal("a shipment committed without its document in the log")
		}
	})
}

// checkReceiptEntry checks a Receipt's log entry: its LogIndex is the entry of the document
// it answers, byte-exact, its LogProof proves that entry in the tree that ends with it, and
// the receipt itself is in the log, after it, when the center returns it.
func checkReceiptEntry(t *testing.T, f *fixture, term *pos.Terminal, doc, resp []byte) {
	t.Helper()
	rc, err := term.OpenReceipt(resp)
	if err != nil {
		t.Fatal(err)
	}
	var logged []byte
	if err := f.db.QueryRow(context.Background(), `SELECT data FROM log_entries WHERE idx = $1`, int64(rc.LogIndex)).Scan(&logged); err != nil || !bytes.Equal(logged, doc) {
		t.Fatalf("the receipt names entry %d, which is not the document it answers (%v)", rc.LogIndex, err)
	}
	p := auditlog.Proof{Index: rc.LogIndex, Size: rc.LogProof.Size, Root: rc.LogProof.Root, Hashes: rc.LogProof.Hashes}
	if err := p.Verify(doc); err != nil || p.Size != rc.LogIndex+1 {
		t.Fatalf("the receipt's proof of entry %d in %d: %v", rc.LogIndex, p.Size, err)
	}
	if n := f.count(t, `SELECT count(*) FROM log_entries WHERE data = $1 AND idx > $2`, resp, int64(rc.LogIndex)); n != 1 {
		t.Fatalf("the receipt is in the log %d times after the entry it names", n)
	}
}

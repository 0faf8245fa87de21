package codevault_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// mustMoney gives the fixture's vault a ledger: the same vault configuration with money kept.
func (f *fixture) mustMoney(t *testing.T) *ledger.Ledger {
	t.Helper()
	l := must[*ledger.Ledger](t)(ledger.New(ledger.Config{DB: f.db, Signer: f.centerSign.key, SignCert: f.centerSign.cert}))
	encKey := must[*pkcs11.RSAKey](t)(f.tok.FindRSAKey("center-encrypt"))
	f.vault = must[*codevault.Vault](t)(codevault.New(codevault.Config{DB: f.db, Keys: f.tok, Decrypter: encKey,
		EncryptCert: f.centerEnc.cert, Signer: f.centerSign.key, SignCert: f.centerSign.cert, PKI: f.ca, Now: f.clock.Now, Meter: f.meter,
		Parties: parties{f.shops}, Ledger: l}))
	return l
}

// balances returns every account's balance in EUR.
func (f *fixture) balances(t *testing.T) map[string]int64 {
	t.Helper()
	rows, err := f.db.Query(context.Background(), `SELECT account, balance FROM ledger_accounts WHERE currency = 'EUR'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var a string
		var b int64
		if err := rows.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		out[a] = b
	}
	return out
}

func (f *fixture) wantBalances(t *testing.T, want map[string]int64) {
	t.Helper()
	got := f.balances(t)
	for a, w := range want {
		if got[a] != w {
			t.Fatalf("%s balance %d, want %d (all: %v)", a, got[a], w, got)
		}
	}
}

// movements is the sum of an account's entries made in [from, to).
func (f *fixture) movements(t *testing.T, account string, from, to time.Time) int64 {
	t.Helper()
	return int64(f.count(t, `SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.tx_id
		WHERE e.account = $1 AND t.created_at >= $2 AND t.created_at < $3`, account, from, to))
}

// mustStatement makes a statement, checks its signature with dsig (trusting the center-sign
// certificate) and reads it back from the signed element only.
func (f *fixture) mustStatement(t *testing.T, l *ledger.Ledger, kind, party string, from, to time.Time) (ledger.Statement, message.Statement) {
	t.Helper()
	st, err := l.GenerateStatement(context.Background(), ledger.StatementRequest{PartyKind: kind, Party: party, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := message.Parse(st.Document, message.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := dsig.Verify(doc, func(c *x509.Certificate) error {
		if !c.Equal(f.centerSign.cert) {
			return fmt.Errorf("signed by %s", c.Subject)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("statement signature: %v", err)
	}
	content, err := message.ReadStatement(signed)
	if err != nil {
		t.Fatal(err)
	}
	if content.Recipient != party || content.Sender != message.Center {
		t.Fatalf("statement envelope %+v", content.Envelope)
	}
	if f.count(t, `SELECT count(*) FROM log_entries WHERE type = 'Statement' AND data = $1`, st.Document) != 1 {
		t.Fatal("the statement is not in the exchange log as sent")
	}
	return st, content
}

func netOf(s message.Statement) (n int64) {
	for _, l := range s.Lines {
		n += l.Net
	}
	return n
}

// TestMoneyPayOnShipment: a retailer paying on shipment is charged face value less commission
// when stock is sent, the operator is owed face value less margin, the platform keeps the
// rest; sales move no money; returned codes are credited back; statements reconcile.
func TestMoneyPayOnShipment(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	l := f.mustMoney(t)
	from := time.Now().UTC().Add(-time.Second)
	f.stock(t, 140_000_000_000, 20)
	s := f.mustShop(t, "R-1", "T-1", "V-1")
	if err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-1", Currency: "EUR", Mode: ledger.ModeCredit, CreditLimit: 100_000, Settlement: ledger.SettleOnShipment}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCommission(ctx, "R-1", "OP-A", "P10", 500); err != nil { // 5%
		t.Fatal(err)
	}
	if err := l.SetMargin(ctx, "OP-A", ledger.Any, 800); err != nil { // 8%
		t.Fatal(err)
	}
	info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-1", Operator: "OP-A", Product: "P10", Quantity: 10})
	if err != nil {
		t.Fatal(err)
	}
	// 10 codes of 10.00: the retailer pays 10 × 9.50, OP-A is owed 10 × 9.20, the platform keeps 3.00.
	f.wantBalances(t, map[string]int64{"retailer:R-1": -9500, "operator:OP-A": 9200, ledger.AccountMargin: 300})

	sh, err := s.term.OpenShipment(info.Document)
	if err != nil {
		t.Fatal(err)
	}
	ack, _ := s.term.Ack(sh)
	if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), ack); err != nil {
		t.Fatal(err)
	}
	var sales []message.Sale
	for i := range 3 {
		sales = append(sales, message.Sale{Serial: sh.Codes[i].Serial, Ticket: fmt.Sprintf("K-%d", i), Vendor: "V-1", Time: time.Now().UTC()})
	}
	r, _ := s.term.Report(1, sales, nil)
	if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), r); err != nil {
		t.Fatal(err)
	}
	f.wantBalances(t, map[string]int64{"retailer:R-1": -9500, "operator:OP-A": 9200, ledger.AccountMargin: 300})

	t.Run("ReturnCreditsBack", func(t *testing.T) {
		rt, err := s.term.Return(sh, s.cards["V-1"], []string{sh.Codes[8].Serial, sh.Codes[9].Serial}, f.centerEnc.cert)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.Receive(ctx, terminalPeer("T-1"), rt); err != nil {
			t.Fatal(err)
		}
		f.wantBalances(t, map[string]int64{"retailer:R-1": -7600, "operator:OP-A": 7360, ledger.AccountMargin: 240})
	})
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}

	to := time.Now().UTC().Add(time.Millisecond)
	time.Sleep(2 * time.Millisecond)
	t.Run("RetailerStatementReconciles", func(t *testing.T) {
		st, c := f.mustStatement(t, l, message.PartyRetailer, "R-1", from, to)
		if len(c.Lines) != 2 || c.Lines[0].Kind != "shipment" || c.Lines[0].Codes != 10 || c.Lines[0].Net != -9500 ||
			c.Lines[1].Kind != "return" || c.Lines[1].Codes != -2 || c.Lines[1].Net != 1900 || c.Lines[1].Commission != -100 {
			t.Fatalf("lines %+v", c.Lines)
		}
		if got, want := netOf(c), f.movements(t, "retailer:R-1", from, to); got != want {
			t.Fatalf("statement lines sum to %d, the ledger moved %d", got, want)
		}
		if len(c.Totals) != 1 || c.Totals[0].Opening != 0 || c.Totals[0].Closing != -7600 || c.Totals[0].Codes != 8 {
			t.Fatalf("totals %+v", c.Totals)
		}
		var csv bytes.Buffer
		if err := ledger.WriteStatementCSV(&csv, c); err != nil || !strings.Contains(csv.String(), ",shipment,OP-A,R-1,P10,,,EUR,10,100.00,5.00,8.00,-95.00,") {
			t.Fatalf("CSV %v:\n%s", err, csv.String())
		}
		var pdf bytes.Buffer
		if err := ledger.WriteStatementPDF(&pdf, c); err != nil || !bytes.HasPrefix(pdf.Bytes(), []byte("%PDF-")) || pdf.Len() < 1000 {
			t.Fatalf("PDF %v, %d bytes", err, pdf.Len())
		}
		again, err := l.StatementByID(ctx, st.ID)
		if err != nil || !bytes.Equal(again.Document, st.Document) || again.Content.Totals[0].Closing != -7600 {
			t.Fatalf("stored statement: %v", err)
		}
		t.Run("Xmlsec1Verifies", func(t *testing.T) {
			if _, err := exec.LookPath("xmlsec1"); err != nil {
				t.Fatal("xmlsec1 is needed: apt-get install xmlsec1")
			}
			dir := t.TempDir()
			_ = os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.CA().Raw}), 0o600)
			_ = os.WriteFile(filepath.Join(dir, "st.xml"), st.Document, 0o600)
			cmd := exec.Command("xmlsec1", "--verify", "--trusted-pem", "ca.pem", "--id-attr:Id", message.NS+":Statement", "st.xml")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("xmlsec1 refused the statement: %v\n%s", err, out)
			}
		})
	})
	t.Run("OperatorStatementReconciles", func(t *testing.T) {
		_, c := f.mustStatement(t, l, message.PartyOperator, "OP-A", from, to)
		if got, want := netOf(c), f.movements(t, "operator:OP-A", from, to); got != want || got != 7360 {
			t.Fatalf("statement lines sum to %d, the ledger moved %d, want 7360", got, want)
		}
		if c.Totals[0].Closing != 7360 {
			t.Fatalf("totals %+v", c.Totals)
		}
	})
	t.Run("Clearing", func(t *testing.T) {
		c, err := l.Clearing(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Lines) != 1 || c.Lines[0].Codes != 8 || c.Lines[0].RetailerPays != 7600 || c.Lines[0].OperatorGets != 7360 || c.Lines[0].PlatformKeeps != 240 {
			t.Fatalf("clearing %+v", c.Lines)
		}
		if len(c.Operators) != 1 || c.Operators[0].Amount != 7360 || c.Platform[0].Amount != 240 || c.Retailers[0].Amount != 7600 {
			t.Fatalf("clearing totals %+v %+v %+v", c.Operators, c.Retailers, c.Platform)
		}
	})
	t.Run("ErrPeriodOpen", func(t *testing.T) {
		_, err := l.GenerateStatement(ctx, ledger.StatementRequest{PartyKind: message.PartyRetailer, Party: "R-1", From: from, To: time.Now().Add(time.Hour)})
		if evoucher.ReasonOf(err) != "period_open" {
			t.Fatalf("%v", err)
		}
	})
}

// TestMoneyPayOnSale: consignment stock costs nothing when shipped but counts against credit;
// each sale, reported or authorised, is charged on the terms fixed at shipment; a return costs
// nothing; an order beyond the credit is refused, stores nothing and raises the alarm.
func TestMoneyPayOnSale(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	l := f.mustMoney(t)
	f.stock(t, 150_000_000_000, 20)
	s := f.mustShop(t, "R-2", "T-2", "V-2")
	if err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-2", Currency: "EUR", Mode: ledger.ModeCredit, CreditLimit: 5000, Settlement: ledger.SettleOnSale}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCommission(ctx, "R-2", ledger.Any, ledger.Any, 1000); err != nil { // 10%, no margin: the platform pays it
		t.Fatal(err)
	}
	info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-2", Operator: "OP-A", Product: "P10", Quantity: 5})
	if err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, `SELECT count(*) FROM ledger_entries`); n != 0 {
		t.Fatalf("a consignment shipment posted %d entries", n)
	}
	t.Run("ErrCreditLimit", func(t *testing.T) {
		// 5 × 9.00 consigned of a 50.00 limit: 5.00 left, one more code costs 9.00.
		before := f.counts(t)
		_, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-2", Operator: "OP-A", Product: "P10", Quantity: 1})
		if evoucher.ReasonOf(err) != "credit_limit" || !strings.Contains(err.Error(), "money topup R-2") {
			t.Fatalf("%v", err)
		}
		if f.counts(t) != before || f.count(t, `SELECT count(*) FROM shipments`) != 1 || f.count(t, `SELECT count(*) FROM shipment_terms`) != 1 {
			t.Fatal("a refused order stored something")
		}
		if f.count(t, `SELECT count(*) FROM alarms WHERE kind = 'credit_limit' AND subject = 'R-2' AND state = 'open'`) != 1 {
			t.Fatal("no credit_limit alarm")
		}
		// The same through the exchange: a StockOrder from the terminal.
		o, err := s.term.Order("OP-A", "P10", 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.Receive(ctx, terminalPeer("T-2"), o); evoucher.ReasonOf(err) != "credit_limit" {
			t.Fatalf("StockOrder: %v", err)
		}
		if f.count(t, `SELECT count(*) FROM shipments`) != 1 || f.count(t, `SELECT count(*) FROM refused_messages WHERE reason = 'credit_limit'`) != 1 {
			t.Fatal("a refused StockOrder shipped, or was not journaled")
		}
		if f.count(t, `SELECT occurrences FROM alarms WHERE kind = 'credit_limit' AND subject = 'R-2'`) != 2 {
			t.Fatal("the refused StockOrder did not count on the credit_limit alarm")
		}
		if f.count(t, `SELECT count(*) FROM alarms WHERE kind = 'security'`) != 0 {
			t.Fatal("a credit refusal raised a security alarm")
		}
	})
	t.Run("ErrOutOfStockIsNoSecurityMatter", func(t *testing.T) {
		// OP-B has no codes in the vault: the order is refused and journaled, the vault's own
		// stock alarms tell the manager, and no security alarm cries wolf.
		o, err := s.term.Order("OP-B", "P10", 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.Receive(ctx, terminalPeer("T-2"), o); evoucher.ReasonOf(err) != "out_of_stock" {
			t.Fatalf("StockOrder with no stock: %v", err)
		}
		if f.count(t, `SELECT count(*) FROM refused_messages WHERE reason = 'out_of_stock'`) != 1 {
			t.Fatal("the refused StockOrder was not journaled")
		}
		if f.count(t, `SELECT count(*) FROM alarms WHERE kind = 'security'`) != 0 {
			t.Fatal("an order refused for lack of stock raised a security alarm")
		}
	})
	t.Run("ErrCurrencyInUse", func(t *testing.T) {
		// The 5 consigned codes are unsold: the balance is still zero, but they will be charged
		// in EUR when sold, and the credit check counts them in the account's currency.
		err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-2", Currency: "USD", Mode: ledger.ModeCredit, CreditLimit: 5000, Settlement: ledger.SettleOnSale})
		if evoucher.KindOf(err) != evoucher.KindConflict || evoucher.ReasonOf(err) != "currency_in_use" {
			t.Fatalf("moving an account with unsold EUR stock to USD: %v", err)
		}
		if tm, err := l.Terms(ctx, "R-2"); err != nil || tm.Currency != "EUR" {
			t.Fatalf("terms after the refusal: %+v %v", tm, err)
		}
		if n := f.count(t, `SELECT count(*) FROM ledger_accounts WHERE currency = 'USD'`); n != 0 {
			t.Fatalf("a refused change of currency opened %d USD account(s)", n)
		}
	})
	sh, err := s.term.OpenShipment(info.Document)
	if err != nil {
		t.Fatal(err)
	}
	sale := func(i int) message.Sale {
		return message.Sale{Serial: sh.Codes[i].Serial, Ticket: fmt.Sprintf("K-%d", i), Vendor: "V-2", Time: time.Now().UTC()}
	}
	r, _ := s.term.Report(1, []message.Sale{sale(0), sale(1)}, nil)
	if _, err := f.vault.Receive(ctx, terminalPeer("T-2"), r); err != nil {
		t.Fatal(err)
	}
	f.wantBalances(t, map[string]int64{"retailer:R-2": -1800, "operator:OP-A": 2000, ledger.AccountMargin: -200})
	// The same report again, and the authorised sale reported later, are charged once.
	if _, err := f.vault.Receive(ctx, terminalPeer("T-2"), r); err != nil {
		t.Fatal(err)
	}
	if err := f.vault.Authorize(ctx, "T-2", sale(2)); err != nil {
		t.Fatal(err)
	}
	r2, _ := s.term.Report(2, []message.Sale{sale(2)}, nil)
	if _, err := f.vault.Receive(ctx, terminalPeer("T-2"), r2); err != nil {
		t.Fatal(err)
	}
	f.wantBalances(t, map[string]int64{"retailer:R-2": -2700, "operator:OP-A": 3000, ledger.AccountMargin: -300})
	// Rates changed later do not reprice stock already at the terminal.
	if err := l.SetCommission(ctx, "R-2", ledger.Any, ledger.Any, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.vault.Authorize(ctx, "T-2", sale(3)); err != nil {
		t.Fatal(err)
	}
	f.wantBalances(t, map[string]int64{"retailer:R-2": -3600})
	rt, err := s.term.Return(sh, s.cards["V-2"], []string{sh.Codes[4].Serial}, f.centerEnc.cert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.vault.Receive(ctx, terminalPeer("T-2"), rt); err != nil {
		t.Fatal(err)
	}
	f.wantBalances(t, map[string]int64{"retailer:R-2": -3600, "operator:OP-A": 4000, ledger.AccountMargin: -400})
	bs, err := l.Balances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Account == "retailer:R-2" && (b.Consigned != 0 || b.Available != 1400) {
			t.Fatalf("R-2: %+v", b)
		}
	}
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCreditLimitConcurrentOrders: 200 orders at once from a prepaid retailer whose funds pay
// for 10 codes: exactly 10 ship, the balance never goes below zero, and each refused order
// shipped nothing and counted on the credit_limit alarm.
func TestCreditLimitConcurrentOrders(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	l := f.mustMoney(t)
	f.stock(t, 160_000_000_000, 200)
	f.mustShop(t, "R-3", "T-3", "V-3")
	if err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-3", Currency: "EUR", Mode: ledger.ModePrepaid, Settlement: ledger.SettleOnShipment}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCommission(ctx, "R-3", "OP-A", ledger.Any, 500); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-3", Amount: 10 * 950, Method: ledger.MethodBank, Reference: "TRX-R3"}); err != nil {
		t.Fatal(err)
	}
	const orders = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	shipped, refused := 0, 0
	for range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-3", Operator: "OP-A", Product: "P10", Quantity: 1})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				shipped += info.Count
			case evoucher.ReasonOf(err) == "credit_limit":
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if shipped != 10 || refused != orders-10 {
		t.Fatalf("%d shipped, %d refused; want 10 and %d", shipped, refused, orders-10)
	}
	if b := f.balances(t)["retailer:R-3"]; b != 0 {
		t.Fatalf("R-3 balance %d, want 0 (never below its limit of 0)", b)
	}
	if f.count(t, `SELECT count(*) FROM shipments`) != 10 || f.count(t, `SELECT count(*) FROM codes WHERE state <> 'in_vault'`) != 10 ||
		f.count(t, `SELECT count(*) FROM ledger_transactions WHERE kind = 'shipment'`) != 10 || f.count(t, `SELECT count(*) FROM shipment_terms`) != 10 {
		t.Fatal("refused orders left shipments, codes or charges behind")
	}
	if n := f.count(t, `SELECT occurrences FROM alarms WHERE kind = 'credit_limit' AND subject = 'R-3'`); n != orders-10 {
		t.Fatalf("credit_limit alarm counted %d refusals, want %d", n, orders-10)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMoneyStorm: 50 writers at once, each an online sale on consignment and a top-up, on two
// retailers: every balance equals the sum of its entries, the books sum to zero, and each
// retailer's balance is exactly its top-ups less its sales.
func TestMoneyStorm(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	l := f.mustMoney(t)
	f.stock(t, 170_000_000_000, 50)
	shops := map[string][]string{} // terminal → serials
	if err := l.SetMargin(ctx, "OP-A", "P10", 450); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"A", "B"} {
		f.mustShop(t, "R-"+id, "T-"+id, "V-"+id)
		if err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-" + id, Currency: "EUR", Mode: ledger.ModeCredit, CreditLimit: 1_000_000, Settlement: ledger.SettleOnSale}); err != nil {
			t.Fatal(err)
		}
		if err := l.SetCommission(ctx, "R-"+id, ledger.Any, ledger.Any, 300); err != nil {
			t.Fatal(err)
		}
		info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-" + id, Operator: "OP-A", Product: "P10", Quantity: 25})
		if err != nil {
			t.Fatal(err)
		}
		shops["T-"+id] = f.serials(t, info.ID)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := []string{"A", "B"}[i%2]
			s := message.Sale{Serial: shops["T-"+id][i/2], Ticket: fmt.Sprintf("K-%d", i), Vendor: "V-" + id, Time: time.Now().UTC()}
			if err := f.vault.Authorize(ctx, "T-"+id, s); err != nil {
				t.Error(err)
			}
			if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-" + id, Amount: 1000, Method: ledger.MethodCash, Reference: fmt.Sprintf("C-%d", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Each: 25 sales of 10.00 at 9.70 = 242.50 charged, 25 top-ups of 10.00.
	f.wantBalances(t, map[string]int64{"retailer:R-A": 25000 - 24250, "retailer:R-B": 25000 - 24250,
		"operator:OP-A": 2 * 25 * 955, ledger.AccountMargin: 2 * 25 * 15, ledger.AccountCash: -50000})
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// serials returns the serials of a shipment.
func (f *fixture) serials(t *testing.T, shipment string) []string {
	t.Helper()
	rows, err := f.db.Query(context.Background(), `SELECT serial FROM codes WHERE shipment_id = $1 ORDER BY id`, shipment)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

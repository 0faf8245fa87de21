package pos_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pos"
	"github.com/evoucher/evoucher/pos/postest"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// shop is one terminal with its store, a world around it and two vendor cards in tokens.
type shop struct {
	w     *postest.World
	store *pos.Store
	till  *pos.Till
	cards map[string]pos.Card
	pins  map[string]string
	out   *bytes.Buffer
	dir   string
}

func mustKey(t *testing.T, label string) pos.KeyPair {
	t.Helper()
	k, _, err := testhsm.MustToken(t).RSAKey(label, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mustShop makes terminal T-1 of R-1 with cards V-1 and V-2 (real SoftHSM2 tokens), a
// shipment S-1 of n codes of P10 shared with both cards, and a first sync done.
func mustShop(t *testing.T, n int) *shop {
	t.Helper()
	w, err := postest.New("T-1", "R-1", mustKey(t, "terminal"))
	if err != nil {
		t.Fatal(err)
	}
	w.RetailerName = "Corner Shop"
	s := &shop{w: w, cards: map[string]pos.Card{}, out: &bytes.Buffer{}, dir: t.TempDir()}
	for _, v := range []string{"V-1", "V-2"} {
		if s.cards[v], err = w.Card(v, mustKey(t, "card")); err != nil {
			t.Fatal(err)
		}
	}
	raw, pins, err := w.Shipment("S-1", "P10", 100_000_000_000, n, s.cards["V-1"], s.cards["V-2"])
	if err != nil {
		t.Fatal(err)
	}
	s.pins = pins
	w.Offer(raw)
	s.store = mustStore(t, s.dir)
	s.till = &pos.Till{Term: w.Term, Store: s.store, Printer: &pos.TextPrinter{W: s.out}}
	res, err := s.till.Sync(context.Background(), w)
	if err != nil || len(res.Received) != 1 || res.Acked != 1 || len(res.Refused) != 0 {
		t.Fatalf("first sync: %+v %v", res, err)
	}
	return s
}

func mustStore(t *testing.T, dir string) *pos.Store {
	t.Helper()
	st, err := pos.OpenStore(pos.StoreConfig{Path: filepath.Join(dir, "pos.db"), Terminal: "T-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (s *shop) activate(t *testing.T, v string) *pos.CardSession {
	t.Helper()
	c := s.cards[v]
	sess, err := pos.Activate(s.w.Term, s.store, c.Key.(pos.KeyPair), c.Cert, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	return sess
}

func onShelf(t *testing.T, st *pos.Store) int {
	t.Helper()
	lines, err := st.Stock()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range lines {
		n += l.OnShelf
	}
	return n
}

func TestSell(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 5)
	sess := s.activate(t, "V-1")
	p, err := s.till.Sell(context.Background(), sess, "P10")
	if err != nil {
		t.Fatal(err)
	}
	pin := s.pins[p.Sale.Serial]
	text := s.out.String()
	for _, want := range []string{"Corner Shop (R-1)", "terminal T-1", "OP-A P10", "10.00 EUR", p.Sale.Serial, "T-1-000001", "V-1", "*123*" + pin + "#"} {
		if !strings.Contains(text, want) {
			t.Errorf("ticket lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "DUPLICATE") {
		t.Error("a first print says DUPLICATE")
	}
	if onShelf(t, s.store) != 4 || sess.CachedKeys() != 1 {
		t.Fatalf("shelf %d, cached keys %d", onShelf(t, s.store), sess.CachedKeys())
	}
	t.Run("CardRemovedZeroesKeys", func(t *testing.T) {
		sess.Close()
		if sess.CachedKeys() != 0 {
			t.Fatal("keys kept after the card was removed")
		}
		if _, err := s.till.Sell(context.Background(), sess, "P10"); !errors.Is(err, pos.ErrCardInactive) {
			t.Fatalf("sold with a removed card: %v", err)
		}
		if onShelf(t, s.store) != 4 {
			t.Fatal("a refused sale took a code")
		}
	})
	t.Run("ErrOutOfStock", func(t *testing.T) {
		if _, err := s.till.Sell(context.Background(), s.activate(t, "V-2"), "P99"); evoucher.ReasonOf(err) != "out_of_stock" {
			t.Fatalf("%v", err)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 3)
	now := time.Now()
	term := *s.w.Term
	term.Now = func() time.Time { return now }
	c := s.cards["V-1"]
	sess, err := pos.Activate(&term, s.store, c.Key.(pos.KeyPair), c.Cert, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	till := &pos.Till{Term: &term, Store: s.store, Printer: &pos.TextPrinter{W: io.Discard}}
	if _, err := till.Sell(context.Background(), sess, "P10"); err != nil || sess.CachedKeys() != 1 {
		t.Fatalf("%v, %d keys", err, sess.CachedKeys())
	}
	now = now.Add(2 * time.Minute)
	if _, err := till.Sell(context.Background(), sess, "P10"); !errors.Is(err, pos.ErrCardInactive) || sess.CachedKeys() != 0 {
		t.Fatalf("sold after the idle timeout: %v, %d keys", err, sess.CachedKeys())
	}
}

func TestOneShareAloneOpensNothing(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 2)
	raw, _, err := s.store.ShipmentDocuments("S-1")
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.w.Term.OpenShipment(raw)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := xenc.UnwrapKey(sh.TerminalShare, s.w.Term.Cert, s.w.Term.Key)
	if err != nil {
		t.Fatal(err)
	}
	c := s.cards["V-1"]
	vs, err := xenc.UnwrapKey(sh.VendorShares["V-1"], c.Cert, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	code := sh.Codes[0]
	for name, k := range map[string][]byte{"terminal share": ts, "card share": vs} {
		b, _ := aes.NewCipher(k)
		g, _ := cipher.NewGCM(b)
		if _, err := g.Open(nil, code.Sealed[:12], code.Sealed[12:], message.ShipmentAAD(sh.ShipmentID, code.Serial)); err == nil {
			t.Fatalf("the %s alone opened a code", name)
		}
	}
	// Another shop's card with its own share cannot open this terminal's stock.
	other, err := s.w.Card("V-9", mustKey(t, "card"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pos.Activate(s.w.Term, s.store, other.Key.(pos.KeyPair), other.Cert, 0); evoucher.ReasonOf(err) != "other_retailer" {
		t.Fatalf("a card without shares here was activated: %v", err)
	}
}

func TestRevokedCardRefusedAfterSync(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 2)
	c := s.cards["V-2"]
	s.w.Revoke(c.Cert)
	// Until the CRL arrives, the terminal cannot know.
	sess, err := pos.Activate(s.w.Term, s.store, c.Key.(pos.KeyPair), c.Cert, 0)
	if err != nil {
		t.Fatalf("before the sync: %v", err)
	}
	sess.Close()
	if _, err := s.till.Sync(context.Background(), s.w); err != nil {
		t.Fatal(err)
	}
	if _, err := pos.Activate(s.w.Term, s.store, c.Key.(pos.KeyPair), c.Cert, 0); evoucher.ReasonOf(err) != "revoked" {
		t.Fatalf("a revoked card was activated after the sync: %v", err)
	}
	if _, err := pos.Activate(s.w.Term, s.store, s.cards["V-1"].Key.(pos.KeyPair), s.cards["V-1"].Cert, 0); err != nil {
		t.Fatalf("a valid card refused: %v", err)
	}
	ev, _ := s.store.CardEvents()
	if ev["refused"] != 1 {
		t.Fatalf("card events %v, want one refusal", ev)
	}
}

func TestReplayedShipmentRefused(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 2)
	raw, _, _ := s.store.ShipmentDocuments("S-1")
	// The same shipment under a new message (re-signed) is a replay of its serials.
	again, _, err := s.w.Shipment("S-1", "P10", 100_000_000_000, 2, s.cards["V-1"])
	if err != nil {
		t.Fatal(err)
	}
	s.w.Offer(again)
	res, err := s.till.Sync(context.Background(), s.w)
	if err != nil || len(res.Refused) != 1 || !strings.Contains(res.Refused[0], "replay") {
		t.Fatalf("%+v %v", res, err)
	}
	// The very same bytes again are our lost acknowledgement: acknowledged again, not stored twice.
	s.w.Offer(raw)
	res, err = s.till.Sync(context.Background(), s.w)
	if err != nil || res.Acked != 1 || len(res.Received) != 0 || onShelf(t, s.store) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	// A shipment for another terminal is refused.
	w2, err := postest.New("T-2", "R-1", mustKey(t, "terminal"))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, _ := w2.Shipment("S-2", "P10", 200_000_000_000, 2)
	s.w.Offer(foreign)
	res, _ = s.till.Sync(context.Background(), s.w)
	if len(res.Refused) == 0 {
		t.Fatal("a shipment of another center and terminal was taken")
	}
}

// TestCrashBeforePrint kills a process between the sale's commit and its print: on restart
// the sale is there, unprinted; it prints as DUPLICATE and the code is never sold again.
func TestCrashBeforePrint(t *testing.T) {
	if dir := os.Getenv("EVPOS_CRASH_DIR"); dir != "" {
		st, err := pos.OpenStore(pos.StoreConfig{Path: filepath.Join(dir, "pos.db"), Terminal: "T-1"})
		if err != nil {
			os.Exit(3)
		}
		if _, err := st.Sell("P10", "V-1", func(pos.ShelfCode) error { return nil }); err != nil {
			os.Exit(4)
		}
		// Committed; the printer is next. The power goes.
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	t.Parallel()
	s := mustShop(t, 3)
	s.store.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashBeforePrint$")
	cmd.Env = append(os.Environ(), "EVPOS_CRASH_DIR="+s.dir)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("the child did not die by SIGKILL: %v", err)
	}
	s.store = mustStore(t, s.dir)
	s.till.Store = s.store
	pending, err := s.store.Unprinted()
	if err != nil || len(pending) != 1 || pending[0].Ticket != "T-1-000001" {
		t.Fatalf("after the crash: %+v %v", pending, err)
	}
	sold := pending[0].Serial
	sess := s.activate(t, "V-1")
	done, err := s.till.Resume(context.Background(), sess)
	if err != nil || len(done) != 1 || !done[0].Duplicate {
		t.Fatalf("resume: %+v %v", done, err)
	}
	if !strings.Contains(s.out.String(), "*** DUPLICATE ***") || !strings.Contains(s.out.String(), s.pins[sold]) {
		t.Fatalf("the resumed ticket is not a DUPLICATE of %s:\n%s", sold, s.out.String())
	}
	if p, _ := s.store.Unprinted(); len(p) != 0 {
		t.Fatal("still unprinted after resume")
	}
	seen := map[string]bool{sold: true}
	for range 2 {
		p, err := s.till.Sell(context.Background(), sess, "P10")
		if err != nil {
			t.Fatal(err)
		}
		if seen[p.Sale.Serial] {
			t.Fatalf("code %s sold twice", p.Sale.Serial)
		}
		seen[p.Sale.Serial] = true
	}
	if _, err := s.till.Sell(context.Background(), sess, "P10"); evoucher.ReasonOf(err) != "out_of_stock" {
		t.Fatalf("a fourth sale of three codes: %v", err)
	}
	sale, _ := s.store.SaleOf(1)
	if sale.Reprints != 1 {
		t.Fatalf("the duplicate is not counted: %d reprints", sale.Reprints)
	}
}

// escpos is what a port-9100 printer saw.
type escpos struct {
	init, cut bool
	text      string
	qr        string
	bold      int
}

// parseESCPOS reads the commands the printer driver sends; unknown commands fail.
func parseESCPOS(b []byte) (escpos, error) {
	var p escpos
	var text strings.Builder
	for i := 0; i < len(b); {
		switch {
		case b[i] == 0x1b && i+1 < len(b) && b[i+1] == '@':
			p.init = true
			i += 2
		case b[i] == 0x1b && i+2 < len(b) && (b[i+1] == 'a' || b[i+1] == 'E'):
			if b[i+1] == 'E' && b[i+2] == 1 {
				p.bold++
			}
			i += 3
		case b[i] == 0x1d && i+2 < len(b) && b[i+1] == '!':
			i += 3
		case b[i] == 0x1d && i+3 < len(b) && b[i+1] == 'V':
			p.cut = true
			i += 4
		case b[i] == 0x1d && i+6 < len(b) && b[i+1] == '(' && b[i+2] == 'k':
			n := int(b[i+3]) | int(b[i+4])<<8
			if i+5+n > len(b) || n < 2 {
				return p, errors.New("short GS ( k")
			}
			cn, fn, params := b[i+5], b[i+6], b[i+7:i+5+n]
			if cn == 49 && fn == 80 {
				p.qr = string(params[1:])
			}
			i += 5 + n
		case b[i] == 0x1b || b[i] == 0x1d:
			return p, errors.New("unknown command")
		default:
			text.WriteByte(b[i])
			i++
		}
	}
	p.text = text.String()
	return p, nil
}

// listener is a local port-9100 printer.
func listener(t *testing.T) (addr string, got func() []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var all []byte
	done := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(c)
			c.Close()
			mu.Lock()
			all = append(all, b...)
			mu.Unlock()
			done <- struct{}{}
		}
	}()
	return ln.Addr().String(), func() []byte {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		defer mu.Unlock()
		out := all
		all = nil
		return out
	}
}

func TestESCPOSPrinter(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 3)
	addr, got := listener(t)
	s.till.Printer = &pos.ESCPOSPrinter{Addr: addr}
	sess := s.activate(t, "V-1")
	p, err := s.till.Sell(context.Background(), sess, "P10")
	if err != nil {
		t.Fatal(err)
	}
	pin := s.pins[p.Sale.Serial]
	e, err := parseESCPOS(got())
	if err != nil {
		t.Fatal(err)
	}
	if !e.init || !e.cut || e.qr != "tel:*123*"+pin+"%23" {
		t.Fatalf("init %v cut %v qr %q", e.init, e.cut, e.qr)
	}
	grouped := pin[:4] + " " + pin[4:8] + " " + pin[8:12] + " " + pin[12:]
	for _, want := range []string{grouped, p.Sale.Serial, "T-1-000001", "10.00 EUR"} {
		if !strings.Contains(e.text, want) {
			t.Errorf("printed text lacks %q:\n%s", want, e.text)
		}
	}
	t.Run("DeadPrinterThenReprint", func(t *testing.T) {
		dead, _ := net.Listen("tcp", "127.0.0.1:0")
		deadAddr := dead.Addr().String()
		dead.Close()
		s.till.Printer = &pos.ESCPOSPrinter{Addr: deadAddr, Timeout: time.Second}
		_, err := s.till.Sell(context.Background(), sess, "P10")
		var se *pos.SaleError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "evpos reprint "+se.Ticket) {
			t.Fatalf("dead printer: %v", err)
		}
		sale, _ := s.store.SaleOf(2)
		if sale.Printed || onShelf(t, s.store) != 1 {
			t.Fatalf("after a dead printer: printed %v, shelf %d", sale.Printed, onShelf(t, s.store))
		}
		s.till.Printer = &pos.ESCPOSPrinter{Addr: addr}
		if _, err := s.till.Reprint(context.Background(), sess, 2); err != nil {
			t.Fatal(err)
		}
		e, err := parseESCPOS(got())
		if err != nil || !strings.Contains(e.text, "*** DUPLICATE ***") || !strings.Contains(e.text, "T-1-000002") {
			t.Fatalf("reprint: %v\n%s", err, e.text)
		}
		if sale, _ := s.store.SaleOf(2); !sale.Printed || sale.Reprints != 1 {
			t.Fatalf("after the reprint: %+v", sale)
		}
	})
}

func TestPDFPrinter(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 1)
	dir := t.TempDir()
	pp := &pos.PDFPrinter{Dir: dir}
	s.till.Printer = pp
	if _, err := s.till.Sell(context.Background(), s.activate(t, "V-1"), "P10"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "T-1-000001.pdf"))
	if err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("no PDF ticket: %v", err)
	}
}

func TestReportsAndReturns(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 6)
	ctx := context.Background()
	sess := s.activate(t, "V-1")
	for range 2 {
		if _, err := s.till.Sell(ctx, sess, "P10"); err != nil {
			t.Fatal(err)
		}
	}
	// Offline: the sync fails, the report is signed and queued with its number.
	s.w.Offline = true
	if _, err := s.till.Sync(ctx, s.w); !pos.IsUnreachable(err) {
		t.Fatalf("offline sync: %v", err)
	}
	if _, err := s.till.Sell(ctx, sess, "P10"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.till.Reprint(ctx, sess, 1); err != nil {
		t.Fatal(err)
	}
	back, err := s.till.Return(sess, "P10", 2)
	if err != nil || len(back) != 2 {
		t.Fatalf("return: %v %v", back, err)
	}
	s.w.Offline = false
	res, err := s.till.Sync(ctx, s.w)
	if err != nil || len(res.Sent) != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	var seqs []int64
	var returned int
	for _, raw := range s.w.Received {
		d, _ := message.Parse(raw, message.DefaultLimits)
		switch d.Root().Tag {
		case "SalesReport":
			r, err := message.ReadSalesReport(d.Root())
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, r.Seq)
			if r.Seq == 2 && (len(r.Sales) != 2 || r.Sales[0].Ticket != "T-1-000001" || r.Sales[0].Reprints != 1) {
				t.Fatalf("report 2 = %+v, want ticket 3 and the reprint of ticket 1", r.Sales)
			}
		case "StockReturn":
			r, _ := message.ReadStockReturn(d.Root())
			plain, err := xenc.Decrypt(r.Encrypted, s.w.Enc, s.w.EncKey)
			if err != nil {
				t.Fatal(err)
			}
			_ = message.ReadReturnCodes(plain, "S-1", func(c message.Code) error {
				if string(c.PIN) != s.pins[c.Serial] {
					t.Errorf("returned %s with the wrong PIN", c.Serial)
				}
				returned++
				return nil
			})
		}
	}
	if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 || returned != 2 {
		t.Fatalf("reports %v, %d codes returned", seqs, returned)
	}
	sh, rec, seq, err := s.till.CloseShift()
	if err != nil || !sh.Reconciled() || seq != 3 || !bytes.Contains(rec, []byte("ShiftRecord")) {
		t.Fatalf("shift %+v seq %d %v", sh, seq, err)
	}
	l := sh.Lines[0]
	if l.Opening != 0 || l.Received != 6 || l.Sold != 3 || l.Returned != 2 || l.Closing != 1 || sh.Reprints != 1 {
		t.Fatalf("shift line %+v", l)
	}
	next, err := s.store.CurrentShift()
	if err != nil || next.ID == sh.ID || next.Lines[0].Opening != 1 {
		t.Fatalf("next shift %+v %v", next, err)
	}
}

// TestReceiptMustProveTheReport: a receipt whose log proof is not of the report it answers is
// refused, and the report stays queued; the next receipt, with its proof, takes it.
func TestReceiptMustProveTheReport(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 3)
	ctx := context.Background()
	sess := s.activate(t, "V-1")
	if _, err := s.till.Sell(ctx, sess, "P10"); err != nil {
		t.Fatal(err)
	}
	s.w.BadProof = true
	if _, err := s.till.Sync(ctx, s.w); evoucher.ReasonOf(err) != "bad_receipt" {
		t.Fatalf("sync with a receipt that proves another document: %v", err)
	}
	if out, err := s.store.Outbox(); err != nil || len(out) != 1 || out[0].Kind != "report" {
		t.Fatalf("outbox %v %v, want the report still queued", out, err)
	}
	s.w.BadProof = false
	res, err := s.till.Sync(ctx, s.w)
	if err != nil || len(res.Sent) != 1 || !strings.Contains(res.Sent[0], "exchange log entry 0, proof verified") {
		t.Fatalf("%+v %v", res, err)
	}
	if out, err := s.store.Outbox(); err != nil || len(out) != 0 {
		t.Fatalf("outbox %v %v, want it empty", out, err)
	}
}

func TestOnlineMode(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 4)
	ctx := context.Background()
	s.till.Online = s.w
	sess := s.activate(t, "V-1")
	if _, err := s.till.Sell(ctx, sess, "P10"); err != nil || len(s.w.Sold) != 1 {
		t.Fatalf("%v, %d authorised", err, len(s.w.Sold))
	}
	t.Run("Unreachable", func(t *testing.T) {
		s.w.Offline = true
		before := s.out.Len()
		_, err := s.till.Sell(ctx, sess, "P10")
		if !pos.IsUnreachable(err) || !strings.Contains(err.Error(), "evpos resume") || s.out.Len() != before {
			t.Fatalf("%v (printed %d bytes)", err, s.out.Len()-before)
		}
		s.w.Offline = false
		done, err := s.till.Resume(ctx, sess)
		if err != nil || len(done) != 1 || done[0].Duplicate {
			t.Fatalf("resume: %+v %v", done, err)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		s.w.Sold["100000000002"] = "elsewhere"
		_, err := s.till.Sell(ctx, sess, "P10")
		if evoucher.ReasonOf(err) != "sold_twice" {
			t.Fatalf("%v", err)
		}
		p, err := s.till.Sell(ctx, sess, "P10")
		if err != nil || p.Sale.Serial != "100000000003" {
			t.Fatalf("the next sale: %+v %v", p.Sale, err)
		}
	})
}

func TestModeSetByCenter(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 2)
	ctx := context.Background()
	if on, err := s.till.OnlineMode(); on || err != nil {
		t.Fatalf("online before the center said so: %v %v", on, err)
	}
	for _, tc := range []struct{ mode, changed string }{{"", ""}, {"online", "online"}, {"online", ""}, {"offline", "offline"}} {
		s.w.Mode = tc.mode
		res, err := s.till.Sync(ctx, s.w)
		if err != nil {
			t.Fatal(err)
		}
		on, _ := s.till.OnlineMode()
		if res.ModeChanged != tc.changed || on != (tc.mode == "online") {
			t.Fatalf("center says %q: changed %q, online %v", tc.mode, res.ModeChanged, on)
		}
	}
}

// TestCenterAlarms: each sync replaces the center's alarms kept for the screen with the list
// the center sent, apart from the terminal's own alarm lines; a center that sends none at all
// leaves the last list.
func TestCenterAlarms(t *testing.T) {
	t.Parallel()
	s := mustShop(t, 2)
	ctx := context.Background()
	since := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	low := pos.CenterAlarm{Kind: "terminal_low_stock", Message: "terminal T-1 has 2 of OP-A/P10 left, below its minimum level 5", State: "open", Since: since}
	gap := pos.CenterAlarm{Kind: "report_gap", Message: "reports 3 to 4\x1b[2J are missing", State: "acknowledged", Since: since}
	sync := func(t *testing.T, want int) pos.Status {
		t.Helper()
		res, err := s.till.Sync(ctx, s.w)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.till.Status()
		if err != nil {
			t.Fatal(err)
		}
		if s.w.Alarms != nil && res.CenterAlarms != want || len(st.Center) != want {
			t.Fatalf("sync said %d center alarms, status shows %+v; want %d", res.CenterAlarms, st.Center, want)
		}
		return st
	}
	t.Run("Shown", func(t *testing.T) {
		s.w.Alarms = []pos.CenterAlarm{low, gap}
		st := sync(t, 2)
		if st.Center[0] != low || st.Center[1].Kind != "report_gap" || st.Center[1].State != "acknowledged" {
			t.Fatalf("center alarms %+v", st.Center)
		}
		if st.Center[1].Message != "reports 3 to 4 [2J are missing" {
			t.Fatalf("a control character from the center reached the screen: %q", st.Center[1].Message)
		}
		if len(st.Alarms) != 0 {
			t.Fatalf("the center's alarms went among the terminal's own lines: %q", st.Alarms)
		}
	})
	t.Run("Replaced", func(t *testing.T) {
		s.w.Alarms = []pos.CenterAlarm{gap}
		if st := sync(t, 1); st.Center[0].Kind != "report_gap" {
			t.Fatalf("center alarms %+v, want only the report gap", st.Center)
		}
	})
	t.Run("NotSaidKeepsTheLast", func(t *testing.T) {
		s.w.Alarms = nil
		sync(t, 1)
	})
	t.Run("Cleared", func(t *testing.T) {
		s.w.Alarms = []pos.CenterAlarm{}
		sync(t, 0)
	})
}

// TestCenterParsesAlarms: the HTTP client of the center reads the alarms of the sync answer,
// and tells an answer without them from an empty list.
func TestCenterParsesAlarms(t *testing.T) {
	t.Parallel()
	body := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/terminal/shipments" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	c := &pos.Center{URL: srv.URL, Client: srv.Client()}
	for _, tc := range []struct {
		name, body string
		said       bool
		want       []pos.CenterAlarm
	}{
		{"OK", `{"shipments":[],"share_updates":[],"online_mode":false,"alarms":[{"kind":"terminal_low_stock","message":"T-1 is low","state":"open","since":"2026-03-01T09:30:00Z"}]}`,
			true, []pos.CenterAlarm{{Kind: "terminal_low_stock", Message: "T-1 is low", State: "open", Since: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)}}},
		{"Empty", `{"shipments":[],"share_updates":[],"alarms":[]}`, true, []pos.CenterAlarm{}},
		{"NotSaid", `{"shipments":[],"share_updates":[]}`, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body = tc.body
			if _, _, err := c.Pending(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, said := c.CenterAlarms()
			if said != tc.said || len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Fatalf("CenterAlarms() = %+v, %v; want %+v, %v", got, said, tc.want, tc.said)
			}
		})
	}
}

// TestDiskFull sells until the store cannot grow (SQLite's max_page_count: SQLITE_FULL, as on
// a full disk): the sale that fails is not recorded nor printed, its code stays on the shelf,
// the sales before it are intact, and the clerk is told the disk is full and what to do. Once
// there is room again the same code sells next, and the sync sends reports with no gap.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	const n = 300
	s := mustShop(t, n)
	ctx := context.Background()
	sess := s.activate(t, "V-1")
	if err := s.store.LeaveRoomForTest(2); err != nil {
		t.Fatal(err)
	}
	// A first report before the disk fills, so the sequence spans it.
	if _, err := s.till.Sell(ctx, sess, "P10"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.till.Sync(ctx, s.w); err != nil {
		t.Fatal(err)
	}
	sold := 1
	var full error
	for sold < n {
		if _, full = s.till.Sell(ctx, sess, "P10"); full != nil {
			break
		}
		sold++
	}
	if sold >= n || sold < 3 {
		t.Fatalf("sold %d of %d before the store was full: the cap did not act as a full disk", sold, n)
	}
	t.Logf("the store was full after %d sales", sold)
	if evoucher.KindOf(full) != evoucher.KindUnavailable || evoucher.ReasonOf(full) != "disk_full" {
		t.Fatalf("sale on a full disk: %v (kind %v, reason %q), want unavailable/disk_full", full, evoucher.KindOf(full), evoucher.ReasonOf(full))
	}
	var se *pos.SaleError
	if errors.As(full, &se) {
		t.Fatalf("a sale on a full disk says ticket %s was recorded", se.Ticket)
	}
	for _, want := range []string{"disk is full", "not recorded", "stays on the shelf", "free space", "sell again", "evpos resume"} {
		if !strings.Contains(strings.ToLower(full.Error()), want) {
			t.Fatalf("the clerk is not told %q: %v", want, full)
		}
	}
	// Nothing printed for it, nothing lost: every sale before it printed once, with its PIN;
	// none waits unprinted; the rest of the stock is on the shelf.
	check := func(t *testing.T, wantSold int) {
		t.Helper()
		if got := strings.Count(s.out.String(), "Serial "); got != wantSold {
			t.Fatalf("%d tickets printed, want %d", got, wantSold)
		}
		sales, err := s.store.RecentSales(n)
		if err != nil || len(sales) != wantSold {
			t.Fatalf("%d sales recorded (%v), want %d", len(sales), err, wantSold)
		}
		for i, sale := range sales {
			if !sale.Printed || sale.TicketNo != int64(wantSold-i) || !strings.Contains(s.out.String(), s.pins[sale.Serial]) {
				t.Fatalf("sale %+v is not intact", sale)
			}
		}
		if u, err := s.store.Unprinted(); err != nil || len(u) != 0 {
			t.Fatalf("%d unprinted tickets (%v)", len(u), err)
		}
		if got := onShelf(t, s.store); got != n-wantSold {
			t.Fatalf("%d codes on the shelf after %d sales of %d", got, wantSold, n)
		}
	}
	check(t, sold)
	// A sync while the disk is full cannot queue its report: no sequence number is taken.
	if _, err := s.till.Sync(ctx, s.w); evoucher.ReasonOf(err) != "disk_full" || !strings.Contains(err.Error(), "free space") {
		t.Fatalf("sync on a full disk: %v, want disk_full saying to free space", err)
	}

	// Room again: the code the full disk refused is the next one sold, and the sync reports.
	if err := s.store.LeaveRoomForTest(-1); err != nil {
		t.Fatal(err)
	}
	p, err := s.till.Sell(ctx, sess, "P10")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%012d", 100_000_000_000+sold); p.Sale.Serial != want {
		t.Fatalf("after the disk full, serial %s sold; want %s, the one whose sale failed", p.Sale.Serial, want)
	}
	sold++
	check(t, sold)
	res, err := s.till.Sync(ctx, s.w)
	if err != nil || len(res.Sent) != 1 {
		t.Fatalf("sync after the disk full: %+v %v", res, err)
	}
	var seqs []int64
	reported := map[string]bool{}
	for _, raw := range s.w.Received {
		d, _ := message.Parse(raw, message.DefaultLimits)
		if d.Root().Tag != "SalesReport" {
			continue
		}
		r, err := message.ReadSalesReport(d.Root())
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
		for _, sale := range r.Sales {
			if reported[sale.Serial] {
				t.Fatalf("serial %s reported twice", sale.Serial)
			}
			reported[sale.Serial] = true
		}
	}
	if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 || len(reported) != sold {
		t.Fatalf("reports %v carried %d sales; want 1, 2 with all %d", seqs, len(reported), sold)
	}
}

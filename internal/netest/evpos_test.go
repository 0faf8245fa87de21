package netest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher/internal/netest"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

var buildPOS struct {
	once sync.Once
	bin  string
	err  error
}

// mustEvpos returns the evpos binary: EVPOS_BIN, or one built once for this process.
func mustEvpos(tb testing.TB) string {
	tb.Helper()
	buildPOS.once.Do(func() {
		if buildPOS.bin = os.Getenv("EVPOS_BIN"); buildPOS.bin != "" {
			return
		}
		buildPOS.bin = filepath.Join(procDir, "evpos")
		out, err := exec.Command("go", "build", "-o", buildPOS.bin, "github.com/evoucher/evoucher/cmd/evpos").CombinedOutput()
		if err != nil {
			buildPOS.err = fmt.Errorf("go build ./cmd/evpos: %v\n%s", err, out)
		}
	})
	if buildPOS.err != nil {
		tb.Fatal(buildPOS.err)
	}
	return buildPOS.bin
}

// posProc runs evpos processes for one terminal: its directory, its token directory (its own,
// apart from the test process's tokens, so no two processes share a SoftHSM2 file store), its
// token PIN and its cards' PINs.
type posProc struct {
	tb       testing.TB
	bin, dir string
	conf     string            // SOFTHSM2_CONF of the terminal's and cards' tokens
	tokenPIN string            // the terminal's token
	cardPINs map[string]string // card token label → PIN
	outputs  strings.Builder   // everything the processes printed, to search for PINs
}

func newPOS(tb testing.TB) *posProc {
	tb.Helper()
	conf, err := pkcs11.SoftHSMDir(filepath.Join(tb.TempDir(), "softhsm"))
	if err != nil {
		tb.Fatal(err)
	}
	p := &posProc{tb: tb, bin: mustEvpos(tb), dir: filepath.Join(tb.TempDir(), "pos"), conf: conf, cardPINs: map[string]string{}}
	p.tokenPIN = p.newToken("terminal-T-1")
	return p
}

// newToken makes a SoftHSM2 token with softhsm2-util, as an installer would, and returns its PIN.
func (p *posProc) newToken(label string) string {
	p.tb.Helper()
	pin := fmt.Sprintf("%x", time.Now().UnixNano())[:12]
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", pin+"so", "--pin", pin)
	cmd.Env = append(posEnv(), "SOFTHSM2_CONF="+p.conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.tb.Fatalf("softhsm2-util --init-token %s: %v\n%s", label, err, out)
	}
	return pin
}

// posEnv is the environment without settings evpos or evoucher would pick up.
func posEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "EVPOS_") || strings.HasPrefix(kv, "EVOUCHER_") || strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// run runs `evpos ARGS… --dir <dir>` with the card of cardToken (if any) inserted and its PIN
// typed (cardPIN overrides the right one when not empty).
func (p *posProc) run(cardToken, cardPIN string, args ...string) (string, error) {
	args = append(args, "--dir", p.dir)
	env := append(posEnv(), "EVPOS_TOKEN_PIN="+p.tokenPIN)
	if cardToken != "" {
		args = append(args, "--card-token", cardToken)
		if cardPIN == "" {
			cardPIN = p.cardPINs[cardToken]
		}
		env = append(env, "EVPOS_CARD_PIN="+cardPIN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	p.outputs.Write(out)
	if err != nil {
		return string(out), fmt.Errorf("evpos %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (p *posProc) must(cardToken string, args ...string) string {
	p.tb.Helper()
	out, err := p.run(cardToken, "", args...)
	if err != nil {
		p.tb.Fatal(err)
	}
	p.tb.Logf("evpos %s:\n%s", args[0], out)
	return out
}

// ticket is what the test reads back from a printed ticket.
type ticket struct{ serial, pin, no string }

var ticketField = regexp.MustCompile(`(?m)^(Serial|Ticket) +(\S+)$`)

// tickets parses the tickets of a text printer's file.
func tickets(tb testing.TB, path string) []ticket {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var out []ticket
	for _, part := range strings.Split(string(b), strings.Repeat("=", 40)+"\n") {
		lines := strings.Split(part, "\n")
		var t ticket
		for i, l := range lines {
			if strings.TrimSpace(l) == "PIN" && i+1 < len(lines) {
				t.pin = strings.ReplaceAll(strings.TrimSpace(lines[i+1]), " ", "")
			}
		}
		for _, m := range ticketField.FindAllStringSubmatch(part, -1) {
			if m[1] == "Serial" {
				t.serial = m[2]
			} else {
				t.no = m[2]
			}
		}
		if t.serial != "" {
			out = append(out, t)
		}
	}
	return out
}

// posWorld is a center with one server, an operator's lot, a retailer R-1 with terminal T-1
// run by evpos (enrolled with a one-time code, like its cards V-1 and V-2), which has synced
// once and ordered 10 codes.
type posWorld struct {
	n     *netest.Network
	srv   *netest.Server
	pins  map[string]string // serial → PIN, as the operator uploaded them
	p     *posProc
	cli   func(args ...string) string
	query func(sql string, args ...any) int
}

func mustPOSWorld(t *testing.T) *posWorld {
	t.Helper()
	ctx := context.Background()
	n := mustNetwork(t)
	srv := mustServer(t, n)
	pins, err := n.Upload(ctx, srv, netest.Stock{Operator: "OP-A", Product: "P10", Batch: "LOT-POS", Codes: 40})
	if err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, err := n.CLI(ctx, nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	issue := func(role, entity string) string {
		t.Helper()
		f := strings.Fields(cli("pki", "issue-code", "--role", role, "--entity", entity))
		return f[len(f)-1]
	}
	// query reads one value from the center's database.
	query := func(sql string, args ...any) int {
		t.Helper()
		var v int
		if err := n.DB.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return v
	}
	cli("retailer", "create", "R-1", "--name", "Corner Shop")
	cli("retailer", "add-terminal", "--retailer", "R-1", "--id", "T-1", "--name", "front till")
	cli("retailer", "add-vendor", "--retailer", "R-1", "--id", "V-1", "--name", "Alice")
	cli("retailer", "add-vendor", "--retailer", "R-1", "--id", "V-2", "--name", "Bob")

	p := newPOS(t)

	// Enrolment: the terminal, then each card, with one-time codes.
	p.must("", "enrol", "--server", srv.URL, "--ca", filepath.Join(n.Center, "ca.pem"), "--token", "terminal-T-1",
		"--softhsm-conf", p.conf, "--code", issue("terminal", "T-1"))
	for _, v := range []string{"V-1", "V-2"} {
		card := "card-" + v
		p.cardPINs[card] = p.newToken(card)
		p.must(card, "card", "enrol", "--code", issue("vendor", v))
	}
	if out, err := p.run("", "", "enrol", "--code", issue("terminal", "T-1")[:10]+"XXXX"); err == nil {
		t.Fatalf("a wrong enrolment code was accepted:\n%s", out)
	}

	// First sync (CRL), then an order: the shipment arrives, verified and acknowledged.
	p.must("", "sync")
	if out := p.must("", "order", "--operator", "OP-A", "--product", "P10", "--quantity", "10"); !strings.Contains(out, "10 × OP-A P10") {
		t.Fatalf("order: no shipment of 10 received:\n%s", out)
	}
	return &posWorld{n: n, srv: srv, pins: pins, p: p, cli: cli, query: query}
}

// TestEvposAgainstServer runs the POS program as a process against a real `evoucher server`
// (mTLS, PostgreSQL, SoftHSM2 tokens for the terminal and the vendor cards), through a
// retailer's day: enrolment with one-time codes, a shipment, sales printed on tickets whose
// PINs are the operator's, reports the center records, offline sales reported later, a
// return, a revoked card refused after the sync that brings the CRL, and the shift closed.
func TestEvposAgainstServer(t *testing.T) {
	ctx := context.Background()
	w := mustPOSWorld(t)
	n, pins, p, cli, query := w.n, w.pins, w.p, w.cli, w.query
	printer := filepath.Join(t.TempDir(), "printer.txt")
	if got := query(`SELECT count(*) FROM shipments WHERE terminal_id = 'T-1' AND state = 'confirmed'`); got != 1 {
		t.Fatalf("center: %d confirmed shipments for T-1, want 1", got)
	}
	if got := query(`SELECT count(*) FROM codes c JOIN shipments s ON s.id = c.shipment_id WHERE s.terminal_id = 'T-1' AND c.state = 'delivered'`); got != 10 {
		t.Fatalf("center: %d codes delivered to T-1, want 10", got)
	}
	if out := p.must("", "stock"); !regexp.MustCompile(`P10 .* 10\n`).MatchString(out) {
		t.Fatalf("stock after the shipment:\n%s", out)
	}

	// A sale: the ticket's PIN is the operator's; the report reaches the center.
	p.must("card-V-1", "sell", "--product", "P10", "--printer", "text:"+printer)
	tk := tickets(t, printer)
	if len(tk) != 1 || tk[0].pin == "" || pins[tk[0].serial] != tk[0].pin {
		t.Fatalf("ticket %+v: its PIN is not what the operator uploaded for that serial", tk)
	}
	// The shop's name, as the center's registry has it, came with the shipment.
	if b, err := os.ReadFile(printer); err != nil || !strings.Contains(string(b), "Corner Shop (R-1)") {
		t.Fatalf("the ticket does not name the shop as \"Corner Shop (R-1)\" (%v):\n%s", err, b)
	}
	if got := query(`SELECT count(*) FROM sales`); got != 0 {
		t.Fatalf("center: %d sales before any report (offline mode)", got)
	}
	if out := p.must("", "sync"); !strings.Contains(out, "sales report 1") {
		t.Fatalf("sync did not send report 1:\n%s", out)
	}
	var vendor, ticketNo, state string
	var seq int64
	if err := n.DB.QueryRow(ctx, `SELECT s.vendor_id, s.ticket, s.report_seq, c.state FROM sales s JOIN codes c ON c.id = s.code_id
		WHERE c.serial = $1 AND s.terminal_id = 'T-1'`, tk[0].serial).Scan(&vendor, &ticketNo, &seq, &state); err != nil {
		t.Fatalf("center: the sale of %s: %v", tk[0].serial, err)
	}
	if vendor != "V-1" || ticketNo != tk[0].no || seq != 1 || state != "sold" {
		t.Fatalf("center: sale of %s by %s ticket %s in report %d, code %s; want V-1, %s, 1, sold", tk[0].serial, vendor, ticketNo, seq, state, tk[0].no)
	}

	// Offline: Bob sells 3 while the center is unreachable; the report waits, then goes.
	p.must("card-V-2", "sell", "--product", "P10", "--count", "3", "--printer", "text:"+printer, "--server", "https://127.0.0.1:1")
	if out, err := p.run("", "", "sync", "--server", "https://127.0.0.1:1"); err == nil || !strings.Contains(out, "unreachable") {
		t.Fatalf("sync without the center: %v\n%s", err, out)
	}
	if got := query(`SELECT count(*) FROM sales`); got != 1 {
		t.Fatalf("center: %d sales while the terminal was offline, want 1", got)
	}
	p.must("", "sync")
	tk = tickets(t, printer)
	if len(tk) != 4 {
		t.Fatalf("%d tickets printed, want 4", len(tk))
	}
	for _, x := range tk {
		if pins[x.serial] != x.pin {
			t.Fatalf("ticket %s: PIN of %s is not the operator's", x.no, x.serial)
		}
		if got := query(`SELECT count(*) FROM sales s JOIN codes c ON c.id = s.code_id WHERE c.serial = $1 AND c.state = 'sold' AND s.ticket = $2`, x.serial, x.no); got != 1 {
			t.Fatalf("center: no sale of %s on ticket %s", x.serial, x.no)
		}
	}
	if got := query(`SELECT report_seq::int FROM terminals WHERE id = 'T-1'`); got != 2 {
		t.Fatalf("center: T-1's last report is %d, want 2", got)
	}

	// A return: two codes go back in the vault, out of any shipment.
	out := p.must("card-V-1", "return", "--product", "P10", "--count", "2")
	m := regexp.MustCompile(`queued for the center: (\d+) (\d+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "sent return") {
		t.Fatalf("return:\n%s", out)
	}
	if got := query(`SELECT count(*) FROM codes WHERE serial = ANY($1) AND state = 'in_vault' AND shipment_id IS NULL`, m[1:]); got != 2 {
		t.Fatalf("center: %d of the returned codes %v are back in the vault, want 2", got, m[1:])
	}

	// A revoked card: selling works until the sync that brings the CRL, and never after.
	var cardSerial string
	for _, l := range strings.Split(cli("pki", "list", "--role", "vendor", "--entity", "V-2"), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			cardSerial = f[0]
		}
	}
	cli("pki", "revoke", cardSerial, "--reason", "keyCompromise")
	p.must("", "sync")
	out, err := p.run("card-V-2", "", "sell", "--product", "P10", "--printer", "text:"+printer)
	if err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("a revoked card sold after the sync that brought the CRL: %v\n%s", err, out)
	}
	// A wrong PIN is refused too, and counted.
	if out, err := p.run("card-V-1", "0000", "sell", "--product", "P10", "--printer", "text:"+printer); err == nil || !strings.Contains(out, "wrong PIN") {
		t.Fatalf("a wrong PIN: %v\n%s", err, out)
	}
	if n := len(tickets(t, printer)); n != 4 {
		t.Fatalf("%d tickets after refused cards, want 4", n)
	}

	// Shift close: reconciled, signed, sent as report 3, whose closing stock (4) is below the
	// minimum the center now keeps for T-1 (refilled only when it orders).
	cli("retailer", "set-level", "--terminal", "T-1", "--operator", "OP-A", "--product", "P10", "--min", "5", "--max", "10", "--auto-reorder=false")
	out = p.must("", "shift", "close")
	for _, want := range []string{"received 10", "sold     4", "returned 2", "closing  4", "RECONCILED", "sales report 3"} {
		if !strings.Contains(out, want) {
			t.Fatalf("shift close does not say %q:\n%s", want, out)
		}
	}
	if got := query(`SELECT report_seq::int FROM terminals WHERE id = 'T-1'`); got != 3 {
		t.Fatalf("center: T-1's last report is %d after the shift closed, want 3", got)
	}
	if got := query(`SELECT count(*) FROM sales WHERE terminal_id = 'T-1'`); got != 4 {
		t.Fatalf("center: %d sales, want 4", got)
	}

	// The center switches T-1 to online mode: the terminal learns it at its next sync, and
	// from then on a sale is recorded at the center before its ticket prints, with no sync.
	// The same sync brings the low-stock alarm the center's check raised about T-1.
	cli("alarms", "check")
	cli("retailer", "set-mode", "--terminal", "T-1", "--online")
	if out := p.must("", "sync"); !strings.Contains(out, "switched this terminal to online") || !strings.Contains(out, "alarm(s) from the center") {
		t.Fatalf("sync after set-mode --online and an alarm check does not say the mode changed and the center's alarms:\n%s", out)
	}
	if out := p.must("", "status"); !regexp.MustCompile(`CENTER ALARM low stock \(open since [^)]+\): terminal T-1 has 4 of OP-A/P10 left, below its minimum level 5`).MatchString(out) {
		t.Fatalf("status does not show the center's low-stock alarm for T-1:\n%s", out)
	}
	p.must("card-V-1", "sell", "--product", "P10", "--printer", "text:"+printer)
	if got := query(`SELECT count(*) FROM sales WHERE terminal_id = 'T-1'`); got != 5 {
		t.Fatalf("center: %d sales right after an online sale, want 5 (authorised before printing)", got)
	}

	// No PIN in clear anywhere but on the tickets: not in what evpos printed on the terminal,
	// not on its disk.
	onDisk := ""
	_ = filepath.Walk(p.dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(path)
			onDisk += string(b)
		}
		return nil
	})
	for serial, pin := range pins {
		if strings.Contains(p.outputs.String(), pin) || strings.Contains(onDisk, pin) {
			t.Fatalf("the PIN of %s is in clear in evpos's output or on the terminal's disk", serial)
		}
	}
}

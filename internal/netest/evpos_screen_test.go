package netest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxPane drives one program in a detached tmux session of its own server (-L), at a fixed
// size, as a clerk at a 40-column handheld would.
type tmuxPane struct {
	t      *testing.T
	socket string
}

func (m *tmuxPane) tmux(args ...string) string {
	m.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", m.socket}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (m *tmuxPane) keys(keys ...string) {
	m.t.Helper()
	m.tmux(append([]string{"send-keys", "-t", "pos"}, keys...)...)
}

func (m *tmuxPane) capture() string {
	m.t.Helper()
	return m.tmux("capture-pane", "-p", "-t", "pos")
}

// waitFor polls the screen until it matches re, and returns it.
func (m *tmuxPane) waitFor(re string) string {
	m.t.Helper()
	rx := regexp.MustCompile(re)
	var screen string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if screen = m.capture(); rx.MatchString(screen) {
			return screen
		}
	}
	m.t.Fatalf("the screen never showed %q; it shows:\n%s", re, screen)
	return ""
}

// TestEvposScreenInTmux drives evpos's full-screen mode in tmux at 40×40 against a real server:
// card inserted with its PIN typed (masked), a sale by product whose ticket preview shows the
// operator's PIN and nothing else does, the preview wiped, a sync that reports the sale to the
// center, a reprint marked DUPLICATE, and the shift closed.
func TestEvposScreenInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install tmux)")
	}
	w := mustPOSWorld(t)
	p := w.p
	// The PINs reach evpos through its environment, from a script only this user reads.
	script := filepath.Join(t.TempDir(), "pos.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nexport EVPOS_TOKEN_PIN=%s\nexec %s screen --dir %s --idle 10m\n",
		p.tokenPIN, p.bin, p.dir)), 0o700); err != nil {
		t.Fatal(err)
	}
	m := &tmuxPane{t: t, socket: fmt.Sprintf("evpos-test-%d", os.Getpid())}
	m.tmux("new-session", "-d", "-s", "pos", "-x", "40", "-y", "40", "env -u SOFTHSM2_CONF TERM=xterm-256color "+script)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", m.socket, "kill-server").Run() })

	screen := m.waitFor(`evpos terminal T-1`)
	for _, want := range []string{"no card", "P10", "10.00 EUR"} {
		if !strings.Contains(screen, want) {
			t.Fatalf("the first screen lacks %q:\n%s", want, screen)
		}
	}
	for _, l := range strings.Split(screen, "\n") {
		if len([]rune(l)) > 40 {
			t.Fatalf("a line wider than 40 columns: %q", l)
		}
	}

	// Insert card V-1: the form offers the first card enrolled here; the PIN is typed masked.
	m.keys("c")
	m.waitFor(`insert card`)
	pin := p.cardPINs["card-V-1"]
	m.keys("-l", pin)
	screen = m.waitFor(`PIN.*\*{4}`)
	if strings.Contains(screen, pin) {
		t.Fatalf("the card PIN shows on the screen:\n%s", screen)
	}
	m.keys("Enter", "Enter")
	m.waitFor(`card V-1 ACTIVE`)

	// Sell one P10: the preview is the only place the code shows, and it is the operator's.
	m.keys("Enter")
	screen = m.waitFor(`PRINTED ticket T-1-000001`)
	serial := regexp.MustCompile(`Serial +(\d+)`).FindStringSubmatch(screen)
	if serial == nil {
		t.Fatalf("no serial on the preview:\n%s", screen)
	}
	want := w.pins[serial[1]]
	if got := strings.ReplaceAll(regexp.MustCompile(`(?m)^\s+PIN\s*\n\s+([\d ]+)$`).FindStringSubmatch(screen)[1], " ", ""); got != want {
		t.Fatalf("the preview shows PIN %q for %s, the operator uploaded another", got, serial[1])
	}
	m.keys("Enter")
	screen = m.waitFor(`sold ticket T-1-000001`)
	if strings.Contains(screen, want) || strings.Contains(screen, "PRINTED") {
		t.Fatalf("the code is still on the screen after the preview closed:\n%s", screen)
	}
	if !regexp.MustCompile(`P10 .* 9\b`).MatchString(screen) {
		t.Fatalf("stock not 9 after the sale:\n%s", screen)
	}

	// Sync: the sale goes to the center, and an alarm the center keeps about T-1 comes back
	// to the screen, apart from the terminal's own lines.
	if _, err := w.n.DB.Exec(context.Background(), `INSERT INTO alarms (kind, subject, message, first_at, last_at)
		VALUES ('report_gap', 'T-1', 'terminal T-1 sent sales report 9 but 1 is the next expected', now(), now())`); err != nil {
		t.Fatal(err)
	}
	m.keys("y")
	screen = m.waitFor(`(?s)synced: 0 shipment\(s\) in,\s+1 sent`)
	if !regexp.MustCompile(`(?s)center 1/1 report missing:\s+terminal\s+T-1\s+sent`).MatchString(screen) {
		t.Fatalf("the center's alarm is not on the screen after the sync:\n%s", screen)
	}
	for _, l := range strings.Split(screen, "\n") {
		if len([]rune(l)) > 40 {
			t.Fatalf("a line wider than 40 columns: %q", l)
		}
	}
	if got := w.query(`SELECT count(*) FROM sales s JOIN codes c ON c.id = s.code_id WHERE c.serial = $1 AND c.state = 'sold' AND s.vendor_id = 'V-1'`, serial[1]); got != 1 {
		t.Fatalf("center: the sale of %s made on the screen is not recorded", serial[1])
	}

	// Reprint: the list shows ticket numbers only; the preview says DUPLICATE.
	m.keys("r")
	screen = m.waitFor(`reprint which ticket`)
	if strings.Contains(screen, want) {
		t.Fatalf("the reprint list shows a code:\n%s", screen)
	}
	m.keys("Enter")
	m.waitFor(`PRINTED T-1-000001 \(DUPLICATE\)`)
	m.keys("Enter")
	m.waitFor(`reprinted T-1-000001`)

	// Close the shift: confirmed, reconciled, sent.
	m.keys("k")
	m.waitFor(`Close the shift\?`)
	m.keys("Enter")
	screen = m.waitFor(`RECONCILED`)
	t.Logf("shift report on the screen:\n%s", screen)
	m.keys("Enter")
	m.waitFor(`shift 1 closed`)
	if got := w.query(`SELECT report_seq::int FROM terminals WHERE id = 'T-1'`); got != 2 {
		t.Fatalf("center: last report %d after the shift closed on the screen, want 2", got)
	}
	m.keys("x")
	m.waitFor(`card removed`)
	m.keys("q")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if exec.Command("tmux", "-L", m.socket, "has-session", "-t", "pos").Run() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("evpos did not quit on q:\n%s", m.capture())
		}
	}
}

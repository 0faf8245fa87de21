package dashboard_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/pki"
)

// mustBrowser starts headless Chromium (installed by scripts/deps.sh) with a throwaway
// profile and no background traffic, which this closed network refuses.
func mustBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run scripts/deps.sh as root (apt-get install chromium)")
	}
	// Not t.TempDir: Chromium's helpers may still write to the profile after the browser quits,
	// which would fail the test at cleanup; remove it best effort instead.
	profile, err := os.MkdirTemp("", "evoucher-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true), // the test server's certificate is from a test CA
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel3)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestBrowser drives the dashboard in headless Chromium: a manager logs in, sees a low-stock
// alarm arrive live (no reload), acknowledges it and exports a journal as CSV; a retailer
// manager then sees its own terminals and not another retailer's.
func TestBrowser(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := mustBrowser(t)
	shots, _ := os.MkdirTemp("", "evoucher-dashboard-shots-")
	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var png []byte
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if chromedp.Run(sctx, chromedp.FullScreenshot(&png, 80)) == nil {
				p := filepath.Join(shots, strings.ReplaceAll(step, " ", "-")+".png")
				_ = os.WriteFile(p, png, 0o644)
				t.Logf("screenshot: %s", p)
			}
			t.Fatalf("%s: %v", step, err)
		}
	}
	login := func(name string) {
		t.Helper()
		run("login "+name, chromedp.Navigate(e.srv.URL+"/login"), chromedp.WaitVisible(`#name`, chromedp.ByID),
			chromedp.SendKeys(`#name`, name, chromedp.ByID), chromedp.SendKeys(`#password`, password, chromedp.ByID),
			chromedp.Click(`#login`, chromedp.ByID), chromedp.WaitVisible(`#stock`, chromedp.ByID))
	}

	login("manager")
	// The page listens: the event stream is open and the server LISTENs for alarms.
	run("event stream", chromedp.WaitVisible(`body[data-live="1"]`, chromedp.ByQuery), chromedp.Evaluate(`window.marker = 42`, nil))
	waitFor(t, func() bool {
		var n int
		_ = e.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND query = 'LISTEN evoucher_alarms'`).Scan(&n)
		return n > 0
	})
	e.lowStock(t, "T-A1", 1)
	var text string
	var marker int
	run("live alarm", chromedp.WaitVisible(`//table[@id="live-alarms"]//td[contains(., "T-A1/OP-A/P-A")]`, chromedp.BySearch),
		chromedp.Text(`#live-alarms`, &text, chromedp.ByID), chromedp.Evaluate(`window.marker`, &marker))
	if !strings.Contains(text, "terminal_low_stock") || !strings.Contains(text, "below its minimum level 5") || marker != 42 {
		t.Fatalf("live alarm row %q, page reloaded: %v", text, marker != 42)
	}

	as, err := e.vault.Alarms(context.Background(), codevault.AlarmFilter{})
	if err != nil || len(as) != 1 {
		t.Fatalf("%d alarms: %v", len(as), err)
	}
	ack := fmt.Sprintf("#ack-%d", as[0].ID)
	run("acknowledge", chromedp.Navigate(e.srv.URL+"/ui/alarms"), chromedp.WaitVisible(ack, chromedp.ByQuery),
		chromedp.Click(ack, chromedp.ByQuery), chromedp.WaitVisible(`.flash`, chromedp.ByQuery), chromedp.Text(`.flash`, &text, chromedp.ByQuery))
	if a, _ := e.vault.Alarm(context.Background(), as[0].ID, codevault.Scope{}); a.State != codevault.AlarmAcknowledged || !strings.Contains(text, "acknowledged") {
		t.Fatalf("after clicking acknowledge: state %s, page says %q", a.State, text)
	}

	// Two refused messages (a terminal sends garbage) in the refusals journal, exported as CSV
	// through the page's link with the browser's session.
	for i := 0; i < 2; i++ {
		_, _ = e.vault.Receive(context.Background(), pki.Identity{Role: pki.RoleTerminal, Entity: "T-A1"}, []byte(fmt.Sprintf("<Junk n=\"%d\"/>", i)))
	}
	var href, body string
	run("csv export", chromedp.Navigate(e.srv.URL+"/ui/refusals"), chromedp.WaitVisible(`#csv`, chromedp.ByID),
		chromedp.AttributeValue(`#csv`, "href", &href, nil, chromedp.ByID),
		chromedp.Evaluate(`fetch(document.getElementById('csv').href).then(r => r.text())`, &body, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}))
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 3 || strings.Join(recs[0], ",") != "received,peer,type,message id,sender,reason,detail,size" ||
		recs[1][1] != "terminal T-A1" || recs[2][1] != "terminal T-A1" || recs[1][5] == "" || !strings.Contains(href, "format=csv") {
		t.Fatalf("CSV from %s: %v\n%s", href, err, body)
	}

	// A retailer manager sees its retailer, and not the other one's terminals.
	run("logout", chromedp.Click(`#logout`, chromedp.ByID), chromedp.WaitVisible(`#login`, chromedp.ByID))
	login("rm-a")
	run("own retailer", chromedp.Navigate(e.srv.URL+"/ui/retailers/R-A"), chromedp.WaitVisible(`#terminals`, chromedp.ByID),
		chromedp.Text(`#terminals`, &text, chromedp.ByID))
	if !strings.Contains(text, "T-A1") {
		t.Fatalf("own terminals: %q", text)
	}
	run("other retailer", chromedp.Navigate(e.srv.URL+"/ui/retailers/R-B"), chromedp.WaitVisible(`#error`, chromedp.ByID),
		chromedp.Text(`body`, &text, chromedp.ByQuery))
	if strings.Contains(text, "T-B1") {
		t.Fatalf("retailer manager of R-A sees R-B's terminals: %q", text)
	}
	run("other terminal", chromedp.Navigate(e.srv.URL+"/ui/terminals/T-B1"), chromedp.WaitVisible(`#error`, chromedp.ByID))
	run("overview", chromedp.Navigate(e.srv.URL+"/ui/"), chromedp.WaitVisible(`#stock`, chromedp.ByID), chromedp.Text(`body`, &text, chromedp.ByQuery))
	if strings.Contains(text, "T-B1") || strings.Contains(text, "OP-B") || !strings.Contains(text, "T-A1") {
		t.Fatalf("retailer manager's overview: %q", text)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out waiting")
}

package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/xml/message"
)

// mustMoney gives R-A and R-B prepaid EUR accounts (R-A topped up 100.00), a margin on OP-A,
// opens the operators' accounts, and makes a statement of each party for the last hour. It
// returns the statements' ids by party.
func (e *env) mustMoney(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	for _, r := range []string{"R-A", "R-B"} {
		if err := e.money.SetTerms(ctx, ledger.Terms{Retailer: r, Currency: "EUR", Mode: ledger.ModePrepaid, Settlement: ledger.SettleOnShipment}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.money.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-A", Amount: 10_000, Method: ledger.MethodBank, Reference: "SEPA-A-0", By: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := e.money.SetMargin(ctx, "OP-A", ledger.Any, 800); err != nil {
		t.Fatal(err)
	}
	// Operators' accounts open with their first charge; no code is shipped here.
	if _, err := e.db.Exec(ctx, `INSERT INTO ledger_accounts (account, currency) VALUES ('operator:OP-A', 'EUR'), ('operator:OP-B', 'EUR'),
		('platform:margin', 'EUR')`); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	now := time.Now()
	for party, kind := range map[string]string{"R-A": message.PartyRetailer, "R-B": message.PartyRetailer, "OP-A": message.PartyOperator, "OP-B": message.PartyOperator} {
		s, err := e.money.GenerateStatement(ctx, ledger.StatementRequest{PartyKind: kind, Party: party, From: now.Add(-time.Hour), To: now})
		if err != nil {
			t.Fatal(err)
		}
		ids[party] = s.ID
	}
	return ids
}

// moneyRows are the money routes of the authorisation matrix: a scoped role reaches its own
// account and statements only, changes nothing, and the platform's accounts and the clearing
// are network views.
func moneyRows(st map[string]string) []row {
	j := func(s string) url.Values { return url.Values{"_json": {s}} }
	rA, rB := "/ui/money/accounts/retailer:R-A", "/ui/money/accounts/retailer:R-B"
	return []row{
		{"GET", "/ui/money", "/ui/money", nil, all},
		{"GET", "/ui/money/accounts/{account}", rA, nil, retailers},
		{"GET", "/ui/money/accounts/{account}", rA + "?currency=EUR&before=999999", nil, retailers},
		{"GET", "/ui/money/accounts/{account}", rB, nil, network},
		{"GET", "/ui/money/accounts/{account}", "/ui/money/accounts/operator:OP-A", nil, operators},
		{"GET", "/ui/money/accounts/{account}", "/ui/money/accounts/operator:OP-B", nil, network},
		{"GET", "/ui/money/accounts/{account}", "/ui/money/accounts/platform:margin", nil, network},
		{"POST", "/ui/money/topups", "/ui/money/topups", url.Values{"retailer": {"R-A"}, "amount": {"10.00"}, "method": {"bank"}, "reference": {"M-UI-A"}}, handlers},
		{"POST", "/ui/money/topups", "/ui/money/topups", url.Values{"retailer": {"R-B"}, "amount": {"10.00"}, "method": {"cash"}, "reference": {"M-UI-B"}}, handlers},
		{"POST", "/ui/money/terms", "/ui/money/terms", url.Values{"retailer": {"R-A"}, "mode": {"credit"}, "credit_limit": {"50.00"}, "currency": {"EUR"}, "settlement": {"on_shipment"}}, handlers},
		{"POST", "/ui/money/terms", "/ui/money/terms", url.Values{"retailer": {"R-B"}, "mode": {"prepaid"}, "currency": {"EUR"}, "settlement": {"on_sale"}}, handlers},
		{"POST", "/ui/money/commissions", "/ui/money/commissions", url.Values{"retailer": {"R-A"}, "operator": {"OP-A"}, "product": {"P-A"}, "bps": {"500"}}, handlers},
		{"POST", "/ui/money/margins", "/ui/money/margins", url.Values{"operator": {"OP-B"}, "product": {"*"}, "bps": {"700"}}, handlers},
		{"GET", "/ui/money/statements", "/ui/money/statements", nil, all},
		{"POST", "/ui/money/statements", "/ui/money/statements", url.Values{"party_kind": {"retailer"}, "party": {"R-A"}, "from": {"2026-01-01"}, "to": {"now"}}, handlers},
		{"GET", "/ui/money/statements/{id}", "/ui/money/statements/" + st["R-A"], nil, retailers},
		{"GET", "/ui/money/statements/{id}", "/ui/money/statements/" + st["R-A"] + "?format=pdf", nil, retailers},
		{"GET", "/ui/money/statements/{id}", "/ui/money/statements/" + st["R-B"] + "?format=csv", nil, network},
		{"GET", "/ui/money/statements/{id}", "/ui/money/statements/" + st["OP-A"], nil, operators},
		{"GET", "/ui/money/statements/{id}", "/ui/money/statements/" + st["OP-B"] + "?format=xml", nil, network},
		{"GET", "/ui/money/clearing", "/ui/money/clearing?from=2026-01-01&to=now", nil, network},
		{"GET", "/api/v1/money/balances", "/api/v1/money/balances", nil, all},
		{"GET", "/api/v1/money/accounts/{account}", "/api/v1/money/accounts/retailer:R-A?limit=1", nil, retailers},
		{"GET", "/api/v1/money/accounts/{account}", "/api/v1/money/accounts/retailer:R-B", nil, network},
		{"GET", "/api/v1/money/accounts/{account}", "/api/v1/money/accounts/operator:OP-A", nil, operators},
		{"GET", "/api/v1/money/accounts/{account}", "/api/v1/money/accounts/operator:OP-B", nil, network},
		{"GET", "/api/v1/money/topups", "/api/v1/money/topups?retailer=R-B", nil, all},
		{"POST", "/api/v1/money/topups", "/api/v1/money/topups", j(`{"retailer":"R-A","amount":1000,"method":"bank","reference":"M-API-A"}`), handlers},
		{"POST", "/api/v1/money/topups", "/api/v1/money/topups", j(`{"retailer":"R-B","amount":1000,"method":"cash","reference":"M-API-B"}`), handlers},
		{"GET", "/api/v1/money/terms/{retailer}", "/api/v1/money/terms/R-A", nil, retailers},
		{"GET", "/api/v1/money/terms/{retailer}", "/api/v1/money/terms/R-B", nil, network},
		{"POST", "/api/v1/money/terms/{retailer}", "/api/v1/money/terms/R-A", j(`{"currency":"EUR","mode":"credit","credit_limit":9000,"settlement":"on_shipment"}`), handlers},
		{"POST", "/api/v1/money/terms/{retailer}", "/api/v1/money/terms/R-B", j(`{"currency":"EUR","mode":"prepaid","settlement":"on_shipment"}`), handlers},
		{"GET", "/api/v1/money/rates", "/api/v1/money/rates", nil, network},
		{"POST", "/api/v1/money/commissions", "/api/v1/money/commissions", j(`{"retailer":"R-B","operator":"*","product":"*","bps":300}`), handlers},
		{"POST", "/api/v1/money/margins", "/api/v1/money/margins", j(`{"operator":"OP-A","product":"P-A","bps":900}`), handlers},
		{"GET", "/api/v1/money/sales", "/api/v1/money/sales?from=2026-01-01", nil, all},
		{"GET", "/api/v1/money/statements", "/api/v1/money/statements?party=R-B", nil, all},
		{"POST", "/api/v1/money/statements", "/api/v1/money/statements", j(`{"party_kind":"operator","party":"OP-B","from":"2026-01-01","to":"now"}`), handlers},
		{"GET", "/api/v1/money/statements/{id}", "/api/v1/money/statements/" + st["R-A"], nil, retailers},
		{"GET", "/api/v1/money/statements/{id}", "/api/v1/money/statements/" + st["R-B"], nil, network},
		{"GET", "/api/v1/money/statements/{id}", "/api/v1/money/statements/" + st["OP-A"] + "?format=csv", nil, operators},
		{"GET", "/api/v1/money/statements/{id}", "/api/v1/money/statements/" + st["OP-B"], nil, network},
		{"GET", "/api/v1/money/clearing", "/api/v1/money/clearing", nil, network},
	}
}

// TestTopUpForm: a manager records a top-up through the form; it is recorded by that user and
// shows in the balance; the same reference again is refused with a message saying so, and a
// top-up without the session's anti-forgery token is refused; neither changes anything.
func TestTopUpForm(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	e.mustMoney(t)
	ctx := context.Background()
	c := e.mustLogin(t, "manager")
	tok := e.csrf(t, c)
	form := url.Values{"csrf": {tok}, "retailer": {"R-A"}, "amount": {"25.50"}, "method": {"bank"}, "reference": {"SEPA 2026-11-30 0042"}}

	resp := e.post(t, c, "/ui/money/topups", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "25.50") {
		t.Fatalf("top-up: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tus, err := e.money.TopUps(ctx, "R-A", 1)
	if err != nil || len(tus) != 1 || tus[0].Amount != 2550 || tus[0].By != "dashboard:manager" || tus[0].Reference != "SEPA 2026-11-30 0042" {
		t.Fatalf("recorded %+v, %v", tus, err)
	}
	body, _ := e.get(t, c, "/ui/money")
	if !strings.Contains(body, "125.50 EUR") {
		t.Fatalf("the money page does not show R-A's new balance 125.50 EUR:\n%s", body)
	}

	before := e.fingerprint(t)
	req, _ := http.NewRequest("POST", e.srv.URL+"/ui/money/topups", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	dup, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(dup.Body)
	dup.Body.Close()
	if dup.StatusCode != http.StatusConflict || !strings.Contains(string(page), "was recorded already") {
		t.Fatalf("duplicate reference: %d\n%s", dup.StatusCode, page)
	}
	form.Set("reference", "ANOTHER-1")
	form.Set("csrf", "forged")
	if resp := e.post(t, c, "/ui/money/topups", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("top-up with a forged token: %d", resp.StatusCode)
	}
	if e.fingerprint(t) != before {
		t.Fatal("a refused top-up changed the database")
	}

	// The statement of the period reconciles, as the page and the JSON say.
	s, err := e.money.GenerateStatement(ctx, ledger.StatementRequest{PartyKind: message.PartyRetailer, Party: "R-A",
		From: time.Now().Add(-time.Hour), To: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = e.get(t, c, "/api/v1/money/statements/"+s.ID)
	var v struct {
		Reconciles bool `json:"reconciles"`
		Content    struct {
			Totals []struct{ Net, Closing int64 }
		} `json:"content"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || !v.Reconciles || len(v.Content.Totals) != 1 || v.Content.Totals[0].Closing != 12_550 {
		t.Fatalf("statement %s: %v\n%s", s.ID, err, body)
	}
	if body, _ := e.get(t, c, "/ui/money/statements/"+s.ID); !strings.Contains(body, "reconciles with the ledger exactly") {
		t.Fatalf("statement page:\n%s", body)
	}
}

// TestBrowserTopUp: a manager records a top-up through the money page's form in headless
// Chromium, and the page it lands on shows the retailer's new balance.
func TestBrowserTopUp(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	e.mustMoney(t)
	ctx := mustBrowser(t)
	var flash, balance string
	err := chromedp.Run(ctx, chromedp.Navigate(e.srv.URL+"/login"), chromedp.WaitVisible(`#name`, chromedp.ByID),
		chromedp.SendKeys(`#name`, "manager", chromedp.ByID), chromedp.SendKeys(`#password`, password, chromedp.ByID),
		chromedp.Click(`#login`, chromedp.ByID), chromedp.WaitVisible(`#stock`, chromedp.ByID),
		chromedp.Navigate(e.srv.URL+"/ui/money"), chromedp.WaitVisible(`#topup`, chromedp.ByID),
		chromedp.SendKeys(`#topup-retailer`, "R-A", chromedp.ByID), chromedp.SendKeys(`#topup-amount`, "12.34", chromedp.ByID),
		chromedp.SetValue(`#topup-method`, "cash", chromedp.ByID), chromedp.SendKeys(`#topup-reference`, "RC-BROWSER-1", chromedp.ByID),
		chromedp.Click(`#topup-submit`, chromedp.ByID), chromedp.WaitVisible(`.flash`, chromedp.ByQuery),
		chromedp.Text(`.flash`, &flash, chromedp.ByQuery),
		chromedp.Text(`tr[id="bal-retailer:R-A"] td.balance`, &balance, chromedp.ByQuery))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "12.34 EUR recorded for R-A") || strings.TrimSpace(balance) != "112.34 EUR" {
		t.Fatalf("after the top-up: flash %q, balance %q", flash, balance)
	}
	tus, err := e.money.TopUps(context.Background(), "R-A", 1)
	if err != nil || len(tus) != 1 || tus[0].Method != "cash" || tus[0].By != "dashboard:manager" {
		t.Fatalf("recorded %+v, %v", tus, err)
	}
}

// TestCreditAlarmOnOverview: an open credit_limit alarm shows on the overview like any alarm,
// to the network and to its retailer's manager only, and a top-up from the dashboard that lets
// the retailer order again resolves it.
func TestCreditAlarmOnOverview(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	e.mustMoney(t)
	ctx := context.Background()
	// As the vault raises it when it refuses an order for credit (codevault's tests cover that).
	for _, r := range []string{"R-A", "R-B"} {
		if _, err := e.db.Exec(ctx, `INSERT INTO alarms (kind, subject, message, first_at, last_at)
			VALUES ('credit_limit', $1, 'retailer ' || $1 || ' cannot take 10 × P: only 0.00 EUR of prepaid funds is left', now(), now())`, r); err != nil {
			t.Fatal(err)
		}
	}
	rm, manager := e.mustLogin(t, "rm-a"), e.mustLogin(t, "manager")
	var o struct {
		Alarms []struct{ Kind, Subject, State string } `json:"alarms"`
	}
	credit := func(c *http.Client) []string {
		body, _ := e.get(t, c, "/api/v1/overview")
		o.Alarms = nil
		if err := json.Unmarshal([]byte(body), &o); err != nil {
			t.Fatal(err)
		}
		var subjects []string
		for _, a := range o.Alarms {
			if a.Kind == "credit_limit" {
				subjects = append(subjects, a.Subject)
			}
		}
		return subjects
	}
	if got := credit(rm); len(got) != 1 || got[0] != "R-A" {
		t.Fatalf("retailer manager of R-A sees credit alarms %v", got)
	}
	if got := credit(manager); len(got) != 2 {
		t.Fatalf("manager sees credit alarms %v", got)
	}
	if body, _ := e.get(t, rm, "/ui/"); !strings.Contains(body, "credit_limit") || strings.Contains(body, "R-B") {
		t.Fatalf("retailer manager's overview page:\n%s", body)
	}
	// R-B has paid nothing: a top-up lets it order, and resolves its alarm.
	resp := e.post(t, manager, "/ui/money/topups", url.Values{"csrf": {e.csrf(t, manager)}, "retailer": {"R-B"}, "amount": {"20"},
		"method": {"cash"}, "reference": {"RC-B-1"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "credit_limit+alarm+is+resolved") {
		t.Fatalf("top-up: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := credit(manager); len(got) != 1 || got[0] != "R-A" {
		t.Fatalf("after R-B's top-up the open credit alarms are %v", got)
	}
}

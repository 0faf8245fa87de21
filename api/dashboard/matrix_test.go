package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher/codevault"
)

// row is one endpoint of the matrix: a concrete request and the roles allowed to make it.
// "anon" is a client without a session.
type row struct {
	method, pattern, path string
	form                  url.Values // for POSTs; the CSRF token is added
	allow                 []string
}

var (
	all       = []string{"admin", "manager", "auditor", "rm-a", "op-a"}
	network   = []string{"admin", "manager", "auditor"}
	retailers = []string{"admin", "manager", "auditor", "rm-a"}
	operators = []string{"admin", "manager", "auditor", "op-a"}
	handlers  = []string{"admin", "manager"}
	terminals = []string{"admin", "manager", "rm-a"}
	public    = []string{"anon", "admin", "manager", "auditor", "rm-a", "op-a"}
)

func matrix(alarmA, alarmB int64, st map[string]string) []row {
	a, b := strconv.FormatInt(alarmA, 10), strconv.FormatInt(alarmB, 10)
	rows := []row{
		{"GET", "/", "/", nil, public},
		{"GET", "/login", "/login", nil, public},
		{"POST", "/login", "", nil, nil}, // covered by TestLogin
		{"POST", "/logout", "/logout", url.Values{}, all},
		{"GET", "/openapi.json", "/openapi.json", nil, public},
		{"GET", "/static/*", "/static/style.css", nil, public},
		{"GET", "/ui/", "/ui/", nil, all},
		{"GET", "/ui/events", "/ui/events", nil, all},
		{"GET", "/ui/alarms", "/ui/alarms?state=all", nil, all},
		{"POST", "/ui/alarms/{id}/acknowledge", "/ui/alarms/" + a + "/acknowledge", url.Values{}, handlers},
		{"POST", "/ui/alarms/{id}/resolve", "/ui/alarms/" + b + "/resolve", url.Values{}, handlers},
		{"GET", "/ui/batches", "/ui/batches?format=csv", nil, operators},
		{"GET", "/ui/shipments", "/ui/shipments", nil, retailers},
		{"GET", "/ui/sales", "/ui/sales?retailer=R-B&format=csv", nil, retailers},
		{"GET", "/ui/orders", "/ui/orders?operator=OP-B", nil, operators},
		{"GET", "/ui/refusals", "/ui/refusals", nil, network},
		{"GET", "/ui/retailers", "/ui/retailers", nil, retailers},
		{"POST", "/ui/retailers", "/ui/retailers", url.Values{"id": {"R-NEW"}, "name": {"n"}}, handlers},
		{"GET", "/ui/retailers/{id}", "/ui/retailers/R-A", nil, retailers},
		{"GET", "/ui/retailers/{id}", "/ui/retailers/R-B", nil, network},
		{"POST", "/ui/retailers/{id}/terminals", "/ui/retailers/R-A/terminals", url.Values{"id": {"T-NEW"}, "name": {"n"}}, terminals},
		{"POST", "/ui/retailers/{id}/terminals", "/ui/retailers/R-B/terminals", url.Values{"id": {"T-NEWB"}, "name": {"n"}}, handlers},
		{"POST", "/ui/retailers/{id}/vendors", "/ui/retailers/R-A/vendors", url.Values{"id": {"V-NEW"}, "name": {"n"}}, terminals},
		{"POST", "/ui/retailers/{id}/vendors", "/ui/retailers/R-B/vendors", url.Values{"id": {"V-NEWB"}, "name": {"n"}}, handlers},
		{"GET", "/ui/terminals/{id}", "/ui/terminals/T-A1", nil, retailers},
		{"GET", "/ui/terminals/{id}", "/ui/terminals/T-B1", nil, network},
		{"POST", "/ui/terminals/{id}/levels", "/ui/terminals/T-A1/levels", url.Values{"operator": {"OP-A"}, "product": {"P-A"}, "min": {"6"}, "max": {"30"}}, terminals},
		{"POST", "/ui/terminals/{id}/levels", "/ui/terminals/T-B1/levels", url.Values{"operator": {"OP-B"}, "product": {"P-B"}, "min": {"1"}, "max": {"2"}}, handlers},
		{"POST", "/ui/terminals/{id}/code", "/ui/terminals/T-A1/code", url.Values{}, terminals},
		{"POST", "/ui/terminals/{id}/code", "/ui/terminals/T-B1/code", url.Values{}, handlers},
		{"POST", "/ui/terminals/{id}/revoke", "/ui/terminals/T-A1/revoke", url.Values{}, terminals},
		{"POST", "/ui/terminals/{id}/revoke", "/ui/terminals/T-B1/revoke", url.Values{}, handlers},
		{"POST", "/ui/vendors/{id}/code", "/ui/vendors/V-A1/code", url.Values{}, terminals},
		{"POST", "/ui/vendors/{id}/code", "/ui/vendors/V-B1/code", url.Values{}, handlers},
		{"POST", "/ui/vendors/{id}/revoke", "/ui/vendors/V-A1/revoke", url.Values{}, terminals},
		{"POST", "/ui/vendors/{id}/revoke", "/ui/vendors/V-B1/revoke", url.Values{}, handlers},
		{"GET", "/ui/operators", "/ui/operators", nil, operators},
		{"POST", "/ui/operators", "/ui/operators", url.Values{"id": {"OP-NEW"}, "name": {"n"}}, []string{"admin"}},
		{"GET", "/ui/operators/{id}", "/ui/operators/OP-A", nil, operators},
		{"GET", "/ui/operators/{id}", "/ui/operators/OP-B", nil, network},
		{"POST", "/ui/operators/{id}/products", "/ui/operators/OP-A/products", url.Values{"code": {"P-NEW"}, "face_value": {"500"}, "currency": {"EUR"},
			"refill": {"*{PIN}#"}, "serial_pattern": {"[0-9]+"}, "pin_pattern": {"[0-9]+"}}, []string{"admin"}},
		{"GET", "/ui/charts", "/ui/charts", nil, retailers},
		{"GET", "/ui/charts/sales.svg", "/ui/charts/sales.svg", nil, retailers},
		{"GET", "/ui/charts/cover.svg", "/ui/charts/cover.svg", nil, retailers},
		{"GET", "/ui/audit", "/ui/audit", nil, network},
		{"GET", "/api/v1/me", "/api/v1/me", nil, all},
		{"GET", "/api/v1/overview", "/api/v1/overview", nil, all},
		{"GET", "/api/v1/terminal-stock", "/api/v1/terminal-stock", nil, retailers},
		{"GET", "/api/v1/alarms", "/api/v1/alarms?state=all", nil, all},
		{"POST", "/api/v1/alarms/{id}/acknowledge", "/api/v1/alarms/" + a + "/acknowledge", url.Values{}, handlers},
		{"POST", "/api/v1/alarms/{id}/resolve", "/api/v1/alarms/" + b + "/resolve", url.Values{}, handlers},
		{"GET", "/api/v1/retailers", "/api/v1/retailers", nil, retailers},
		{"GET", "/api/v1/retailers/{id}/terminals", "/api/v1/retailers/R-A/terminals", nil, retailers},
		{"GET", "/api/v1/retailers/{id}/terminals", "/api/v1/retailers/R-B/terminals", nil, network},
		{"GET", "/api/v1/operators", "/api/v1/operators", nil, operators},
		{"GET", "/api/v1/operators/{id}/products", "/api/v1/operators/OP-A/products", nil, operators},
		{"GET", "/api/v1/operators/{id}/products", "/api/v1/operators/OP-B/products", nil, network},
		{"GET", "/api/v1/charts/sales", "/api/v1/charts/sales?days=7", nil, retailers},
		{"GET", "/api/v1/audit", "/api/v1/audit", nil, network},
		{"GET", "/api/v1/batches", "/api/v1/batches", nil, operators},
		{"GET", "/api/v1/shipments", "/api/v1/shipments?retailer=R-B", nil, retailers},
		{"GET", "/api/v1/sales", "/api/v1/sales", nil, retailers},
		{"GET", "/api/v1/orders", "/api/v1/orders", nil, operators},
		{"GET", "/api/v1/refusals", "/api/v1/refusals", nil, network},
	}
	rows = append(rows, moneyRows(st)...)
	// The machine routes (mTLS): a dashboard session never opens them.
	for _, m := range [][2]string{{"GET", "/v1/whoami"}, {"GET", "/v1/alarms"}, {"POST", "/v1/alarms/{id}/acknowledge"}, {"POST", "/v1/alarms/{id}/resolve"},
		{"GET", "/v1/log/checkpoint"}, {"GET", "/v1/log/entries"}, {"GET", "/v1/log/proof/inclusion"}, {"GET", "/v1/log/proof/consistency"}, {"POST", "/v1/log/verifications"},
		{"GET", "/v1/terminal/shipments"}, {"POST", "/v1/terminal/authorize"}, {"GET", "/v1/quarantine"}} {
		rows = append(rows, row{m[0], m[1], strings.ReplaceAll(m[1], "{id}", a), url.Values{}, nil})
	}
	// Public endpoints owned by package api and tested there.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/pki/ca.pem", "/pki/crl", "/pki/{name}.pem"} {
		rows = append(rows, row{"GET", p, "", nil, nil})
	}
	rows = append(rows, row{"POST", "/v1/enrol", "", nil, nil})
	return rows
}

// TestAuthorizationMatrix makes every request of the matrix as every role and as anonymous:
// allowed ones succeed, every other is refused and changes nothing. The endpoints come from
// the router, so a route without a row fails the test.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	e.lowStock(t, "T-A1", 1)
	e.lowStock(t, "T-B1", 2)
	as, err := e.vault.Alarms(ctx, codevault.AlarmFilter{State: "all"})
	if err != nil || len(as) != 2 {
		t.Fatalf("%d alarms: %v", len(as), err)
	}
	rows := matrix(as[0].ID, as[1].ID, e.mustMoney(t))

	// Every route of the router has a row.
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.method+" "+r.pattern] = true
	}
	var missing []string
	routes := map[string][]string{}
	err = chi.Walk(e.router.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes[route] = append(routes[route], method)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for route, methods := range routes {
		if slices.Contains(methods, "CONNECT") {
			methods = []string{"GET"} // a handler for every method (/metrics): its GET row stands for it
		}
		for _, m := range methods {
			if m != "HEAD" && m != "OPTIONS" && !covered[m+" "+route] {
				missing = append(missing, m+" "+route)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("routes without a row in the authorisation matrix:\n%s", strings.Join(missing, "\n"))
	}

	clients := map[string]*http.Client{"anon": e.client()}
	for _, name := range all {
		clients[name] = e.mustLogin(t, name)
	}
	tokens := map[string]string{"anon": "x"}
	for _, name := range all {
		tokens[name] = e.csrf(t, clients[name])
	}
	for _, r := range rows {
		if r.path == "" {
			continue
		}
		for _, who := range append([]string{"anon"}, all...) {
			allowed := false
			for _, a := range r.allow {
				allowed = allowed || a == who
			}
			c, tok := clients[who], tokens[who]
			if r.method == "POST" && r.pattern == "/logout" && who != "anon" {
				c = e.mustLogin(t, who) // a throwaway session: logging out must not end the matrix's
				tok = e.csrf(t, c)
			}
			before := e.fingerprint(t)
			status, loc := e.do(t, c, r, tok)
			name := who + " " + r.method + " " + r.path
			switch {
			case allowed && r.method == "POST":
				// Acting twice on the same thing is a conflict, still past the gate.
				if status != http.StatusSeeOther && status != http.StatusOK && status != http.StatusConflict {
					t.Errorf("%s: status %d, want allowed", name, status)
				}
			case allowed:
				if status != http.StatusOK && !(status == http.StatusSeeOther && !strings.HasPrefix(loc, "/login")) {
					t.Errorf("%s: status %d (%s), want allowed", name, status, loc)
				}
			default:
				refused := status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound ||
					(status == http.StatusSeeOther && strings.HasPrefix(loc, "/login"))
				if !refused {
					t.Errorf("%s: status %d (%s), want refused", name, status, loc)
				}
				if after := e.fingerprint(t); after != before {
					t.Errorf("%s: refused, but the database changed", name)
				}
			}
		}
	}

	// Scoped lists hold only what the scope owns, whatever the filter asks for.
	var ships []map[string]any
	body, _ := e.get(t, clients["rm-a"], "/api/v1/retailers")
	if strings.Contains(body, "R-B") || !strings.Contains(body, "R-A") {
		t.Errorf("retailer manager of R-A lists %s", body)
	}
	body, _ = e.get(t, clients["rm-a"], "/api/v1/shipments?retailer=R-B")
	_ = json.Unmarshal([]byte(body), &ships)
	for _, s := range ships {
		if s["retailer"] != "R-A" {
			t.Errorf("retailer manager of R-A sees shipment %v", s)
		}
	}
	body, _ = e.get(t, clients["rm-a"], "/api/v1/alarms?state=all")
	if strings.Contains(body, "T-B1") || !strings.Contains(body, "T-A1") {
		t.Errorf("retailer manager of R-A sees alarms %s", body)
	}
	body, _ = e.get(t, clients["op-a"], "/api/v1/overview")
	if strings.Contains(body, "OP-B") || !strings.Contains(body, "OP-A") {
		t.Errorf("operator user of OP-A sees %s", body)
	}
	for who, want := range map[string]string{"rm-a": "retailer:R-A", "op-a": "operator:OP-A"} {
		body, _ = e.get(t, clients[who], "/api/v1/money/balances")
		var bs []map[string]any
		_ = json.Unmarshal([]byte(body), &bs)
		if len(bs) != 1 || bs[0]["account"] != want {
			t.Errorf("%s's balances: %s", who, body)
		}
	}
	body, _ = e.get(t, clients["rm-a"], "/api/v1/money/statements?kind=retailer&party=R-B")
	if strings.Contains(body, `"party":"R-B"`) || !strings.Contains(body, `"party":"R-A"`) {
		t.Errorf("retailer manager of R-A lists statements %s", body)
	}
	body, _ = e.get(t, clients["rm-a"], "/api/v1/money/topups?retailer=R-B")
	if strings.Contains(body, `"retailer":"R-B"`) || !strings.Contains(body, `"retailer":"R-A"`) {
		t.Errorf("retailer manager of R-A lists top-ups %s", body)
	}
	body, _ = e.get(t, clients["op-a"], "/api/v1/money/topups")
	if strings.TrimSpace(body) != "[]" {
		t.Errorf("operator user lists top-ups %s", body)
	}
}

func (e *env) do(t *testing.T, c *http.Client, r row, tok string) (int, string) {
	t.Helper()
	var req *http.Request
	if r.method == "POST" {
		form := url.Values{}
		for k, v := range r.form {
			form[k] = v
		}
		form.Set("csrf", tok)
		req, _ = http.NewRequest("POST", e.srv.URL+r.path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if j := r.form.Get("_json"); j != "" { // a JSON endpoint's body
			req, _ = http.NewRequest("POST", e.srv.URL+r.path, strings.NewReader(j))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("X-CSRF-Token", tok)
	} else {
		req, _ = http.NewRequest(r.method, e.srv.URL+r.path, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	resp.Body.Close() // the event stream ends here
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestOpenAPI checks that /openapi.json lists exactly the JSON routes the router has.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	body, status := e.get(t, e.client(), "/openapi.json")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || status != http.StatusOK || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %d %v", status, err)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	routes := map[string]bool{}
	_ = chi.Walk(e.router.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasPrefix(route, "/api/") {
			routes[method+" "+route] = true
		}
		return nil
	})
	if len(routes) < 15 {
		t.Fatalf("only %d JSON routes found", len(routes))
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %s is not in /openapi.json", r)
		}
	}
	for d := range documented {
		if !routes[d] {
			t.Errorf("/openapi.json lists %s, which does not exist", d)
		}
	}
}

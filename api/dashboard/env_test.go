package dashboard_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/api/dashboard"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/retailer"
)

// env is a center with the dashboard mounted, on a fresh database and token, and a small
// network: retailers R-A (T-A1, V-A1) and R-B (T-B1, V-B1), operators OP-A (P-A) and OP-B
// (P-B), and one dashboard user per role. Its login limit is far above the default (tests log
// in more often from one address than a person does); opts change the dashboard's config.
type env struct {
	db     *pgxpool.Pool
	srv    *httptest.Server
	router http.Handler
	vault  *codevault.Vault
	shops  *retailer.Registry
	users  *access.Service
	dash   *dashboard.Dashboard
	money  *ledger.Ledger
	xlog   *auditlog.Log
}

const password = "correct horse battery"

// users: one per role, scoped ones to R-A and OP-A.
var users = map[string]access.User{
	"admin":   {Name: "admin", Role: access.RoleAdmin},
	"manager": {Name: "manager", Role: access.RoleManager},
	"auditor": {Name: "auditor", Role: access.RoleAuditor},
	"rm-a":    {Name: "rm-a", Role: access.RoleRetailerManager, Retailer: "R-A"},
	"op-a":    {Name: "op-a", Role: access.RoleOperatorUser, Operator: "OP-A"},
}

func mustEnv(t *testing.T, opts ...func(*dashboard.Config)) *env {
	t.Helper()
	ctx := context.Background()
	db := testdb.MustPool(t)
	tok := testhsm.MustToken(t)
	caKey, _, err := tok.RSAKey("ca", 3072)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _, err := pki.EnsureCA(ctx, db, caKey, "ca")
	if err != nil {
		t.Fatal(err)
	}
	metrics := api.NewMetrics()
	ca, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey, Meter: metrics.PKI, OnRevoke: codevault.OnRevoke})
	if err != nil {
		t.Fatal(err)
	}
	centerKey, _, err := tok.RSAKey("center", 3072)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(role pki.Role) *x509.Certificate {
		csr, err := pki.NewCSR(centerKey, "center")
		if err != nil {
			t.Fatal(err)
		}
		req, err := pki.ParseCSR(csr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.Issue(ctx, pki.IssueRequest{CSR: req, Role: role, Entity: "center"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	signCert := issue(pki.RoleCenterSign)
	money, err := ledger.New(ledger.Config{DB: db, Signer: centerKey, SignCert: signCert})
	if err != nil {
		t.Fatal(err)
	}
	vault, err := codevault.New(codevault.Config{DB: db, Keys: tok, Decrypter: centerKey, EncryptCert: issue(pki.RoleCenterEncrypt),
		Signer: centerKey, SignCert: signCert, PKI: ca, Ledger: money})
	if err != nil {
		t.Fatal(err)
	}
	logKey, _, err := tok.ECDSAKey("log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auditlog.NewSigner("test/log", logKey)
	if err != nil {
		t.Fatal(err)
	}
	xlog, err := auditlog.New(db, signer, nil)
	if err != nil {
		t.Fatal(err)
	}
	shops, _ := retailer.New(db)
	ops, _ := operator.New(db)
	users, err := access.New(access.Config{DB: db, Meter: metrics.Access})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := dashboard.Config{Access: users, Vault: vault, Shops: shops, Operators: ops, PKI: ca, Log: xlog, Money: money, Logger: logger,
		Meter: metrics.Access, LoginLimit: dashboard.LoginLimit{PerMinute: 6000}}
	for _, o := range opts {
		o(&cfg)
	}
	dash, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Shutdown)
	s, err := api.New(api.Config{Authority: ca, Logger: logger, Metrics: metrics, Alarms: vault, Terminals: vault, Log: xlog, Dashboard: dash})
	if err != nil {
		t.Fatal(err)
	}
	tlsKey, _, err := tok.ECDSAKey("center-tls")
	if err != nil {
		t.Fatal(err)
	}
	tlsCert, _, err := ca.EnsureCertificate(ctx, tlsKey, pki.RoleCenterTLS, "center", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = api.TLSConfig(tls.Certificate{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey, Leaf: tlsCert})
	hs.StartTLS()
	t.Cleanup(hs.Close)
	e := &env{db: db, srv: hs, router: s.Handler(), vault: vault, shops: shops, users: users, dash: dash, money: money, xlog: xlog}
	e.mustNetwork(t, ops)
	return e
}

func (e *env) mustNetwork(t *testing.T, ops *operator.Registry) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []string{"OP-A", "OP-B"} {
		must(ops.CreateOperator(ctx, operator.Operator{ID: o, Name: o}))
		must(ops.CreateProduct(ctx, operator.Product{Operator: o, Code: "P-" + o[3:], FaceValue: 1000, Currency: "EUR",
			RefillTemplate: "Dial *1*{PIN}#", SerialPattern: "[0-9]{12}", PINPattern: "[0-9]{14}"}))
	}
	for _, r := range []string{"A", "B"} {
		must(e.shops.CreateRetailer(ctx, retailer.Retailer{ID: "R-" + r, Name: "Shop " + r}))
		must(e.shops.AddTerminal(ctx, retailer.Terminal{ID: "T-" + r + "1", Retailer: "R-" + r, Name: "till"}))
		must(e.shops.AddVendor(ctx, retailer.Vendor{ID: "V-" + r + "1", Retailer: "R-" + r, Name: "seller"}))
		must(e.shops.SetLevel(ctx, retailer.Level{Terminal: "T-" + r + "1", Operator: "OP-" + r, Product: "P-" + r, Min: 5, Max: 20, AutoReorder: true}))
	}
	for _, u := range users {
		if _, err := e.users.AddUser(ctx, u, password); err != nil {
			t.Fatal(err)
		}
	}
}

// lowStock makes terminal report stock below its minimum (what a SalesReport records) and
// runs the alarm checker, the domain path that raises terminal_low_stock.
func (e *env) lowStock(t *testing.T, terminal string, stock int) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.db.Exec(ctx, `UPDATE terminal_products SET reported_stock = $2, reported_at = now() WHERE terminal_id = $1`, terminal, stock); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.vault.CheckAlarms(ctx); err != nil {
		t.Fatal(err)
	}
}

// client is an HTTPS client with a cookie jar that does not follow redirects.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: time.Minute,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certPool(e.srv.Certificate())}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func certPool(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// login logs name in with pw and returns the status of the login POST and the client.
func (e *env) login(t *testing.T, name, pw string) (int, *http.Client) {
	t.Helper()
	c := e.client()
	resp, err := c.Get(e.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var tok string
	u, _ := url.Parse(e.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "__Host-evoucher_login" {
			tok = ck.Value
		}
	}
	resp = e.post(t, c, "/login", url.Values{"csrf": {tok}, "name": {name}, "password": {pw}})
	return resp.StatusCode, c
}

func (e *env) mustLogin(t *testing.T, name string) *http.Client {
	t.Helper()
	status, c := e.login(t, name, password)
	if status != http.StatusSeeOther {
		t.Fatalf("login %s: status %d", name, status)
	}
	return c
}

func (e *env) post(t *testing.T, c *http.Client, path string, form url.Values) *http.Response {
	t.Helper()
	resp, err := c.PostForm(e.srv.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// csrf returns the anti-forgery token of a logged-in client (GET /api/v1/me).
func (e *env) csrf(t *testing.T, c *http.Client) string {
	t.Helper()
	body, status := e.get(t, c, "/api/v1/me")
	if status != http.StatusOK {
		t.Fatalf("me: %d", status)
	}
	i := strings.Index(body, `"csrf":"`)
	return strings.SplitN(body[i+8:], `"`, 2)[0]
}

func (e *env) get(t *testing.T, c *http.Client, path string) (string, int) {
	t.Helper()
	resp, err := c.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// fingerprint sums up everything a dashboard action could change.
func (e *env) fingerprint(t *testing.T) string {
	t.Helper()
	var fp string
	err := e.db.QueryRow(context.Background(), `SELECT md5(concat_ws('|',
		(SELECT string_agg(id || name, ',' ORDER BY id) FROM retailers),
		(SELECT string_agg(id || retailer_id || status, ',' ORDER BY id) FROM terminals),
		(SELECT string_agg(id || status, ',' ORDER BY id) FROM vendors),
		(SELECT string_agg(terminal_id || operator_id || product || min_level || '-' || max_level, ',' ORDER BY terminal_id, operator_id, product) FROM terminal_products),
		(SELECT string_agg(id || state, ',' ORDER BY id) FROM alarms),
		(SELECT count(*)::text FROM enrolment_codes),
		(SELECT string_agg(serial || coalesce(revoked_at::text, ''), ',' ORDER BY serial) FROM certificates),
		(SELECT string_agg(id || name, ',' ORDER BY id) FROM operators),
		(SELECT string_agg(operator_id || code, ',' ORDER BY operator_id, code) FROM products),
		(SELECT string_agg(name || coalesce(disabled_at::text, ''), ',' ORDER BY name) FROM dashboard_users),
		(SELECT string_agg(id || kind || ref || retailer_id, ',' ORDER BY id) FROM ledger_transactions),
		(SELECT string_agg(account || currency || balance, ',' ORDER BY account, currency) FROM ledger_accounts),
		(SELECT string_agg(retailer_id || currency || mode || credit_limit || settlement, ',' ORDER BY retailer_id) FROM retailer_terms),
		(SELECT string_agg(retailer_id || operator_id || product || bps, ',' ORDER BY 1) FROM retailer_commissions),
		(SELECT string_agg(operator_id || product || bps, ',' ORDER BY 1) FROM operator_margins),
		(SELECT string_agg(id, ',' ORDER BY id) FROM statements)))`).Scan(&fp)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

var _ crypto.Signer = nil
var _ = rand.Reader

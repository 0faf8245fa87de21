package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/retailer"
)

// TestAlarms drives /v1/alarms with the real vault behind it: auditors and managers list,
// only managers acknowledge and resolve.
func TestAlarms(t *testing.T) {
	t.Parallel()
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
	a, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey, Meter: metrics.PKI})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(role pki.Role, entity string) (*tls.Certificate, *x509.Certificate) {
		t.Helper()
		var key codevaultSigner
		switch role {
		case pki.RoleManager, pki.RoleAuditor:
			k, _, err := tok.ECDSAKey(string(role))
			if err != nil {
				t.Fatal(err)
			}
			key = k
		default:
			k, _, err := tok.RSAKey(string(role), 3072)
			if err != nil {
				t.Fatal(err)
			}
			key = k
		}
		cert, err := a.Issue(ctx, pki.IssueRequest{CSR: mustCSR(t, key), Role: role, Entity: entity})
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, cert
	}
	encTLS, encCert := issue(pki.RoleCenterEncrypt, "center")
	signTLS, signCert := issue(pki.RoleCenterSign, "center")
	manager, _ := issue(pki.RoleManager, "ops-desk")
	auditor, _ := issue(pki.RoleAuditor, "audit-firm")
	operator, _ := issue(pki.RoleOperatorSign, "OP-A")
	if _, _, err := codevault.EnsureKEK(ctx, db, tok); err != nil {
		t.Fatal(err)
	}
	vault, err := codevault.New(codevault.Config{DB: db, Keys: tok, Decrypter: encTLS.PrivateKey.(codevaultDecrypter),
		EncryptCert: encCert, Signer: signTLS.PrivateKey.(codevaultSigner), SignCert: signCert, PKI: a})
	if err != nil {
		t.Fatal(err)
	}
	tlsKey, _, _ := tok.ECDSAKey("tls")
	tlsCert, _, err := a.EnsureCertificate(ctx, tlsKey, pki.RoleCenterTLS, "center", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Authority: a, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics, Alarms: vault})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = api.TLSConfig(tls.Certificate{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey})
	hs.StartTLS()
	defer hs.Close()
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	call := func(t *testing.T, c *tls.Certificate, method, path string, out any) int {
		t.Helper()
		cfg := &tls.Config{RootCAs: roots}
		if c != nil {
			cfg.Certificates = []tls.Certificate{*c}
		}
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: time.Minute}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK && out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}

	// A terminal added two days ago and never heard from.
	shops, _ := retailer.New(db)
	if err := shops.CreateRetailer(ctx, retailer.Retailer{ID: "R-1", Name: "R-1"}); err != nil {
		t.Fatal(err)
	}
	if err := shops.AddTerminal(ctx, retailer.Terminal{ID: "T-1", Retailer: "R-1", Name: "T-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE terminals SET created_at = now() - interval '48 hours'`); err != nil {
		t.Fatal(err)
	}
	if raised, _, err := vault.CheckAlarms(ctx); err != nil || raised != 1 {
		t.Fatalf("raised %d: %v", raised, err)
	}
	var open []api.AlarmInfo
	if status := call(t, auditor, "GET", "/v1/alarms", &open); status != http.StatusOK || len(open) != 1 ||
		open[0].Kind != "silent_terminal" || open[0].Subject != "T-1" || open[0].State != "open" || open[0].Occurrences != 1 || open[0].ResolvedAt != nil {
		t.Fatalf("auditor lists: %d %+v", status, open)
	}
	alarm := "/v1/alarms/" + strconv.FormatInt(open[0].ID, 10)
	state := func(t *testing.T) string {
		t.Helper()
		as, err := vault.Alarms(ctx, codevault.AlarmFilter{})
		if err != nil || len(as) != 1 {
			t.Fatalf("%d alarms: %v", len(as), err)
		}
		return as[0].State
	}

	t.Run("ErrAuditorAcknowledges", func(t *testing.T) {
		if status := call(t, auditor, "POST", alarm+"/acknowledge", nil); status != http.StatusForbidden {
			t.Fatalf("auditor acknowledged: %d", status)
		}
		if status := call(t, auditor, "POST", alarm+"/resolve", nil); status != http.StatusForbidden {
			t.Fatalf("auditor resolved: %d", status)
		}
		if st := state(t); st != "open" {
			t.Fatalf("refused calls left the alarm %s", st)
		}
	})
	t.Run("ErrOtherRoles", func(t *testing.T) {
		if status := call(t, operator, "GET", "/v1/alarms", nil); status != http.StatusForbidden {
			t.Fatalf("operator listed alarms: %d", status)
		}
		if status := call(t, nil, "GET", "/v1/alarms", nil); status != http.StatusUnauthorized {
			t.Fatalf("no certificate listed alarms: %d", status)
		}
	})
	t.Run("ManagerAcknowledges", func(t *testing.T) {
		var got api.AlarmInfo
		if status := call(t, manager, "POST", alarm+"/acknowledge", &got); status != http.StatusOK || got.State != "acknowledged" {
			t.Fatalf("acknowledge: %d %+v", status, got)
		}
		if st := state(t); st != "acknowledged" {
			t.Fatalf("alarm is %s", st)
		}
		if status := call(t, manager, "POST", alarm+"/acknowledge", nil); status != http.StatusConflict {
			t.Fatalf("acknowledged twice: %d", status)
		}
		var as []api.AlarmInfo
		if status := call(t, manager, "GET", "/v1/alarms", &as); status != http.StatusOK || len(as) != 0 {
			t.Fatalf("open alarms after acknowledging: %d %+v", status, as)
		}
		if status := call(t, manager, "GET", "/v1/alarms?state=acknowledged&kind=silent_terminal", &as); status != http.StatusOK || len(as) != 1 {
			t.Fatalf("acknowledged alarms: %d %+v", status, as)
		}
	})
	t.Run("ManagerResolves", func(t *testing.T) {
		var got api.AlarmInfo
		if status := call(t, manager, "POST", alarm+"/resolve", &got); status != http.StatusOK || got.State != "resolved" || got.ResolvedAt == nil {
			t.Fatalf("resolve: %d %+v", status, got)
		}
		if status := call(t, manager, "POST", alarm+"/resolve", nil); status != http.StatusConflict {
			t.Fatalf("resolved twice: %d", status)
		}
		var as []api.AlarmInfo
		if status := call(t, auditor, "GET", "/v1/alarms?state=all", &as); status != http.StatusOK || len(as) != 1 || as[0].State != "resolved" {
			t.Fatalf("all alarms: %d %+v", status, as)
		}
	})
	t.Run("ErrBadRequests", func(t *testing.T) {
		for path, want := range map[string]int{
			"/v1/alarms?state=closed":   http.StatusBadRequest,
			"/v1/alarms?kind=fire":      http.StatusBadRequest,
			"/v1/alarms?limit=-1":       http.StatusBadRequest,
			"/v1/alarms/x/acknowledge":  http.StatusBadRequest,
			"/v1/alarms/99999/resolve":  http.StatusNotFound,
			"/v1/alarms/99999/anything": http.StatusNotFound,
		} {
			method := "POST"
			if path[len("/v1/alarms")] == '?' {
				method = "GET"
			}
			if status := call(t, manager, method, path, nil); status != want {
				t.Fatalf("%s %s: %d, want %d", method, path, status, want)
			}
		}
	})
}

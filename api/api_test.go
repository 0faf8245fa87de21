package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now is the real time until Set moves the clock.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}
func (c *clock) Set(t time.Time)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

type env struct {
	srv   *httptest.Server
	ca    *pki.Authority
	tok   *pkcs11.Token
	clock *clock
	roots *x509.CertPool
}

func mustEnv(t *testing.T) *env {
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
	c := &clock{}
	a, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey, Meter: metrics.PKI})
	if err != nil {
		t.Fatal(err)
	}
	tlsKey, _, err := tok.ECDSAKey("center-tls")
	if err != nil {
		t.Fatal(err)
	}
	tlsCert, _, err := a.EnsureCertificate(ctx, tlsKey, pki.RoleCenterTLS, "center", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Authority: a, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics, Now: c.Now,
		Ready: []api.Check{{Name: "database", Fn: db.Ping}, {Name: "token", Fn: func(context.Context) error { return tok.Ping() }}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = api.TLSConfig(tls.Certificate{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey, Leaf: tlsCert})
	hs.StartTLS()
	t.Cleanup(hs.Close)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	return &env{srv: hs, ca: a, tok: tok, clock: c, roots: roots}
}

// client returns an HTTPS client trusting only the platform CA, presenting cert if given.
func (e *env) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

func csrPEM(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := pki.NewCSR(key, "x")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// enrol runs POST /v1/enrol and returns the status and decoded body.
func (e *env) enrol(t *testing.T, req api.EnrolRequest) (int, api.EnrolResponse, api.ErrorBody) {
	t.Helper()
	b, _ := json.Marshal(req)
	resp, err := e.client(nil).Post(e.srv.URL+"/v1/enrol", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ok api.EnrolResponse
	var bad api.ErrorBody
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(body, &ok); err != nil {
			t.Fatal(err)
		}
	} else if err := json.Unmarshal(body, &bad); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return resp.StatusCode, ok, bad
}

func (e *env) get(t *testing.T, cert *tls.Certificate, path string) (int, []byte) {
	t.Helper()
	resp, err := e.client(cert).Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestMTLS(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	key, _, err := e.tok.RSAKey("terminal", 2048)
	if err != nil {
		t.Fatal(err)
	}
	code, err := e.ca.IssueCode(ctx, pki.RoleTerminal, "T-9")
	if err != nil {
		t.Fatal(err)
	}
	status, enrolled, bad := e.enrol(t, api.EnrolRequest{Code: code.Code.Reveal(), CSR: csrPEM(t, key), Role: "terminal"})
	if status != http.StatusCreated {
		t.Fatalf("enrol: %d %+v", status, bad)
	}
	if enrolled.Role != "terminal" || enrolled.Entity != "T-9" {
		t.Fatalf("enrolled %+v", enrolled)
	}
	block, _ := pem.Decode([]byte(enrolled.Certificate))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}

	t.Run("OK", func(t *testing.T) {
		status, body := e.get(t, tc, "/v1/whoami")
		var who api.WhoAmI
		if status != http.StatusOK || json.Unmarshal(body, &who) != nil || who.Role != "terminal" || who.Entity != "T-9" || who.Serial != enrolled.Serial {
			t.Fatalf("whoami: %d %s", status, body)
		}
	})
	t.Run("ErrNoCertificate", func(t *testing.T) {
		status, body := e.get(t, nil, "/v1/whoami")
		if status != http.StatusUnauthorized || !strings.Contains(string(body), "no_certificate") {
			t.Fatalf("whoami without certificate: %d %s", status, body)
		}
	})
	t.Run("ErrForeignCA", func(t *testing.T) {
		fc := mustForeign(t, cert)
		status, body := e.get(t, fc, "/v1/whoami")
		if status != http.StatusUnauthorized || !strings.Contains(string(body), "foreign_ca") {
			t.Fatalf("whoami with a foreign certificate: %d %s", status, body)
		}
	})
	t.Run("ErrCodeReused", func(t *testing.T) {
		status, _, bad := e.enrol(t, api.EnrolRequest{Code: code.Code.Reveal(), CSR: csrPEM(t, key)})
		if status != http.StatusConflict || bad.Reason != "code_used" {
			t.Fatalf("reused code: %d %+v", status, bad)
		}
	})
	t.Run("ErrMalformedBody", func(t *testing.T) {
		resp, err := e.client(nil).Post(e.srv.URL+"/v1/enrol", "application/json", strings.NewReader(`{"code":1`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("malformed body: %d", resp.StatusCode)
		}
	})
	t.Run("ErrExpired", func(t *testing.T) {
		ex := mustEnv(t) // own server, so moving its clock does not disturb the others
		k2, _, err := ex.tok.RSAKey("terminal", 2048)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ex.ca.Issue(ctx, pki.IssueRequest{CSR: mustCSR(t, k2), Role: pki.RoleTerminal, Entity: "T-10"})
		if err != nil {
			t.Fatal(err)
		}
		ex.clock.Set(c2.NotAfter.Add(time.Minute))
		status, body := ex.get(t, &tls.Certificate{Certificate: [][]byte{c2.Raw}, PrivateKey: k2}, "/v1/whoami")
		if status != http.StatusUnauthorized || !strings.Contains(string(body), "expired") {
			t.Fatalf("whoami with an expired certificate: %d %s", status, body)
		}
	})
	// Last: revocation is permanent.
	t.Run("ErrRevoked", func(t *testing.T) {
		if _, err := e.ca.Revoke(ctx, enrolled.Serial, "keyCompromise"); err != nil {
			t.Fatal(err)
		}
		status, body := e.get(t, tc, "/v1/whoami")
		if status != http.StatusUnauthorized || !strings.Contains(string(body), "was revoked on") {
			t.Fatalf("whoami after revocation: %d %s", status, body)
		}
		status, crlDER := e.get(t, nil, "/pki/crl")
		crl, err := x509.ParseRevocationList(crlDER)
		if status != http.StatusOK || err != nil {
			t.Fatalf("CRL: %d %v", status, err)
		}
		if len(crl.RevokedCertificateEntries) != 1 || pki.SerialOf(&x509.Certificate{SerialNumber: crl.RevokedCertificateEntries[0].SerialNumber}) != enrolled.Serial {
			t.Fatalf("CRL does not list %s", enrolled.Serial)
		}
		status, metrics := e.get(t, nil, "/metrics")
		for _, want := range []string{
			`evoucher_pki_refusals_total{op="verify",reason="revoked"} 1`,
			`evoucher_pki_refusals_total{op="verify",reason="foreign_ca"} 1`,
			`evoucher_pki_refusals_total{op="enrol",reason="code_used"} 1`,
			`evoucher_pki_refusals_total{op="enrol",reason="malformed_request"} 1`,
			`evoucher_pki_certificates_issued_total{role="terminal"} 1`,
		} {
			if status != http.StatusOK || !strings.Contains(string(metrics), want) {
				t.Fatalf("metrics lack %s", want)
			}
		}
	})
}

func TestPublicEndpoints(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	if status, body := e.get(t, nil, "/healthz"); status != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("healthz: %d %q", status, body)
	}
	status, body := e.get(t, nil, "/readyz")
	if status != http.StatusOK || string(body) != "{\"database\":\"ok\",\"token\":\"ok\"}\n" {
		t.Fatalf("readyz: %d %s", status, body)
	}
	status, body = e.get(t, nil, "/pki/ca.pem")
	block, _ := pem.Decode(body)
	if status != http.StatusOK || block == nil {
		t.Fatalf("ca.pem: %d", status)
	}
	if ca, err := x509.ParseCertificate(block.Bytes); err != nil || !ca.Equal(e.ca.CA()) {
		t.Fatal("ca.pem is not the platform CA")
	}
}

func TestReadyzUnavailable(t *testing.T) {
	t.Parallel()
	s, err := api.New(api.Config{Authority: stubAuthority{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: api.NewMetrics(),
		Ready: []api.Check{{Name: "database", Fn: func(context.Context) error { return errors.New("connection refused") }}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"database":"unavailable"`) || strings.Contains(rec.Body.String(), "refused") {
		t.Fatalf("readyz with the database down: %d %s", rec.Code, rec.Body)
	}
}

// stubAuthority stands in only where readiness, not the PKI, is under test.
type stubAuthority struct{ api.Authority }

func mustCSR(t *testing.T, key crypto.Signer) *x509.CertificateRequest {
	t.Helper()
	der, err := pki.NewCSR(key, "x")
	if err != nil {
		t.Fatal(err)
	}
	r, err := pki.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustForeign makes a certificate with like's identity from a CA that is not the platform's,
// with an outsider's key.
func mustForeign(t *testing.T, like *x509.Certificate) *tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evoucher platform CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	tmpl := &x509.Certificate{SerialNumber: like.SerialNumber, Subject: like.Subject, URIs: like.URIs,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

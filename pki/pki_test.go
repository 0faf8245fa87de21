package pki_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// meter counts the PKI's events.
type meter struct {
	mu      sync.Mutex
	refused map[string]int
	issued  map[pki.Role]int
	revoked int
}

func (m *meter) Issued(r pki.Role) { m.mu.Lock(); defer m.mu.Unlock(); m.issued[r]++ }
func (m *meter) Refused(op, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refused[op+"/"+reason]++
}
func (m *meter) Revoked(pki.Role, string) { m.mu.Lock(); defer m.mu.Unlock(); m.revoked++ }
func (m *meter) Refusals(key string) int  { m.mu.Lock(); defer m.mu.Unlock(); return m.refused[key] }

type env struct {
	ca    *pki.Authority
	db    *pgxpool.Pool
	tok   *pkcs11.Token
	clock *clock
	meter *meter
}

// mustEnv sets up a database, a token holding the CA key and an Authority on them.
func mustEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db := testdb.MustPool(t)
	tok := testhsm.MustToken(t)
	caKey, _, err := tok.RSAKey("ca", 3072)
	if err != nil {
		t.Fatal(err)
	}
	caCert, created, err := pki.EnsureCA(ctx, db, caKey, "ca")
	if err != nil || !created {
		t.Fatalf("EnsureCA: created=%v err=%v", created, err)
	}
	c := &clock{t: time.Now()}
	m := &meter{refused: map[string]int{}, issued: map[pki.Role]int{}}
	a, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey, Now: c.Now, Meter: m})
	if err != nil {
		t.Fatal(err)
	}
	return &env{ca: a, db: db, tok: tok, clock: c, meter: m}
}

func mustCSR(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := pki.NewCSR(key, "requested-name")
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustParseCSR(t *testing.T, der []byte) *x509.CertificateRequest {
	t.Helper()
	r, err := pki.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantRefusal(t *testing.T, err error, kind evoucher.Kind, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %s refusal (%s)", kind, reason)
	}
	if evoucher.KindOf(err) != kind || evoucher.ReasonOf(err) != reason {
		t.Fatalf("got %s/%s (%v), want %s/%s", evoucher.KindOf(err), evoucher.ReasonOf(err), err, kind, reason)
	}
}

func TestEnsureCA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	tok := testhsm.MustToken(t)
	key, _, err := tok.RSAKey("ca", 3072)
	if err != nil {
		t.Fatal(err)
	}
	first, created, err := pki.EnsureCA(ctx, db, key, "ca")
	if err != nil || !created {
		t.Fatalf("first EnsureCA: created=%v err=%v", created, err)
	}
	if !first.IsCA || first.Subject.CommonName != "evoucher platform CA" || first.PublicKey.(*rsa.PublicKey).N.BitLen() != 3072 {
		t.Fatalf("unexpected CA certificate: IsCA=%v CN=%q", first.IsCA, first.Subject.CommonName)
	}
	if first.KeyUsage&x509.KeyUsageCertSign == 0 || first.KeyUsage&x509.KeyUsageCRLSign == 0 {
		t.Fatalf("CA key usage %v lacks cert sign or CRL sign", first.KeyUsage)
	}
	second, created, err := pki.EnsureCA(ctx, db, key, "ca")
	if err != nil || created || !second.Equal(first) {
		t.Fatalf("second EnsureCA: created=%v same=%v err=%v", created, second.Equal(first), err)
	}
	t.Run("ErrOtherKey", func(t *testing.T) {
		other, _, err := tok.RSAKey("not-the-ca", 2048)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := pki.EnsureCA(ctx, db, other, "not-the-ca"); err == nil {
			t.Fatal("EnsureCA accepted a key that did not make the recorded CA")
		}
	})
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	rsa3072, _, err := e.tok.RSAKey("subject-rsa", 3072)
	if err != nil {
		t.Fatal(err)
	}
	ec, _, err := e.tok.ECDSAKey("subject-ec")
	if err != nil {
		t.Fatal(err)
	}
	wantEKU := map[pki.Role]x509.ExtKeyUsage{
		pki.RoleCenterTLS: x509.ExtKeyUsageServerAuth, pki.RoleOperatorSign: x509.ExtKeyUsageClientAuth,
		pki.RoleTerminal: x509.ExtKeyUsageClientAuth, pki.RoleVendor: x509.ExtKeyUsageClientAuth,
		pki.RoleManager: x509.ExtKeyUsageClientAuth, pki.RoleAuditor: x509.ExtKeyUsageClientAuth,
	}
	for _, role := range pki.Roles() {
		t.Run(string(role), func(t *testing.T) {
			var key crypto.Signer = rsa3072
			if role == pki.RoleLog {
				key = ec
			}
			req := pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, key)), Role: role, Entity: "E-" + string(role)}
			if role == pki.RoleCenterTLS {
				req.Hosts = []string{"localhost", "127.0.0.1"}
			}
			cert, err := e.ca.Issue(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != req.Entity || len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != string(role) {
				t.Fatalf("subject %q, want CN=%s OU=%s", cert.Subject, req.Entity, role)
			}
			if cert.Subject.CommonName == "requested-name" {
				t.Fatal("the CSR chose its own subject")
			}
			if eku, ok := wantEKU[role]; ok && (len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != eku) {
				t.Fatalf("extended key usage %v, want [%v]", cert.ExtKeyUsage, eku)
			}
			if _, ok := wantEKU[role]; !ok && len(cert.ExtKeyUsage) != 0 {
				t.Fatalf("extended key usage %v, want none", cert.ExtKeyUsage)
			}
			if cert.IsCA {
				t.Fatal("leaf certificate is a CA")
			}
			id, err := e.ca.Verify(ctx, cert, role, e.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			if id.Role != role || id.Entity != req.Entity || id.Serial != pki.SerialOf(cert) {
				t.Fatalf("identity %+v, want %s %s", id, role, req.Entity)
			}
			other := pki.RoleAuditor
			if role == other {
				other = pki.RoleManager
			}
			_, err = e.ca.Verify(ctx, cert, other, e.clock.Now())
			wantRefusal(t, err, evoucher.KindForbidden, "wrong_role")
			if n := e.count(t, `SELECT count(*) FROM certificates WHERE serial = $1 AND role = $2 AND entity = $3`, id.Serial, string(role), req.Entity); n != 1 {
				t.Fatalf("certificate recorded %d times", n)
			}
		})
	}
	t.Run("ErrCenterRSA2048", func(t *testing.T) {
		small, _, err := e.tok.RSAKey("subject-2048", 2048)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.ca.Issue(ctx, pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, small)), Role: pki.RoleCenterSign, Entity: "center"})
		wantRefusal(t, err, evoucher.KindInvalid, "weak_key")
	})
	t.Run("ErrLogRSA", func(t *testing.T) {
		_, err = e.ca.Issue(ctx, pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, rsa3072)), Role: pki.RoleLog, Entity: "center"})
		wantRefusal(t, err, evoucher.KindInvalid, "unsupported_key")
	})
	t.Run("ErrHostsOutsideTLS", func(t *testing.T) {
		_, err = e.ca.Issue(ctx, pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, rsa3072)), Role: pki.RoleTerminal, Entity: "T-1", Hosts: []string{"evil.example"}})
		wantRefusal(t, err, evoucher.KindInvalid, "bad_hosts")
	})
	t.Run("ErrBadEntity", func(t *testing.T) {
		_, err = e.ca.Issue(ctx, pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, rsa3072)), Role: pki.RoleTerminal, Entity: "T 1:x"})
		wantRefusal(t, err, evoucher.KindInvalid, "bad_entity")
	})
}

func TestEnrol(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	termKey, _, err := e.tok.RSAKey("terminal", 2048)
	if err != nil {
		t.Fatal(err)
	}
	csr := mustCSR(t, termKey)
	certs := func() int { return e.count(t, `SELECT count(*) FROM certificates`) }

	t.Run("OK", func(t *testing.T) {
		code, err := e.ca.IssueCode(ctx, pki.RoleTerminal, "T-12")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(code.Code) != "[redacted]" || fmt.Sprintf("%v %+v", code, code) == "" || strings.Contains(fmt.Sprintf("%v %+v %#v", code, code, code), code.Code.Reveal()) {
			t.Fatal("enrolment code printed in clear")
		}
		if n := e.count(t, `SELECT count(*) FROM enrolment_codes WHERE code_hash::text LIKE '%' || $1 || '%'`, code.Code.Reveal()); n != 0 {
			t.Fatal("enrolment code stored in clear")
		}
		cert, err := e.ca.Enrol(ctx, strings.ToLower(code.Code.Reveal()), csr, pki.RoleTerminal)
		if err != nil {
			t.Fatal(err)
		}
		id, err := e.ca.Verify(ctx, cert, pki.RoleTerminal, e.clock.Now())
		if err != nil || id.Entity != "T-12" {
			t.Fatalf("identity %+v err %v", id, err)
		}
		if !cert.PublicKey.(*rsa.PublicKey).Equal(termKey.Public()) {
			t.Fatal("certificate is not for the CSR's key")
		}
		if n := e.count(t, `SELECT count(*) FROM enrolment_codes WHERE used_at IS NOT NULL AND certificate_serial = $1`, id.Serial); n != 1 {
			t.Fatalf("code not marked used by %s", id.Serial)
		}

		t.Run("ErrCodeUsed", func(t *testing.T) {
			before := certs()
			_, err := e.ca.Enrol(ctx, code.Code.Reveal(), csr, "")
			wantRefusal(t, err, evoucher.KindConflict, "code_used")
			if certs() != before {
				t.Fatal("a refused enrolment stored a certificate")
			}
		})
	})

	refusedKeepsCode := func(t *testing.T, role pki.Role, csr []byte, wantRole pki.Role, kind evoucher.Kind, reason string) {
		t.Helper()
		code, err := e.ca.IssueCode(ctx, role, "X-1")
		if err != nil {
			t.Fatal(err)
		}
		before := certs()
		beforeRefusals := e.meter.Refusals("enrol/" + reason)
		_, err = e.ca.Enrol(ctx, code.Code.Reveal(), csr, wantRole)
		wantRefusal(t, err, kind, reason)
		if certs() != before {
			t.Fatal("a refused enrolment stored a certificate")
		}
		if e.meter.Refusals("enrol/"+reason) != beforeRefusals+1 {
			t.Fatalf("refusal %s not counted", reason)
		}
		if n := e.count(t, `SELECT count(*) FROM enrolment_codes WHERE used_at IS NULL AND role = $1 AND entity = 'X-1'`, string(role)); n < 1 {
			t.Fatal("a refused enrolment used up the code")
		}
	}

	t.Run("ErrWrongRole", func(t *testing.T) {
		refusedKeepsCode(t, pki.RoleTerminal, csr, pki.RoleVendor, evoucher.KindForbidden, "wrong_role")
	})
	t.Run("ErrWeakRSA", func(t *testing.T) {
		weak, err := rsa.GenerateKey(rand.Reader, 1024) // a hostile client's key, not ours
		if err != nil {
			t.Fatal(err)
		}
		refusedKeepsCode(t, pki.RoleTerminal, mustCSR(t, weak), "", evoucher.KindInvalid, "weak_key")
	})
	t.Run("ErrUnknownCurve", func(t *testing.T) {
		k, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		refusedKeepsCode(t, pki.RoleManager, mustCSR(t, k), "", evoucher.KindInvalid, "unsupported_key")
	})
	t.Run("ErrEd25519", func(t *testing.T) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		refusedKeepsCode(t, pki.RoleAuditor, mustCSR(t, k), "", evoucher.KindInvalid, "unsupported_key")
	})
	t.Run("ErrECDSAForTerminal", func(t *testing.T) {
		k, _, err := e.tok.ECDSAKey("terminal-ec")
		if err != nil {
			t.Fatal(err)
		}
		refusedKeepsCode(t, pki.RoleTerminal, mustCSR(t, k), "", evoucher.KindInvalid, "unsupported_key")
	})
	t.Run("ErrMalformedCSR", func(t *testing.T) {
		refusedKeepsCode(t, pki.RoleTerminal, []byte("not a certificate request"), "", evoucher.KindInvalid, "malformed_csr")
	})
	t.Run("ErrCSRBadSignature", func(t *testing.T) {
		bad := append([]byte(nil), csr...)
		bad[len(bad)-5] ^= 0xff
		refusedKeepsCode(t, pki.RoleTerminal, bad, "", evoucher.KindInvalid, "malformed_csr")
	})
	t.Run("ErrUnknownCode", func(t *testing.T) {
		_, err := e.ca.Enrol(ctx, "AAAA-BBBB-CCCC-DDDD", csr, "")
		wantRefusal(t, err, evoucher.KindUnauthorized, "unknown_code")
	})
	t.Run("ErrCodeExpired", func(t *testing.T) {
		// A separate authority whose clock we move, so parallel subtests keep theirs.
		ex := mustEnv(t)
		code, err := ex.ca.IssueCode(ctx, pki.RoleTerminal, "T-13")
		if err != nil {
			t.Fatal(err)
		}
		ex.clock.Add(73 * time.Hour)
		_, err = ex.ca.Enrol(ctx, code.Code.Reveal(), csr, "")
		wantRefusal(t, err, evoucher.KindUnauthorized, "code_expired")
		if n := ex.count(t, `SELECT count(*) FROM certificates`); n != 0 {
			t.Fatal("expired code issued a certificate")
		}
	})
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	key, _, err := e.tok.RSAKey("vendor-card", 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.Issue(ctx, pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, key)), Role: pki.RoleVendor, Entity: "V-7"})
	if err != nil {
		t.Fatal(err)
	}
	serial := pki.SerialOf(cert)
	before := e.clock.Now()
	crl0, err := e.ca.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	rv, err := e.ca.Revoke(ctx, serial, "keyCompromise")
	if err != nil {
		t.Fatal(err)
	}
	if rv.Entity != "V-7" || rv.Role != pki.RoleVendor || rv.Reason != "keyCompromise" {
		t.Fatalf("revocation %+v", rv)
	}

	t.Run("ErrRevokedNow", func(t *testing.T) {
		_, err := e.ca.Verify(ctx, cert, pki.RoleVendor, e.clock.Now())
		wantRefusal(t, err, evoucher.KindUnauthorized, "revoked")
		for _, want := range []string{"vendor V-7", "was revoked on", "keyCompromise", "enrol the vendor again"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("message %q lacks %q", err, want)
			}
		}
		if e.meter.Refusals("verify/revoked") == 0 {
			t.Fatal("revoked refusal not counted")
		}
	})
	t.Run("OKBeforeRevocation", func(t *testing.T) {
		if _, err := e.ca.Verify(ctx, cert, pki.RoleVendor, before); err != nil {
			t.Fatalf("a message signed before the revocation is refused: %v", err)
		}
	})
	t.Run("CRLListsIt", func(t *testing.T) {
		der, err := e.ca.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := crl.CheckSignatureFrom(e.ca.CA()); err != nil {
			t.Fatalf("CRL signature: %v", err)
		}
		old, _ := x509.ParseRevocationList(crl0)
		if crl.Number.Cmp(old.Number) <= 0 {
			t.Fatalf("CRL number %v not above %v", crl.Number, old.Number)
		}
		if len(old.RevokedCertificateEntries) != 0 {
			t.Fatal("first CRL already listed something")
		}
		if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(cert.SerialNumber) != 0 ||
			crl.RevokedCertificateEntries[0].ReasonCode != 1 {
			t.Fatalf("CRL entries %+v, want serial %s keyCompromise", crl.RevokedCertificateEntries, serial)
		}
	})
	t.Run("ErrAlreadyRevoked", func(t *testing.T) {
		_, err := e.ca.Revoke(ctx, serial, "superseded")
		wantRefusal(t, err, evoucher.KindConflict, "already_revoked")
	})
	t.Run("ErrUnknownSerial", func(t *testing.T) {
		_, err := e.ca.Revoke(ctx, "abcdef", "superseded")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_certificate")
	})
	t.Run("ErrBadReason", func(t *testing.T) {
		_, err := e.ca.Revoke(ctx, serial, "because")
		wantRefusal(t, err, evoucher.KindInvalid, "bad_reason")
	})
}

func TestCRLRefresh(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	number := func(der []byte) int64 {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return crl.Number.Int64()
	}
	a, err := e.ca.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.ca.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if number(a) != number(b) {
		t.Fatal("a fresh CRL was replaced")
	}
	e.clock.Add(4 * 24 * time.Hour) // past half of the 7-day validity
	c, err := e.ca.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ParseRevocationList(c)
	if number(c) != number(a)+1 || !crl.NextUpdate.After(e.clock.Now().Add(6*24*time.Hour)) {
		t.Fatalf("CRL near expiry not renewed: number %d -> %d, next update %v", number(a), number(c), crl.NextUpdate)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	key, _, err := e.tok.RSAKey("terminal", 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.Issue(ctx, pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, key)), Role: pki.RoleTerminal, Entity: "T-1"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ErrExpired", func(t *testing.T) {
		_, err := e.ca.Verify(ctx, cert, pki.RoleTerminal, cert.NotAfter.Add(time.Hour))
		wantRefusal(t, err, evoucher.KindUnauthorized, "expired")
	})
	t.Run("ErrNotYetValid", func(t *testing.T) {
		_, err := e.ca.Verify(ctx, cert, pki.RoleTerminal, cert.NotBefore.Add(-time.Hour))
		wantRefusal(t, err, evoucher.KindUnauthorized, "not_yet_valid")
	})
	t.Run("ErrNoCertificate", func(t *testing.T) {
		_, err := e.ca.Verify(ctx, nil, pki.RoleTerminal, time.Now())
		wantRefusal(t, err, evoucher.KindUnauthorized, "no_certificate")
	})
	t.Run("ErrForeignCA", func(t *testing.T) {
		foreign := mustForeignCert(t, cert)
		_, err := e.ca.Verify(ctx, foreign, pki.RoleTerminal, time.Now())
		wantRefusal(t, err, evoucher.KindUnauthorized, "foreign_ca")
	})
	t.Run("ErrOtherPlatform", func(t *testing.T) {
		// A second platform's CA with the same name: issuer matches by name, not by key.
		other := mustEnv(t)
		k2, _, err := other.tok.RSAKey("terminal", 2048)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := other.ca.Issue(ctx, pki.IssueRequest{CSR: mustParseCSR(t, mustCSR(t, k2)), Role: pki.RoleTerminal, Entity: "T-1"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.ca.Verify(ctx, c2, pki.RoleTerminal, time.Now())
		wantRefusal(t, err, evoucher.KindUnauthorized, "foreign_ca")
	})
	t.Run("ErrUnrecorded", func(t *testing.T) {
		if _, err := e.db.Exec(ctx, `DELETE FROM certificates WHERE serial = $1`, pki.SerialOf(cert)); err != nil {
			t.Fatal(err)
		}
		_, err := e.ca.Verify(ctx, cert, pki.RoleTerminal, time.Now())
		wantRefusal(t, err, evoucher.KindUnauthorized, "unknown_certificate")
	})
}

// mustForeignCert copies like's identity into a certificate from a CA that is not ours.
func mustForeignCert(t *testing.T, like *x509.Certificate) *x509.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // the outsider's CA, not ours
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evoucher platform CA", Organization: []string{"evoucher"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	u, _ := url.Parse(like.URIs[0].String())
	tmpl := &x509.Certificate{SerialNumber: like.SerialNumber, Subject: like.Subject, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, like.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	for _, r := range pki.Roles() {
		got, err := pki.ParseRole(string(r))
		if err != nil || got != r {
			t.Fatalf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	if _, err := pki.ParseRole("root"); !errors.Is(err, evoucher.ErrInvalid) {
		t.Fatalf("ParseRole(root) err = %v, want invalid", err)
	}
}

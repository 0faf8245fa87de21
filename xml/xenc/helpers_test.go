package xenc_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

var update = flag.Bool("update", false, "rewrite testdata/ (the test recipient key and the hostile documents)")

// env is a test CA and a token for recipients' keys.
type env struct {
	ca  *pki.Authority
	tok *pkcs11.Token
}

func mustEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db := testdb.MustPool(t)
	tok := testhsm.MustToken(t)
	caKey, _, err := tok.RSAKey("ca", 2048)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _, err := pki.EnsureCA(ctx, db, caKey, "ca")
	if err != nil {
		t.Fatal(err)
	}
	a, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey})
	if err != nil {
		t.Fatal(err)
	}
	return &env{ca: a, tok: tok}
}

// issue certifies key for a terminal (key encipherment) named entity.
func (e *env) issue(t *testing.T, key crypto.Signer, entity string) *x509.Certificate {
	t.Helper()
	der, err := pki.NewCSR(key, entity)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.Issue(context.Background(), pki.IssueRequest{CSR: csr, Role: pki.RoleTerminal, Entity: entity})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// party is a recipient: a certificate and its private key.
type party struct {
	cert *x509.Certificate
	key  crypto.Decrypter
}

// mustTokenParty makes an RSA key in the token and certifies it.
func (e *env) mustTokenParty(t *testing.T, label string) party {
	t.Helper()
	k, _, err := e.tok.RSAKey(label, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return party{cert: e.issue(t, k, label), key: k}
}

// counting is a Decrypter that counts its uses, to show that refusals come before any key use.
type counting struct {
	crypto.Decrypter
	n atomic.Int32
}

func (c *counting) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Decrypter.Decrypt(r, msg, opts)
}

func wantRefusal(t *testing.T, pt []byte, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted (%d bytes of plaintext), want refusal %q", len(pt), reason)
	}
	if pt != nil {
		t.Errorf("refused, yet %d bytes of plaintext returned", len(pt))
	}
	if evoucher.KindOf(err) != evoucher.KindInvalid || evoucher.ReasonOf(err) != reason {
		t.Fatalf("got %s/%s (%v), want invalid/%s", evoucher.KindOf(err), evoucher.ReasonOf(err), err, reason)
	}
}

// testRecipient is the in-memory recipient of the documents in testdata/, so that they can be
// replayed and fuzzed without a token: testdata/recipient.pem holds its (test-only) private key
// and a self-signed certificate. It is made under -update when missing.
func testRecipient(t testing.TB) party {
	t.Helper()
	path := filepath.Join("testdata", "recipient.pem")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) && *update {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		cert := selfSigned(t, key, "xenc test recipient")
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		b = append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatalf("%v: run go test -update to make it", err)
	}
	var p party
	for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			p.key = k.(*rsa.PrivateKey)
		case "CERTIFICATE":
			if p.cert, err = x509.ParseCertificate(block.Bytes); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p.key == nil || p.cert == nil {
		t.Fatalf("%s lacks the key or the certificate", path)
	}
	return p
}

// selfSigned certifies key for key encipherment, with a random serial.
func selfSigned(t testing.TB, key *rsa.PrivateKey, cn string) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"evoucher test"}},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2046, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// inMemoryParty is a recipient with a fresh in-memory key and a self-signed certificate.
func inMemoryParty(t testing.TB, cn string) party {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return party{cert: selfSigned(t, key, cn), key: key}
}

// serialise writes el as a document and reads it back, as a receiver would see it.
func serialise(t testing.TB, el *etree.Element) (*etree.Element, []byte) {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	back := etree.NewDocument()
	if err := back.ReadFromBytes(b); err != nil {
		t.Fatal(err)
	}
	return back.Root(), b
}

package dsig_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	xmldsig "github.com/russellhaering/goxmldsig"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
)

var update = flag.Bool("update", false, "rewrite testdata/valid and testdata/hostile from this run's CA and keys")

const nsExchange = "urn:evoucher:exchange:1"

// env is a platform CA with two operator-sign signers: one whose key lives in a SoftHSM2
// token (how the platform signs) and an external peer whose key is a PEM file (how xmlsec1
// signs).
type env struct {
	ca       *pki.Authority
	caCert   *x509.Certificate
	key      crypto.Signer // operator-sign key of OP-1, in the token
	cert     *x509.Certificate
	peerKey  *rsa.PrivateKey // operator-sign key of OP-2, the external peer's own
	peerCert *x509.Certificate
	dir      string // ca.pem, peer-key.pem, peer-cert.pem
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
	a, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ca: a, caCert: caCert, dir: t.TempDir()}
	key, _, err := tok.RSAKey("operator-sign", 2048)
	if err != nil {
		t.Fatal(err)
	}
	e.key, e.cert = key, mustIssue(t, a, key, pki.RoleOperatorSign, "OP-1")
	if e.peerKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	e.peerCert = mustIssue(t, a, e.peerKey, pki.RoleOperatorSign, "OP-2")
	mustWritePEM(t, filepath.Join(e.dir, "ca.pem"), "CERTIFICATE", caCert.Raw)
	mustWritePEM(t, filepath.Join(e.dir, "peer-cert.pem"), "CERTIFICATE", e.peerCert.Raw)
	mustWritePEM(t, filepath.Join(e.dir, "peer-key.pem"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(e.peerKey))
	return e
}

func mustIssue(t *testing.T, a *pki.Authority, key crypto.Signer, role pki.Role, entity string) *x509.Certificate {
	t.Helper()
	csr, err := pki.NewCSR(key, entity)
	if err != nil {
		t.Fatal(err)
	}
	req, err := pki.ParseCSR(csr)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.Issue(context.Background(), pki.IssueRequest{CSR: req, Role: role, Entity: entity})
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mustWritePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// recorder is a Trust around pki's Verify for one role at the current time, remembering the
// certificates it was asked about.
type recorder struct {
	mu    sync.Mutex
	certs []*x509.Certificate
}

func (e *env) trust(r *recorder, role pki.Role) dsig.Trust {
	return func(c *x509.Certificate) error {
		if r != nil {
			r.mu.Lock()
			r.certs = append(r.certs, c)
			r.mu.Unlock()
		}
		_, err := e.ca.Verify(context.Background(), c, role, time.Now())
		return err
	}
}

func (r *recorder) calls() []*x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*x509.Certificate(nil), r.certs...)
}

// acceptAll trusts every certificate: the profile alone must refuse what it refuses.
func acceptAll(*x509.Certificate) error { return nil }

// newBatch returns an unsigned CodeBatch document, indented.
func newBatch() *etree.Document {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement("CodeBatch")
	root.CreateAttr("xmlns", nsExchange)
	root.CreateAttr("Id", "cb-1")
	root.CreateAttr("MessageId", "5f0c3a52-9a7e-4c1b-8d7e-1f2a3b4c5d6e")
	root.CreateAttr("Sender", "OP-1")
	root.CreateAttr("Recipient", "center")
	root.CreateAttr("Created", "2026-11-24T10:00:00Z")
	h := root.CreateElement("Header")
	h.CreateAttr("Id", "hdr-1")
	h.CreateElement("BatchId").SetText("B-2026-0001")
	h.CreateElement("Product").SetText("AIRTIME-10")
	fv := h.CreateElement("FaceValue")
	fv.CreateAttr("currency", "EUR")
	fv.SetText("1000")
	h.CreateElement("Count").SetText("3")
	doc.Indent(2)
	return doc
}

func mustSignBytes(t *testing.T, doc *etree.Document, key crypto.Signer, cert *x509.Certificate) []byte {
	t.Helper()
	b, err := dsig.SignBytes(doc, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, b []byte) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	return doc
}

// canonical is the exclusive canonical form of el (which it does not change).
func canonical(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	b, err := xmldsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(el.Copy())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantRefusal(t *testing.T, err error, kind evoucher.Kind, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %s refusal (%s)", kind, reason)
	}
	if evoucher.KindOf(err) != kind || evoucher.ReasonOf(err) != reason {
		t.Fatalf("got %s/%s (%v), want %s/%s", evoucher.KindOf(err), evoucher.ReasonOf(err), err, kind, reason)
	}
	if evoucher.MessageOf(err) == "" || evoucher.MessageOf(err) == "internal error" {
		t.Fatalf("refusal %s without a message a user can act on: %v", reason, err)
	}
}

// xmlsec1 runs xmlsec1 in dir and returns its combined output and whether it exited 0.
func xmlsec1(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("xmlsec1"); err != nil {
		t.Fatal("xmlsec1 is not installed: apt-get install xmlsec1 (or make deps)")
	}
	cmd := exec.Command("xmlsec1", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run xmlsec1: %v", err)
	}
	return string(out), err == nil
}

// idAttrs tells xmlsec1 which attributes are IDs: Id on the exchange's elements.
var idAttrs = []string{"--id-attr:Id", nsExchange + ":CodeBatch", "--id-attr:Id", nsExchange + ":Header"}

// xmlsec1Verify writes doc into the env's directory and verifies it with xmlsec1 against the
// platform CA.
func (e *env) xmlsec1Verify(t *testing.T, name string, doc []byte) (string, bool) {
	t.Helper()
	path := filepath.Join(e.dir, name+".xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--verify", "--trusted-pem", "ca.pem"}, idAttrs...)
	return xmlsec1(t, e.dir, append(args, path)...)
}

// save writes b into testdata/dir/name.xml when the tests run with -update.
func save(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if !*update {
		return
	}
	d := filepath.Join("testdata", dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, name+".xml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustReplace(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if bytes.Count(b, []byte(old)) != 1 {
		t.Fatalf("%q occurs %d times in the document, want once", old, bytes.Count(b, []byte(old)))
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	unsigned := newBatch()
	signed := mustSignBytes(t, unsigned, e.key, e.cert)
	save(t, "valid", "signed", signed)

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		var r recorder
		el, cert, err := dsig.Verify(mustParse(t, signed), e.trust(&r, pki.RoleOperatorSign))
		if err != nil {
			t.Fatal(err)
		}
		if el.Tag != "CodeBatch" || el.NamespaceURI() != nsExchange || el.SelectAttrValue("Id", "") != "cb-1" {
			t.Fatalf("Verify returned <%s xmlns=%q Id=%q>", el.Tag, el.NamespaceURI(), el.SelectAttrValue("Id", ""))
		}
		if got := el.FindElement("./Header/FaceValue"); got == nil || got.Text() != "1000" {
			t.Fatalf("signed element lacks Header/FaceValue 1000")
		}
		if el.FindElement("./Signature") != nil {
			t.Fatal("the returned element still carries the signature")
		}
		if got, want := canonical(t, el), canonical(t, unsigned.Root()); !bytes.Equal(got, want) {
			t.Fatalf("signed element differs from what was signed:\n got %s\nwant %s", got, want)
		}
		if !cert.Equal(e.cert) {
			t.Fatalf("Verify returned certificate %q, want the signer's", cert.Subject.CommonName)
		}
		if calls := r.calls(); len(calls) != 1 || !calls[0].Equal(e.cert) {
			t.Fatalf("trust called %d times (want once, with the signer's certificate)", len(calls))
		}
	})

	t.Run("OKProfile", func(t *testing.T) {
		t.Parallel()
		// What Sign writes, read back: the profile's algorithms, not goxmldsig's defaults.
		sig := mustParse(t, signed).Root().FindElement("./ds:Signature")
		if sig == nil {
			t.Fatal("no ds:Signature child")
		}
		want := map[string]string{
			"./ds:SignedInfo/ds:CanonicalizationMethod":                  "http://www.w3.org/2001/10/xml-exc-c14n#",
			"./ds:SignedInfo/ds:SignatureMethod":                         "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
			"./ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform[1]": "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
			"./ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform[2]": "http://www.w3.org/2001/10/xml-exc-c14n#",
			"./ds:SignedInfo/ds:Reference/ds:DigestMethod":               "http://www.w3.org/2001/04/xmlenc#sha256",
		}
		for path, alg := range want {
			if el := sig.FindElement(path); el == nil || el.SelectAttrValue("Algorithm", "") != alg {
				t.Errorf("%s: want Algorithm %s", path, alg)
			}
		}
		if ref := sig.FindElement("./ds:SignedInfo/ds:Reference"); ref == nil || ref.SelectAttrValue("URI", "") != "#cb-1" {
			t.Error(`Reference URI is not "#cb-1"`)
		}
		if n := len(sig.FindElements("./ds:KeyInfo/ds:X509Data/ds:X509Certificate")); n != 1 {
			t.Errorf("%d certificates in KeyInfo, want 1", n)
		}
		if last := sig.Parent().ChildElements(); last[len(last)-1] != sig {
			t.Error("the signature is not the root's last child")
		}
	})

	t.Run("OKTrickyText", func(t *testing.T) {
		t.Parallel()
		// Characters a serializer could write so that a parser reads something else.
		doc := newBatch()
		h := doc.Root().SelectElement("Header")
		h.CreateElement("Note").SetText("line\r\nnext\ttab & <b> \"q\" 'a' ]]> €")
		h.SelectElement("Product").CreateAttr("label", "a\tb\nc\rd \"<&>'")
		b := mustSignBytes(t, doc, e.key, e.cert)
		save(t, "valid", "tricky", b)
		el, _, err := dsig.Verify(mustParse(t, b), e.trust(nil, pki.RoleOperatorSign))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := canonical(t, el), canonical(t, doc.Root()); !bytes.Equal(got, want) {
			t.Fatalf("signed element differs from what was signed:\n got %s\nwant %s", got, want)
		}
		if out, ok := e.xmlsec1Verify(t, "tricky", b); !ok {
			t.Fatalf("xmlsec1 refused:\n%s", out)
		}
	})

	t.Run("OKInputUnchanged", func(t *testing.T) {
		t.Parallel()
		doc := newBatch()
		before, _ := doc.WriteToBytes()
		if _, err := dsig.Sign(doc.Root(), e.key, e.cert); err != nil {
			t.Fatal(err)
		}
		mustSignBytes(t, doc, e.key, e.cert)
		if after, _ := doc.WriteToBytes(); !bytes.Equal(before, after) {
			t.Fatalf("signing changed its input:\n%s\n%s", before, after)
		}
	})

	t.Run("ErrSignNoId", func(t *testing.T) {
		t.Parallel()
		doc := newBatch()
		doc.Root().RemoveAttr("Id")
		_, err := dsig.SignBytes(doc, e.key, e.cert)
		wantRefusal(t, err, evoucher.KindInvalid, "missing_id")
	})
	t.Run("ErrSignTwice", func(t *testing.T) {
		t.Parallel()
		_, err := dsig.SignBytes(mustParse(t, signed), e.key, e.cert)
		wantRefusal(t, err, evoucher.KindInvalid, "signature_multiple")
	})
	t.Run("ErrSignWeakKey", func(t *testing.T) {
		t.Parallel()
		weak, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dsig.SignBytes(newBatch(), weak, e.cert)
		wantRefusal(t, err, evoucher.KindInvalid, "weak_key")
	})
	t.Run("ErrSignKeyMismatch", func(t *testing.T) {
		t.Parallel()
		_, err := dsig.SignBytes(newBatch(), e.key, e.peerCert)
		wantRefusal(t, err, evoucher.KindInvalid, "key_mismatch")
	})
	t.Run("ErrSignComment", func(t *testing.T) {
		t.Parallel()
		doc := newBatch()
		doc.Root().SelectElement("Header").CreateComment("not signed")
		_, err := dsig.SignBytes(doc, e.key, e.cert)
		wantRefusal(t, err, evoucher.KindInvalid, "comment")
	})
	t.Run("ErrSignInvalidCharacter", func(t *testing.T) {
		t.Parallel()
		doc := newBatch()
		doc.Root().SelectElement("Header").CreateElement("Note").SetText("bell\x07")
		_, err := dsig.SignBytes(doc, e.key, e.cert)
		wantRefusal(t, err, evoucher.KindInvalid, "invalid_character")
	})
	t.Run("ErrSignNotRoot", func(t *testing.T) {
		t.Parallel()
		_, err := dsig.Sign(newBatch().Root().SelectElement("Header"), e.key, e.cert)
		wantRefusal(t, err, evoucher.KindInvalid, "malformed_document")
	})
}

func TestTrust(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()
	signed := mustSignBytes(t, newBatch(), e.key, e.cert)

	t.Run("ErrWrongRole", func(t *testing.T) {
		t.Parallel()
		_, _, err := dsig.Verify(mustParse(t, signed), e.trust(nil, pki.RoleCenterSign))
		wantRefusal(t, err, evoucher.KindForbidden, "wrong_role")
	})
	t.Run("ErrForeignSigner", func(t *testing.T) {
		t.Parallel()
		// A signer of another platform: its own CA, the same names.
		other := mustEnv(t)
		b := mustSignBytes(t, newBatch(), other.key, other.cert)
		_, _, err := dsig.Verify(mustParse(t, b), e.trust(nil, pki.RoleOperatorSign))
		wantRefusal(t, err, evoucher.KindUnauthorized, "foreign_ca")
	})
	t.Run("ErrPlainTrustError", func(t *testing.T) {
		t.Parallel()
		// A trust that fails to decide (the database is down) is not a refusal.
		down := errors.New("database unavailable")
		_, _, err := dsig.Verify(mustParse(t, signed), func(*x509.Certificate) error { return down })
		if !errors.Is(err, down) || evoucher.KindOf(err) != evoucher.KindInternal {
			t.Fatalf("got %v (kind %s), want the trust's error, internal", err, evoucher.KindOf(err))
		}
	})

	// A signer of its own, so that revoking it leaves the other subtests' signer alone.
	revokedKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	revokedCert := mustIssue(t, e.ca, revokedKey, pki.RoleOperatorSign, "OP-9")
	byRevoked := mustSignBytes(t, newBatch(), revokedKey, revokedCert)
	if _, err := e.ca.Revoke(ctx, pki.SerialOf(revokedCert), "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	t.Run("ErrTrustRefused", func(t *testing.T) {
		t.Parallel()
		var r recorder
		_, _, err := dsig.Verify(mustParse(t, byRevoked), e.trust(&r, pki.RoleOperatorSign))
		wantRefusal(t, err, evoucher.KindUnauthorized, "revoked")
		var pe *evoucher.Error
		if !errors.As(err, &pe) || pe.Reason != "revoked" || !strings.Contains(err.Error(), "OP-9") {
			t.Fatalf("errors.As does not find pki's refusal in %v", err)
		}
		if calls := r.calls(); len(calls) != 1 || !calls[0].Equal(revokedCert) {
			t.Fatalf("trust called %d times, want once with the revoked certificate", len(calls))
		}
	})
	t.Run("ErrTrustBeforeCrypto", func(t *testing.T) {
		t.Parallel()
		// Altered content by a revoked signer: refused for the signer, before any RSA work.
		b := mustReplace(t, byRevoked, ">1000<", ">9000<")
		_, _, err := dsig.Verify(mustParse(t, b), e.trust(nil, pki.RoleOperatorSign))
		wantRefusal(t, err, evoucher.KindUnauthorized, "revoked")
		_, _, err = dsig.Verify(mustParse(t, b), acceptAll)
		wantRefusal(t, err, evoucher.KindInvalid, "bad_digest")
	})
}

func TestXmlsec1(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	signed := mustSignBytes(t, newBatch(), e.key, e.cert)

	t.Run("OKXmlsec1VerifiesOurs", func(t *testing.T) {
		t.Parallel()
		if out, ok := e.xmlsec1Verify(t, "ours", signed); !ok {
			t.Fatalf("xmlsec1 refused our signature:\n%s", out)
		}
	})
	t.Run("ErrXmlsec1RefusesTampered", func(t *testing.T) {
		t.Parallel()
		b := mustReplace(t, signed, ">1000<", ">9000<")
		if out, ok := e.xmlsec1Verify(t, "tampered", b); ok {
			t.Fatalf("xmlsec1 accepted a tampered document:\n%s", out)
		}
	})
	t.Run("ErrXmlsec1RefusesForeignCA", func(t *testing.T) {
		t.Parallel()
		// The same check against a CA that did not issue the signer: xmlsec1 does check
		// the chain, so its OK above means something.
		other := mustEnv(t)
		b := mustSignBytes(t, newBatch(), other.key, other.cert)
		if out, ok := e.xmlsec1Verify(t, "foreign", b); ok {
			t.Fatalf("xmlsec1 accepted a signer from another CA:\n%s", out)
		}
	})
	t.Run("OKWeVerifyXmlsec1", func(t *testing.T) {
		t.Parallel()
		tmpl := template(newBatch())
		b := e.xmlsec1Sign(t, "template", tmpl)
		save(t, "valid", "xmlsec1", b)
		content := mustParse(t, tmpl).Root()
		content.RemoveChild(content.SelectElement("Signature"))
		var r recorder
		el, cert, err := dsig.Verify(mustParse(t, b), e.trust(&r, pki.RoleOperatorSign))
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if !cert.Equal(e.peerCert) || len(r.calls()) != 1 {
			t.Fatalf("signer %q, trust called %d times; want the peer's certificate, once", cert.Subject.CommonName, len(r.calls()))
		}
		if got, want := canonical(t, el), canonical(t, content); !bytes.Equal(got, want) {
			t.Fatalf("signed element differs from the template's content:\n got %s\nwant %s", got, want)
		}
	})
}

// template returns doc with an empty signature of the profile for xmlsec1 to fill in.
func template(doc *etree.Document) []byte {
	b, _ := doc.WriteToBytes()
	const sig = `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="#cb-1">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue/>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue/>
    <ds:KeyInfo>
      <ds:X509Data/>
    </ds:KeyInfo>
  </ds:Signature>
</CodeBatch>`
	return bytes.Replace(b, []byte("</CodeBatch>"), []byte("  "+sig), 1)
}

// xmlsec1Sign signs a template with the peer's PEM key and certificate.
func (e *env) xmlsec1Sign(t *testing.T, name string, tmpl []byte) []byte {
	t.Helper()
	in, out := filepath.Join(e.dir, name+".xml"), filepath.Join(e.dir, name+"-signed.xml")
	if err := os.WriteFile(in, tmpl, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--sign", "--privkey-pem", "peer-key.pem,peer-cert.pem"}, idAttrs...)
	if msg, ok := xmlsec1(t, e.dir, append(args, "--output", out, in)...); !ok {
		t.Fatalf("xmlsec1 --sign failed:\n%s\n%s", msg, tmpl)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

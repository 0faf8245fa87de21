package dsig_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
)

// hostile is a document Verify must refuse, and why.
type hostile struct {
	name   string
	reason string
	// xmlsec1 is set when xmlsec1, a general XML-DSig verifier, accepts the document (given
	// ID attributes and the CA): the signature is then sound and only the profile refuses it.
	xmlsec1 bool
	build   func(t *testing.T, e *env, signed []byte) []byte
}

// Each case changes one thing in a document that the profile would otherwise accept.
var hostileCases = []hostile{
	// The document.
	{"ErrCommentInjection", "comment", true, func(t *testing.T, e *env, signed []byte) []byte {
		// Exclusive c14n drops comments: the signature still holds, but a reader taking
		// the first text node would read a face value of 1.
		return mustReplace(t, signed, ">1000<", ">1<!---->000<")
	}},
	{"ErrProcessingInstruction", "processing_instruction", true, func(t *testing.T, e *env, signed []byte) []byte {
		return insertProlog(t, signed, `<?xml-stylesheet type="text/xsl" href="https://evil.example/x.xsl"?>`)
	}},
	{"ErrProcessingInstructionInRoot", "processing_instruction", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, "<Count>", "<?evil data?><Count>")
	}},
	{"ErrDoctype", "doctype", true, func(t *testing.T, e *env, signed []byte) []byte {
		return insertProlog(t, signed, `<!DOCTYPE CodeBatch>`)
	}},
	{"ErrTwoRootElements", "malformed_document", false, func(t *testing.T, e *env, signed []byte) []byte {
		b := append([]byte(nil), bytes.TrimSpace(signed)...)
		return append(b, `<CodeBatch xmlns="urn:evoucher:exchange:1" Id="cb-2"/>`...)
	}},
	{"ErrUndeclaredPrefix", "malformed_document", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, "<Count>", "<evil:Note/><Count>")
	}},
	{"ErrUndeclaredAttributePrefix", "malformed_document", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, "<Count>", `<Count evil:unit="pieces">`)
	}},

	// Where the signature is, and what it references (signature wrapping).
	{"ErrNoSignature", "signature_missing", false, func(t *testing.T, e *env, signed []byte) []byte {
		return write(t, newBatch())
	}},
	{"ErrTwoSignatures", "signature_multiple", false, func(t *testing.T, e *env, signed []byte) []byte {
		doc := mustParse(t, signed)
		doc.Root().AddChild(signatureOf(t, doc).Copy())
		return write(t, doc)
	}},
	{"ErrSignatureInChild", "signature_misplaced", true, func(t *testing.T, e *env, signed []byte) []byte {
		doc := mustParse(t, signed)
		doc.Root().SelectElement("Header").AddChild(signatureOf(t, doc))
		return write(t, doc)
	}},
	{"ErrSignatureNotLast", "signature_misplaced", false, func(t *testing.T, e *env, signed []byte) []byte {
		doc := mustParse(t, signed)
		doc.Root().CreateElement("Extra").SetText("after the signature")
		return write(t, doc)
	}},
	{"ErrTextAfterSignature", "signature_misplaced", false, func(t *testing.T, e *env, signed []byte) []byte {
		doc := mustParse(t, signed)
		doc.Root().CreateText("FaceValue 1000000")
		return write(t, doc)
	}},
	{"ErrWrappingSecondRoot", "signature_misplaced", true, func(t *testing.T, e *env, signed []byte) []byte {
		// A new root with another Id and an evil header; the signed root, signature and
		// all, moved under it. A verifier that follows the reference finds it valid.
		doc := mustParse(t, signed)
		evil, root := evilRoot(doc, "cb-evil")
		evil.Root().AddChild(root)
		return write(t, evil)
	}},
	{"ErrSignedElementMoved", "reference_mismatch", true, func(t *testing.T, e *env, signed []byte) []byte {
		// The signature stays the root's last child, but the root is a new one; the
		// signed element moved into an extension the reference still finds.
		doc := mustParse(t, signed)
		sig := signatureOf(t, doc)
		evil, root := evilRoot(doc, "cb-evil")
		root.RemoveChild(sig)
		evil.Root().CreateElement("Extensions").AddChild(root)
		evil.Root().AddChild(sig)
		return write(t, evil)
	}},
	{"ErrSignedElementMovedSameId", "duplicate_id", false, func(t *testing.T, e *env, signed []byte) []byte {
		// As above, the new root taking the signed root's Id.
		doc := mustParse(t, signed)
		sig := signatureOf(t, doc)
		evil, root := evilRoot(doc, "cb-1")
		root.RemoveChild(sig)
		evil.Root().CreateElement("Extensions").AddChild(root)
		evil.Root().AddChild(sig)
		return write(t, evil)
	}},
	{"ErrDuplicateId", "duplicate_id", false, func(t *testing.T, e *env, signed []byte) []byte {
		// A second, altered copy of the signed element inside it.
		doc := mustParse(t, signed)
		dup := doc.Root().Copy()
		dup.RemoveChild(dup.SelectElement("Signature"))
		dup.FindElement("./Header/FaceValue").SetText("1000000")
		doc.Root().SelectElement("Header").AddChild(dup)
		return write(t, doc)
	}},
	{"ErrDuplicateIdOtherCase", "duplicate_id", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, "<Count>", `<Note ID="cb-1">evil</Note><Count>`)
	}},
	{"ErrRootTwoIds", "duplicate_id", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, `Id="cb-1"`, `Id="cb-1" ID="cb-evil"`)
	}},
	{"ErrNoId", "reference_mismatch", true, func(t *testing.T, e *env, signed []byte) []byte {
		doc := newBatch()
		doc.Root().RemoveAttr("Id")
		spec := e.profileSpec()
		spec.refs[0].uri = ""
		return craft(t, doc, spec)
	}},
	{"ErrReferenceEmptyURI", "reference_mismatch", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.refs[0].uri = ""
		return craft(t, newBatch(), spec)
	}},
	{"ErrReferenceToChild", "reference_mismatch", true, func(t *testing.T, e *env, signed []byte) []byte {
		// Signs the header only: the root's attributes (Sender, Recipient…) are not signed.
		spec := e.profileSpec()
		spec.refs[0].uri = "#hdr-1"
		return craft(t, newBatch(), spec)
	}},
	{"ErrExtraReference", "reference_multiple", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.refs = append(spec.refs, refSpec{uri: "#hdr-1", transforms: []string{algExcC14N}, digest: algSHA256, hash: crypto.SHA256})
		return craft(t, newBatch(), spec)
	}},

	// Algorithms.
	{"ErrSHA1Signature", "weak_algorithm", true, func(t *testing.T, e *env, signed []byte) []byte {
		// The token refuses SHA-1; the peer's own key does not.
		spec := e.profileSpec()
		spec.key, spec.certs = e.peerKey, []*x509.Certificate{e.peerCert}
		spec.method, spec.hash = algRSASHA1, crypto.SHA1
		return craft(t, newBatch(), spec)
	}},
	{"ErrSHA1Digest", "weak_algorithm", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.refs[0].digest, spec.refs[0].hash = algSHA1, crypto.SHA1
		return craft(t, newBatch(), spec)
	}},
	{"ErrMD5Digest", "weak_algorithm", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.refs[0].digest, spec.refs[0].hash = algMD5, crypto.MD5
		return craft(t, newBatch(), spec)
	}},
	{"ErrRSASHA512Signature", "unsupported_algorithm", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.method, spec.hash = algRSASHA512, crypto.SHA512
		return craft(t, newBatch(), spec)
	}},
	{"ErrHMACSignature", "unsupported_algorithm", false, func(t *testing.T, e *env, signed []byte) []byte {
		// HMAC keyed with anything the attacker likes, next to a genuine certificate.
		spec := e.profileSpec()
		spec.key, spec.hmacKey, spec.method = nil, []byte("attacker's secret"), algHMACSHA256
		return craft(t, newBatch(), spec)
	}},
	{"ErrInclusiveC14N", "bad_canonicalization", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.c14n = algC14N10
		return craft(t, newBatch(), spec)
	}},
	{"ErrC14NWithComments", "bad_canonicalization", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.c14n = algExcC14NComm
		return craft(t, newBatch(), spec)
	}},
	{"ErrInclusiveC14NTransform", "bad_transforms", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.refs[0].transforms = []string{algEnveloped, algC14N10}
		return craft(t, newBatch(), spec)
	}},
	{"ErrXPathTransform", "bad_transforms", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.refs[0].transforms = []string{algXPath, algExcC14N}
		return craft(t, newBatch(), spec)
	}},
	{"ErrMissingTransform", "bad_transforms", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.refs[0].transforms = []string{algEnveloped}
		return craft(t, newBatch(), spec)
	}},

	// KeyInfo and key.
	{"ErrTwoCertificates", "bad_keyinfo", true, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.certs = []*x509.Certificate{e.cert, e.caCert}
		return craft(t, newBatch(), spec)
	}},
	{"ErrNoCertificate", "bad_keyinfo", false, func(t *testing.T, e *env, signed []byte) []byte {
		spec := e.profileSpec()
		spec.certs = nil
		return craft(t, newBatch(), spec)
	}},
	{"ErrWeakKey", "weak_key", false, func(t *testing.T, e *env, signed []byte) []byte {
		key, cert := mustSelfSigned(t, 1024)
		spec := e.profileSpec()
		spec.key, spec.certs = key, []*x509.Certificate{cert}
		return craft(t, newBatch(), spec)
	}},

	// The signature's own structure.
	{"ErrSignatureObject", "malformed_signature", true, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, "</ds:Signature>", `<ds:Object><FaceValue xmlns="urn:evoucher:exchange:1" currency="EUR">1000000</FaceValue></ds:Object></ds:Signature>`)
	}},
	{"ErrForeignAttribute", "malformed_signature", false, func(t *testing.T, e *env, signed []byte) []byte {
		// etree reads the first Algorithm, encoding/xml (in goxmldsig) the last.
		return mustReplace(t, signed, `Algorithm="`+algRSASHA256+`"`,
			`Algorithm="`+algRSASHA256+`" xmlns:x="urn:x" x:Algorithm="`+algRSASHA1+`"`)
	}},

	// Cryptography.
	{"ErrAlteredText", "bad_digest", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, ">1000<", ">9000<")
	}},
	{"ErrAlteredWhitespace", "bad_digest", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, ">AIRTIME-10<", ">AIRTIME-10 <")
	}},
	{"ErrAlteredAttribute", "bad_digest", false, func(t *testing.T, e *env, signed []byte) []byte {
		return mustReplace(t, signed, `Sender="OP-1"`, `Sender="OP-2"`)
	}},
	{"ErrBadSignatureValue", "bad_signature", false, func(t *testing.T, e *env, signed []byte) []byte {
		doc := mustParse(t, signed)
		sv := signatureOf(t, doc).SelectElement("SignatureValue")
		v, err := base64.StdEncoding.DecodeString(sv.Text())
		if err != nil {
			t.Fatal(err)
		}
		v[len(v)/2] ^= 1
		sv.SetText(b64(v))
		return write(t, doc)
	}},
	{"ErrAlteredSignedInfo", "bad_signature", false, func(t *testing.T, e *env, signed []byte) []byte {
		doc := mustParse(t, signed)
		signatureOf(t, doc).FindElement("./SignedInfo/Reference/DigestValue").SetText(b64(make([]byte, 32)))
		return write(t, doc)
	}},
	{"ErrOtherSigner", "bad_signature", false, func(t *testing.T, e *env, signed []byte) []byte {
		// Another trusted signer's certificate in place of the real one.
		doc := mustParse(t, signed)
		signatureOf(t, doc).FindElement("./KeyInfo/X509Data/X509Certificate").SetText(b64(e.peerCert.Raw))
		return write(t, doc)
	}},
}

func signatureOf(t *testing.T, doc *etree.Document) *etree.Element {
	t.Helper()
	sig := doc.Root().SelectElement("Signature")
	if sig == nil {
		t.Fatal("no signature")
	}
	return sig
}

// evilRoot returns a new document whose root is a copy of doc's root's start tag with Id id,
// holding an evil header, and doc's root (detached from doc).
func evilRoot(doc *etree.Document, id string) (*etree.Document, *etree.Element) {
	root := doc.Root()
	evil := etree.NewDocument()
	evil.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	r := evil.CreateElement("CodeBatch")
	for _, a := range root.Attr {
		r.CreateAttr(a.FullKey(), a.Value)
	}
	r.CreateAttr("Id", id)
	h := r.CreateElement("Header")
	h.CreateElement("Product").SetText("AIRTIME-10")
	fv := h.CreateElement("FaceValue")
	fv.CreateAttr("currency", "EUR")
	fv.SetText("1000000")
	doc.RemoveChild(root)
	return evil, root
}

// insertProlog puts s between the XML declaration and the root element.
func insertProlog(t *testing.T, signed []byte, s string) []byte {
	t.Helper()
	i := bytes.Index(signed, []byte("?>"))
	if i < 0 || !bytes.HasPrefix(signed, []byte("<?xml ")) {
		t.Fatal("no XML declaration")
	}
	i += len("?>")
	return append(append(append([]byte(nil), signed[:i]...), "\n"+s...), signed[i:]...)
}

func mustSelfSigned(t testing.TB, bits int) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "weak"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// beforeTrust reports whether a reason is decided before trust is asked.
func beforeTrust(reason string) bool { return reason != "bad_signature" && reason != "bad_digest" }

func TestHostile(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	signed := mustSignBytes(t, newBatch(), e.key, e.cert)
	if _, _, err := dsig.Verify(mustParse(t, signed), e.trust(nil, pki.RoleOperatorSign)); err != nil {
		t.Fatalf("the document the cases start from is refused: %v", err)
	}
	if *update {
		if err := os.RemoveAll(filepath.Join("testdata", "hostile")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range hostileCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := c.build(t, e, signed)
			var r recorder
			_, _, err := dsig.Verify(mustParse(t, b), e.trust(&r, pki.RoleOperatorSign))
			wantRefusal(t, err, evoucher.KindInvalid, c.reason)
			if n := len(r.calls()); beforeTrust(c.reason) && n != 0 || !beforeTrust(c.reason) && n != 1 {
				t.Errorf("trust called %d times for a %s refusal", n, c.reason)
			}
			if c.xmlsec1 {
				if out, ok := e.xmlsec1Verify(t, c.name, b); !ok {
					t.Fatalf("xmlsec1 refuses the document too, so it does not show that the profile alone refuses it:\n%s\n%s", out, b)
				}
			}
			save(t, "hostile", c.name, b)
		})
	}
}

// TestTestdata checks the saved documents, made by another run's CA and keys, trusting every
// certificate: the valid ones verify, each hostile one is refused for its case's reason by
// the profile alone.
func TestTestdata(t *testing.T) {
	if *update {
		t.Skip("testdata is being rewritten: run again without -update to check it")
	}
	valid, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.xml"))
	if len(valid) == 0 {
		t.Fatal("no testdata/valid/*.xml: run go test -update once")
	}
	for _, path := range valid {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".xml"), func(t *testing.T) {
			el, _, err := dsig.Verify(mustParse(t, mustRead(t, path)), acceptAll)
			if err != nil {
				t.Fatal(err)
			}
			if el.SelectAttrValue("Id", "") != "cb-1" {
				t.Fatalf("signed element has Id %q", el.SelectAttrValue("Id", ""))
			}
		})
	}
	reasons := map[string]string{}
	for _, c := range hostileCases {
		reasons[c.name] = c.reason
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.xml"))
	seen := map[string]bool{}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".xml")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			reason, ok := reasons[name]
			if !ok {
				t.Fatalf("%s matches no case: stale, run go test -update", path)
			}
			_, _, err := dsig.Verify(mustParse(t, mustRead(t, path)), acceptAll)
			wantRefusal(t, err, evoucher.KindInvalid, reason)
		})
	}
	for name := range reasons {
		if !seen[name] {
			t.Errorf("no testdata/hostile/%s.xml: run go test -update", name)
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package dsig_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	xmldsig "github.com/russellhaering/goxmldsig"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// trustForTest is the TrustFor of the tests: it refuses roots named Refused (as a caller
// refuses an envelope), and signers whose common name is "refused" (as pki refuses a signer),
// and trusts every other signer.
func trustForTest(root *etree.Element) (dsig.Trust, error) {
	if root.Tag == "Refused" {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "malformed", "root %s refused", root.Tag)
	}
	id := root.SelectAttrValue("Id", "")
	return func(c *x509.Certificate) error {
		if c.Subject.CommonName == "refused" {
			return evoucher.Errorf(evoucher.KindForbidden, "refused_signer", "signer refused for %s", id)
		}
		return nil
	}, nil
}

// verifyBytesReference is what VerifyBytes must agree with: message.Parse, the TrustFor, then
// VerifyRoot.
func verifyBytesReference(v *dsig.Verifier, b []byte) (*etree.Element, *x509.Certificate, error) {
	doc, err := message.Parse(b, message.DefaultLimits)
	if err != nil {
		return nil, nil, err
	}
	trust, err := trustForTest(doc.Root())
	if err != nil {
		return nil, nil, err
	}
	return v.VerifyRoot(doc, trust)
}

// attrsOf lists an element's attributes as "space:key=value".
func attrsOf(el *etree.Element) string {
	var s []string
	for _, a := range el.Attr {
		s = append(s, fmt.Sprintf("%s:%s=%q", a.Space, a.Key, a.Value))
	}
	return strings.Join(s, " ")
}

// agree fails t unless VerifyBytes and verifyBytesReference decide the same on b (both accept
// with the same root and certificate, or refuse with the same error), and reports whether
// VerifyBytes' fast path accepted b and whether b was accepted.
func agreeBytes(t testing.TB, v *dsig.Verifier, b []byte) (fast, ok bool) {
	t.Helper()
	before := dsig.FastVerifies()
	got, gotCert, gotErr := v.VerifyBytes(b, message.DefaultLimits, trustForTest)
	fast = dsig.FastVerifies() != before
	want, wantCert, wantErr := verifyBytesReference(v, b)
	switch {
	case gotErr != nil || wantErr != nil:
		if gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error() {
			t.Fatalf("VerifyBytes: %v, VerifyRoot: %v (fast path: %v)\n%s", gotErr, wantErr, fast, b)
		}
		if got != nil || gotCert != nil {
			t.Fatalf("VerifyBytes refused (%v) but returned an element or certificate", gotErr)
		}
		if fast {
			t.Fatalf("the fast path counted a refusal: %v", gotErr)
		}
		return fast, false
	case got.Tag != want.Tag || got.Space != want.Space || got.NamespaceURI() != want.NamespaceURI() || attrsOf(got) != attrsOf(want) || len(got.Child) != 0:
		t.Fatalf("VerifyBytes returned <%s:%s %s> (%d children), VerifyRoot <%s:%s %s> (fast path: %v)\n%s",
			got.Space, got.Tag, attrsOf(got), len(got.Child), want.Space, want.Tag, attrsOf(want), fast, b)
	case gotCert == nil || !bytes.Equal(gotCert.Raw, wantCert.Raw):
		t.Fatalf("VerifyBytes and VerifyRoot returned different certificates (fast path: %v)", fast)
	}
	for _, k := range []string{"Id", "MessageId", "Sender", "Recipient", "Created"} {
		if got.SelectAttrValue(k, "?") != want.SelectAttrValue(k, "?") {
			t.Fatalf("%s: %q, want %q", k, got.SelectAttrValue(k, "?"), want.SelectAttrValue(k, "?"))
		}
	}
	return fast, true
}

// corpus is every saved document: dsig's valid and hostile ones, message's examples and
// codevault's hostile messages.
func corpus(t testing.TB) map[string][]byte {
	t.Helper()
	docs := map[string][]byte{}
	for _, pattern := range []string{
		filepath.Join("testdata", "valid", "*.xml"),
		filepath.Join("testdata", "hostile", "*.xml"),
		filepath.Join("..", "message", "testdata", "*.xml"),
		filepath.Join("..", "..", "codevault", "testdata", "hostile", "*.xml"),
	} {
		paths, err := filepath.Glob(pattern)
		if err != nil || len(paths) == 0 {
			t.Fatalf("no documents %s", pattern)
		}
		for _, p := range paths {
			docs[p] = mustRead(t, p)
		}
	}
	return docs
}

// signedDocs are documents signed in the test: CodeBatch documents with RSA-2048 and RSA-3072
// keys, and one with a signer that trustForTest refuses.
func signedDocs(t testing.TB) map[string][]byte {
	t.Helper()
	docs := map[string][]byte{}
	for _, bits := range []int{2048, 3072} {
		key, cert := mustSelfSigned(t, bits)
		b, err := dsig.SignBytes(newBatch(), key, cert)
		if err != nil {
			t.Fatal(err)
		}
		docs[fmt.Sprintf("RSA%d", bits)] = b
		compact := newBatch()
		compact.Unindent()
		if b, err = dsig.SignBytes(compact, key, cert); err != nil {
			t.Fatal(err)
		}
		docs[fmt.Sprintf("RSA%dCompact", bits)] = b
	}
	key, cert := mustSelfSignedNamed(t, 2048, "refused")
	b, err := dsig.SignBytes(newBatch(), key, cert)
	if err != nil {
		t.Fatal(err)
	}
	docs["RefusedSigner"] = b
	return docs
}

// mutations are changes of a signed document that keep it well-formed, some of which keep its
// signature valid.
var mutations = []struct {
	name string
	fast bool // the fast path accepts the result
	f    func(string) string
}{
	{"Unchanged", true, func(s string) string { return s }},
	{"NoDeclaration", true, func(s string) string { return s[strings.Index(s, "?>")+2:] }},
	{"SingleQuotes", true, func(s string) string { return strings.Replace(s, `Id="hdr-1"`, `Id='hdr-1'`, 1) }},
	{"SpaceInTags", true, func(s string) string {
		return strings.Replace(strings.Replace(s, `<Header Id="hdr-1">`, "<Header\n Id = \"hdr-1\"\t>", 1), "</Count>", "</Count \n>", 1)
	}},
	{"RootAttributesReordered", true, func(s string) string {
		re := regexp.MustCompile(`<CodeBatch ([^>]*)>`)
		return re.ReplaceAllStringFunc(s, func(tag string) string {
			attrs := strings.Fields(tag[len("<CodeBatch ") : len(tag)-1])
			for i, j := 0, len(attrs)-1; i < j; i, j = i+1, j-1 {
				attrs[i], attrs[j] = attrs[j], attrs[i]
			}
			return "<CodeBatch " + strings.Join(attrs, " ") + ">"
		})
	}},
	{"ReferenceInText", true, func(s string) string { return strings.Replace(s, "B-2026-0001", "B&#x2D;2026&#45;0001", 1) }},
	{"ReferenceInAttribute", true, func(s string) string { return strings.Replace(s, `currency="EUR"`, `currency="&#69;UR"`, 1) }},
	{"ReferenceInRootId", false, func(s string) string { return strings.Replace(s, `Id="cb-1"`, `Id="cb&#x2D;1"`, 1) }},
	{"EmptyElementOpenClose", true, func(s string) string {
		return strings.Replace(s, `enveloped-signature"/>`, `enveloped-signature"></ds:Transform>`, 1)
	}},
	{"SpaceInSignature", true, func(s string) string {
		return strings.NewReplacer("</ds:SignedInfo>", "</ds:SignedInfo>\n  ", "<ds:X509Data>", "<ds:X509Data>\n\t", "</ds:KeyInfo>", "</ds:KeyInfo>\n").Replace(s)
	}},
	{"SpaceInSignedInfo", false, func(s string) string {
		return strings.NewReplacer("<ds:SignedInfo>", "<ds:SignedInfo>\n  ", "</ds:Reference>", "</ds:Reference>\n").Replace(s)
	}},
	{"TrailingSpace", true, func(s string) string { return s + "\n\n \t" }},
	{"SpaceAfterSignature", false, func(s string) string { return strings.Replace(s, "</ds:Signature>", "</ds:Signature>\n  ", 1) }},
	{"CRLF", false, func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }},
	{"CDATA", false, func(s string) string { return strings.Replace(s, "B-2026-0001", "<![CDATA[B-2026-0001]]>", 1) }},
	{"CDATASameText", false, func(s string) string {
		return strings.Replace(s, "<Count>3</Count>", "<Count><![CDATA[3]]></Count>", 1)
	}},
	{"Comment", false, func(s string) string { return strings.Replace(s, "<Count>", "<Count><!-- x -->", 1) }},
	{"CommentInSignature", false, func(s string) string { return strings.Replace(s, "<ds:SignedInfo>", "<ds:SignedInfo><!---->", 1) }},
	{"ProcessingInstruction", false, func(s string) string { return strings.Replace(s, "<Count>", "<Count><?pi x?>", 1) }},
	{"Doctype", false, func(s string) string { return strings.Replace(s, "?>", "?><!DOCTYPE CodeBatch>", 1) }},
	{"SignatureDuplicated", false, func(s string) string {
		sig := s[strings.Index(s, "<ds:Signature"):strings.Index(s, "</CodeBatch>")]
		return strings.Replace(s, "<ds:Signature", sig+"<ds:Signature", 1)
	}},
	{"SignatureMovedIntoHeader", false, func(s string) string {
		sig := s[strings.Index(s, "<ds:Signature"):strings.Index(s, "</CodeBatch>")]
		s = strings.Replace(s, sig, "", 1)
		return strings.Replace(s, "</Header>", sig+"</Header>", 1)
	}},
	{"SignatureFirst", false, func(s string) string {
		sig := s[strings.Index(s, "<ds:Signature"):strings.Index(s, "</CodeBatch>")]
		s = strings.Replace(s, sig, "", 1)
		return strings.Replace(s, "<Header", sig+"<Header", 1)
	}},
	{"ElementAfterSignature", false, func(s string) string { return strings.Replace(s, "</CodeBatch>", "<Extra/></CodeBatch>", 1) }},
	{"TextAfterSignature", false, func(s string) string { return strings.Replace(s, "</CodeBatch>", "x</CodeBatch>", 1) }},
	{"SignaturePrefixChanged", false, func(s string) string {
		return strings.NewReplacer("<ds:", "<dsig:", "</ds:", "</dsig:", "xmlns:ds=", "xmlns:dsig=").Replace(s)
	}},
	{"SignatureDefaultNamespace", false, func(s string) string {
		return strings.NewReplacer("<ds:", "<", "</ds:", "</", "xmlns:ds=", "xmlns=").Replace(s)
	}},
	{"NamespaceDeclaredOnContent", true, func(s string) string {
		return strings.Replace(s, `<Header Id="hdr-1">`, `<Header xmlns:x="urn:x" Id="hdr-1">`, 1)
	}},
	{"PrefixedContent", false, func(s string) string {
		return strings.Replace(s, `<Count>3</Count>`, `<x:Count xmlns:x="urn:x" x:a="1" b="2">3</x:Count>`, 1)
	}},
	{"UndeclaredPrefix", false, func(s string) string { return strings.Replace(s, `<Count>3</Count>`, `<x:Count>3</x:Count>`, 1) }},
	{"EmptyDefaultNamespace", false, func(s string) string { return strings.Replace(s, `<Count>`, `<Count xmlns="">`, 1) }},
	{"DuplicateId", false, func(s string) string { return strings.Replace(s, `Id="hdr-1"`, `Id="cb-1"`, 1) }},
	{"DuplicateIdOtherCase", false, func(s string) string { return strings.Replace(s, `Id="hdr-1"`, `ID="cb-1"`, 1) }},
	{"RootTwoIds", false, func(s string) string { return strings.Replace(s, `Id="cb-1"`, `Id="cb-1" id="cb-1"`, 1) }},
	{"RootPrefixed", false, func(s string) string {
		return strings.NewReplacer("<CodeBatch xmlns=", "<e:CodeBatch xmlns:e=", "</CodeBatch>", "</e:CodeBatch>").Replace(s)
	}},
	{"RootNamespaceChanged", false, func(s string) string {
		return strings.Replace(s, "urn:evoucher:exchange:1", "urn:evoucher:exchange:2", 1)
	}},
	{"RootRefused", false, func(s string) string {
		return strings.NewReplacer("<CodeBatch", "<Refused", "</CodeBatch>", "</Refused>").Replace(s)
	}},
	{"SignatureId", false, func(s string) string { return strings.Replace(s, "<ds:Signature ", `<ds:Signature Id="s" `, 1) }},
	{"ForeignAttribute", false, func(s string) string { return strings.Replace(s, "<ds:SignedInfo>", `<ds:SignedInfo a="1">`, 1) }},
	{"DigestAltered", false, func(s string) string {
		i := strings.Index(s, "<ds:DigestValue>") + len("<ds:DigestValue>")
		return s[:i] + "A" + s[i+1:]
	}},
	{"SignatureValueWrapped", true, func(s string) string {
		i := strings.Index(s, "<ds:SignatureValue>") + len("<ds:SignatureValue>") + 10
		return s[:i] + "\n" + s[i:]
	}},
	{"SignatureValueSpace", false, func(s string) string {
		i := strings.Index(s, "<ds:SignatureValue>") + len("<ds:SignatureValue>") + 10
		return s[:i] + " " + s[i:]
	}},
	{"CertificateWrapped", true, func(s string) string {
		i := strings.Index(s, "<ds:X509Certificate>") + len("<ds:X509Certificate>") + 64
		return s[:i] + "\n" + s[i:]
	}},
	{"TextAltered", false, func(s string) string { return strings.Replace(s, "AIRTIME-10", "AIRTIME-99", 1) }},
	{"TextEscaped", true, func(s string) string { return strings.Replace(s, "AIRTIME-10", "&#65;IRTIME-10", 1) }},
	{"BOM", false, func(s string) string { return "\ufeff" + s }},
	{"UTF16Declaration", false, func(s string) string { return strings.Replace(s, `encoding="UTF-8"`, `encoding="UTF-16"`, 1) }},
}

func TestVerifyBytesAgrees(t *testing.T) {
	v := dsig.NewVerifier()
	t.Run("Corpus", func(t *testing.T) {
		fast := 0
		for name, b := range corpus(t) {
			if f, _ := agreeBytes(t, v, b); f {
				fast++
				t.Logf("%s: fast path", name)
			}
		}
		if fast < 2 {
			t.Fatalf("the fast path accepted %d saved documents, want at least the valid ones of SignBytes", fast)
		}
	})
	for name, signed := range signedDocs(t) {
		t.Run(name, func(t *testing.T) {
			for _, m := range mutations {
				b := []byte(m.f(string(signed)))
				if name != "RSA2048" && !m.fast {
					// The cases the fast path leaves to the fallback are the same for every key.
					agreeBytes(t, v, b)
					continue
				}
				if bytes.Equal(b, signed) && m.name != "Unchanged" {
					t.Fatalf("%s: the mutation changed nothing", m.name)
				}
				fast, ok := agreeBytes(t, v, b)
				switch {
				case name == "RefusedSigner":
					if ok || fast {
						t.Fatalf("%s: a refused signer was accepted", m.name)
					}
				case fast != m.fast && !strings.Contains(name, "Compact"):
					t.Fatalf("%s: fast path taken: %v, want %v (accepted: %v)", m.name, fast, m.fast, ok)
				}
			}
		})
	}
	t.Run("EachByteFlipped", func(t *testing.T) {
		signed := signedDocs(t)["RSA2048Compact"]
		accepted := 0
		for i := range signed {
			for _, x := range []byte{0x01, 0x20} {
				b := bytes.Clone(signed)
				b[i] ^= x
				if _, ok := agreeBytes(t, v, b); ok {
					accepted++
				}
			}
		}
		t.Logf("%d of %d flips accepted by both", accepted, 2*len(signed))
	})
}

func TestVerifyBytesFastPath(t *testing.T) {
	for _, bits := range []int{2048, 3072} {
		t.Run(fmt.Sprintf("RSA%d", bits), func(t *testing.T) {
			key, cert := mustSelfSigned(t, bits)
			signed, err := dsig.SignBytes(newBatch(), key, cert)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []*dsig.Verifier{nil, dsig.NewVerifier()} {
				calls := 0
				before := dsig.FastVerifies()
				el, got, err := v.VerifyBytes(signed, message.DefaultLimits, func(root *etree.Element) (dsig.Trust, error) {
					if root.Tag != "CodeBatch" || root.NamespaceURI() != nsExchange || root.SelectAttrValue("Sender", "") != "OP-1" {
						t.Errorf("trustFor was given <%s> in %q", root.Tag, root.NamespaceURI())
					}
					return func(c *x509.Certificate) error {
						calls++
						if !c.Equal(cert) {
							t.Error("trust was asked about another certificate")
						}
						return nil
					}, nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if n := dsig.FastVerifies() - before; n != 1 {
					t.Fatalf("SignBytes' document took the fast path %d times, want 1", n)
				}
				if calls != 1 {
					t.Fatalf("trust called %d times, want 1", calls)
				}
				if !got.Equal(cert) || el.Tag != "CodeBatch" || el.NamespaceURI() != nsExchange || el.SelectAttrValue("MessageId", "") != "5f0c3a52-9a7e-4c1b-8d7e-1f2a3b4c5d6e" {
					t.Fatalf("returned <%s %s> signed by %s", el.Tag, attrsOf(el), got.Subject)
				}
			}
		})
	}
	t.Run("ErrRefusedByTrust", func(t *testing.T) {
		key, cert := mustSelfSigned(t, 2048)
		signed, err := dsig.SignBytes(newBatch(), key, cert)
		if err != nil {
			t.Fatal(err)
		}
		before := dsig.FastVerifies()
		calls := 0
		_, _, err = dsig.NewVerifier().VerifyBytes(signed, message.DefaultLimits, func(*etree.Element) (dsig.Trust, error) {
			return func(*x509.Certificate) error {
				calls++
				return evoucher.Errorf(evoucher.KindUnauthorized, "revoked", "revoked")
			}, nil
		})
		wantRefusal(t, err, evoucher.KindUnauthorized, "revoked")
		if !strings.Contains(err.Error(), "refused") || dsig.FastVerifies() != before || calls != 2 {
			t.Fatalf("got %v after %d calls of trust (fast path counted %d), want VerifyRoot's refusal after 2", err, calls, dsig.FastVerifies()-before)
		}
	})
	t.Run("ErrLimits", func(t *testing.T) {
		key, cert := mustSelfSigned(t, 2048)
		signed, err := dsig.SignBytes(newBatch(), key, cert)
		if err != nil {
			t.Fatal(err)
		}
		for _, lim := range []message.Limits{{MaxBytes: len(signed) - 1, MaxDepth: 24, MaxElements: 100}, {MaxBytes: 1 << 20, MaxDepth: 2, MaxElements: 100}, {MaxBytes: 1 << 20, MaxDepth: 24, MaxElements: 10}} {
			_, _, err := dsig.NewVerifier().VerifyBytes(signed, lim, trustForTest)
			_, perr := message.Parse(signed, lim)
			if err == nil || perr == nil || err.Error() != perr.Error() {
				t.Fatalf("limits %+v: %v, want message.Parse's %v", lim, err, perr)
			}
		}
	})
}

// FuzzVerifyBytesAgrees holds VerifyBytes to message.Parse then VerifyRoot, on mutations of
// the saved documents and of documents signed in the test.
//
//	go test -run XXX -fuzz FuzzVerifyBytesAgrees -fuzztime 5m ./xml/dsig/
func FuzzVerifyBytesAgrees(f *testing.F) {
	for _, b := range corpus(f) {
		f.Add(b)
	}
	for _, signed := range signedDocs(f) {
		for _, m := range mutations {
			f.Add([]byte(m.f(string(signed))))
		}
	}
	key, cert := mustSelfSigned(f, 2048)
	for _, c := range soundlySigned {
		doc := newBatch()
		c.edit(doc.Root())
		f.Add(signRaw(f, doc, key, cert))
	}
	v := dsig.NewVerifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		agreeBytes(t, v, b)
	})
}

// mustSelfSignedNamed is mustSelfSigned with a common name of its own.
func mustSelfSignedNamed(t testing.TB, bits int, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: cn},
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

// signRaw signs doc's root as Sign does, but without Sign's checks, so that the result may
// break the profile while its signature and digest are sound: what the fast path must not
// accept on the strength of its cryptography.
func signRaw(t testing.TB, doc *etree.Document, key *rsa.PrivateKey, cert *x509.Certificate) []byte {
	t.Helper()
	ctx, err := xmldsig.NewSigningContext(key, [][]byte{cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx.Canonicalizer = xmldsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	ctx.IdAttribute = "Id"
	ctx.Prefix = xmldsig.DefaultPrefix
	if err := ctx.SetSignatureMethod("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"); err != nil {
		t.Fatal(err)
	}
	out := doc.Copy()
	root := out.Root()
	sig, err := ctx.ConstructSignature(root, true)
	if err != nil {
		t.Fatal(err)
	}
	root.AddChild(sig)
	out.WriteSettings = etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true}
	b, err := out.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// soundlySigned are edits of newBatch's root that break the profile (but for those whose
// reason is ""), signed with signRaw.
var soundlySigned = []struct {
	name, reason string
	edit         func(root *etree.Element)
}{
	{"OK", "", func(*etree.Element) {}},
	{"ErrRootIsSignature", "signature_multiple", func(root *etree.Element) {
		root.Tag = "Signature"
		root.RemoveAttr("xmlns")
		root.CreateAttr("xmlns", nsDSig)
	}},
	{"ErrDuplicateId", "duplicate_id", func(root *etree.Element) {
		root.FindElement("Header").CreateAttr("Id", "cb-1")
	}},
	{"ErrDuplicateIdOtherCase", "duplicate_id", func(root *etree.Element) {
		root.FindElement("Header").CreateAttr("iD", "cb-1")
	}},
	{"ErrDuplicateIdPrefixed", "duplicate_id", func(root *etree.Element) {
		h := root.FindElement("Header")
		h.CreateAttr("xmlns:p", "urn:p")
		h.CreateAttr("p:Id", "cb-1")
	}},
	{"ErrRootTwoIds", "duplicate_id", func(root *etree.Element) {
		root.CreateAttr("ID", "other")
	}},
	{"ErrNestedSignature", "signature_multiple", func(root *etree.Element) {
		root.FindElement("Header").CreateElement("ds:Signature").CreateAttr("xmlns:ds", nsDSig)
	}},
	{"ErrNestedSignatureDefaultNamespace", "signature_multiple", func(root *etree.Element) {
		root.FindElement("Header").CreateElement("Signature").CreateAttr("xmlns", nsDSig)
	}},
	{"OKSignatureOtherNamespace", "", func(root *etree.Element) {
		root.FindElement("Header").CreateElement("Signature").CreateAttr("xmlns", "urn:other")
	}},
	{"OKPrefixedContent", "", func(root *etree.Element) {
		c := root.FindElement("Header").CreateElement("x:Extra")
		c.CreateAttr("xmlns:x", "urn:x")
		c.CreateAttr("x:b", "1")
		c.CreateAttr("a", "2")
		c.SetText("t")
	}},
}

// TestVerifyBytesSoundlySigned feeds VerifyBytes documents whose signature and digest hold but
// which break the profile: each must be refused, with VerifyRoot's reason.
func TestVerifyBytesSoundlySigned(t *testing.T) {
	key, cert := mustSelfSigned(t, 2048)
	v := dsig.NewVerifier()
	for _, c := range soundlySigned {
		t.Run(c.name, func(t *testing.T) {
			doc := newBatch()
			c.edit(doc.Root())
			b := signRaw(t, doc, key, cert)
			fast, ok := agreeBytes(t, v, b)
			if c.reason == "" {
				if !ok || !fast {
					t.Fatalf("accepted: %v, fast path: %v, want both\n%s", ok, fast, b)
				}
				return
			}
			_, _, err := v.VerifyBytes(b, message.DefaultLimits, trustForTest)
			wantRefusal(t, err, evoucher.KindInvalid, c.reason)
		})
	}
}

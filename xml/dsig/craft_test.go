package dsig_test

import (
	"crypto"
	"crypto/hmac"
	_ "crypto/md5" // for MD5 digests in hostile documents
	"crypto/rand"
	_ "crypto/sha1" // for SHA-1 in hostile documents
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"testing"

	"github.com/beevik/etree"
	xmldsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// Algorithm identifiers, the profile's and others, for building signatures by hand.
const (
	nsDSig           = "http://www.w3.org/2000/09/xmldsig#"
	algExcC14N       = "http://www.w3.org/2001/10/xml-exc-c14n#"
	algExcC14NComm   = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
	algC14N10        = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	algC14N11        = "http://www.w3.org/2006/12/xml-c14n11"
	algEnveloped     = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	algXPath         = "http://www.w3.org/TR/1999/REC-xpath-19991116"
	algRSASHA256     = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algRSASHA512     = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	algRSASHA1       = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	algHMACSHA256    = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
	algSHA256        = "http://www.w3.org/2001/04/xmlenc#sha256"
	algSHA1          = "http://www.w3.org/2000/09/xmldsig#sha1"
	algMD5           = "http://www.w3.org/2001/04/xmldsig-more#md5"
	envelopedXPathEx = "not(ancestor-or-self::ds:Signature)"
)

// sigSpec describes a signature built by hand: correct under its own algorithms, so that a
// refusal of the document can only come from the profile (xmlsec1 confirms it where it can).
type sigSpec struct {
	key     crypto.Signer // signs SignedInfo; nil with hmacKey
	hmacKey []byte        // for an HMAC signature method instead
	c14n    string        // SignedInfo canonicalization
	method  string        // SignatureMethod
	hash    crypto.Hash   // its hash
	refs    []refSpec
	certs   []*x509.Certificate // KeyInfo/X509Data
}

type refSpec struct {
	uri        string   // "" for the whole document, "#id" for an element
	transforms []string // Algorithm URIs, in order
	digest     string   // DigestMethod
	hash       crypto.Hash
}

// profileSpec is the profile's own signature by the token signer; cases change one thing.
func (e *env) profileSpec() sigSpec {
	return sigSpec{
		key: e.key, c14n: algExcC14N, method: algRSASHA256, hash: crypto.SHA256,
		refs:  []refSpec{{uri: "#cb-1", transforms: []string{algEnveloped, algExcC14N}, digest: algSHA256, hash: crypto.SHA256}},
		certs: []*x509.Certificate{e.cert},
	}
}

// craft appends to a copy of doc's root the signature spec describes, computing digests and
// the signature value as a general XML-DSig signer would, and returns the document.
func craft(t *testing.T, doc *etree.Document, spec sigSpec) []byte {
	t.Helper()
	doc = doc.Copy()
	root := doc.Root()
	sig := etree.NewElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", nsDSig)
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", spec.c14n)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", spec.method)
	for _, r := range spec.refs {
		target := root // also for URI="": the document is its root and the XML declaration
		if r.uri != "" {
			target = findID(root, r.uri[1:])
			if target == nil {
				t.Fatalf("no element with Id %q", r.uri[1:])
			}
		}
		ref := si.CreateElement("ds:Reference")
		ref.CreateAttr("URI", r.uri)
		ts := ref.CreateElement("ds:Transforms")
		c14n := algC14N10 // what a node-set becomes without a c14n transform
		for _, alg := range r.transforms {
			tr := ts.CreateElement("ds:Transform")
			tr.CreateAttr("Algorithm", alg)
			switch alg {
			case algXPath:
				// Selects all but the signature: the same node-set as enveloped-signature.
				tr.CreateElement("ds:XPath").SetText(envelopedXPathEx)
			case algExcC14N, algExcC14NComm, algC14N10, algC14N11:
				c14n = alg
			}
		}
		ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", r.digest)
		// The signature is not in the tree yet, as enveloped-signature would make it.
		ref.CreateElement("ds:DigestValue").SetText(b64(sum(t, r.hash, canon(t, target, c14n))))
	}
	sv := sig.CreateElement("ds:SignatureValue")
	xd := sig.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data")
	for _, c := range spec.certs {
		xd.CreateElement("ds:X509Certificate").SetText(b64(c.Raw))
	}
	root.AddChild(sig)

	signedInfo := canon(t, si, spec.c14n)
	var value []byte
	if spec.hmacKey != nil {
		m := hmac.New(sha256.New, spec.hmacKey)
		m.Write(signedInfo)
		value = m.Sum(nil)
	} else {
		var err error
		if value, err = spec.key.Sign(rand.Reader, sum(t, spec.hash, signedInfo), spec.hash); err != nil {
			t.Fatal(err)
		}
	}
	sv.SetText(b64(value))
	return write(t, doc)
}

// canon canonicalizes el where it stands in its document (with the namespaces in scope), by
// the c14n algorithm alg, without changing it.
func canon(t *testing.T, el *etree.Element, alg string) []byte {
	t.Helper()
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		t.Fatal(err)
	}
	detached, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		t.Fatal(err)
	}
	var c xmldsig.Canonicalizer
	switch alg {
	case algExcC14N:
		c = xmldsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	case algExcC14NComm:
		c = xmldsig.MakeC14N10ExclusiveWithCommentsCanonicalizerWithPrefixList("")
	case algC14N10:
		c = xmldsig.MakeC14N10RecCanonicalizer()
	case algC14N11:
		c = xmldsig.MakeC14N11Canonicalizer()
	default:
		t.Fatalf("no canonicalizer for %s", alg)
	}
	b, err := c.Canonicalize(detached)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sum(t *testing.T, h crypto.Hash, b []byte) []byte {
	t.Helper()
	if !h.Available() {
		t.Fatalf("hash %v not linked in", h)
	}
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// findID returns the element of root's tree whose Id is id.
func findID(root *etree.Element, id string) *etree.Element {
	if root.SelectAttrValue("Id", "") == id {
		return root
	}
	for _, c := range root.ChildElements() {
		if f := findID(c, id); f != nil {
			return f
		}
	}
	return nil
}

// write serializes doc so that it parses back to the same tree.
func write(t *testing.T, doc *etree.Document) []byte {
	t.Helper()
	doc.WriteSettings = etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true}
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package dsig

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"maps"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
)

// refuse returns the invalid error of a document that breaks the profile.
func refuse(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, reason, format, args...)
}

// nsXML is bound to the prefix xml in every document.
const nsXML = "http://www.w3.org/XML/1998/namespace"

// scan is what one pass over a document finds.
type scan struct {
	root   *etree.Element
	rootID string           // the value of the root's Id attribute, "" when it has none
	sigs   []*etree.Element // every ds:Signature, at any depth, in document order
	dupID  *etree.Element   // the first element other than the root with an id equal to rootID
	// signing is set when the scan serves Sign: invalid characters are then refused, since
	// they could not be written out as signed.
	signing bool
}

// scanDocument checks the document level (one root element, no DOCTYPE, no comment, no
// processing instruction but the XML declaration) and then the root's whole tree.
func scanDocument(doc *etree.Document, signing bool) (*scan, error) {
	if doc == nil {
		return nil, refuse("malformed_document", "no document")
	}
	var root *etree.Element
	for i, t := range doc.Child {
		switch t := t.(type) {
		case *etree.Element:
			if root != nil {
				return nil, refuse("malformed_document", "the document has more than one root element (<%s> and <%s>)", root.FullTag(), t.FullTag())
			}
			root = t
		case *etree.CharData:
			if !isXMLSpace(t.Data) {
				return nil, refuse("malformed_document", "the document has text outside its root element")
			}
		case *etree.ProcInst:
			if t.Target != "xml" || i != 0 {
				return nil, refuse("processing_instruction", "the document carries the processing instruction <?%s?>: processing instructions are not accepted", t.Target)
			}
		case *etree.Comment:
			return nil, refuse("comment", "the document carries an XML comment: comments are not accepted anywhere in a signed document")
		case *etree.Directive:
			return nil, refuse("doctype", "the document carries a DOCTYPE or other declaration: DTDs are not accepted")
		}
	}
	if root == nil {
		return nil, refuse("malformed_document", "the document has no root element")
	}
	return scanRoot(root, signing)
}

// scanRoot checks root's tree. It does not require root to be a document's root element.
func scanRoot(root *etree.Element, signing bool) (*scan, error) {
	s := &scan{root: root, signing: signing}
	var ids int
	for _, a := range root.Attr {
		if strings.EqualFold(a.Key, idAttr) {
			ids++
			if a.Space == "" && a.Key == idAttr {
				s.rootID = a.Value
			}
		}
	}
	if ids > 1 {
		return nil, refuse("duplicate_id", "the root element <%s> carries %d identifier attributes (Id, ID, id, xml:id…): it must carry exactly one, Id", root.FullTag(), ids)
	}
	if err := s.walk(root, map[string]string{"xml": nsXML}); err != nil {
		return nil, err
	}
	return s, nil
}

// walk checks el and its descendants, keeping the namespace declarations in scope so that a
// ds:Signature is recognised by namespace, whatever its prefix.
func (s *scan) walk(el *etree.Element, scope map[string]string) error {
	cloned := false
	for _, a := range el.Attr {
		if prefix, ok := nsDecl(a); ok {
			if !cloned {
				scope, cloned = maps.Clone(scope), true
			}
			scope[prefix] = a.Value
		}
	}
	seen := make(map[[2]string]bool, len(el.Attr))
	for _, a := range el.Attr {
		k := [2]string{a.Space, a.Key}
		if seen[k] {
			return refuse("malformed_document", "element <%s> carries the attribute %s twice", el.FullTag(), a.FullKey())
		}
		seen[k] = true
		if s.signing {
			if err := checkChars(a.Value); err != nil {
				return refuse("invalid_character", "attribute %s of <%s>: %v", a.FullKey(), el.FullTag(), err)
			}
		}
		if _, ok := nsDecl(a); ok {
			continue
		}
		if a.Space != "" && scope[a.Space] == "" {
			return refuse("malformed_document", "attribute %s of <%s> uses an undeclared namespace prefix", a.FullKey(), el.FullTag())
		}
		if el != s.root && s.rootID != "" && strings.EqualFold(a.Key, idAttr) && a.Value == s.rootID && s.dupID == nil {
			s.dupID = el
		}
	}
	if el.Space != "" && scope[el.Space] == "" {
		return refuse("malformed_document", "element <%s> uses the undeclared namespace prefix %q", el.FullTag(), el.Space)
	}
	if el.Tag == "Signature" && scope[el.Space] == nsDSig {
		s.sigs = append(s.sigs, el)
	}
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if err := s.walk(t, scope); err != nil {
				return err
			}
		case *etree.Comment:
			return refuse("comment", "element <%s> contains an XML comment: comments are not accepted anywhere in a signed document (exclusive c14n drops them, so they could change what a reader sees without breaking the signature)", el.FullTag())
		case *etree.ProcInst:
			return refuse("processing_instruction", "element <%s> contains the processing instruction <?%s?>: processing instructions are not accepted", el.FullTag(), t.Target)
		case *etree.Directive:
			return refuse("doctype", "element <%s> contains a declaration <!%.20s…>: declarations are not accepted", el.FullTag(), t.Data)
		case *etree.CharData:
			if s.signing {
				if err := checkChars(t.Data); err != nil {
					return refuse("invalid_character", "text of <%s>: %v", el.FullTag(), err)
				}
			}
		}
	}
	return nil
}

// nsDecl reports whether a declares a namespace, and for which prefix ("" for the default).
func nsDecl(a etree.Attr) (prefix string, ok bool) {
	switch {
	case a.Space == "xmlns":
		return a.Key, true
	case a.Space == "" && a.Key == "xmlns":
		return "", true
	}
	return "", false
}

// checkChars refuses text that etree would not write out unchanged: invalid UTF-8 and
// characters outside XML's Char production.
func checkChars(s string) error {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Errorf("invalid UTF-8 at byte %d", i)
		case r == 0x9 || r == 0xA || r == 0xD,
			r >= 0x20 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD,
			r >= 0x10000 && r <= 0x10FFFF:
		default:
			return fmt.Errorf("character %U is not allowed in XML", r)
		}
	}
	return nil
}

func isXMLSpace(s string) bool {
	return strings.Trim(s, " \t\r\n") == ""
}

// checkPlacement enforces one ds:Signature, the last child element of the root, with nothing
// but white space after it, a root Id, and no other element carrying that Id.
func (s *scan) checkPlacement() (*etree.Element, error) {
	root := s.root
	switch len(s.sigs) {
	case 0:
		return nil, refuse("signature_missing", "<%s> carries no ds:Signature: sign the document", root.FullTag())
	case 1:
	default:
		return nil, refuse("signature_multiple", "the document carries %d ds:Signature elements: exactly one, the last child of the root element <%s>, is accepted", len(s.sigs), root.FullTag())
	}
	sig := s.sigs[0]
	if sig.Parent() != root {
		return nil, refuse("signature_misplaced", "the ds:Signature is inside <%s>, not a child of the root element <%s>: the signature must be the root's last child", sig.Parent().FullTag(), root.FullTag())
	}
	for _, t := range root.Child[sig.Index()+1:] {
		switch t := t.(type) {
		case *etree.Element:
			return nil, refuse("signature_misplaced", "<%s> follows the ds:Signature: the signature must be the last child of the root element <%s>", t.FullTag(), root.FullTag())
		case *etree.CharData:
			if !isXMLSpace(t.Data) {
				return nil, refuse("signature_misplaced", "text follows the ds:Signature: the signature must be the last child of the root element <%s>", root.FullTag())
			}
		}
	}
	if s.rootID == "" {
		return nil, refuse("reference_mismatch", "the root element <%s> has no Id attribute for the signature to reference", root.FullTag())
	}
	if s.dupID != nil {
		return nil, refuse("duplicate_id", "element <%s> carries the identifier %q of the root element <%s>: identifiers must be unique", s.dupID.FullTag(), s.rootID, root.FullTag())
	}
	return sig, nil
}

// profile is what checkSignature reads from a signature that fits the profile.
type profile struct {
	cert       *x509.Certificate
	signer     *signer // cert, with its key's precomputations
	signedInfo *etree.Element
	sigValue   []byte // SignatureValue, decoded
	digest     []byte // the Reference's DigestValue, decoded: 32 bytes
}

// dsChildren returns el's child elements, which must all be in the XML-DSig namespace, and
// refuses non-blank text between them.
func dsChildren(el *etree.Element) ([]*etree.Element, error) {
	var out []*etree.Element
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if t.NamespaceURI() != nsDSig {
				return nil, refuse("malformed_signature", "<%s> inside ds:%s is not an XML-DSig element", t.FullTag(), el.Tag)
			}
			out = append(out, t)
		case *etree.CharData:
			if !isXMLSpace(t.Data) {
				return nil, refuse("malformed_signature", "ds:%s contains text", el.Tag)
			}
		}
	}
	return out, nil
}

// attrsAllowed lists the attributes each XML-DSig element of the profile may carry, besides
// namespace declarations. Anything else is refused: encoding/xml, which goxmldsig uses for
// part of the signature, matches attributes by local name in any namespace and keeps the last,
// where etree keeps the first, so p:Algorithm="…" next to Algorithm="…" would be read
// differently by the two.
var attrsAllowed = map[string][]string{
	"Signature":              {"Id"},
	"SignedInfo":             {"Id"},
	"CanonicalizationMethod": {"Algorithm"},
	"SignatureMethod":        {"Algorithm"},
	"Reference":              {"Id", "URI", "Type"},
	"Transforms":             nil,
	"Transform":              {"Algorithm"},
	"DigestMethod":           {"Algorithm"},
	"DigestValue":            nil,
	"SignatureValue":         {"Id"},
	"KeyInfo":                {"Id"},
	"X509Data":               nil,
	"X509Certificate":        nil,
}

// checkAttrs refuses unexpected attributes on the profile's elements anywhere in the
// signature. Elements outside the profile are left to the structural checks, which refuse
// them with a more telling reason.
func checkAttrs(el *etree.Element) error {
	allowed, ok := attrsAllowed[el.Tag]
	if !ok {
		return nil
	}
	for _, a := range el.Attr {
		if _, decl := nsDecl(a); decl {
			continue
		}
		ok := false
		for _, name := range allowed {
			ok = ok || a.Space == "" && a.Key == name
		}
		if !ok {
			return refuse("malformed_signature", "ds:%s carries the attribute %s, which is not accepted", el.Tag, a.FullKey())
		}
	}
	for _, c := range el.ChildElements() {
		if c.NamespaceURI() == nsDSig {
			if err := checkAttrs(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// expect refuses unless els are exactly the named XML-DSig elements, in order.
func expect(parent string, els []*etree.Element, names ...string) error {
	for i, el := range els {
		if i >= len(names) || el.Tag != names[i] {
			return refuse("malformed_signature", "ds:%s contains ds:%s where %s is expected", parent, el.Tag, describe(names, i))
		}
	}
	if len(els) < len(names) {
		return refuse("malformed_signature", "ds:%s lacks ds:%s", parent, names[len(els)])
	}
	return nil
}

func describe(names []string, i int) string {
	if i >= len(names) {
		return "nothing more"
	}
	return "ds:" + names[i]
}

// checkAlgorithm refuses a signature or digest method other than want, saying whether it is
// weak or merely not the profile's.
func checkAlgorithm(what, got, want string) error {
	if got == want {
		return nil
	}
	l := strings.ToLower(got)
	if strings.Contains(l, "sha1") || strings.Contains(l, "md5") || strings.Contains(l, "sha224") || strings.Contains(l, "ripemd") {
		return refuse("weak_algorithm", "%s %q is weak and not accepted: use %s", what, got, want)
	}
	return refuse("unsupported_algorithm", "%s %q is not accepted: use %s", what, got, want)
}

// checkSignature checks the signature element against the profile and returns the signer's
// certificate from its KeyInfo.
func checkSignature(sig *etree.Element, rootID string, cache *certCache) (*profile, error) {
	if err := checkAttrs(sig); err != nil {
		return nil, err
	}
	parts, err := dsChildren(sig)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		if p.Tag == "Object" || p.Tag == "Manifest" {
			return nil, refuse("malformed_signature", "the signature carries a ds:%s: only SignedInfo, SignatureValue and KeyInfo are accepted", p.Tag)
		}
	}
	if len(parts) == 2 && parts[0].Tag == "SignedInfo" && parts[1].Tag == "SignatureValue" {
		return nil, refuse("bad_keyinfo", "the signature has no ds:KeyInfo: it must carry the signer's certificate in KeyInfo/X509Data/X509Certificate")
	}
	if err := expect("Signature", parts, "SignedInfo", "SignatureValue", "KeyInfo"); err != nil {
		return nil, err
	}
	digest, err := checkSignedInfo(parts[0], rootID)
	if err != nil {
		return nil, err
	}
	sigValue, err := base64.StdEncoding.DecodeString(parts[1].Text())
	if err != nil || len(parts[1].ChildElements()) > 0 {
		return nil, refuse("malformed_signature", "ds:SignatureValue is not base64")
	}
	signer, err := checkKeyInfo(parts[2], cache)
	if err != nil {
		return nil, err
	}
	return &profile{cert: signer.cert, signer: signer, signedInfo: parts[0], sigValue: sigValue, digest: digest}, nil
}

// checkSignedInfo checks SignedInfo and returns its one Reference's digest value.
func checkSignedInfo(si *etree.Element, rootID string) ([]byte, error) {
	els, err := dsChildren(si)
	if err != nil {
		return nil, err
	}
	if len(els) < 2 || els[0].Tag != "CanonicalizationMethod" || els[1].Tag != "SignatureMethod" {
		return nil, refuse("malformed_signature", "ds:SignedInfo must start with ds:CanonicalizationMethod and ds:SignatureMethod")
	}
	c14n, method, refs := els[0], els[1], els[2:]
	if alg := c14n.SelectAttrValue("Algorithm", ""); alg != algExcC14N {
		return nil, refuse("bad_canonicalization", "SignedInfo canonicalization %q is not accepted: use exclusive c14n without comments (%s)", alg, algExcC14N)
	}
	if len(c14n.ChildElements()) > 0 {
		return nil, refuse("bad_canonicalization", "the canonicalization method carries parameters (InclusiveNamespaces): none are accepted")
	}
	if err := checkAlgorithm("signature method", method.SelectAttrValue("Algorithm", ""), algRSASHA256); err != nil {
		return nil, err
	}
	if len(method.ChildElements()) > 0 {
		return nil, refuse("malformed_signature", "the signature method carries parameters: none are accepted")
	}
	for _, r := range refs {
		if r.Tag != "Reference" {
			return nil, refuse("malformed_signature", "ds:SignedInfo contains ds:%s where only ds:Reference may follow the signature method", r.Tag)
		}
	}
	switch len(refs) {
	case 0:
		return nil, refuse("reference_mismatch", "ds:SignedInfo has no ds:Reference: it must reference the root by URI=\"#%s\"", rootID)
	case 1:
	default:
		return nil, refuse("reference_multiple", "ds:SignedInfo has %d ds:Reference elements: exactly one, to the root element, is accepted", len(refs))
	}
	return checkReference(refs[0], rootID)
}

// checkReference checks the Reference and returns its digest value.
func checkReference(ref *etree.Element, rootID string) ([]byte, error) {
	uri := ref.SelectAttr("URI")
	switch {
	case uri == nil:
		return nil, refuse("reference_mismatch", "the ds:Reference has no URI: it must reference the root by URI=\"#%s\"", rootID)
	case uri.Value != "#"+rootID:
		return nil, refuse("reference_mismatch", "the ds:Reference points to %q, not to the root element: it must be URI=\"#%s\"", uri.Value, rootID)
	}
	els, err := dsChildren(ref)
	if err != nil {
		return nil, err
	}
	if len(els) > 0 && els[0].Tag != "Transforms" {
		return nil, refuse("bad_transforms", "the ds:Reference has no transforms: enveloped-signature then exclusive c14n are required")
	}
	if err := expect("Reference", els, "Transforms", "DigestMethod", "DigestValue"); err != nil {
		return nil, err
	}
	if err := checkTransforms(els[0]); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("digest method", els[1].SelectAttrValue("Algorithm", ""), algSHA256); err != nil {
		return nil, err
	}
	if len(els[1].ChildElements()) > 0 || len(els[2].ChildElements()) > 0 {
		return nil, refuse("malformed_signature", "the digest method or value carries child elements")
	}
	d, err := base64.StdEncoding.DecodeString(els[2].Text())
	if err != nil || len(d) != 32 {
		return nil, refuse("malformed_signature", "ds:DigestValue is not a base64 SHA-256 digest")
	}
	return d, nil
}

func checkTransforms(ts *etree.Element) error {
	els, err := dsChildren(ts)
	if err != nil {
		return err
	}
	var algs []string
	for _, t := range els {
		if t.Tag != "Transform" {
			return refuse("malformed_signature", "ds:Transforms contains ds:%s", t.Tag)
		}
		alg := t.SelectAttrValue("Algorithm", "")
		if alg == algXPath || strings.Contains(strings.ToLower(alg), "xpath") {
			return refuse("bad_transforms", "XPath transforms (%s) are not accepted: use enveloped-signature then exclusive c14n", alg)
		}
		if len(t.ChildElements()) > 0 {
			return refuse("bad_transforms", "the transform %s carries parameters: none are accepted", alg)
		}
		algs = append(algs, alg)
	}
	if len(algs) != 2 || algs[0] != algEnveloped || algs[1] != algExcC14N {
		return refuse("bad_transforms", "the transforms are [%s]: exactly [%s %s] are accepted", strings.Join(algs, " "), algEnveloped, algExcC14N)
	}
	return nil
}

func checkKeyInfo(ki *etree.Element, cache *certCache) (*signer, error) {
	els, err := dsChildren(ki)
	if err != nil {
		return nil, err
	}
	if len(els) != 1 || els[0].Tag != "X509Data" {
		return nil, refuse("bad_keyinfo", "ds:KeyInfo must hold exactly one ds:X509Data and nothing else")
	}
	certs, err := dsChildren(els[0])
	if err != nil {
		return nil, err
	}
	n := 0
	for _, c := range certs {
		if c.Tag != "X509Certificate" {
			return nil, refuse("bad_keyinfo", "ds:X509Data holds ds:%s: only the signer's ds:X509Certificate is accepted", c.Tag)
		}
		n++
	}
	if n != 1 {
		return nil, refuse("bad_keyinfo", "ds:X509Data holds %d certificates: exactly one, the signer's, is accepted", n)
	}
	if len(certs[0].ChildElements()) > 0 {
		return nil, refuse("bad_keyinfo", "ds:X509Certificate carries child elements")
	}
	return signerOf(certs[0].Text(), cache)
}

// signerOf returns the signer whose certificate is the text of a KeyInfo's X509Certificate,
// from cache when it is there, and refuses a certificate that is not base64, not a
// certificate, or whose key checkKey refuses.
func signerOf(text string, cache *certCache) (*signer, error) {
	if s := cache.get(text); s != nil {
		return s, checkKey(s.cert.PublicKey, "the signer's certificate")
	}
	// As goxmldsig does: white space anywhere in the base64 is ignored.
	b64 := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, text)
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, refuse("bad_keyinfo", "ds:X509Certificate is not base64")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, refuse("bad_keyinfo", "ds:X509Certificate is not a valid certificate: %v", err)
	}
	s := &signer{cert: cert}
	cache.put(text, s)
	return s, checkKey(cert.PublicKey, "the signer's certificate")
}

// checkKey refuses anything but an RSA key of the accepted sizes.
func checkKey(pub any, what string) error {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return refuse("unsupported_key", "%s has a %T key: only RSA keys of at least %d bits are accepted", what, pub, minRSABits)
	}
	switch bits := k.N.BitLen(); {
	case bits < minRSABits:
		return refuse("weak_key", "%s has an RSA key of %d bits: at least %d bits are required", what, bits, minRSABits)
	case bits > maxRSABits:
		return refuse("unsupported_key", "%s has an RSA key of %d bits: at most %d bits are accepted", what, bits, maxRSABits)
	}
	return nil
}

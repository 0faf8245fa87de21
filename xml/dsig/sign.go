package dsig

import (
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/beevik/etree"
	xmldsig "github.com/russellhaering/goxmldsig"

	"github.com/evoucher/evoucher"
)

// Sign returns a signed copy of root: root, brought to its exclusive canonical form, with an
// enveloped ds:Signature of the profile appended as its last child. root itself is not
// changed. root must be a document's root element (or have no parent) and carry a non-empty Id
// attribute; key must be an RSA key of 2048 to 8192 bits whose public half is cert's.
//
// It returns an invalid error (reasons missing_id, duplicate_id, signature_multiple, comment,
// processing_instruction, doctype, invalid_character, malformed_document, weak_key,
// unsupported_key, key_mismatch) when root or the key could not make a document that Verify
// accepts, and the signer's error, wrapped, when signing fails.
func Sign(root *etree.Element, key crypto.Signer, cert *x509.Certificate) (*etree.Element, error) {
	if root == nil || key == nil || cert == nil {
		return nil, fmt.Errorf("dsig: Sign needs a root element, a key and a certificate")
	}
	if p := root.Parent(); p != nil && (p.Tag != "" || p.Space != "" || p.Parent() != nil) {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "malformed_document", "dsig: <%s> is inside <%s>: only a document's root element can be signed", root.FullTag(), p.FullTag())
	}
	if err := checkKey(key.Public(), "the signing key"); err != nil {
		return nil, err
	}
	if !samePublicKey(key.Public(), cert.PublicKey) {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "key_mismatch", "dsig: the signing key is not the key of certificate %q (serial %s)", cert.Subject.CommonName, cert.SerialNumber.Text(16))
	}
	el := root.Copy()
	s, err := scanRoot(el, true)
	if err != nil {
		return nil, err
	}
	switch {
	case s.rootID == "":
		return nil, evoucher.Errorf(evoucher.KindInvalid, "missing_id", "dsig: the root element <%s> has no Id attribute for the signature to reference", el.FullTag())
	case s.dupID != nil:
		return nil, evoucher.Errorf(evoucher.KindInvalid, "duplicate_id", "dsig: element <%s> carries the identifier %q of the root element <%s>", s.dupID.FullTag(), s.rootID, el.FullTag())
	case len(s.sigs) > 0:
		return nil, evoucher.Errorf(evoucher.KindInvalid, "signature_multiple", "dsig: <%s> already carries a ds:Signature", el.FullTag())
	}

	ctx, err := xmldsig.NewSigningContext(key, [][]byte{cert.Raw})
	if err != nil {
		return nil, fmt.Errorf("dsig: %w", err)
	}
	// goxmldsig defaults to inclusive c14n 1.1 and the attribute "ID".
	ctx.Canonicalizer = xmldsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	ctx.IdAttribute = idAttr
	ctx.Prefix = xmldsig.DefaultPrefix
	if err := ctx.SetSignatureMethod(algRSASHA256); err != nil {
		return nil, fmt.Errorf("dsig: %w", err)
	}
	// ConstructSignature canonicalizes el in place before digesting it, so el (our copy) is
	// exactly what was digested; the signature then goes in as el's last child.
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		return nil, fmt.Errorf("dsig: sign <%s Id=%q> with certificate %q: %w", el.FullTag(), s.rootID, cert.Subject.CommonName, err)
	}
	el.AddChild(sig)
	return el, nil
}

// SignBytes signs the root element of doc as Sign does and returns the whole document,
// serialized so that parsing it gives back exactly what was signed. doc is not changed. Only
// white space and the XML declaration may surround the root: it returns an invalid error for
// a DOCTYPE, comment or processing instruction at the document level, and Sign's errors.
func SignBytes(doc *etree.Document, key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	if _, err := scanDocument(doc, true); err != nil {
		return nil, err
	}
	out := doc.Copy()
	signed, err := Sign(out.Root(), key, cert)
	if err != nil {
		return nil, err
	}
	out.SetRoot(signed)
	// Escape \r in text and tab, newline and \r in attribute values: written raw, a parser
	// would normalize them and the canonical form, hence the digest, would change.
	out.WriteSettings = etree.WriteSettings{CanonicalText: true, CanonicalAttrVal: true}
	b, err := out.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("dsig: write signed document: %w", err)
	}
	return b, nil
}

// samePublicKey reports whether a and b are the same key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

package dsig

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/beevik/etree"
	xmldsig "github.com/russellhaering/goxmldsig"

	"github.com/evoucher/evoucher"
)

// Trust decides whether the signer's certificate is acceptable, typically a closure around
// pki's Verify for the role and entity the document claims, at the document's time. It runs
// before any cryptographic check, so a refused signer costs no RSA operation. It refuses with
// an *evoucher.Error (as pki does); any other error is taken for a failure to decide.
type Trust func(cert *x509.Certificate) error

// Verify checks that doc carries exactly one signature of the profile, by a signer trust
// accepts, over its root element, and returns the element the signature covers (rebuilt from
// the signed canonical bytes, so it is all the caller may read) and the signer's certificate.
// doc is not changed.
//
// Refusals are invalid errors, with these reasons, checked in this order: malformed_document,
// doctype, processing_instruction, comment (the document); signature_missing,
// signature_multiple, signature_misplaced, reference_mismatch (root without Id), duplicate_id
// (placement); malformed_signature, bad_canonicalization, weak_algorithm,
// unsupported_algorithm, reference_multiple, reference_mismatch, bad_transforms, bad_keyinfo,
// weak_key, unsupported_key (the signature); then trust's error, wrapped with %w so that its
// kind and reason (and errors.As) are those of trust's *evoucher.Error; then bad_signature
// (SignedInfo does not verify under the certificate's key) and bad_digest (the content was
// altered). An error that is not an *evoucher.Error is internal.
func Verify(doc *etree.Document, trust Trust) (signed *etree.Element, cert *x509.Certificate, err error) {
	if trust == nil {
		return nil, nil, errors.New("dsig: Verify needs a Trust")
	}
	s, err := scanDocument(doc, false)
	if err != nil {
		return nil, nil, err
	}
	sig, err := s.checkPlacement()
	if err != nil {
		return nil, nil, err
	}
	p, err := checkSignature(sig, s.rootID)
	if err != nil {
		return nil, nil, err
	}
	if err := trust(p.cert); err != nil {
		return nil, nil, fmt.Errorf("signer %q (certificate %s) refused: %w", p.cert.Subject.CommonName, p.cert.SerialNumber.Text(16), err)
	}

	vc := xmldsig.NewDefaultValidationContext(&xmldsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{p.cert}})
	vc.IdAttribute = idAttr
	// trust decided whether the certificate was valid at the document's time; goxmldsig would
	// check it against its clock's time, so its clock stands at a time inside the validity.
	vc.Clock = xmldsig.NewFakeClockAt(p.cert.NotBefore)
	el, err := vc.Validate(s.root)
	if err != nil {
		return nil, nil, cryptoRefusal(err)
	}
	if el == nil || el.Tag != s.root.Tag || el.Space != s.root.Space || el.NamespaceURI() != s.root.NamespaceURI() ||
		el.SelectAttrValue(idAttr, "") != s.rootID {
		return nil, nil, fmt.Errorf("dsig: goxmldsig validated an element other than the root <%s Id=%q>", s.root.FullTag(), s.rootID)
	}
	return el, p.cert, nil
}

// errDigestMismatch is goxmldsig's text for a reference whose digest does not match (it also
// uses it for a missing SignatureValue, which checkSignature has excluded). goxmldsig checks
// SignedInfo's signature before the digest, so any other failure is the signature's.
const errDigestMismatch = "Signature could not be verified"

// cryptoRefusal tells a bad signature from a bad digest; TestHostile (ErrAlteredText,
// ErrBadSignatureValue) notices if a goxmldsig upgrade changes its errors.
func cryptoRefusal(err error) error {
	switch {
	case errors.Is(err, rsa.ErrVerification):
		return evoucher.Errorf(evoucher.KindInvalid, "bad_signature", "the signature does not verify with the key of the certificate in KeyInfo")
	case err.Error() == errDigestMismatch:
		return evoucher.Errorf(evoucher.KindInvalid, "bad_digest", "the signed content was altered: its digest does not match the signature's")
	}
	return evoucher.Errorf(evoucher.KindInvalid, "bad_signature", "the signature does not verify: %v", err)
}

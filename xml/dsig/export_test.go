package dsig

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/beevik/etree"
	xmldsig "github.com/russellhaering/goxmldsig"

	"github.com/evoucher/evoucher"
)

// VerifyRSA exposes verifyRSA to TestVerifyRSA.
var VerifyRSA = verifyRSA

// VerifyGoxmldsig is Verify with goxmldsig's Validate in place of verifySignature, as Verify
// was before it: the reference that TestAgreesWithGoxmldsig and FuzzAgreesWithGoxmldsig hold
// Verify to.
func VerifyGoxmldsig(doc *etree.Document, trust Trust) (*etree.Element, *x509.Certificate, error) {
	s, err := scanDocument(doc, false)
	if err != nil {
		return nil, nil, err
	}
	sig, err := s.checkPlacement()
	if err != nil {
		return nil, nil, err
	}
	p, err := checkSignature(sig, s.rootID, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := trust(p.cert); err != nil {
		return nil, nil, fmt.Errorf("signer refused: %w", err)
	}
	vc := xmldsig.NewDefaultValidationContext(&xmldsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{p.cert}})
	vc.IdAttribute = idAttr
	vc.Clock = xmldsig.NewFakeClockAt(p.cert.NotBefore)
	el, err := vc.Validate(s.root)
	switch {
	case errors.Is(err, rsa.ErrVerification):
		return nil, nil, evoucher.Errorf(evoucher.KindInvalid, "bad_signature", "%v", err)
	case err != nil && err.Error() == "Signature could not be verified":
		return nil, nil, evoucher.Errorf(evoucher.KindInvalid, "bad_digest", "%v", err)
	case err != nil:
		return nil, nil, evoucher.Errorf(evoucher.KindInvalid, "bad_signature", "%v", err)
	}
	return el, p.cert, nil
}

// ErrFallback is errFallback, for the canonicalization tests.
var ErrFallback = errFallback

// CanonicalStream is el's exclusive canonical form as Verify streams it into SHA-256, with
// what digestExcC14N returns for it: the digest, and el's canonical attributes. It returns
// ErrFallback for the inputs the stream leaves to etreeutils.
func CanonicalStream(el *etree.Element, skip int, inherit bool) (b []byte, sum [32]byte, top []etree.Attr, err error) {
	var buf bytes.Buffer
	if err := writeExcC14N(&buf, el, skip, inherit); err != nil {
		return nil, sum, nil, err
	}
	sum, top, err = digestExcC14N(el, skip, inherit, true)
	return buf.Bytes(), sum, top, err
}

// CanonicalEtreeutils is el's exclusive canonical form as goxmldsig's etreeutils makes it:
// NSBuildParentContext and NSDetatch when inherit, a copy without its child at index skip
// otherwise, TransformExcC14n, and etree's WriteTo with goxmldsig's settings.
func CanonicalEtreeutils(el *etree.Element, skip int, inherit bool) ([]byte, *etree.Element, error) {
	cp, err := canonicalCopy(el, skip, inherit)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	cp.WriteTo(&buf, &canonicalWrite)
	return buf.Bytes(), cp, nil
}

// ScanDocument reports whether doc passes the document-level checks of Verify, which come
// before any canonicalization.
func ScanDocument(doc *etree.Document) error {
	_, err := scanDocument(doc, false)
	return err
}

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

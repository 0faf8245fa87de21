package dsig

import (
	"crypto/x509"
	"errors"
	"sync/atomic"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher/xml/message"
)

// TrustFor chooses the Trust for a document from its root element as parsed, before anything
// is verified: it may read the root's name, namespace and attributes (the envelope that says
// who signed for what, and when), not trust them, and nothing else (VerifyBytes may hand it a
// copy of the root without children or parent). It refuses the document by returning an
// error. It must decide the same way every time it is called with the same root.
type TrustFor func(root *etree.Element) (Trust, error)

// VerifyBytes parses b as message.Parse(b, lim) does, asks trustFor for the Trust of the
// document from its parsed root, and verifies the document as VerifyRoot does with that Trust,
// for callers that hold a document's bytes and read only its signed root's name and attributes
// (an auditor going through a log). It returns what VerifyRoot returns: the root of the
// canonical copy the signature covers, without children, and the signer's certificate.
//
// Its errors are message.Parse's, then trustFor's, then VerifyRoot's, exactly: documents of
// the shape SignBytes writes are verified in one pass over b, without building a tree
// (verifyFast); anything else, and any document that pass does not accept, whatever the
// reason, is parsed and verified by VerifyRoot, so that every refusal is VerifyRoot's own.
// trust may then be called twice for one document.
func (v *Verifier) VerifyBytes(b []byte, lim message.Limits, trustFor TrustFor) (signed *etree.Element, cert *x509.Certificate, err error) {
	if trustFor == nil {
		return nil, nil, errors.New("dsig: VerifyBytes needs a TrustFor")
	}
	var cache *certCache
	if v != nil {
		cache = &v.certs
	}
	if signed, cert, ok := verifyFast(b, lim, trustFor, cache); ok {
		fastVerifies.Add(1)
		return signed, cert, nil
	}
	return v.verifyBytesSlow(b, lim, trustFor)
}

// verifyBytesSlow is what VerifyBytes' fast path must agree with: message.Parse, trustFor,
// VerifyRoot.
func (v *Verifier) verifyBytesSlow(b []byte, lim message.Limits, trustFor TrustFor) (*etree.Element, *x509.Certificate, error) {
	doc, err := message.Parse(b, lim)
	if err != nil {
		return nil, nil, err
	}
	trust, err := trustFor(doc.Root())
	if err != nil {
		return nil, nil, err
	}
	return v.VerifyRoot(doc, trust)
}

// fastVerifies counts the documents VerifyBytes' fast path accepted. It is the hook by which a
// test makes sure SignBytes' documents do take it: the speed-up could otherwise vanish
// silently.
var fastVerifies atomic.Uint64

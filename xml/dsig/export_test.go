package dsig

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"

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

// verifyRSABefore is verifyRSA as it was before keys were precomputed: crypto/rsa for 2048
// bits, math/big for the other sizes.
func verifyRSABefore(pub *rsa.PublicKey, hashed, sig []byte) error {
	if pub.N.BitLen() == 2048 {
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig)
	}
	k := pub.Size()
	t := len(digestInfoSHA256) + len(hashed)
	if len(hashed) != 32 || len(sig) != k || k < t+11 || pub.E < 3 || pub.E%2 == 0 {
		return rsa.ErrVerification
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return rsa.ErrVerification
	}
	em := s.Exp(s, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, k))
	want := make([]byte, k)
	want[1] = 0x01
	for i := 2; i < k-t-1; i++ {
		want[i] = 0xff
	}
	copy(want[k-t:], digestInfoSHA256)
	copy(want[k-len(hashed):], hashed)
	if !bytes.Equal(em, want) {
		return rsa.ErrVerification
	}
	return nil
}

// VerifyBefore is v.Verify as it was before the canonical forms were streamed and RSA keys
// precomputed: etreeutils' canonical copies of SignedInfo and of the root, and
// verifyRSABefore. BenchmarkVerify measures the two.
func (v *Verifier) VerifyBefore(doc *etree.Document, trust Trust) (*etree.Element, *x509.Certificate, error) {
	s, err := scanDocument(doc, false)
	if err != nil {
		return nil, nil, err
	}
	sig, err := s.checkPlacement()
	if err != nil {
		return nil, nil, err
	}
	p, err := checkSignature(sig, s.rootID, &v.certs)
	if err != nil {
		return nil, nil, err
	}
	if err := trust(p.cert); err != nil {
		return nil, nil, fmt.Errorf("signer refused: %w", err)
	}
	siSum, _, err := digestEtreeutils(p.signedInfo, -1, true)
	if err != nil {
		return nil, nil, refuse("malformed_signature", "ds:SignedInfo cannot be canonicalized: %v", err)
	}
	if err := verifyRSABefore(p.cert.PublicKey.(*rsa.PublicKey), siSum[:], p.sigValue); err != nil {
		return nil, nil, refuse("bad_signature", "%v", err)
	}
	sum, el, err := digestEtreeutils(s.root, sig.Index(), false)
	if err != nil {
		return nil, nil, refuse("bad_digest", "%v", err)
	}
	if !bytes.Equal(sum[:], p.digest) {
		return nil, nil, refuse("bad_digest", "the digest does not match")
	}
	return el, p.cert, nil
}

var VerifyRSABefore = verifyRSABefore

// FastVerifies is how many documents VerifyBytes' fast path has accepted.
func FastVerifies() uint64 { return fastVerifies.Load() }

// ReduceRowsGo is reduceRowsGo, the Montgomery reduction's rows in Go, which TestReduceRows
// holds reduceRows' assembly to.
var ReduceRowsGo = reduceRowsGo

// MontExp is x^e mod N as rsaKey.verify computes it (N odd, x < N, e odd and at least 3), from
// and to big.Int, for TestMontExp and FuzzVerifyRSA.
func MontExp(N, x *big.Int, e uint) *big.Int {
	m := newMontModulus(N)
	n := m.words()
	w := make([]big.Word, 5*n)
	copy(w, x.Bits())
	m.expVarTime(w[n:2*n], w[:n], e, w[2*n:])
	return new(big.Int).SetBits(w[n : 2*n])
}

package dsig

import (
	"bufio"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
)

// Trust decides whether the signer's certificate is acceptable, typically a closure around
// pki's Verify for the role and entity the document claims, at the document's time. It runs
// before any cryptographic check, so a refused signer costs no RSA operation. It refuses with
// an *evoucher.Error (as pki does); any other error is taken for a failure to decide.
type Trust func(cert *x509.Certificate) error

// Verify checks that doc carries exactly one signature of the profile, by a signer trust
// accepts, over its root element, and returns the element the signature covers (a copy of the
// root without its signature, in the exclusive canonical form whose digest was checked, so it
// is all the caller may read) and the signer's certificate. doc is not changed.
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
	return (*Verifier)(nil).Verify(doc, trust)
}

// Verifier verifies documents as Verify does, and remembers the signer certificates it has
// decoded from KeyInfo (up to a few thousand), so that a signer seen again costs no
// certificate parsing and no precomputation on its RSA key: for an auditor going through a
// whole log. A nil *Verifier remembers
// nothing. It is safe for concurrent use.
type Verifier struct {
	certs certCache
}

// NewVerifier returns a Verifier with an empty certificate cache.
func NewVerifier() *Verifier { return &Verifier{} }

// Verify is the package's Verify, with the verifier's certificate cache.
func (v *Verifier) Verify(doc *etree.Document, trust Trust) (signed *etree.Element, cert *x509.Certificate, err error) {
	return v.verify(doc, trust, coveredTree)
}

// VerifyRoot verifies doc as Verify does, with the same refusals, for callers that read only
// the signed root element's own name and attributes (an auditor matching a log's entries with
// their messages): in place of the canonical copy of the whole tree the signature covers, it
// returns that copy's root alone, without children: the root's name, and its attributes and
// rendered namespace declarations in exclusive canonical form and order, so that Tag,
// NamespaceURI and SelectAttrValue read on it what they read on Verify's element. It costs
// no copy of the tree.
func (v *Verifier) VerifyRoot(doc *etree.Document, trust Trust) (root *etree.Element, cert *x509.Certificate, err error) {
	return v.verify(doc, trust, coveredRoot)
}

// covered is what verifySignature returns of the element the signature covers.
type covered int

const (
	coveredTree covered = iota // its canonical copy, whole (Verify)
	coveredRoot                // the root of that copy alone, without children (VerifyRoot)
)

func (v *Verifier) verify(doc *etree.Document, trust Trust, want covered) (*etree.Element, *x509.Certificate, error) {
	var cache *certCache
	if v != nil {
		cache = &v.certs
	}
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
	p, err := checkSignature(sig, s.rootID, cache)
	if err != nil {
		return nil, nil, err
	}
	if err := trust(p.cert); err != nil {
		return nil, nil, fmt.Errorf("signer %q (certificate %s) refused: %w", p.cert.Subject.CommonName, p.cert.SerialNumber.Text(16), err)
	}
	el, err := verifySignature(s.root, sig, p, want)
	if err != nil {
		return nil, nil, err
	}
	return el, p.cert, nil
}

// canonicalWrite are the settings goxmldsig serializes canonical trees with.
var canonicalWrite = etree.WriteSettings{CanonicalAttrVal: true, CanonicalEndTags: true, CanonicalText: true}

// canonicalHash returns the SHA-256 of el, which must already be in canonical form, serialized
// as goxmldsig serializes it.
func canonicalHash(el *etree.Element) [sha256.Size]byte {
	h := sha256.New()
	w := bufio.NewWriterSize(h, 4096)
	el.WriteTo(w, &canonicalWrite)
	_ = w.Flush() // a hash never fails to write
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// verifySignature does the cryptographic half of the profile, on a signature that
// checkSignature has accepted, deciding as goxmldsig's Validate does for such a signature
// (the same canonical forms, in the same order: SignedInfo, then the digest) but without its
// general machinery: finding the signature again, decoding it with encoding/xml, copying,
// serializing and parsing SignedInfo and the signed content once more. SignedInfo, in
// exclusive canonical form with the namespaces in scope, must verify under the certificate's
// key; then the root, without its signature and in exclusive canonical form, must hash to the
// Reference's digest. Both canonical forms are streamed into SHA-256 from the parsed tree
// (digestExcC14N), or, for the odd inputs that the stream leaves to it, made with etreeutils
// as goxmldsig makes them. Only once the digest matches does it make what it returns: the
// canonical copy of the root, the tree the digest was computed over (coveredTree), or that
// copy's root alone (coveredRoot). The values it checks (SignatureValue, DigestValue) are read
// from the elements whose canonical form it verifies. TestAgreesWithGoxmldsig and
// FuzzAgreesWithGoxmldsig check that it decides as Validate does.
func verifySignature(root, sig *etree.Element, p *profile, want covered) (*etree.Element, error) {
	siSum, _, err := digestExcC14N(p.signedInfo, -1, true, false)
	if errors.Is(err, errFallback) {
		siSum, _, err = digestEtreeutils(p.signedInfo, -1, true)
	}
	if err != nil {
		return nil, refuse("malformed_signature", "ds:SignedInfo cannot be canonicalized: %v", err)
	}
	if err := p.signer.rsaKey().verify(siSum[:], p.sigValue); err != nil {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_signature", "the signature does not verify with the key of the certificate in KeyInfo")
	}

	// The enveloped-signature transform: the signature, a child of the root, is left out.
	i := sig.Index()
	if i < 0 || i >= len(root.Child) {
		return nil, fmt.Errorf("dsig: the signature is not where checkPlacement found it")
	}
	var el *etree.Element // the canonical copy, when etreeutils made it
	sum, top, err := digestExcC14N(root, i, false, want == coveredRoot)
	if errors.Is(err, errFallback) {
		sum, el, err = digestEtreeutils(root, i, false)
	}
	if err != nil {
		return nil, refuse("bad_digest", "the signed content cannot be canonicalized: %v", err)
	}
	if subtle.ConstantTimeCompare(sum[:], p.digest) != 1 {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_digest", "the signed content was altered: its digest does not match the signature's")
	}
	switch {
	case want == coveredRoot:
		head := etree.NewElement(root.Tag)
		head.Space, head.Attr = root.Space, top
		if el != nil {
			head.Attr = el.Attr
		}
		el = head
	case el == nil:
		if el, err = canonicalCopy(root, i, false); err != nil {
			return nil, refuse("bad_digest", "the signed content cannot be canonicalized: %v", err)
		}
	}
	return el, nil
}

// maxCachedCerts bounds a Verifier's certificate cache: a log has few signers, and a hostile
// source serving a new certificate with every message must not grow it without end.
const maxCachedCerts = 4096

// certCache maps the text of a KeyInfo's X509Certificate to the signer it decodes to.
// A nil *certCache holds nothing.
type certCache struct {
	mu    sync.RWMutex
	certs map[string]*signer
}

func (c *certCache) get(text string) *signer {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.certs[text]
}

// getBytes is get, for a text still in the document's bytes: the lookup copies nothing.
func (c *certCache) getBytes(text []byte) *signer {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.certs[string(text)]
}

func (c *certCache) put(text string, s *signer) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.certs == nil {
		c.certs = map[string]*signer{}
	}
	if len(c.certs) < maxCachedCerts {
		c.certs[text] = s
	}
}

// signer is a certificate from KeyInfo, with the precomputations of its RSA key, made the
// first time a signature is checked with it: after trust accepted the certificate, so that a
// refused signer costs none.
type signer struct {
	cert *x509.Certificate
	once sync.Once
	key  *rsaKey
}

// rsaKey returns the signer's key, which checkKey has accepted.
func (s *signer) rsaKey() *rsaKey {
	s.once.Do(func() { s.key = newRSAKey(s.cert.PublicKey.(*rsa.PublicKey)) })
	return s.key
}

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"io"

	"github.com/ThalesGroup/crypto11"
)

// ECDSAKey is an ECDSA P-256 private key that never leaves its token. It implements
// crypto.Signer with ASN.1 DER signatures, as ecdsa.VerifyASN1 expects. It is safe for
// concurrent use.
type ECDSAKey struct {
	label string
	token string
	key   crypto11.Signer
	pub   *ecdsa.PublicKey
}

var _ crypto.Signer = (*ECDSAKey)(nil)

// ECDSAKey returns the ECDSA P-256 key pair labelled label, generating it in the token,
// non-extractable, when no object carries the label; created tells which. It returns
// ErrInvalid for a bad label, ErrKeyMismatch when the label is taken by another kind of key
// (an EC key on another curve included), ErrDuplicateKey when two keys carry it, and the
// module's error otherwise.
func (t *Token) ECDSAKey(label string) (k *ECDSAKey, created bool, err error) {
	if err := checkLabel("key", label); err != nil {
		return nil, false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok, err := t.find(label, kindECDSA)
	if err != nil {
		return nil, false, err
	}
	if ok {
		k, err := t.loadECDSA(label, o)
		return k, false, err
	}
	pub, priv, err := keyPairTemplates(label)
	if err != nil {
		return nil, false, err
	}
	s, err := t.ctx.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256())
	if err != nil {
		return nil, false, fmt.Errorf("pkcs11: generate ECDSA P-256 key %q on token %q: %w", label, t.label, err)
	}
	k, err = t.newECDSAKey(label, s)
	return k, true, err
}

// FindECDSAKey returns the ECDSA P-256 key pair labelled label. It returns ErrInvalid for a
// bad label, ErrKeyNotFound when no object carries it, ErrKeyMismatch when it is another kind
// of key, ErrDuplicateKey when two keys carry it, and the module's error otherwise.
func (t *Token) FindECDSAKey(label string) (*ECDSAKey, error) {
	if err := checkLabel("key", label); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok, err := t.find(label, kindECDSA)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("%w: no ECDSA key labelled %q on token %q", ErrKeyNotFound, label, t.label)
	}
	return t.loadECDSA(label, o)
}

// loadECDSA wraps the key pair whose private half is o. The caller holds t.mu.
func (t *Token) loadECDSA(label string, o object) (*ECDSAKey, error) {
	s, err := t.ctx.FindKeyPair(o.id, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: load ECDSA key %q from token %q: %w", label, t.label, err)
	}
	return t.newECDSAKey(label, s)
}

func (t *Token) newECDSAKey(label string, s crypto11.Signer) (*ECDSAKey, error) {
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: key %q on token %q has a %T public key, not ECDSA P-256", ErrKeyMismatch, label, t.label, s.Public())
	}
	return &ECDSAKey{label: label, token: t.label, key: s, pub: pub}, nil
}

// Label returns the key's label.
func (k *ECDSAKey) Label() string { return k.label }

// Public returns the *ecdsa.PublicKey.
func (k *ECDSAKey) Public() crypto.PublicKey { return k.pub }

// Sign signs digest in the token and returns an ASN.1 DER signature. rand is ignored: the
// token draws its own nonce. It returns ErrUnsupported for a hash other than SHA-256, SHA-384
// or SHA-512, ErrInvalid for a digest of the wrong length, and the module's error otherwise.
func (k *ECDSAKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest("ECDSA", digest, opts); err != nil {
		return nil, err
	}
	sig, err := k.key.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("pkcs11: sign with ECDSA key %q on token %q: %w", k.label, k.token, err)
	}
	return sig, nil
}

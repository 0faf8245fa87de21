package pkcs11

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"
)

// RSAKey is an RSA private key that never leaves its token. It implements crypto.Signer
// (PKCS#1 v1.5 and PSS, with SHA-256, SHA-384 or SHA-512) and crypto.Decrypter (RSA-OAEP only).
// It is safe for concurrent use.
type RSAKey struct {
	label string
	token string
	key   crypto11.SignerDecrypter
	pub   *rsa.PublicKey
}

var (
	_ crypto.Signer    = (*RSAKey)(nil)
	_ crypto.Decrypter = (*RSAKey)(nil)
)

// RSAKey returns the RSA key pair labelled label, generating it in the token, non-extractable,
// when no object carries the label; created tells which. bits must be 2048, 3072 or 4096. It
// returns ErrInvalid for a bad label or size, ErrKeyMismatch when the label is taken by another
// kind or size of key, ErrDuplicateKey when two keys carry it, and the module's error otherwise.
func (t *Token) RSAKey(label string, bits int) (k *RSAKey, created bool, err error) {
	if err := checkLabel("key", label); err != nil {
		return nil, false, err
	}
	switch bits {
	case 2048, 3072, 4096:
	default:
		return nil, false, fmt.Errorf("%w: RSA key size %d refused: use 2048, 3072 or 4096", ErrInvalid, bits)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok, err := t.find(label, kindRSA)
	if err != nil {
		return nil, false, err
	}
	if ok {
		if o.bits != bits {
			return nil, false, fmt.Errorf("%w: key %q on token %q is %s, not RSA-%d", ErrKeyMismatch, label, t.label, o, bits)
		}
		k, err := t.loadRSA(label, o)
		return k, false, err
	}
	pub, priv, err := keyPairTemplates(label)
	if err != nil {
		return nil, false, err
	}
	_ = pub.Set(crypto11.CkaEncrypt, true)
	_ = priv.Set(crypto11.CkaDecrypt, true)
	sd, err := t.ctx.GenerateRSAKeyPairWithAttributes(pub, priv, bits)
	if err != nil {
		return nil, false, fmt.Errorf("pkcs11: generate RSA-%d key %q on token %q: %w", bits, label, t.label, err)
	}
	k, err = t.newRSAKey(label, sd)
	return k, true, err
}

// FindRSAKey returns the RSA key pair labelled label. It returns ErrInvalid for a bad label,
// ErrKeyNotFound when no object carries it, ErrKeyMismatch when it is another kind of key or
// an RSA key under 2048 bits, ErrDuplicateKey when two keys carry it, and the module's error
// otherwise.
func (t *Token) FindRSAKey(label string) (*RSAKey, error) {
	if err := checkLabel("key", label); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok, err := t.find(label, kindRSA)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("%w: no RSA key labelled %q on token %q", ErrKeyNotFound, label, t.label)
	case o.bits < 2048:
		return nil, fmt.Errorf("%w: key %q on token %q is %s, under the 2048-bit minimum", ErrKeyMismatch, label, t.label, o)
	}
	return t.loadRSA(label, o)
}

// loadRSA wraps the key pair whose private half is o. The caller holds t.mu.
func (t *Token) loadRSA(label string, o object) (*RSAKey, error) {
	s, err := t.ctx.FindKeyPair(o.id, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: load RSA key %q from token %q: %w", label, t.label, err)
	}
	sd, ok := s.(crypto11.SignerDecrypter)
	if !ok {
		return nil, fmt.Errorf("%w: key %q on token %q cannot decrypt", ErrKeyMismatch, label, t.label)
	}
	return t.newRSAKey(label, sd)
}

func (t *Token) newRSAKey(label string, sd crypto11.SignerDecrypter) (*RSAKey, error) {
	pub, ok := sd.Public().(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key %q on token %q has a %T public key", ErrKeyMismatch, label, t.label, sd.Public())
	}
	return &RSAKey{label: label, token: t.label, key: sd, pub: pub}, nil
}

// keyPairTemplates returns the attributes every key pair of this package is generated with:
// a fresh random CKA_ID tying the halves together, the label, and a private half that is
// stored on the token, private, sensitive and not extractable.
func keyPairTemplates(label string) (pub, priv crypto11.AttributeSet, err error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, err
	}
	if pub, err = crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label)); err != nil {
		return nil, nil, err
	}
	priv = pub.Copy()
	for a, v := range map[crypto11.AttributeType]bool{
		crypto11.CkaToken:  true,
		crypto11.CkaVerify: true,
	} {
		_ = pub.Set(a, v)
	}
	for a, v := range map[crypto11.AttributeType]bool{
		crypto11.CkaToken:       true,
		crypto11.CkaPrivate:     true,
		crypto11.CkaSensitive:   true,
		crypto11.CkaExtractable: false,
		crypto11.CkaSign:        true,
	} {
		_ = priv.Set(a, v)
	}
	return pub, priv, nil
}

// Label returns the key's label.
func (k *RSAKey) Label() string { return k.label }

// Public returns the *rsa.PublicKey.
func (k *RSAKey) Public() crypto.PublicKey { return k.pub }

// Sign signs digest in the token: RSA-PSS when opts is *rsa.PSSOptions (a salt length of
// PSSSaltLengthAuto becomes the hash length, as TLS 1.3 and X.509 use), PKCS#1 v1.5
// otherwise. rand is ignored: the token draws its own randomness. It returns ErrUnsupported
// for a hash other than SHA-256, SHA-384 or SHA-512, ErrInvalid for a digest of the wrong
// length or a bad salt length, and the module's error otherwise.
func (k *RSAKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest("RSA", digest, opts); err != nil {
		return nil, err
	}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		o := *pss
		switch {
		case o.SaltLength == rsa.PSSSaltLengthAuto:
			o.SaltLength = rsa.PSSSaltLengthEqualsHash
		case o.SaltLength < rsa.PSSSaltLengthEqualsHash:
			return nil, fmt.Errorf("%w: PSS salt length %d", ErrInvalid, o.SaltLength)
		}
		opts = &o
	}
	sig, err := k.key.Sign(rand, digest, opts)
	if err != nil {
		if unsupported(err) {
			return nil, fmt.Errorf("%w: token %q cannot sign with %T %v: %w", ErrUnsupported, k.token, opts, opts.HashFunc(), err)
		}
		return nil, fmt.Errorf("pkcs11: sign with RSA key %q on token %q: %w", k.label, k.token, err)
	}
	return sig, nil
}

// Decrypt decrypts msg in the token with RSA-OAEP; opts must be *rsa.OAEPOptions with SHA-1
// (xmlenc#rsa-oaep-mgf1p), SHA-256, SHA-384 or SHA-512, and an MGF1 hash that is zero or the
// same. It returns ErrUnsupported for nil opts, *rsa.PKCS1v15DecryptOptions (PKCS#1 v1.5 key
// transport is refused: it is a padding oracle), other hashes, or an OAEP hash the token does
// not implement (SoftHSM 2.6 implements SHA-1 only), and the module's error when decryption
// fails.
func (k *RSAKey) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.OAEPOptions)
	if !ok || o == nil {
		return nil, fmt.Errorf("%w: RSA decryption with %T: only RSA-OAEP (*rsa.OAEPOptions) is allowed, PKCS#1 v1.5 key transport is refused", ErrUnsupported, opts)
	}
	switch o.Hash {
	case crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, fmt.Errorf("%w: RSA-OAEP with %v: use SHA-1 or SHA-256", ErrUnsupported, o.Hash)
	}
	if o.MGFHash != 0 && o.MGFHash != o.Hash {
		return nil, fmt.Errorf("%w: RSA-OAEP with %v and MGF1 %v: the hashes must be the same", ErrUnsupported, o.Hash, o.MGFHash)
	}
	pt, err := k.key.Decrypt(rand, msg, o)
	if err != nil {
		if unsupported(err) {
			return nil, fmt.Errorf("%w: token %q does not support RSA-OAEP with %v: %w", ErrUnsupported, k.token, o.Hash, err)
		}
		return nil, fmt.Errorf("pkcs11: RSA-OAEP decryption with key %q on token %q failed: %w", k.label, k.token, err)
	}
	return pt, nil
}

// checkDigest refuses missing options, weak hashes and digests of the wrong length.
func checkDigest(alg string, digest []byte, opts crypto.SignerOpts) error {
	if opts == nil {
		return fmt.Errorf("%w: %s signature without a hash", ErrUnsupported, alg)
	}
	switch h := opts.HashFunc(); h {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		if len(digest) != h.Size() {
			return fmt.Errorf("%w: %v digest is %d bytes, want %d", ErrInvalid, h, len(digest), h.Size())
		}
		return nil
	default:
		return fmt.Errorf("%w: %s signature with %v: use SHA-256, SHA-384 or SHA-512", ErrUnsupported, alg, h)
	}
}

// unsupported reports whether err says the token lacks a mechanism or its parameters.
func unsupported(err error) bool {
	switch ckr(err) {
	case p11.CKR_MECHANISM_INVALID, p11.CKR_MECHANISM_PARAM_INVALID, p11.CKR_ARGUMENTS_BAD:
		return true
	}
	return false
}

package pkcs11

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/ThalesGroup/crypto11"
)

// AES-GCM parameters of the platform (xmlenc11#aes256-gcm): 12-byte IV, 16-byte tag.
const (
	gcmNonceSize = 12
	gcmTagSize   = 16
)

// AESKey returns the AES-256 key labelled label as an AEAD computing AES-GCM inside the token,
// generating the key, non-extractable, when no object carries the label; created tells which.
// It returns ErrInvalid for a bad label, ErrKeyMismatch when the label is taken by another
// kind or size of key, ErrDuplicateKey when two keys carry it, and the module's error
// otherwise. See FindAESKey for the AEAD's behaviour.
func (t *Token) AESKey(label string) (aead cipher.AEAD, created bool, err error) {
	if err := checkLabel("key", label); err != nil {
		return nil, false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok, err := t.find(label, kindAES)
	if err != nil {
		return nil, false, err
	}
	if ok {
		aead, err := t.loadAES(label, o)
		return aead, false, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, false, err
	}
	tmpl, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, false, err
	}
	for a, v := range map[crypto11.AttributeType]bool{
		crypto11.CkaToken:       true,
		crypto11.CkaPrivate:     true,
		crypto11.CkaSensitive:   true,
		crypto11.CkaExtractable: false,
		crypto11.CkaEncrypt:     true,
		crypto11.CkaDecrypt:     true,
		crypto11.CkaWrap:        false,
		crypto11.CkaUnwrap:      false,
	} {
		_ = tmpl.Set(a, v)
	}
	key, err := t.ctx.GenerateSecretKeyWithAttributes(tmpl, 256, crypto11.CipherAES)
	if err != nil {
		return nil, false, fmt.Errorf("pkcs11: generate AES-256 key %q on token %q: %w", label, t.label, err)
	}
	aead, err = t.newGCM(label, key)
	return aead, true, err
}

// FindAESKey returns the AES-256 key labelled label as an AEAD computing AES-GCM inside the
// token, with a 12-byte nonce and a 16-byte tag appended to the ciphertext. Seal panics, as
// cipher.AEAD allows no error, when the nonce is not 12 bytes or the token fails; Open returns
// an error when authentication fails and panics on a nonce of the wrong size, like
// crypto/cipher's GCM. FindAESKey returns ErrInvalid for a bad label, ErrKeyNotFound when no
// object carries it, ErrKeyMismatch when it is another kind or size of key, ErrDuplicateKey
// when two keys carry it, and the module's error otherwise.
func (t *Token) FindAESKey(label string) (cipher.AEAD, error) {
	if err := checkLabel("key", label); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok, err := t.find(label, kindAES)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("%w: no AES key labelled %q on token %q", ErrKeyNotFound, label, t.label)
	}
	return t.loadAES(label, o)
}

// loadAES wraps the secret key o. The caller holds t.mu.
func (t *Token) loadAES(label string, o object) (cipher.AEAD, error) {
	if o.bits != 256 {
		return nil, fmt.Errorf("%w: key %q on token %q is %s, not AES-256", ErrKeyMismatch, label, t.label, o)
	}
	key, err := t.ctx.FindKey(o.id, []byte(label))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: load AES key %q from token %q: %w", label, t.label, err)
	}
	return t.newGCM(label, key)
}

func (t *Token) newGCM(label string, key *crypto11.SecretKey) (cipher.AEAD, error) {
	aead, err := key.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("pkcs11: AES-GCM with key %q on token %q: %w", label, t.label, err)
	}
	if aead.NonceSize() != gcmNonceSize || aead.Overhead() != gcmTagSize {
		return nil, fmt.Errorf("pkcs11: AES-GCM with key %q has a %d-byte nonce and a %d-byte tag, want %d and %d", label, aead.NonceSize(), aead.Overhead(), gcmNonceSize, gcmTagSize)
	}
	return gcm{aead: aead, label: label, token: t.label}, nil
}

// gcm checks what crypto11's AEAD leaves to the token: nonce and ciphertext sizes.
type gcm struct {
	aead         cipher.AEAD
	label, token string
}

func (g gcm) NonceSize() int { return gcmNonceSize }
func (g gcm) Overhead() int  { return gcmTagSize }

func (g gcm) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != gcmNonceSize {
		panic("pkcs11: incorrect nonce length given to GCM")
	}
	return g.aead.Seal(dst, nonce, plaintext, additionalData)
}

var errOpen = errors.New("pkcs11: AES-GCM message authentication failed")

func (g gcm) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != gcmNonceSize {
		panic("pkcs11: incorrect nonce length given to GCM")
	}
	if len(ciphertext) < gcmTagSize {
		return nil, errOpen
	}
	pt, err := g.aead.Open(dst, nonce, ciphertext, additionalData)
	if err != nil {
		return nil, fmt.Errorf("%w (key %q on token %q: wrong key, nonce or AAD, or altered ciphertext): %v", errOpen, g.label, g.token, err)
	}
	return pt, nil
}

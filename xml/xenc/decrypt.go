package xenc

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

// Decrypt decrypts the EncryptedData ed for the holder of cert: it finds the EncryptedKey
// addressed to cert, unwraps the content key with dec (the private key of cert, typically in
// a token: a crypto.Decrypter taking *rsa.OAEPOptions), and returns the plaintext, for Type
// Element one serialised element (the caller reads ed's Type attribute). Structure, algorithms
// and encodings of the whole EncryptedData are checked before dec is used, and the content key
// is zeroed after use. Decrypt returns an invalid-kind *evoucher.Error whose reason the
// package documentation lists, or a plain (internal) error when dec is not the key of cert.
func Decrypt(ed *etree.Element, cert *x509.Certificate, dec crypto.Decrypter) ([]byte, error) {
	if err := checkKeyPair(cert, dec); err != nil {
		return nil, err
	}
	p, err := parseEncryptedData(ed)
	if err != nil {
		return nil, err
	}
	data, err := p.ciphertext()
	if err != nil {
		return nil, err
	}
	k, err := selectKey(p.keys, cert)
	if err != nil {
		return nil, err
	}
	key, err := k.unwrap(cert, dec)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return open(key, data)
}

// UnwrapKey returns the content key that e, an EncryptedData or a lone EncryptedKey, wraps for
// cert, unwrapped with dec. The caller zeroes the key when done. It checks and refuses as
// Decrypt does.
func UnwrapKey(e *etree.Element, cert *x509.Certificate, dec crypto.Decrypter) ([]byte, error) {
	if err := checkKeyPair(cert, dec); err != nil {
		return nil, err
	}
	var keys []*encryptedKey
	if is(e, nsXENC, "EncryptedKey") {
		k, err := parseEncryptedKey(e)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	} else {
		p, err := parseEncryptedData(e)
		if err != nil {
			return nil, err
		}
		keys = p.keys
	}
	k, err := selectKey(keys, cert)
	if err != nil {
		return nil, err
	}
	return k.unwrap(cert, dec)
}

// DecryptWithKey decrypts the EncryptedData ed with a content key the caller holds (from
// UnwrapKey, or its own), ignoring any EncryptedKey but still checking them. It refuses a key
// that is not 32 bytes with reason "bad_key", and otherwise as Decrypt does.
func DecryptWithKey(ed *etree.Element, key []byte) ([]byte, error) {
	if len(key) != KeySize {
		return nil, refuse("bad_key", "content key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	p, err := parseEncryptedData(ed)
	if err != nil {
		return nil, err
	}
	data, err := p.ciphertext()
	if err != nil {
		return nil, err
	}
	return open(key, data)
}

// ciphertext decodes the data's CipherValue: IV ‖ ciphertext ‖ tag.
func (p *encryptedData) ciphertext() ([]byte, error) {
	data, err := decodeBase64(p.cipherValue, "EncryptedData CipherValue")
	if err != nil {
		return nil, err
	}
	if len(data) < ivSize+tagSize {
		return nil, refuse("bad_ciphertext", "encrypted data is %d bytes, shorter than a %d-byte IV and a %d-byte tag", len(data), ivSize, tagSize)
	}
	return data, nil
}

// selectKey returns the only key addressed to cert.
func selectKey(keys []*encryptedKey, cert *x509.Certificate) (*encryptedKey, error) {
	var found *encryptedKey
	for _, k := range keys {
		if !k.id.addresses(cert) {
			continue
		}
		if found != nil {
			return nil, refuse("duplicate_recipient", "more than one EncryptedKey is addressed to certificate %s (serial %s): the sender must wrap the key once per recipient", cert.Subject.CommonName, cert.SerialNumber.Text(16))
		}
		found = k
	}
	if found == nil {
		return nil, refuse("no_recipient", "no EncryptedKey is addressed to certificate %s (serial %s): the data was encrypted for another recipient", cert.Subject.CommonName, cert.SerialNumber.Text(16))
	}
	return found, nil
}

// unwrap decrypts the content key with dec and checks its size.
func (k *encryptedKey) unwrap(cert *x509.Certificate, dec crypto.Decrypter) ([]byte, error) {
	pub := cert.PublicKey.(*rsa.PublicKey) // checked by checkKeyPair
	if len(k.ciphertext) != pub.Size() {
		return nil, refuse("bad_ciphertext", "wrapped key is %d bytes, want %d for a %d-bit RSA key", len(k.ciphertext), pub.Size(), pub.N.BitLen())
	}
	key, err := dec.Decrypt(rand.Reader, k.ciphertext, k.opts)
	if errors.Is(err, pkcs11.ErrUnsupported) {
		return nil, &evoucher.Error{Kind: evoucher.KindInvalid, Reason: "unsupported_algorithm", Err: err,
			Message: fmt.Sprintf("xml encryption: the key of certificate %s cannot do RSA-OAEP with %v: the sender must use %s", cert.Subject.CommonName, k.opts.Hash, RSAOAEPMGF1P)}
	}
	if err != nil {
		// The cause (token, label) is logged, never shown.
		return nil, &evoucher.Error{Kind: evoucher.KindInvalid, Reason: "bad_ciphertext", Err: err,
			Message: "xml encryption: the wrapped content key does not decrypt: it was altered or wrapped to another key"}
	}
	if len(key) != KeySize {
		clear(key)
		return nil, refuse("bad_key", "unwrapped content key is not %d bytes (AES-256)", KeySize)
	}
	return key, nil
}

// open authenticates and decrypts data (IV ‖ ciphertext ‖ tag) in place.
func open(key, data []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	ct := data[ivSize:]
	pt, err := aead.Open(ct[:0], data[:ivSize], ct, nil)
	if err != nil {
		return nil, refuse("bad_ciphertext", "encrypted data does not decrypt: it was altered or truncated, or encrypted under another key")
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// checkKeyPair checks that dec is the RSA private key of cert: a mistake of the caller, not of
// the sender, so a plain error.
func checkKeyPair(cert *x509.Certificate, dec crypto.Decrypter) error {
	if cert == nil || dec == nil {
		return errors.New("xml encryption: decryption needs a certificate and its private key")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("xml encryption: certificate %s has a %T key, not RSA", cert.Subject.CommonName, cert.PublicKey)
	}
	if !pub.Equal(dec.Public()) {
		return fmt.Errorf("xml encryption: the decrypting key is not the key of certificate %s", cert.Subject.CommonName)
	}
	return nil
}

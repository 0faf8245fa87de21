package xenc

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"hash"
	"strings"

	"github.com/beevik/etree"
)

// minRSABits is the smallest recipient key accepted (DESIGN.md §2).
const minRSABits = 2048

// Encrypt returns a new xenc:EncryptedData element of type typ (TypeElement or TypeContent)
// holding plaintext encrypted with AES-256-GCM under a fresh random content key, which is
// wrapped in one EncryptedKey per recipient and zeroed after use. The element declares the
// namespaces it uses; set an Id on it if a signature must reference it. Encrypt returns an
// invalid-kind *evoucher.Error with reason "no_recipient" without recipients, and as
// EncryptWithKey otherwise.
func Encrypt(plaintext []byte, typ string, recipients ...Recipient) (*etree.Element, error) {
	if len(recipients) == 0 {
		return nil, refuse("no_recipient", "nothing to encrypt to: give at least one recipient certificate")
	}
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails: it crashes the program instead
	defer clear(key)
	return EncryptWithKey(plaintext, typ, key, recipients...)
}

// EncryptWithKey is Encrypt with a content key the caller holds (and zeroes), for content
// whose key travels otherwise (key shares): with no recipients the EncryptedData has no
// KeyInfo. It returns an invalid-kind *evoucher.Error with reason "bad_key" for a key that is
// not 32 bytes, "malformed" for another typ, "duplicate_recipient" for a certificate given
// twice, and the reasons of WrapKey.
func EncryptWithKey(plaintext []byte, typ string, key []byte, recipients ...Recipient) (*etree.Element, error) {
	if typ != TypeElement && typ != TypeContent {
		return nil, refuse("malformed", "EncryptedData type %q: use %s or %s", typ, TypeElement, TypeContent)
	}
	if len(key) != KeySize {
		return nil, refuse("bad_key", "content key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	var eks []*etree.Element
	for i, r := range recipients {
		for _, prev := range recipients[:i] {
			if r.Cert != nil && prev.Cert != nil && bytes.Equal(r.Cert.Raw, prev.Cert.Raw) {
				return nil, refuse("duplicate_recipient", "certificate %s is given twice as a recipient", r.Cert.Subject.CommonName)
			}
		}
		ek, err := wrapKey(key, r)
		if err != nil {
			return nil, err
		}
		eks = append(eks, ek)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	data := make([]byte, ivSize, ivSize+len(plaintext)+tagSize)
	_, _ = rand.Read(data)
	data = aead.Seal(data, data[:ivSize], plaintext, nil)

	ed := etree.NewElement("xenc:EncryptedData")
	ed.CreateAttr("xmlns:xenc", nsXENC)
	if len(eks) > 0 {
		ed.CreateAttr("xmlns:ds", nsDS)
	}
	ed.CreateAttr("Type", typ)
	ed.CreateElement("xenc:EncryptionMethod").CreateAttr("Algorithm", AES256GCM)
	if len(eks) > 0 {
		ki := ed.CreateElement("ds:KeyInfo")
		for _, ek := range eks {
			ki.AddChild(ek)
		}
	}
	ed.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(encodeBase64(data))
	return ed, nil
}

// encodeBase64 encodes b straight into the string it returns: base64.EncodeToString would copy
// a CipherValue of megabytes once more.
func encodeBase64(b []byte) string {
	var sb strings.Builder
	sb.Grow(base64.StdEncoding.EncodedLen(len(b)))
	w := base64.NewEncoder(base64.StdEncoding, &sb)
	_, _ = w.Write(b) // a strings.Builder never fails
	_ = w.Close()
	return sb.String()
}

// WrapKey returns a lone xenc:EncryptedKey, declaring its namespaces, that wraps key (32
// bytes) to r's certificate. It returns an invalid-kind *evoucher.Error with reason "bad_key"
// for a key that is not 32 bytes, "unsupported_algorithm" for a KeyTransport outside the
// profile, "unsupported_key" for a certificate without an RSA key, "weak_key" for an RSA key
// under 2048 bits, and "wrong_key_usage" for a certificate not for key encipherment.
func WrapKey(key []byte, r Recipient) (*etree.Element, error) {
	if len(key) != KeySize {
		return nil, refuse("bad_key", "content key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	ek, err := wrapKey(key, r)
	if err != nil {
		return nil, err
	}
	ek.CreateAttr("xmlns:xenc", nsXENC)
	ek.CreateAttr("xmlns:ds", nsDS)
	return ek, nil
}

// wrapKey builds an EncryptedKey whose prefixes xenc and ds are declared by an ancestor.
func wrapKey(key []byte, r Recipient) (*etree.Element, error) {
	pub, err := recipientKey(r.Cert)
	if err != nil {
		return nil, err
	}
	ek := etree.NewElement("xenc:EncryptedKey")
	if r.Name != "" {
		ek.CreateAttr("Recipient", r.Name)
	}
	em := ek.CreateElement("xenc:EncryptionMethod")
	var h hash.Hash
	switch r.KeyTransport {
	case "", RSAOAEPMGF1P:
		h = sha1.New()
		em.CreateAttr("Algorithm", RSAOAEPMGF1P)
		em.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", digestSHA1)
	case RSAOAEP:
		h = sha256.New()
		em.CreateAttr("Algorithm", RSAOAEP)
		em.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", digestSHA256)
		mgf := em.CreateElement("xenc11:MGF")
		mgf.CreateAttr("xmlns:xenc11", nsXENC11)
		mgf.CreateAttr("Algorithm", mgf1SHA256)
	default:
		return nil, refuse("unsupported_algorithm", "key transport %q is outside the platform's profile: use %s or %s", r.KeyTransport, RSAOAEPMGF1P, RSAOAEP)
	}
	wrapped, err := rsa.EncryptOAEP(h, rand.Reader, pub, key, nil)
	if err != nil {
		return nil, err
	}
	ids := ek.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509IssuerSerial")
	ids.CreateElement("ds:X509IssuerName").SetText(issuerName(r.Cert))
	ids.CreateElement("ds:X509SerialNumber").SetText(r.Cert.SerialNumber.String())
	ek.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(wrapped))
	return ek, nil
}

// recipientKey returns the RSA key of a certificate fit to receive keys.
func recipientKey(cert *x509.Certificate) (*rsa.PublicKey, error) {
	if cert == nil {
		return nil, refuse("no_recipient", "a recipient has no certificate")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	switch {
	case !ok:
		return nil, refuse("unsupported_key", "certificate %s has a %T key: keys are wrapped to RSA keys only", cert.Subject.CommonName, cert.PublicKey)
	case pub.N.BitLen() < minRSABits:
		return nil, refuse("weak_key", "certificate %s has a %d-bit RSA key: at least %d bits are required", cert.Subject.CommonName, pub.N.BitLen(), minRSABits)
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0:
		return nil, refuse("wrong_key_usage", "certificate %s is not for key encipherment: wrap keys to the recipient's encryption certificate", cert.Subject.CommonName)
	}
	return pub, nil
}

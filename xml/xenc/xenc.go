package xenc

import (
	"crypto/x509"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
)

// Algorithms and types of the profile.
const (
	// AES256GCM is the data encryption algorithm: AES-256-GCM, 12-byte IV, 16-byte tag.
	AES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	// RSAOAEPMGF1P is the default key transport: RSA-OAEP with SHA-1 and MGF1-SHA-1.
	RSAOAEPMGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	// RSAOAEP is XML Encryption 1.1's RSA-OAEP; Encrypt uses it with SHA-256 and MGF1-SHA-256.
	RSAOAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"

	// TypeElement says the plaintext is one serialised XML element.
	TypeElement = "http://www.w3.org/2001/04/xmlenc#Element"
	// TypeContent says the plaintext is element content (elements and text).
	TypeContent = "http://www.w3.org/2001/04/xmlenc#Content"
)

// KeySize is the size in bytes of a content key: AES-256.
const KeySize = 32

// Namespaces and algorithm parameters.
const (
	nsXENC   = "http://www.w3.org/2001/04/xmlenc#"
	nsXENC11 = "http://www.w3.org/2009/xmlenc11#"
	nsDS     = "http://www.w3.org/2000/09/xmldsig#"

	digestSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"
	digestSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	mgf1SHA1     = "http://www.w3.org/2009/xmlenc11#mgf1sha1"
	mgf1SHA256   = "http://www.w3.org/2009/xmlenc11#mgf1sha256"

	ivSize  = 12
	tagSize = 16

	// maxRecipients bounds the EncryptedKeys read from one EncryptedData: a shipment has a
	// terminal and a few vendor cards.
	maxRecipients = 64
)

// Recipient is a party that can decrypt: the certificate whose RSA key the content key is
// wrapped to.
type Recipient struct {
	Cert *x509.Certificate
	// KeyTransport is RSAOAEPMGF1P (the default when empty) or RSAOAEP (SHA-256; the
	// recipient's token must implement it, SoftHSM 2.6 does not).
	KeyTransport string
	// Name, when set, is written as the EncryptedKey's Recipient attribute: a hint for people
	// and tools, never used to choose a key.
	Name string
}

// refuse returns the invalid-kind error every refusal of this package is.
func refuse(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, reason, "xml encryption: "+format, args...)
}

// is reports whether e is the element ns:local.
func is(e *etree.Element, ns, local string) bool {
	return e != nil && e.Tag == local && e.NamespaceURI() == ns
}

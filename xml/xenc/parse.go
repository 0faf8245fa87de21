package xenc

import (
	"crypto/rsa"
	"encoding/base64"

	"github.com/beevik/etree"
)

// encryptedData is an EncryptedData whose structure and algorithms have been checked, and
// whose key ciphertexts have been decoded; no key has been used yet.
type encryptedData struct {
	cipherValue *etree.Element // decoded only when needed: it may hold megabytes
	keys        []*encryptedKey
}

// encryptedKey is a checked EncryptedKey.
type encryptedKey struct {
	opts       *rsa.OAEPOptions
	id         keyID
	ciphertext []byte
}

// parts splits an EncryptedData or EncryptedKey into its children, in the schema's order:
// EncryptionMethod?, ds:KeyInfo?, CipherData, EncryptionProperties?, then, for an
// EncryptedKey only, ReferenceList? and CarriedKeyName? (which this package does not use).
func parts(e *etree.Element, isKey bool) (method, keyInfo, cipherData *etree.Element, err error) {
	stage := 0
	for _, c := range e.ChildElements() {
		next := -1
		switch {
		case is(c, nsXENC, "EncryptionMethod") && stage < 1:
			method, next = c, 1
		case is(c, nsDS, "KeyInfo") && stage < 2:
			keyInfo, next = c, 2
		case is(c, nsXENC, "CipherData") && stage < 3:
			cipherData, next = c, 3
		case is(c, nsXENC, "EncryptionProperties") && stage == 3:
			next = 4
		case isKey && is(c, nsXENC, "ReferenceList") && stage >= 3 && stage < 5:
			next = 5
		case isKey && is(c, nsXENC, "CarriedKeyName") && stage >= 3 && stage < 6:
			next = 6
		}
		if next < 0 {
			return nil, nil, nil, refuse("malformed", "%s: unexpected or repeated %s", e.Tag, c.FullTag())
		}
		stage = next
	}
	if method == nil {
		return nil, nil, nil, refuse("malformed", "%s has no EncryptionMethod: the profile requires its algorithm to be named", e.Tag)
	}
	if cipherData == nil {
		return nil, nil, nil, refuse("malformed", "%s has no CipherData", e.Tag)
	}
	return method, keyInfo, cipherData, nil
}

// parseEncryptedData checks ed and every EncryptedKey in its KeyInfo.
func parseEncryptedData(ed *etree.Element) (*encryptedData, error) {
	if ed == nil {
		return nil, refuse("malformed", "no EncryptedData")
	}
	if !is(ed, nsXENC, "EncryptedData") {
		return nil, refuse("malformed", "expected an xenc:EncryptedData, found %s in namespace %q", ed.Tag, ed.NamespaceURI())
	}
	method, keyInfo, cipherData, err := parts(ed, false)
	if err != nil {
		return nil, err
	}
	if err := checkDataMethod(method); err != nil {
		return nil, err
	}
	cv, err := cipherValue(cipherData, "EncryptedData")
	if err != nil {
		return nil, err
	}
	p := &encryptedData{cipherValue: cv}
	if keyInfo == nil {
		return p, nil
	}
	for _, c := range keyInfo.ChildElements() {
		if !is(c, nsXENC, "EncryptedKey") {
			return nil, refuse("unsupported_feature", "the EncryptedData's KeyInfo holds %s: only EncryptedKey elements are read there", c.FullTag())
		}
		if len(p.keys) == maxRecipients {
			return nil, refuse("malformed", "EncryptedData has more than %d EncryptedKey elements", maxRecipients)
		}
		k, err := parseEncryptedKey(c)
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, k)
	}
	return p, nil
}

// parseEncryptedKey checks ek and decodes its ciphertext.
func parseEncryptedKey(ek *etree.Element) (*encryptedKey, error) {
	method, keyInfo, cipherData, err := parts(ek, true)
	if err != nil {
		return nil, err
	}
	k := new(encryptedKey)
	if k.opts, err = keyTransport(method); err != nil {
		return nil, err
	}
	if keyInfo != nil {
		if k.id, err = readKeyID(keyInfo); err != nil {
			return nil, err
		}
	}
	cv, err := cipherValue(cipherData, "EncryptedKey")
	if err != nil {
		return nil, err
	}
	if k.ciphertext, err = decodeBase64(cv, "EncryptedKey CipherValue"); err != nil {
		return nil, err
	}
	return k, nil
}

// cipherValue returns CipherData's only child, a CipherValue.
func cipherValue(cd *etree.Element, owner string) (*etree.Element, error) {
	var cv *etree.Element
	for _, c := range cd.ChildElements() {
		switch {
		case is(c, nsXENC, "CipherReference"):
			return nil, refuse("unsupported_feature", "%s: CipherReference is not supported: the ciphertext must be inline, in a CipherValue", owner)
		case is(c, nsXENC, "CipherValue") && cv == nil:
			cv = c
		default:
			return nil, refuse("malformed", "%s: unexpected or repeated %s in CipherData", owner, c.FullTag())
		}
	}
	if cv == nil {
		return nil, refuse("malformed", "%s has no CipherValue", owner)
	}
	return cv, nil
}

// decodeBase64 decodes the base64 text of e, skipping XML whitespace and comments, in one
// allocation of the decoded size: a CipherValue may hold megabytes.
func decodeBase64(e *etree.Element, what string) ([]byte, error) {
	size := 0
	for _, t := range e.Child {
		switch t := t.(type) {
		case *etree.CharData:
			size += len(t.Data)
		case *etree.Comment:
		default:
			return nil, refuse("malformed", "%s holds markup, not base64 text", what)
		}
	}
	d := b64{out: make([]byte, 0, base64.StdEncoding.DecodedLen(size))}
	for _, t := range e.Child {
		if t, ok := t.(*etree.CharData); ok {
			d.write(t.Data)
		}
	}
	if d.flush(); d.bad {
		return nil, refuse("malformed", "%s is not valid base64", what)
	}
	return d.out, nil
}

// b64 decodes base64 text in chunks whole quanta long, so padding can only end the text.
type b64 struct {
	out   []byte
	chunk [4096]byte
	n     int
	pad   bool
	bad   bool
}

func (d *b64) write(s string) {
	for i := 0; i < len(s) && !d.bad; i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '=':
			d.pad = true
		case d.pad:
			d.bad = true // data after padding
			return
		}
		d.chunk[d.n] = c
		if d.n++; d.n == len(d.chunk) {
			d.flush()
		}
	}
}

func (d *b64) flush() {
	if d.bad || d.n == 0 {
		return
	}
	var err error
	if d.out, err = base64.StdEncoding.Strict().AppendDecode(d.out, d.chunk[:d.n]); err != nil {
		d.bad = true
	}
	d.n = 0
}

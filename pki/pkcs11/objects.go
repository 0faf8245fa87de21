package pkcs11

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"strings"

	p11 "github.com/miekg/pkcs11"
)

// keyKind is a kind of key this package hands out.
type keyKind int

const (
	kindRSA keyKind = iota + 1
	kindECDSA
	kindAES
)

func (k keyKind) String() string {
	switch k {
	case kindRSA:
		return "RSA"
	case kindECDSA:
		return "ECDSA"
	case kindAES:
		return "AES"
	}
	return "unknown"
}

// oidP256 is the DER encoding of the named curve prime256v1 (secp256r1), as in CKA_EC_PARAMS.
const oidP256 = "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"

// object is what this package needs to know about one object on the token.
type object struct {
	handle  p11.ObjectHandle
	class   uint
	keyType uint
	id      []byte
	bits    int    // RSA modulus or AES key size; 256 for P-256
	p256    bool   // an EC key on P-256
	curve   []byte // CKA_EC_PARAMS of an EC key
}

// kind reports which of this package's key kinds o is, or 0.
func (o object) kind() keyKind {
	switch {
	case o.keyType == p11.CKK_RSA && (o.class == p11.CKO_PRIVATE_KEY || o.class == p11.CKO_PUBLIC_KEY):
		return kindRSA
	case o.keyType == p11.CKK_EC && o.p256 && (o.class == p11.CKO_PRIVATE_KEY || o.class == p11.CKO_PUBLIC_KEY):
		return kindECDSA
	case o.keyType == p11.CKK_AES && o.class == p11.CKO_SECRET_KEY:
		return kindAES
	}
	return 0
}

// isKey reports whether o is the half of a key that does the work: a private or secret key.
func (o object) isKey() bool { return o.class == p11.CKO_PRIVATE_KEY || o.class == p11.CKO_SECRET_KEY }

// String describes o for error messages, e.g. "RSA-2048 private key".
func (o object) String() string {
	var class string
	switch o.class {
	case p11.CKO_PRIVATE_KEY:
		class = "private key"
	case p11.CKO_PUBLIC_KEY:
		class = "public key"
	case p11.CKO_SECRET_KEY:
		class = "secret key"
	case p11.CKO_CERTIFICATE:
		return "certificate"
	case p11.CKO_DATA:
		return "data object"
	default:
		return fmt.Sprintf("object of class %#x", o.class)
	}
	switch {
	case o.keyType == p11.CKK_RSA:
		return fmt.Sprintf("RSA-%d %s", o.bits, class)
	case o.keyType == p11.CKK_EC && o.p256:
		return "ECDSA P-256 " + class
	case o.keyType == p11.CKK_EC:
		return fmt.Sprintf("EC %s (curve %x)", class, o.curve)
	case o.keyType == p11.CKK_AES:
		return fmt.Sprintf("AES-%d %s", o.bits, class)
	}
	return fmt.Sprintf("%s of key type %#x", class, o.keyType)
}

// describe lists objs for error messages.
func describe(objs []object) string {
	s := make([]string, len(objs))
	for i, o := range objs {
		s[i] = o.String()
	}
	return strings.Join(s, ", ")
}

// withSession runs f in a fresh read-write session of the raw handle. The caller holds t.mu.
func (t *Token) withSession(f func(sh p11.SessionHandle) error) error {
	if t.closed {
		return fmt.Errorf("pkcs11: token %q is closed", t.label)
	}
	sh, err := t.raw.OpenSession(t.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("pkcs11: open session on token %q: %w", t.label, err)
	}
	defer func() { _ = t.raw.CloseSession(sh) }()
	return f(sh)
}

// objects returns every object labelled label that the logged-in user can see.
func (t *Token) objects(sh p11.SessionHandle, label string) ([]object, error) {
	if err := t.raw.FindObjectsInit(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, label)}); err != nil {
		return nil, fmt.Errorf("pkcs11: search objects labelled %q: %w", label, err)
	}
	var handles []p11.ObjectHandle
	for {
		hs, _, err := t.raw.FindObjects(sh, 64)
		if err != nil {
			_ = t.raw.FindObjectsFinal(sh)
			return nil, fmt.Errorf("pkcs11: search objects labelled %q: %w", label, err)
		}
		if len(hs) == 0 {
			break
		}
		handles = append(handles, hs...)
	}
	if err := t.raw.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("pkcs11: search objects labelled %q: %w", label, err)
	}
	objs := make([]object, 0, len(handles))
	for _, h := range handles {
		o, err := t.object(sh, h)
		if err != nil {
			return nil, fmt.Errorf("pkcs11: read object labelled %q: %w", label, err)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// object reads the class, key type, CKA_ID and size of the object h.
func (t *Token) object(sh p11.SessionHandle, h p11.ObjectHandle) (object, error) {
	o := object{handle: h}
	a, err := t.raw.GetAttributeValue(sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, nil)})
	if err != nil {
		return o, err
	}
	o.class = ulong(a[0].Value)
	if o.class != p11.CKO_PRIVATE_KEY && o.class != p11.CKO_PUBLIC_KEY && o.class != p11.CKO_SECRET_KEY {
		return o, nil
	}
	a, err = t.raw.GetAttributeValue(sh, h, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_ID, nil),
	})
	if err != nil {
		return o, err
	}
	o.keyType, o.id = ulong(a[0].Value), a[1].Value
	var size p11.Attribute
	switch o.keyType {
	case p11.CKK_RSA:
		size.Type = p11.CKA_MODULUS
	case p11.CKK_EC:
		size.Type = p11.CKA_EC_PARAMS
	case p11.CKK_AES:
		size.Type = p11.CKA_VALUE_LEN
	default:
		return o, nil
	}
	if a, err = t.raw.GetAttributeValue(sh, h, []*p11.Attribute{&size}); err != nil {
		return o, err
	}
	switch v := a[0].Value; o.keyType {
	case p11.CKK_RSA:
		o.bits = new(big.Int).SetBytes(v).BitLen()
	case p11.CKK_EC:
		o.curve, o.p256 = v, string(v) == oidP256
		if o.p256 {
			o.bits = 256
		}
	case p11.CKK_AES:
		o.bits = int(ulong(v)) * 8
	}
	return o, nil
}

// ulong decodes a CK_ULONG attribute value, stored in the host's byte order.
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return 0
}

// find returns the private or secret key labelled label if it is of kind k. It returns
// ok=false when no object carries the label, ErrKeyMismatch when the label is taken by
// something else or by a key pair without its public half, and ErrDuplicateKey when two keys
// carry it. Certificates next to an asymmetric key are allowed. The caller holds t.mu.
func (t *Token) find(label string, k keyKind) (key object, ok bool, err error) {
	var objs []object
	err = t.withSession(func(sh p11.SessionHandle) (err error) {
		objs, err = t.objects(sh, label)
		return err
	})
	if err != nil || len(objs) == 0 {
		return object{}, false, err
	}
	var keys, pubs, others []object
	for _, o := range objs {
		switch {
		case o.class == p11.CKO_CERTIFICATE && k != kindAES:
		case o.kind() == k && o.isKey():
			keys = append(keys, o)
		case o.kind() == k:
			pubs = append(pubs, o)
		default:
			others = append(others, o)
		}
	}
	switch {
	case len(others) > 0:
		return object{}, false, fmt.Errorf("%w: label %q on token %q holds %s, not an %s key", ErrKeyMismatch, label, t.label, describe(objs), k)
	case len(keys) > 1 || len(pubs) > 1:
		return object{}, false, fmt.Errorf("%w: label %q on token %q holds %s; delete the key and create it again", ErrDuplicateKey, label, t.label, describe(objs))
	case len(keys) == 0:
		return object{}, false, fmt.Errorf("%w: label %q on token %q holds only %s", ErrKeyMismatch, label, t.label, describe(objs))
	case k != kindAES && len(pubs) == 0:
		return object{}, false, fmt.Errorf("%w: %s %q on token %q has no public key", ErrKeyMismatch, keys[0], label, t.label)
	}
	return keys[0], true, nil
}

// DeleteKey destroys every object labelled label on the token: private, public and secret
// keys, and certificates. Keys obtained earlier under that label stop working. It returns
// ErrInvalid for a bad label, ErrKeyNotFound when no object carries it, and the module's
// error when one cannot be destroyed.
func (t *Token) DeleteKey(label string) error {
	if err := checkLabel("key", label); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.withSession(func(sh p11.SessionHandle) error {
		objs, err := t.objects(sh, label)
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			return fmt.Errorf("%w: no object labelled %q on token %q", ErrKeyNotFound, label, t.label)
		}
		for _, o := range objs {
			if err := t.raw.DestroyObject(sh, o.handle); err != nil {
				return fmt.Errorf("pkcs11: destroy %s %q on token %q: %w", o, label, t.label, err)
			}
		}
		return nil
	})
}

// KeyInfo reports the security attributes stored in the token for the key labelled label,
// so that callers can prove a key cannot leave the token.
type KeyInfo struct {
	Label string
	// Type is "RSA", "ECDSA", "AES", or a description of another key type.
	Type string
	// Bits is the RSA modulus size, 256 for P-256, or the AES key size.
	Bits int
	// Sensitive, Extractable, NeverExtractable and AlwaysSensitive are CKA_SENSITIVE,
	// CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE of the private or
	// secret key.
	Sensitive, Extractable, NeverExtractable, AlwaysSensitive bool
	// Persistent is CKA_TOKEN: the key is stored on the token, not only in the session.
	Persistent bool
}

// KeyInfo returns the attributes of the private or secret key labelled label. It returns
// ErrInvalid for a bad label, ErrKeyNotFound when no private or secret key carries it,
// ErrDuplicateKey when several do, and the module's error otherwise.
func (t *Token) KeyInfo(label string) (KeyInfo, error) {
	if err := checkLabel("key", label); err != nil {
		return KeyInfo{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	info := KeyInfo{Label: label}
	err := t.withSession(func(sh p11.SessionHandle) error {
		objs, err := t.objects(sh, label)
		if err != nil {
			return err
		}
		var keys []object
		for _, o := range objs {
			if o.isKey() {
				keys = append(keys, o)
			}
		}
		switch {
		case len(keys) == 0:
			return fmt.Errorf("%w: no private or secret key labelled %q on token %q", ErrKeyNotFound, label, t.label)
		case len(keys) > 1:
			return fmt.Errorf("%w: label %q on token %q holds %s", ErrDuplicateKey, label, t.label, describe(objs))
		}
		key := keys[0]
		if k := key.kind(); k != 0 {
			info.Type = k.String()
		} else {
			info.Type = key.String()
		}
		info.Bits = key.bits
		a, err := t.raw.GetAttributeValue(sh, key.handle, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_SENSITIVE, nil),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
			p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
			p11.NewAttribute(p11.CKA_ALWAYS_SENSITIVE, nil),
			p11.NewAttribute(p11.CKA_TOKEN, nil),
		})
		if err != nil {
			return fmt.Errorf("pkcs11: read attributes of %s %q on token %q: %w", key, label, t.label, err)
		}
		b := func(i int) bool { return len(a[i].Value) == 1 && a[i].Value[0] != 0 }
		info.Sensitive, info.Extractable, info.NeverExtractable, info.AlwaysSensitive, info.Persistent = b(0), b(1), b(2), b(3), b(4)
		return nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	return info, nil
}

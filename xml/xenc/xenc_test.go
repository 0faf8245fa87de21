package xenc_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/xml/xenc"
)

// codes returns a Codes element of n codes, as a batch or shipment carries them.
func codes(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<Codes>`)
	for i := range n {
		fmt.Fprintf(&b, `<Code Serial="S-%07d">%016d</Code>`, i, 7349_0000_0000_0000+i)
	}
	b.WriteString(`</Codes>`)
	return b.Bytes()
}

func TestRoundTripTokenKey(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	term := e.mustTokenParty(t, "T-1")
	plaintext := codes(3)

	ed, err := xenc.Encrypt(plaintext, xenc.TypeElement, xenc.Recipient{Cert: term.cert, Name: "T-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, raw := serialise(t, ed)

	t.Run("OK", func(t *testing.T) {
		pt, err := xenc.Decrypt(got, term.cert, term.key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pt, plaintext) {
			t.Fatalf("decrypted %q, want %q", pt, plaintext)
		}
	})
	t.Run("Profile", func(t *testing.T) {
		if bytes.Contains(raw, []byte("Code")) || bytes.Contains(raw, []byte("73490000")) {
			t.Fatal("the EncryptedData shows the plaintext")
		}
		for path, want := range map[string]string{
			"./xenc:EncryptionMethod/@Algorithm":        xenc.AES256GCM,
			"./@Type":                                   xenc.TypeElement,
			"./ds:KeyInfo/xenc:EncryptedKey/@Recipient": "T-1",
			"./ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod/@Algorithm":                               xenc.RSAOAEPMGF1P,
			"./ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod/ds:DigestMethod/@Algorithm":               "http://www.w3.org/2000/09/xmldsig#sha1",
			"./ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509SerialNumber": term.cert.SerialNumber.String(),
			"./ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509IssuerName":   "CN=evoucher platform CA,O=evoucher",
		} {
			if v := value(got, path); v != want {
				t.Errorf("%s = %q, want %q", path, v, want)
			}
		}
		data := cipherValue(t, got)
		if len(data) != 12+len(plaintext)+16 {
			t.Errorf("CipherValue is %d bytes, want IV + %d + tag", len(data), len(plaintext))
		}
	})
	t.Run("FreshKeyAndIV", func(t *testing.T) {
		again, err := xenc.Encrypt(plaintext, xenc.TypeElement, xenc.Recipient{Cert: term.cert})
		if err != nil {
			t.Fatal(err)
		}
		a, b := cipherValue(t, got), cipherValue(t, again)
		if bytes.Equal(a[:12], b[:12]) || bytes.Equal(a[12:], b[12:]) {
			t.Fatal("two encryptions share an IV or a ciphertext")
		}
	})
	t.Run("SplitUnwrapThenDecryptWithKey", func(t *testing.T) {
		key, err := xenc.UnwrapKey(got, term.cert, term.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != 32 {
			t.Fatalf("content key is %d bytes", len(key))
		}
		pt, err := xenc.DecryptWithKey(got, key)
		if err != nil || !bytes.Equal(pt, plaintext) {
			t.Fatalf("DecryptWithKey = %q, %v", pt, err)
		}
		key[0] ^= 1
		pt, err = xenc.DecryptWithKey(got, key)
		wantRefusal(t, pt, err, "bad_ciphertext")
	})
	t.Run("ErrOAEPSHA256OnSoftHSM", func(t *testing.T) {
		// SoftHSM 2.6 implements OAEP with SHA-1 only: a sender that chose SHA-256 is told to
		// use rsa-oaep-mgf1p, not that the data was altered.
		ed, err := xenc.Encrypt(plaintext, xenc.TypeElement, xenc.Recipient{Cert: term.cert, KeyTransport: xenc.RSAOAEP})
		if err != nil {
			t.Fatal(err)
		}
		pt, err := xenc.Decrypt(ed, term.cert, term.key)
		if err == nil {
			if !bytes.Equal(pt, plaintext) {
				t.Fatalf("decrypted %q", pt)
			}
			t.Skip("this token implements RSA-OAEP with SHA-256")
		}
		wantRefusal(t, pt, err, "unsupported_algorithm")
		if !errors.Is(err, pkcs11.ErrUnsupported) || !strings.Contains(err.Error(), xenc.RSAOAEPMGF1P) {
			t.Errorf("err = %v, want ErrUnsupported as cause and advice to use rsa-oaep-mgf1p", err)
		}
	})
	t.Run("ErrKeyOfAnotherCertificate", func(t *testing.T) {
		other := e.mustTokenParty(t, "T-2")
		if _, err := xenc.Decrypt(got, term.cert, other.key); err == nil || evoucher.KindOf(err) != evoucher.KindInternal {
			t.Fatalf("err = %v, want an internal error: the caller mixed up its keys", err)
		}
	})
}

func TestRecipients(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	term := e.mustTokenParty(t, "T-7")
	card := e.mustTokenParty(t, "V-70")
	stranger := e.mustTokenParty(t, "T-8")
	plaintext := codes(10)
	ed, err := xenc.Encrypt(plaintext, xenc.TypeElement,
		xenc.Recipient{Cert: term.cert, Name: "terminal T-7"}, xenc.Recipient{Cert: card.cert, Name: "vendor card V-70"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := serialise(t, ed)
	if n := len(got.FindElements("./ds:KeyInfo/xenc:EncryptedKey")); n != 2 {
		t.Fatalf("%d EncryptedKey elements, want 2", n)
	}
	for name, p := range map[string]party{"Terminal": term, "VendorCard": card} {
		t.Run(name+"Decrypts", func(t *testing.T) {
			pt, err := xenc.Decrypt(got, p.cert, p.key)
			if err != nil || !bytes.Equal(pt, plaintext) {
				t.Fatalf("Decrypt = %q, %v", pt, err)
			}
		})
	}
	t.Run("SameContentKey", func(t *testing.T) {
		k1, err := xenc.UnwrapKey(got, term.cert, term.key)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := xenc.UnwrapKey(got, card.cert, card.key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k1, k2) {
			t.Fatal("the recipients unwrap different keys")
		}
	})
	t.Run("ErrNoRecipient", func(t *testing.T) {
		c := &counting{Decrypter: stranger.key}
		pt, err := xenc.Decrypt(got, stranger.cert, c)
		wantRefusal(t, pt, err, "no_recipient")
		if c.n.Load() != 0 {
			t.Errorf("the key was used %d times", c.n.Load())
		}
	})
	t.Run("ErrDuplicateRecipient", func(t *testing.T) {
		_, err := xenc.Encrypt(plaintext, xenc.TypeElement, xenc.Recipient{Cert: term.cert}, xenc.Recipient{Cert: term.cert})
		wantRefusal(t, nil, err, "duplicate_recipient")
	})
}

func TestEncryptRefusals(t *testing.T) {
	t.Parallel()
	p := inMemoryParty(t, "recipient")
	for name, c := range map[string]struct {
		reason string
		do     func() error
	}{
		"ErrNoRecipients": {"no_recipient", func() error { _, err := xenc.Encrypt([]byte("x"), xenc.TypeContent); return err }},
		"ErrNilCertificate": {"no_recipient", func() error {
			_, err := xenc.Encrypt([]byte("x"), xenc.TypeContent, xenc.Recipient{})
			return err
		}},
		"ErrRSA15": {"unsupported_algorithm", func() error {
			_, err := xenc.Encrypt([]byte("x"), xenc.TypeContent, xenc.Recipient{Cert: p.cert, KeyTransport: "http://www.w3.org/2001/04/xmlenc#rsa-1_5"})
			return err
		}},
		"ErrType": {"malformed", func() error {
			_, err := xenc.Encrypt([]byte("x"), "http://www.w3.org/2001/04/xmlenc#EXI", xenc.Recipient{Cert: p.cert})
			return err
		}},
		"ErrShortKey": {"bad_key", func() error {
			_, err := xenc.EncryptWithKey([]byte("x"), xenc.TypeContent, make([]byte, 16), xenc.Recipient{Cert: p.cert})
			return err
		}},
		"ErrWeakKey": {"weak_key", func() error {
			small, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				return err
			}
			_, err = xenc.Encrypt([]byte("x"), xenc.TypeContent, xenc.Recipient{Cert: selfSigned(t, small, "small")})
			return err
		}},
		"ErrSigningCertificate": {"wrong_key_usage", func() error {
			c := *p.cert
			c.KeyUsage = 1 // digital signature only
			_, err := xenc.Encrypt([]byte("x"), xenc.TypeContent, xenc.Recipient{Cert: &c})
			return err
		}},
	} {
		t.Run(name, func(t *testing.T) { wantRefusal(t, nil, c.do(), c.reason) })
	}
}

func TestRSAOAEPSHA256(t *testing.T) {
	t.Parallel()
	// An in-memory key does SHA-256 OAEP, which SoftHSM 2.6 cannot.
	p := inMemoryParty(t, "sha256 recipient")
	ed, err := xenc.Encrypt([]byte("<Codes/>"), xenc.TypeElement, xenc.Recipient{Cert: p.cert, KeyTransport: xenc.RSAOAEP})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := serialise(t, ed)
	const em = "./ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod"
	if value(got, em+"/@Algorithm") != xenc.RSAOAEP ||
		value(got, em+"/ds:DigestMethod/@Algorithm") != "http://www.w3.org/2001/04/xmlenc#sha256" ||
		value(got, em+"/xenc11:MGF/@Algorithm") != "http://www.w3.org/2009/xmlenc11#mgf1sha256" {
		t.Fatal("the EncryptedKey does not name RSA-OAEP with SHA-256 and MGF1-SHA-256")
	}
	var opts *rsa.OAEPOptions
	spy := spyDecrypter{p.key, func(o crypto.DecrypterOpts) { opts, _ = o.(*rsa.OAEPOptions) }}
	pt, err := xenc.Decrypt(got, p.cert, spy)
	if err != nil || string(pt) != "<Codes/>" {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
	if opts == nil || opts.Hash != crypto.SHA256 || opts.MGFHash != crypto.SHA256 {
		t.Fatalf("the key was asked for OAEP with %+v, want SHA-256 and MGF1-SHA-256", opts)
	}
}

func TestWrapKeyAlone(t *testing.T) {
	t.Parallel()
	p := inMemoryParty(t, "share holder")
	share := make([]byte, 32)
	_, _ = rand.Read(share)
	ek, err := xenc.WrapKey(share, xenc.Recipient{Cert: p.cert, Name: "V-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := serialise(t, ek)
	key, err := xenc.UnwrapKey(got, p.cert, p.key)
	if err != nil || !bytes.Equal(key, share) {
		t.Fatalf("UnwrapKey = %x, %v; want %x", key, err, share)
	}
	other := inMemoryParty(t, "other")
	_, err = xenc.UnwrapKey(got, other.cert, other.key)
	wantRefusal(t, nil, err, "no_recipient")
	// Content encrypted without recipients opens with the caller's key only.
	ed, err := xenc.EncryptWithKey([]byte("hello"), xenc.TypeContent, share)
	if err != nil {
		t.Fatal(err)
	}
	if ed.FindElement("./ds:KeyInfo") != nil {
		t.Error("EncryptWithKey without recipients wrote a KeyInfo")
	}
	pt, err := xenc.DecryptWithKey(ed, share)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("DecryptWithKey = %q, %v", pt, err)
	}
	_, err = xenc.Decrypt(ed, p.cert, p.key)
	wantRefusal(t, nil, err, "no_recipient")
}

func TestLargePlaintext(t *testing.T) {
	t.Parallel()
	p := inMemoryParty(t, "big")
	plaintext := codes(50_000) // about 2 MB of codes
	ed, err := xenc.Encrypt(plaintext, xenc.TypeElement, xenc.Recipient{Cert: p.cert})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := serialise(t, ed)
	pt, err := xenc.Decrypt(got, p.cert, p.key)
	if err != nil || !bytes.Equal(pt, plaintext) {
		t.Fatalf("Decrypt: %d bytes, %v", len(pt), err)
	}
}

// spyDecrypter reports the options it is given.
type spyDecrypter struct {
	crypto.Decrypter
	seen func(crypto.DecrypterOpts)
}

func (s spyDecrypter) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	s.seen(opts)
	return s.Decrypter.Decrypt(r, msg, opts)
}

// value returns the text or attribute at an etree path ("…/@Attr" for an attribute).
func value(e *etree.Element, path string) string {
	if i := strings.LastIndex(path, "/@"); i >= 0 {
		if el := e.FindElement(path[:i]); el != nil {
			return el.SelectAttrValue(path[i+2:], "")
		}
		return ""
	}
	if el := e.FindElement(path); el != nil {
		return el.Text()
	}
	return ""
}

// cipherValue decodes the EncryptedData's CipherValue.
func cipherValue(t testing.TB, ed *etree.Element) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(value(ed, "./xenc:CipherData/xenc:CipherValue"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIssuerNameForms(t *testing.T) {
	t.Parallel()
	// xmlsec1 (OpenSSL) and Java write X509IssuerName in their own RFC 4514 dialects: any of
	// them names the same issuer.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := party{cert: selfSigned(t, key, "Café, Ltd"), key: key}
	ed, err := xenc.Encrypt([]byte("<Codes/>"), xenc.TypeElement, xenc.Recipient{Cert: p.cert})
	if err != nil {
		t.Fatal(err)
	}
	const path = "./ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509IssuerName"
	if got := value(ed, path); got != `CN=Café\, Ltd,O=evoucher test` {
		t.Fatalf("X509IssuerName = %q", got)
	}
	for name, c := range map[string]struct {
		issuer string
		match  bool
	}{
		"Go":                 {`CN=Café\, Ltd,O=evoucher test`, true},
		"OpenSSLEscapedUTF8": {`CN=Caf\C3\A9\, Ltd,O=evoucher test`, true},
		"SpacesLowerCase":    {` cn = Café\, Ltd , o=evoucher test `, true},
		"OIDs":               {`2.5.4.3=Café\2C Ltd,OID.2.5.4.10=evoucher test`, true},
		"HexDER":             {`CN=Café\, Ltd,O=#0c0d65766f75636865722074657374`, true},
		"CaseInsensitive":    {`CN=CAFÉ\, LTD,O=EVOUCHER TEST`, true},
		"ErrReversed":        {`O=evoucher test,CN=Café\, Ltd`, false},
		"ErrMissingRDN":      {`CN=Café\, Ltd`, false},
		"ErrOtherValue":      {`CN=Café Ltd,O=evoucher test`, false},
		"ErrUnknownType":     {`XX=Café\, Ltd,O=evoucher test`, false},
		"ErrDanglingEscape":  {`CN=Café\, Ltd,O=evoucher test\`, false},
	} {
		t.Run(name, func(t *testing.T) {
			doc := ed.Copy()
			doc.FindElement(path).SetText(c.issuer)
			pt, err := xenc.Decrypt(doc, p.cert, p.key)
			if c.match && (err != nil || string(pt) != "<Codes/>") {
				t.Fatalf("Decrypt = %q, %v", pt, err)
			}
			if !c.match {
				wantRefusal(t, pt, err, "no_recipient")
			}
		})
	}
	t.Run("ErrOtherSerial", func(t *testing.T) {
		doc := ed.Copy()
		sn := doc.FindElement("./ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509SerialNumber")
		sn.SetText(new(big.Int).Add(p.cert.SerialNumber, big.NewInt(1)).String())
		pt, err := xenc.Decrypt(doc, p.cert, p.key)
		wantRefusal(t, pt, err, "no_recipient")
	})
}

package xenc_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher/xml/xenc"
)

// hostileCase is how an EncryptedData of testdata/hostile/ must be refused: the reason, and
// whether the recipient's key is used before the refusal (only when the fault can be seen in
// no other way: a ciphertext or wrapped key altered in its bytes).
type hostileCase struct {
	reason string
	keyUse bool
}

var hostileCases = map[string]hostileCase{
	"aes256-cbc":           {"weak_algorithm", false},
	"tripledes-cbc":        {"weak_algorithm", false},
	"rsa-1_5":              {"weak_algorithm", false},
	"md5-digest":           {"weak_algorithm", false},
	"aes128-gcm":           {"unsupported_algorithm", false},
	"kw-aes256":            {"unsupported_algorithm", false},
	"oaep-params":          {"unsupported_algorithm", false},
	"oaep-sha1-mgf1sha256": {"unsupported_algorithm", false},
	"oaep-sha256-mgf1sha1": {"unsupported_algorithm", false},
	"mgf1p-sha256":         {"unsupported_algorithm", false},
	"cipher-reference":     {"unsupported_feature", false},
	"retrieval-method":     {"unsupported_feature", false},
	"other-recipient":      {"no_recipient", false},
	"duplicate-recipient":  {"duplicate_recipient", false},
	"iv-only":              {"bad_ciphertext", false},
	"short-wrapped-key":    {"bad_ciphertext", false},
	"truncated-tag":        {"bad_ciphertext", true},
	"flipped-ciphertext":   {"bad_ciphertext", true},
	"flipped-tag":          {"bad_ciphertext", true},
	"flipped-wrapped-key":  {"bad_ciphertext", true},
	"wrong-key-length":     {"bad_key", true},
	"non-base64":           {"malformed", false},
	"no-encryption-method": {"malformed", false},
	"wrong-namespace":      {"malformed", false},
	"two-cipher-data":      {"malformed", false},
}

// hostilePlaintext is what the well-formed documents of the tests and testdata/ok.xml hold.
func hostilePlaintext() []byte { return codes(3) }

// buildHostile returns a well-formed EncryptedData for to and the hostile variants of it named
// in hostileCases; other is someone else.
func buildHostile(t testing.TB, to, other party) (ok *etree.Element, hostile map[string]*etree.Element) {
	t.Helper()
	pub := to.cert.PublicKey.(*rsa.PublicKey)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	plaintext := hostilePlaintext()
	base, err := xenc.EncryptWithKey(plaintext, xenc.TypeElement, key, xenc.Recipient{Cert: to.cert, Name: "T-1"})
	if err != nil {
		t.Fatal(err)
	}
	data := cipherValue(t, base)
	oaep := func(k []byte) []byte {
		b, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrapped := oaep(key)

	// Each mutation gets a fresh copy of base and the parts it changes.
	type parts struct{ ed, method, ek, ekMethod, digest *etree.Element }
	mutate := func(f func(p parts)) *etree.Element {
		ed := base.Copy()
		ek := ed.FindElement("./ds:KeyInfo/xenc:EncryptedKey")
		ekMethod := ek.SelectElement("xenc:EncryptionMethod")
		f(parts{ed, ed.SelectElement("xenc:EncryptionMethod"), ek, ekMethod, ekMethod.SelectElement("ds:DigestMethod")})
		return ed
	}
	setCV := func(e *etree.Element, b []byte) {
		e.FindElement("./xenc:CipherData/xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(b))
	}
	setAlg := func(e *etree.Element, alg string) { e.CreateAttr("Algorithm", alg) }
	altered := func(i int, cut int) []byte {
		b := bytes.Clone(data[:len(data)-cut])
		if i >= 0 {
			b[i] ^= 0x01
		}
		return b
	}
	const xencNS = "http://www.w3.org/2001/04/xmlenc#"

	hostile = map[string]*etree.Element{
		"aes256-cbc":    mutate(func(p parts) { setAlg(p.method, xencNS+"aes256-cbc") }),
		"tripledes-cbc": mutate(func(p parts) { setAlg(p.method, xencNS+"tripledes-cbc") }),
		"rsa-1_5": mutate(func(p parts) {
			b, err := rsa.EncryptPKCS1v15(rand.Reader, pub, key)
			if err != nil {
				t.Fatal(err)
			}
			setAlg(p.ekMethod, xencNS+"rsa-1_5")
			p.ekMethod.RemoveChild(p.digest)
			setCV(p.ek, b)
		}),
		"md5-digest": mutate(func(p parts) { setAlg(p.digest, "http://www.w3.org/2001/04/xmldsig-more#md5") }),
		"aes128-gcm": mutate(func(p parts) {
			k16 := key[:16]
			block, _ := aes.NewCipher(k16)
			gcm, _ := cipher.NewGCM(block)
			iv := make([]byte, 12)
			_, _ = rand.Read(iv)
			setAlg(p.method, "http://www.w3.org/2009/xmlenc11#aes128-gcm")
			setCV(p.ed, gcm.Seal(iv, iv, plaintext, nil))
			setCV(p.ek, oaep(k16))
		}),
		"kw-aes256": mutate(func(p parts) {
			setAlg(p.ekMethod, xencNS+"kw-aes256")
			p.ekMethod.RemoveChild(p.digest)
		}),
		"oaep-params": mutate(func(p parts) {
			p.ekMethod.CreateElement("xenc:OAEPparams").SetText("bGFiZWw=")
		}),
		"oaep-sha1-mgf1sha256": mutate(func(p parts) {
			setAlg(p.ekMethod, xenc.RSAOAEP)
			mgf := p.ekMethod.CreateElement("xenc11:MGF")
			mgf.CreateAttr("xmlns:xenc11", "http://www.w3.org/2009/xmlenc11#")
			mgf.CreateAttr("Algorithm", "http://www.w3.org/2009/xmlenc11#mgf1sha256")
		}),
		"oaep-sha256-mgf1sha1": mutate(func(p parts) {
			setAlg(p.ekMethod, xenc.RSAOAEP)
			setAlg(p.digest, "http://www.w3.org/2001/04/xmlenc#sha256")
		}),
		"mgf1p-sha256": mutate(func(p parts) { setAlg(p.digest, "http://www.w3.org/2001/04/xmlenc#sha256") }),
		"cipher-reference": mutate(func(p parts) {
			cd := p.ed.SelectElement("xenc:CipherData")
			cd.RemoveChild(cd.SelectElement("xenc:CipherValue"))
			cd.CreateElement("xenc:CipherReference").CreateAttr("URI", "file:///etc/passwd")
		}),
		"retrieval-method": mutate(func(p parts) {
			ki := p.ed.SelectElement("ds:KeyInfo")
			ki.RemoveChild(p.ek)
			rm := ki.CreateElement("ds:RetrievalMethod")
			rm.CreateAttr("URI", "#key")
			rm.CreateAttr("Type", xencNS+"EncryptedKey")
		}),
		"other-recipient": func() *etree.Element {
			ed, err := xenc.EncryptWithKey(plaintext, xenc.TypeElement, key, xenc.Recipient{Cert: other.cert})
			if err != nil {
				t.Fatal(err)
			}
			return ed
		}(),
		"duplicate-recipient": mutate(func(p parts) { p.ed.SelectElement("ds:KeyInfo").AddChild(p.ek.Copy()) }),
		"iv-only":             mutate(func(p parts) { setCV(p.ed, data[:12]) }),
		"short-wrapped-key":   mutate(func(p parts) { setCV(p.ek, wrapped[:len(wrapped)-1]) }),
		"truncated-tag":       mutate(func(p parts) { setCV(p.ed, altered(-1, 4)) }),
		"flipped-ciphertext":  mutate(func(p parts) { setCV(p.ed, altered(12+5, 0)) }),
		"flipped-tag":         mutate(func(p parts) { setCV(p.ed, altered(len(data)-1, 0)) }),
		"flipped-wrapped-key": mutate(func(p parts) {
			b := bytes.Clone(wrapped)
			b[len(b)/2] ^= 0x01
			setCV(p.ek, b)
		}),
		"wrong-key-length": mutate(func(p parts) { setCV(p.ek, oaep(key[:16])) }),
		"non-base64": mutate(func(p parts) {
			p.ed.FindElement("./xenc:CipherData/xenc:CipherValue").SetText("not*base64!")
		}),
		"no-encryption-method": mutate(func(p parts) { p.ed.RemoveChild(p.method) }),
		"wrong-namespace": mutate(func(p parts) {
			p.ed.CreateAttr("xmlns:xenc", "http://www.w3.org/2001/04/xmlenc#evil")
		}),
		"two-cipher-data": mutate(func(p parts) { p.ed.AddChild(p.ed.SelectElement("xenc:CipherData").Copy()) }),
	}
	return base, hostile
}

// checkRefused decrypts ed for to and checks the refusal c.
func checkRefused(t *testing.T, ed *etree.Element, to party, c hostileCase) {
	t.Helper()
	spy := &counting{Decrypter: to.key}
	pt, err := xenc.Decrypt(ed, to.cert, spy)
	wantRefusal(t, pt, err, c.reason)
	switch n := spy.n.Load(); {
	case !c.keyUse && n != 0:
		t.Errorf("refused only after using the key (%d times): the fault is visible without it", n)
	case c.keyUse && n != 1:
		t.Errorf("the key was used %d times, want once: the refusal must come from the decryption", n)
	}
	if strings.Contains(err.Error(), "Code") {
		t.Errorf("the error shows plaintext: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	to := e.mustTokenParty(t, "T-1")
	other := e.mustTokenParty(t, "T-9")
	ok, hostile := buildHostile(t, to, other)
	if len(hostile) != len(hostileCases) {
		t.Fatalf("%d hostile documents built, %d cases listed", len(hostile), len(hostileCases))
	}
	t.Run("OK", func(t *testing.T) {
		got, _ := serialise(t, ok)
		pt, err := xenc.Decrypt(got, to.cert, to.key)
		if err != nil || !bytes.Equal(pt, hostilePlaintext()) {
			t.Fatalf("the unaltered document: Decrypt = %q, %v", pt, err)
		}
	})
	for name, ed := range hostile {
		t.Run("Err-"+name, func(t *testing.T) {
			got, _ := serialise(t, ed)
			checkRefused(t, got, to, hostileCases[name])
		})
	}
}

// TestHostileFiles replays testdata/hostile/ against the test recipient of testdata/, and
// rewrites them under -update.
func TestHostileFiles(t *testing.T) {
	t.Parallel()
	to := testRecipient(t)
	dir := filepath.Join("testdata", "hostile")
	if *update {
		ok, hostile := buildHostile(t, to, inMemoryParty(t, "someone else"))
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeDoc(t, filepath.Join("testdata", "ok.xml"), ok)
		for name, ed := range hostile {
			writeDoc(t, filepath.Join(dir, name+".xml"), ed)
		}
	}
	t.Run("OK", func(t *testing.T) {
		pt, err := xenc.Decrypt(readDoc(t, filepath.Join("testdata", "ok.xml")), to.cert, to.key)
		if err != nil || !bytes.Equal(pt, hostilePlaintext()) {
			t.Fatalf("testdata/ok.xml: Decrypt = %q, %v", pt, err)
		}
	})
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".xml"))
	}
	var want []string
	for name := range hostileCases {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("testdata/hostile holds %v, want %v: run go test -update", names, want)
	}
	for _, name := range names {
		t.Run("Err-"+name, func(t *testing.T) {
			checkRefused(t, readDoc(t, filepath.Join(dir, name+".xml")), to, hostileCases[name])
		})
	}
}

func writeDoc(t testing.TB, path string, el *etree.Element) {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	doc.Indent(2)
	if err := doc.WriteToFile(path); err != nil {
		t.Fatal(err)
	}
}

func readDoc(t testing.TB, path string) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromFile(path); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

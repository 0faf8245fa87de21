package xenc_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher/xml/xenc"
)

// xmlsec1 (Debian's xmlsec1 1.2.37, OpenSSL) is the independent peer: it decrypts what we
// encrypt and encrypts what we decrypt. It knows rsa-oaep-mgf1p but not xmlenc11#rsa-oaep
// (xmlsec1 1.3 added it; see --list-transforms), so the SHA-256 key transport is tested
// against Go's own RSA-OAEP only (TestRSAOAEPSHA256).

const exchangeNS = "urn:evoucher:exchange:1"

func xmlsec(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("xmlsec1")
	if err != nil {
		t.Fatal("xmlsec1 is not installed: apt-get install xmlsec1")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xmlsec1 %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// inDoc puts el in an exchange document and writes it.
func inDoc(t *testing.T, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	root := doc.CreateElement("Doc")
	root.CreateAttr("xmlns", exchangeNS)
	root.AddChild(el)
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestXmlsecDecryptsOurs(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	// xmlsec1 needs its private key as a file: this one is made in Go, certified by the test CA.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	peer := party{cert: e.issue(t, key, "T-XMLSEC"), key: key}
	term := e.mustTokenParty(t, "T-1")
	dir := t.TempDir()
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	writeFile(t, filepath.Join(dir, "cert.pem"), certPEM(peer.cert))
	plaintext := codes(25)

	for name, recipients := range map[string][]xenc.Recipient{
		"OAEPMGF1P":          {{Cert: peer.cert, Name: "T-XMLSEC"}},
		"SecondOfRecipients": {{Cert: term.cert, Name: "T-1"}, {Cert: peer.cert, Name: "T-XMLSEC"}},
	} {
		t.Run(name, func(t *testing.T) {
			ed, err := xenc.Encrypt(plaintext, xenc.TypeElement, recipients...)
			if err != nil {
				t.Fatal(err)
			}
			in := filepath.Join(dir, name+".xml")
			writeFile(t, in, inDoc(t, ed))
			out := xmlsec(t, dir, "--decrypt", "--privkey-pem", "key.pem,cert.pem", in)
			want := append(append([]byte(`<Doc xmlns="`+exchangeNS+`">`), plaintext...), "</Doc>"...)
			if !bytes.Contains(out, want) || bytes.Contains(out, []byte("EncryptedData")) {
				t.Fatalf("xmlsec1 output:\n%.400s\nwant it to contain:\n%.400s", out, want)
			}
		})
	}
}

// template is what xmlsec1 fills in: AES-256-GCM data, the session key wrapped with
// keyTransport to the certificate given on the command line, named by x509 (the children of
// ds:X509Data that xmlsec1 fills: X509IssuerSerial or X509Certificate).
func template(keyTransport, x509 string) []byte {
	return []byte(`<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Type="http://www.w3.org/2001/04/xmlenc#Element">
<EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>
<ds:KeyInfo>
<EncryptedKey Recipient="T-1">
` + keyTransport + `
<ds:KeyInfo><ds:X509Data>` + x509 + `</ds:X509Data></ds:KeyInfo>
<CipherData><CipherValue/></CipherData>
</EncryptedKey>
</ds:KeyInfo>
<CipherData><CipherValue/></CipherData>
</EncryptedData>
`)
}

const (
	mgf1pTemplate   = `<EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></EncryptionMethod>`
	oaep256Template = `<EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#rsa-oaep"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>` +
		`<xenc11:MGF xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" Algorithm="http://www.w3.org/2009/xmlenc11#mgf1sha256"/></EncryptionMethod>`
)

func TestWeDecryptXmlsec(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	term := e.mustTokenParty(t, "T-1")
	stranger := e.mustTokenParty(t, "T-2")
	plaintext := codes(25)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data.xml"), append(append([]byte(`<Doc xmlns="`+exchangeNS+`">`), plaintext...), "</Doc>\n"...))

	for _, c := range []struct {
		name, transport, x509 string
		p                     party
	}{
		{"IssuerSerial", mgf1pTemplate, "<ds:X509IssuerSerial/>", term},
		{"Certificate", mgf1pTemplate, "<ds:X509Certificate/>", term},
	} {
		t.Run(c.name, func(t *testing.T) {
			certFile, tmplFile := filepath.Join(dir, c.name+"-cert.pem"), filepath.Join(dir, c.name+"-template.xml")
			writeFile(t, certFile, certPEM(c.p.cert))
			writeFile(t, tmplFile, template(c.transport, c.x509))
			out := xmlsec(t, dir, "--encrypt", "--pubkey-cert-pem", certFile, "--session-key", "aes-256",
				"--xml-data", "data.xml", "--node-name", exchangeNS+":Codes", tmplFile)
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(out); err != nil {
				t.Fatal(err)
			}
			ed := doc.Root().SelectElement("EncryptedData")
			if ed == nil || bytes.Contains(out, []byte("<Code ")) {
				t.Fatalf("xmlsec1 did not encrypt the codes:\n%.600s", out)
			}
			x509Data := ed.FindElement("./ds:KeyInfo/EncryptedKey/ds:KeyInfo/ds:X509Data")
			if x509Data == nil || len(x509Data.ChildElements()) != 1 || value(x509Data, "./*") == "" {
				t.Fatalf("xmlsec1 did not fill in X509Data:\n%.1500s", out)
			}
			pt, err := xenc.Decrypt(ed, c.p.cert, c.p.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, plaintext) {
				t.Fatalf("decrypted\n%.300s\nwant\n%.300s", pt, plaintext)
			}
			pt, err = xenc.Decrypt(ed, stranger.cert, stranger.key)
			wantRefusal(t, pt, err, "no_recipient")
		})
	}
}

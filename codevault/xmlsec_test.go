package codevault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
)

// TestXmlsec1Batch has xmlsec1, an independent implementation, play the operator: it encrypts
// the codes to the center's certificate and signs the batch with an operator key held in a PEM
// file, certified by our CA. The vault must take it.
func TestXmlsec1Batch(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("xmlsec1"); err != nil {
		t.Fatal("xmlsec1 is needed: apt-get install xmlsec1")
	}
	f := mustFixture(t)
	ctx := context.Background()
	dir := t.TempDir()

	// The operator's own key, as a file for xmlsec1; its certificate from our CA.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := pki.NewCSR(key, "OP-A")
	req, _ := pki.ParseCSR(csr)
	cert, err := f.ca.Issue(ctx, pki.IssueRequest{CSR: req, Role: pki.RoleOperatorSign, Entity: "OP-A"})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("op-key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	write("op-cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	write("center-encrypt.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.centerEnc.cert.Raw}))

	// The batch in clear, with the Codes element where the EncryptedData will go.
	cs := codes(800_000_000_000, 25)
	w := message.NewCodesWriter()
	for _, c := range cs {
		w.Add(c)
	}
	h := message.BatchHeader{BatchID: "X-1", Part: 1, Parts: 1, Product: "P10", FaceValue: 1000, Currency: "EUR", Count: w.Count(),
		TotalFaceValue: int64(w.Count()) * 1000, CodesDigest: w.Digest(), LotCount: int64(w.Count()), LotFaceValue: int64(w.Count()) * 1000}
	plain := etree.NewDocument()
	if err := plain.ReadFromBytes(w.Finish("OP-A", h)); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	env := message.Envelope{ID: "cb-" + id, MessageID: id, Sender: "OP-A", Recipient: message.Center, Created: f.clock.Now()}
	doc := message.BuildCodeBatch(env, h, plain.Root())
	b, _ := doc.WriteToBytes()
	b = bytes.Replace(b, []byte("</CodeBatch>"), []byte(`<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
<ds:Reference URI="#`+env.ID+`"><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>
</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature></CodeBatch>`), 1)
	write("data.xml", b)
	write("enc-template.xml", []byte(`<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Type="http://www.w3.org/2001/04/xmlenc#Element">
<EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>
<ds:KeyInfo><EncryptedKey><EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></EncryptionMethod>
<ds:KeyInfo><ds:X509Data><ds:X509IssuerSerial/></ds:X509Data></ds:KeyInfo><CipherData><CipherValue/></CipherData></EncryptedKey></ds:KeyInfo>
<CipherData><CipherValue/></CipherData></EncryptedData>`))

	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("xmlsec1", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("xmlsec1 %v: %v\n%s", args, err, out)
		}
	}
	run("--encrypt", "--pubkey-cert-pem", "center-encrypt.pem", "--session-key", "aes-256", "--xml-data", "data.xml",
		"--node-name", message.NS+":Codes", "--output", "encrypted.xml", "enc-template.xml")
	run("--sign", "--privkey-pem", "op-key.pem,op-cert.pem", "--id-attr:Id", message.NS+":CodeBatch", "--output", "signed.xml", "encrypted.xml")
	signed, err := os.ReadFile(filepath.Join(dir, "signed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(signed, cs[0].PIN) {
		t.Fatal("xmlsec1 left a PIN in clear")
	}
	resp, err := f.vault.Receive(ctx, peer("OP-A"), signed)
	if err != nil {
		t.Fatalf("the vault refused xmlsec1's batch: %v", err)
	}
	if r := readReceipt(t, f, resp); r.Status != message.StatusAccepted || r.Accepted != 25 {
		t.Fatalf("receipt %+v", r)
	}
	for _, c := range []message.Code{cs[0], cs[24]} {
		pin, err := f.vault.RevealForTest(ctx, "OP-A", c.Serial)
		if err != nil || string(pin) != string(c.PIN) {
			t.Fatalf("serial %s: %v", c.Serial, err)
		}
	}
}

package codevault_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"flag"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

var update = flag.Bool("update", false, "rewrite testdata/hostile from this run's hostile documents")

// sealWith seals codes like operator.Seal but lets the test choose the batch and order.
func sealWith(f *fixture, op string, p party, batch, po string, cs []message.Code) ([][]byte, error) {
	return sealCustom(f, op, p, batch, po, cs, f.centerEnc.cert, nil)
}

// sealCustom seals one part by hand: mutate may change the header before it is bound, so the
// binding is correct for the lie and only the checks behind it can catch it.
func sealCustom(f *fixture, op string, p party, batch, po string, cs []message.Code, to *x509.Certificate,
	mutate func(h *message.BatchHeader)) ([][]byte, error) {
	w := message.NewCodesWriter()
	for _, c := range cs {
		w.Add(c)
	}
	h := message.BatchHeader{BatchID: batch, Part: 1, Parts: 1, Product: "P10", FaceValue: 1000, Currency: "EUR",
		Count: w.Count(), TotalFaceValue: int64(w.Count()) * 1000, CodesDigest: w.Digest(), LotCount: int64(w.Count()),
		LotFaceValue: int64(w.Count()) * 1000, PurchaseOrder: po}
	if mutate != nil {
		mutate(&h)
	}
	plain := w.Finish(op, h)
	enc, err := xenc.Encrypt(plain, xenc.TypeElement, xenc.Recipient{Cert: to})
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	doc := message.BuildCodeBatch(message.Envelope{ID: "cb-" + id, MessageID: id, Sender: op, Recipient: message.Center,
		Created: f.clock.Now()}, h, enc)
	b, err := dsig.SignBytes(doc, p.key, p.cert)
	return [][]byte{b}, err
}

type hostile struct {
	name   string
	doc    []byte
	peer   string // mTLS identity; default OP-A
	reason string
}

// mustForeign returns an operator-sign identity for OP-A from a CA that is not the platform's.
func mustForeign(t *testing.T, like *x509.Certificate) party {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // the outsider's own keys
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evoucher platform CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	u, _ := url.Parse(like.URIs[0].String())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: like.Subject, URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return party{key: key, cert: cert}
}

// corpus builds the hostile documents against fixture f. good is an accepted part whose
// MessageId may be replayed; goodCodes are codes already in the vault.
func corpus(t *testing.T, f *fixture, good []byte, goodCodes []message.Code) []hostile {
	t.Helper()
	ctx := context.Background()
	fresh := func(n int) []message.Code { return codes(700_000_000_000+n*1000, 5) }
	one := func(docs [][]byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return docs[0]
	}
	base := one(sealWith(f, "OP-A", f.opA, "H-base", "", fresh(1)))
	edit := func(mutate func(root *etree.Element)) []byte { return resign(t, base, f.opA, mutate) }
	cipherValue := func(root *etree.Element, fn func([]byte) []byte) {
		ed := find(root, "EncryptedData")
		var data *etree.Element
		for _, c := range ed.ChildElements() {
			if c.Tag == "CipherData" {
				data = find(c, "CipherValue")
			}
		}
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(data.Text()))
		data.SetText(base64.StdEncoding.EncodeToString(fn(raw)))
	}
	encMethod := func(root *etree.Element, inKey bool, alg string) {
		ed := find(root, "EncryptedData")
		var target *etree.Element
		if inKey {
			target = find(find(ed, "EncryptedKey"), "EncryptionMethod")
		} else {
			for _, c := range ed.ChildElements() {
				if c.Tag == "EncryptionMethod" {
					target = c
				}
			}
		}
		target.CreateAttr("Algorithm", alg)
	}
	str := func(s string) []byte { return []byte(s) }

	// Certificates for the refusals about who signed.
	revoked := f.mustParty(t, "op-a-old", 2048, pki.RoleOperatorSign, "OP-A")
	if _, err := f.ca.Revoke(ctx, pki.SerialOf(revoked.cert), "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	foreign := mustForeign(t, f.opA.cert)
	dup := append([]message.Code{}, fresh(30)...)
	dup[3].Serial = dup[1].Serial
	badPIN := fresh(31)
	badPIN[2].PIN = message.PIN("12AB")
	replay := resign(t, base, f.opA, func(root *etree.Element) {
		root.CreateAttr("MessageId", parseDoc(t, good).Root().SelectAttrValue("MessageId", ""))
	})
	signedA := base
	big := append(append([]byte(nil), base[:len(base)-len("</CodeBatch>")]...), bytes.Repeat([]byte("<Pad/>"), 6<<20)...)
	big = append(big, "</CodeBatch>"...)
	deep := "<CodeBatch xmlns=\"urn:evoucher:exchange:1\">" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</CodeBatch>"

	hs := []hostile{
		{name: "not-xml", doc: str("this is not XML"), reason: "malformed"},
		{name: "xxe-external-entity", doc: str(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><CodeBatch xmlns="urn:evoucher:exchange:1">&x;</CodeBatch>`), reason: "dtd"},
		{name: "entity-expansion", doc: str(`<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><CodeBatch xmlns="urn:evoucher:exchange:1">&b;</CodeBatch>`), reason: "dtd"},
		{name: "undeclared-entity", doc: str(`<CodeBatch xmlns="urn:evoucher:exchange:1">&lol;</CodeBatch>`), reason: "malformed"},
		{name: "oversized", doc: big, reason: "too_large"},
		{name: "over-deep", doc: str(deep), reason: "too_deep"},
		{name: "processing-instruction", doc: bytes.Replace(signedA, []byte("<Header>"), []byte("<?evil x?><Header>"), 1), reason: "processing_instruction"},
		{name: "comment-injection", doc: bytes.Replace(signedA, []byte("<BatchId>H-base"), []byte("<BatchId>H-<!---->base"), 1), reason: "comment"},
		{name: "unsigned", doc: func() []byte {
			d := parseDoc(t, base)
			d.Root().RemoveChild(find(d.Root(), "Signature"))
			b, _ := d.WriteToBytes()
			return b
		}(), reason: "signature_missing"},
		{name: "wrapping-second-root", doc: func() []byte {
			d := parseDoc(t, base)
			orig := d.Root()
			evil := etree.NewDocument()
			root := evil.CreateElement("CodeBatch")
			for _, a := range orig.Attr {
				root.CreateAttr(a.FullKey(), a.Value)
			}
			root.CreateAttr("Id", "cb-evil")
			for _, c := range orig.ChildElements() {
				if c.Tag != "Signature" {
					root.AddChild(c.Copy())
				}
			}
			wrapper := root.CreateElement("Wrapper")
			wrapper.AddChild(orig)
			b, _ := evil.WriteToBytes()
			return b
		}(), reason: "signature_misplaced"},
		{name: "signed-element-moved", doc: func() []byte {
			d := parseDoc(t, base)
			sig := find(d.Root(), "Signature")
			d.Root().RemoveChild(sig)
			find(d.Root(), "Header").AddChild(sig)
			b, _ := d.WriteToBytes()
			return b
		}(), reason: "signature_misplaced"},
		{name: "extra-reference", doc: func() []byte {
			d := parseDoc(t, base)
			si := find(d.Root(), "SignedInfo")
			si.AddChild(find(si, "Reference").Copy())
			b, _ := d.WriteToBytes()
			return b
		}(), reason: "reference_multiple"},
		{name: "duplicate-id", doc: func() []byte {
			d := parseDoc(t, base)
			find(d.Root(), "Header").CreateAttr("Id", d.Root().SelectAttrValue("Id", ""))
			b, _ := d.WriteToBytes()
			return b
		}(), reason: "duplicate_id"},
		{name: "two-signatures", doc: func() []byte {
			d := parseDoc(t, base)
			d.Root().AddChild(find(d.Root(), "Signature").Copy())
			b, _ := d.WriteToBytes()
			return b
		}(), reason: "signature_multiple"},
		{name: "sha1-signature", doc: bytes.Replace(signedA, []byte("xmldsig-more#rsa-sha256"), []byte("xmldsig#rsa-sha1"), 1), reason: "weak_algorithm"},
		{name: "md5-digest", doc: bytes.Replace(signedA, []byte("xmlenc#sha256\""), []byte("xmldsig-more#md5\""), 1), reason: "weak_algorithm"},
		{name: "altered-signed-text", doc: bytes.Replace(signedA, []byte("<BatchId>H-base"), []byte("<BatchId>H-basf"), 1), reason: "bad_digest"},
		{name: "pkcs1v15-key-transport", doc: edit(func(root *etree.Element) { encMethod(root, true, "http://www.w3.org/2001/04/xmlenc#rsa-1_5") }), reason: "weak_algorithm"},
		{name: "cbc-data", doc: edit(func(root *etree.Element) { encMethod(root, false, "http://www.w3.org/2001/04/xmlenc#aes256-cbc") }), reason: "weak_algorithm"},
		{name: "truncated-tag", doc: edit(func(root *etree.Element) { cipherValue(root, func(b []byte) []byte { return b[:len(b)-4] }) }), reason: "bad_ciphertext"},
		{name: "altered-tag", doc: edit(func(root *etree.Element) {
			cipherValue(root, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
		}), reason: "bad_ciphertext"},
		{name: "altered-ciphertext", doc: edit(func(root *etree.Element) {
			cipherValue(root, func(b []byte) []byte { b[20] ^= 0x80; return b })
		}), reason: "bad_ciphertext"},
		{name: "other-recipient", doc: one(sealCustom(f, "OP-A", f.opA, "H-rcpt", "", fresh(2), f.terminal.cert, nil)), reason: "no_recipient"},
		{name: "header-altered-after-encryption", doc: edit(func(root *etree.Element) { replaceText(root, "BatchId", "H-other") }), reason: "header_mismatch"},
		{name: "wrong-signer-role", doc: one(sealWith(f, "OP-A", f.terminal, "H-role", "", fresh(3))), reason: "wrong_role"},
		{name: "operator-a-as-b", doc: one(sealWith(f, "OP-B", f.opA, "H-asb", "", fresh(4))), peer: "OP-B", reason: "sender_mismatch"},
		{name: "peer-not-sender", doc: one(sealWith(f, "OP-A", f.opA, "H-peer", "", fresh(5))), peer: "OP-B", reason: "sender_mismatch"},
		{name: "revoked-certificate", doc: one(sealWith(f, "OP-A", revoked, "H-rev", "", fresh(6))), reason: "revoked"},
		{name: "foreign-ca", doc: one(sealWith(f, "OP-A", foreign, "H-ca", "", fresh(7))), reason: "foreign_ca"},
		{name: "replayed-message-id", doc: replay, reason: "replay"},
		{name: "stale-created", doc: edit(func(root *etree.Element) {
			root.CreateAttr("Created", time.Now().Add(-3*time.Hour).UTC().Format(time.RFC3339))
		}), reason: "stale"},
		{name: "future-created", doc: edit(func(root *etree.Element) {
			root.CreateAttr("Created", time.Now().Add(3*time.Hour).UTC().Format(time.RFC3339))
		}), reason: "future"},
		{name: "wrong-recipient", doc: edit(func(root *etree.Element) { root.CreateAttr("Recipient", "OP-B") }), reason: "wrong_recipient"},
		{name: "count-not-matching", doc: one(sealCustom(f, "OP-A", f.opA, "H-cnt", "", fresh(8), f.centerEnc.cert, func(h *message.BatchHeader) {
			h.Count++
			h.TotalFaceValue += h.FaceValue
			h.LotCount++
			h.LotFaceValue += h.FaceValue
		})), reason: "control_totals"},
		{name: "total-not-matching", doc: one(sealCustom(f, "OP-A", f.opA, "H-tot", "", fresh(9), f.centerEnc.cert, func(h *message.BatchHeader) {
			h.TotalFaceValue += 1
		})), reason: "control_totals"},
		{name: "digest-not-matching", doc: one(sealCustom(f, "OP-A", f.opA, "H-dig", "", fresh(10), f.centerEnc.cert, func(h *message.BatchHeader) {
			h.CodesDigest[0] ^= 1
		})), reason: "control_totals"},
		{name: "duplicate-serial-in-batch", doc: one(sealWith(f, "OP-A", f.opA, "H-dup", "", dup)), reason: "duplicate_serial"},
		{name: "serial-already-in-vault", doc: one(sealWith(f, "OP-A", f.opA, "H-dup2", "", append(fresh(11), goodCodes[0]))), reason: "duplicate_serial"},
		{name: "pin-wrong-format", doc: one(sealWith(f, "OP-A", f.opA, "H-pin", "", badPIN)), reason: "bad_code"},
		{name: "unknown-product", doc: one(sealCustom(f, "OP-A", f.opA, "H-prod", "", fresh(12), f.centerEnc.cert, func(h *message.BatchHeader) {
			h.Product = "P99"
		})), reason: "unknown_product"},
		{name: "face-value-mismatch", doc: one(sealCustom(f, "OP-A", f.opA, "H-fv", "", fresh(13), f.centerEnc.cert, func(h *message.BatchHeader) {
			h.FaceValue, h.TotalFaceValue, h.LotFaceValue = 500, h.TotalFaceValue/2, h.LotFaceValue/2
		})), reason: "face_value_mismatch"},
		{name: "unknown-purchase-order", doc: one(sealWith(f, "OP-A", f.opA, "H-po", "PO-NOPE", fresh(14))), reason: "unknown_order"},
	}
	return hs
}

func TestHostile(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	goodCodes := codes(600_000_000_000, 10)
	good := f.seal(t, "OP-A", f.opA, "GOOD", goodCodes, 100)[0]
	if _, err := f.vault.Receive(ctx, peer("OP-A"), good); err != nil {
		t.Fatal(err)
	}
	hs := corpus(t, f, good, goodCodes)
	if len(hs) < 30 {
		t.Fatalf("corpus has %d documents, want at least 30", len(hs))
	}
	if *update {
		dir := filepath.Join("testdata", "hostile")
		_ = os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if len(h.doc) > 1<<20 {
				continue // the oversized one is rebuilt each run
			}
			if err := os.WriteFile(filepath.Join(dir, h.name+".xml"), h.doc, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, h := range hs {
		t.Run(h.name, func(t *testing.T) {
			p := "OP-A"
			if h.peer != "" {
				p = h.peer
			}
			before := f.counts(t)
			refusals := f.meter.total()
			journal := f.count(t, `SELECT count(*) FROM refused_messages WHERE reason = $1`, h.reason)
			resp, err := f.vault.Receive(ctx, peer(p), h.doc)
			if err == nil {
				t.Fatalf("accepted (answer %d bytes), want refusal %s", len(resp), h.reason)
			}
			if got := evoucher.ReasonOf(err); got != h.reason {
				t.Fatalf("refused for %q (%v), want %q", got, err, h.reason)
			}
			if k := evoucher.KindOf(err); k == evoucher.KindInternal {
				t.Fatalf("refusal is an internal error: %v", err)
			}
			if resp != nil {
				t.Fatal("a refusal came with an answer")
			}
			if after := f.counts(t); after != before {
				t.Fatalf("a refused document changed the vault: %s -> %s", before, after)
			}
			if f.meter.total() != refusals+1 {
				t.Fatal("the refusal was not counted")
			}
			if f.count(t, `SELECT count(*) FROM refused_messages WHERE reason = $1`, h.reason) != journal+1 {
				t.Fatal("the refusal is not in the journal")
			}
			if f.count(t, `SELECT count(*) FROM alarms WHERE kind = 'security' AND state = 'open' AND subject = $1`, "exchange:operator-sign "+p) != 1 {
				t.Fatal("no open security alarm")
			}
		})
	}
	if n := f.count(t, `SELECT sum(occurrences) FROM alarms WHERE kind = 'security'`); n != len(hs) {
		t.Fatalf("security alarms count %d occurrences, want %d", n, len(hs))
	}
}

// TestHostileFiles runs the saved corpus: documents made with another run's keys must be
// refused all the same (most by the profile before any key is used, the rest by trust).
func TestHostileFiles(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.xml"))
	if len(files) < 30 {
		t.Fatalf("testdata/hostile has %d documents, want at least 30 (go test -run TestHostile -update)", len(files))
	}
	f := mustFixture(t)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		before := f.counts(t)
		if _, err := f.vault.Receive(context.Background(), peer("OP-A"), b); err == nil {
			t.Fatalf("%s accepted", file)
		}
		if f.counts(t) != before {
			t.Fatalf("%s changed the vault", file)
		}
	}
}

package message_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

func fmtV(p message.PIN) string { return fmt.Sprintf("%v %s %q %+v %#v", p, p, p, p, p) }

// FuzzParse feeds untrusted bytes through everything the center does to a document before
// any key is used: limits, parsing, envelope and document readers. It must never panic, and
// every refusal must be an invalid error with a reason.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata", filepath.Join("..", "..", "codevault", "testdata", "hostile")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`<CodeBatch xmlns="urn:evoucher:exchange:1"/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := message.Parse(b, message.DefaultLimits)
		if err != nil {
			if evoucher.KindOf(err) != evoucher.KindInvalid || evoucher.ReasonOf(err) == "" {
				t.Fatalf("refusal without kind or reason: %v", err)
			}
			return
		}
		if _, err := message.ReadEnvelope(doc.Root()); err != nil {
			return
		}
		_, _ = message.ReadCodeBatch(doc.Root())
		_, _ = message.ReadBatchReceipt(doc.Root())
		_, _ = message.ReadPurchaseOrder(doc.Root())
		_, _ = message.ReadStatement(doc.Root())
		_, _ = message.ReadShipment(doc.Root())
	})
}

// FuzzReadCodes feeds untrusted plaintext to the codes reader (what a batch decrypts to).
func FuzzReadCodes(f *testing.F) {
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	w := message.NewCodesWriter()
	w.Add(message.Code{Serial: "1", PIN: message.PIN("2"), Expiry: exp})
	h := message.BatchHeader{BatchID: "B", Part: 1, Parts: 1, Product: "P", FaceValue: 1, Currency: "EUR", Count: 1,
		TotalFaceValue: 1, CodesDigest: w.Digest(), LotCount: 1, LotFaceValue: 1}
	f.Add(w.Finish("OP", h))
	f.Add([]byte(`<Codes BatchId="B" Part="1"><Code Serial="1" PIN="2" Expiry="x"/></Codes>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := message.ReadCodes(b, "OP", h, func(c message.Code) error {
			n++
			if c.Serial == "" || len(c.PIN) == 0 {
				t.Fatal("empty code passed on")
			}
			return nil
		})
		if err == nil && n != 1 {
			t.Fatalf("accepted %d codes for a header of 1", n)
		}
		if err != nil && evoucher.KindOf(err) != evoucher.KindInvalid {
			t.Fatalf("refusal of another kind: %v", err)
		}
	})
}

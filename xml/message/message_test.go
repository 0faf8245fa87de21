package message_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExamples(t *testing.T) {
	t.Run("CodeBatch", func(t *testing.T) {
		doc, err := message.Parse(mustRead(t, "CodeBatch.xml"), message.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := message.ReadCodeBatch(doc.Root())
		if err != nil {
			t.Fatal(err)
		}
		if cb.Sender != "OP-A" || cb.Recipient != message.Center || cb.Header.Count != 20 || cb.Header.Part != 3 || cb.Encrypted == nil {
			t.Fatalf("%+v", cb.Header)
		}
	})
	t.Run("BatchReceipt", func(t *testing.T) {
		doc, err := message.Parse(mustRead(t, "BatchReceipt.xml"), message.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		r, err := message.ReadBatchReceipt(doc.Root())
		if err != nil || r.Status != message.StatusAccepted || r.Accepted != 20 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("PurchaseOrder", func(t *testing.T) {
		doc, err := message.Parse(mustRead(t, "PurchaseOrder.xml"), message.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		po, err := message.ReadPurchaseOrder(doc.Root())
		if err != nil || po.Quantity != 500 || po.Product != "P10" {
			t.Fatalf("%+v %v", po, err)
		}
	})
}

func TestLimits(t *testing.T) {
	lim := message.Limits{MaxBytes: 2000, MaxDepth: 5, MaxElements: 20}
	for _, c := range []struct{ name, doc, reason string }{
		{"OK", `<?xml version="1.0"?><a><b>x&amp;y&#65;</b><![CDATA[z]]></a>`, ""},
		{"ErrTooLarge", "<a>" + strings.Repeat("x", 2000) + "</a>", "too_large"},
		{"ErrTooDeep", strings.Repeat("<a>", 6) + strings.Repeat("</a>", 6), "too_deep"},
		{"ErrTooManyElements", "<a>" + strings.Repeat("<b/>", 20) + "</a>", "too_many_elements"},
		{"ErrDTD", `<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>`, "dtd"},
		{"ErrEntity", `<a>&e;</a>`, "malformed"},
		{"ErrComment", `<a><!-- hi --></a>`, "comment"},
		{"ErrPI", `<a><?php x ?></a>`, "processing_instruction"},
		{"ErrTwoRoots", `<a/><b/>`, "malformed"},
		{"ErrTextOutside", `<a/>junk`, "malformed"},
		{"ErrEmpty", ``, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := message.Parse([]byte(c.doc), lim)
			if got := evoucher.ReasonOf(err); got != c.reason {
				t.Fatalf("reason %q (%v), want %q", got, err, c.reason)
			}
		})
	}
}

func TestCodes(t *testing.T) {
	exp := time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)
	w := message.NewCodesWriter()
	w.Add(message.Code{Serial: "000000000001", PIN: message.PIN("12345678901234"), Expiry: exp})
	w.Add(message.Code{Serial: "000000000002", PIN: message.PIN("<&\"'>"), Expiry: exp})
	h := message.BatchHeader{BatchID: "B", Part: 1, Parts: 1, Product: "P", FaceValue: 1, Currency: "EUR", Count: 2,
		TotalFaceValue: 2, CodesDigest: w.Digest(), LotCount: 2, LotFaceValue: 2}
	plain := w.Finish("OP", h)
	var got []string
	if err := message.ReadCodes(plain, "OP", h, func(c message.Code) error {
		got = append(got, c.Serial+"="+string(c.PIN))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "000000000001=12345678901234,000000000002=<&\"'>" {
		t.Fatalf("read back %v", got)
	}
	if out := fmtV(message.PIN("secret")); strings.Contains(out, "secret") || !strings.Contains(out, "[redacted]") {
		t.Fatalf("PIN printed as %q", out)
	}
	for _, c := range []struct {
		name   string
		sender string
		mut    func(h *message.BatchHeader)
		reason string
	}{
		{"ErrOtherSender", "OP2", nil, "header_mismatch"},
		{"ErrOtherBatch", "OP", func(h *message.BatchHeader) { h.BatchID = "C" }, "header_mismatch"},
		{"ErrCount", "OP", func(h *message.BatchHeader) { h.Count = 3 }, "header_mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h2 := h
			if c.mut != nil {
				c.mut(&h2)
			}
			err := message.ReadCodes(plain, c.sender, h2, func(message.Code) error { return nil })
			if evoucher.ReasonOf(err) != c.reason {
				t.Fatalf("got %v, want %s", err, c.reason)
			}
		})
	}
}

package message_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

var update = flag.Bool("update", false, "rewrite the golden files testdata/Statement.xml and testdata/Shipment.xml")

func exampleStatement() message.Statement {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return message.Statement{
		Envelope: message.Envelope{Type: "Statement", ID: "st-3f1e2d4c-5b6a-4789-8abc-def012345678", MessageID: "3f1e2d4c-5b6a-4789-8abc-def012345678",
			Sender: message.Center, Recipient: "R-1", Created: from.AddDate(0, 1, 0).Add(time.Hour)},
		StatementID: "ST-20261101-20261201-3f1e2d4c", PartyKind: message.PartyRetailer, Party: "R-1", From: from, To: from.AddDate(0, 1, 0),
		Lines: []message.StatementLine{
			{Kind: "shipment", Operator: "OP-A", Retailer: "R-1", Product: "P10", Currency: "EUR", Codes: 10, FaceValue: 10000, Commission: 500, Margin: 800, Net: -9500},
			{Kind: "return", Operator: "OP-A", Retailer: "R-1", Product: "P10", Currency: "EUR", Codes: -2, FaceValue: -2000, Commission: -100, Margin: -160, Net: 1900},
			{Kind: "topup", Retailer: "R-1", Method: "bank", Reference: "SEPA 2026/11 #42", Currency: "EUR", Net: 5000},
		},
		Totals: []message.StatementTotal{{Currency: "EUR", Opening: 1000, Closing: -1600, Codes: 8, FaceValue: 8000, Commission: 400, Margin: 640, TopUps: 5000, Net: -2600}},
	}
}

func TestStatement(t *testing.T) {
	want := exampleStatement()
	b, err := message.BuildStatement(want).WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(filepath.Join("testdata", "Statement.xml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(b []byte) (message.Statement, error) {
		doc, err := message.Parse(b, message.DefaultLimits)
		if err != nil {
			return message.Statement{}, err
		}
		return message.ReadStatement(doc.Root())
	}
	t.Run("OK", func(t *testing.T) {
		for _, src := range [][]byte{b, mustRead(t, "Statement.xml")} {
			got, err := read(src)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Lines) != 3 || got.Lines[2] != want.Lines[2] || got.Lines[1] != want.Lines[1] || got.Totals[0] != want.Totals[0] ||
				!got.From.Equal(want.From) || got.Party != "R-1" || got.PartyKind != message.PartyRetailer {
				t.Fatalf("read back %+v", got)
			}
		}
	})
	t.Run("ErrTotals", func(t *testing.T) {
		for _, edit := range [][2]string{
			{`Closing="-1600"`, `Closing="-1599"`},
			{`Codes="8"`, `Codes="9"`},
			{`TopUps="5000"`, `TopUps="0"`},
			{` -9500`, ` -9400`},
		} {
			_, err := read([]byte(strings.Replace(string(b), edit[0], edit[1], 1)))
			if evoucher.ReasonOf(err) != "totals" {
				t.Fatalf("%v: %v", edit, err)
			}
		}
	})
	t.Run("ErrMalformed", func(t *testing.T) {
		for _, edit := range [][2]string{
			{`Kind="retailer"`, `Kind="auditor"`},
			{`shipment OP-A`, `gift OP-A`},
			{`EUR 10 `, `EUR ten `},
			{`To="2026-12-01T00:00:00Z"`, `To="2026-10-01T00:00:00Z"`},
		} {
			_, err := read([]byte(strings.Replace(string(b), edit[0], edit[1], 1)))
			if evoucher.ReasonOf(err) != "malformed" {
				t.Fatalf("%v: %v", edit, err)
			}
		}
	})
}

// FuzzStatement: a statement read from untrusted bytes never panics, refuses with an invalid
// error, and what it accepts adds up.
func FuzzStatement(f *testing.F) {
	b, _ := message.BuildStatement(exampleStatement()).WriteToBytes()
	f.Add(b)
	if ex, err := os.ReadFile(filepath.Join("testdata", "Statement.xml")); err == nil {
		f.Add(ex)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := message.Parse(b, message.DefaultLimits)
		if err != nil {
			return
		}
		s, err := message.ReadStatement(doc.Root())
		if err != nil {
			if evoucher.KindOf(err) != evoucher.KindInvalid {
				t.Fatalf("refusal of another kind: %v", err)
			}
			return
		}
		for _, tot := range s.Totals {
			if tot.Opening+tot.Net != tot.Closing {
				t.Fatalf("accepted a total that does not add up: %+v", tot)
			}
		}
	})
}

package ledger

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/evoucher/evoucher/xml/message"
)

// WriteStatementCSV writes a statement as CSV: a header, one row per line, then one "total" row
// per currency with the opening and closing balances in the reference columns' place. Amounts
// are in major units ("-95.00"), as a spreadsheet reads them.
func WriteStatementCSV(w io.Writer, s message.Statement) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"statement", "party_kind", "party", "from", "to", "kind", "operator", "retailer", "product", "method",
		"reference", "currency", "codes", "face_value", "commission", "margin", "net", "opening", "closing"})
	head := []string{s.StatementID, s.PartyKind, s.Party, s.From.Format(time.RFC3339), s.To.Format(time.RFC3339)}
	for _, l := range s.Lines {
		_ = cw.Write(append(head[:5:5], l.Kind, l.Operator, l.Retailer, l.Product, l.Method, l.Reference, l.Currency,
			strconv.FormatInt(l.Codes, 10), FormatMinor(l.FaceValue, l.Currency), FormatMinor(l.Commission, l.Currency),
			FormatMinor(l.Margin, l.Currency), FormatMinor(l.Net, l.Currency), "", ""))
	}
	for _, t := range s.Totals {
		_ = cw.Write(append(head[:5:5], "total", "", "", "", "", "", t.Currency, strconv.FormatInt(t.Codes, 10),
			FormatMinor(t.FaceValue, t.Currency), FormatMinor(t.Commission, t.Currency), FormatMinor(t.Margin, t.Currency),
			FormatMinor(t.Net, t.Currency), FormatMinor(t.Opening, t.Currency), FormatMinor(t.Closing, t.Currency)))
	}
	cw.Flush()
	return cw.Error()
}

// WriteStatementPDF writes a statement as an A4 PDF: the party and period, the lines as a
// table, and per currency the opening balance, the movements and the closing balance.
func WriteStatementPDF(w io.Writer, s message.Statement) error {
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetTitle("Statement "+s.StatementID, true)
	pdf.SetCreator("evoucher", true)
	pdf.SetAutoPageBreak(true, 12)
	pdf.AddPage()
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetFont("Helvetica", "B", 14)
	pdf.CellFormat(0, 8, tr(fmt.Sprintf("Statement %s", s.StatementID)), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	pdf.CellFormat(0, 6, tr(fmt.Sprintf("%s %s, period %s to %s (UTC, end excluded); issued %s by the evoucher center, signed (XML-DSig)",
		s.PartyKind, s.Party, s.From.Format("2006-01-02 15:04"), s.To.Format("2006-01-02 15:04"), s.Created.Format("2006-01-02 15:04"))),
		"", 1, "L", false, 0, "")
	pdf.Ln(3)
	cols := []struct {
		title string
		width float64
		align string
	}{{"Kind", 20, "L"}, {"Operator", 30, "L"}, {"Retailer", 30, "L"}, {"Product", 28, "L"}, {"Reference", 42, "L"},
		{"Cur", 12, "L"}, {"Codes", 18, "R"}, {"Face value", 28, "R"}, {"Commission", 24, "R"}, {"Margin", 22, "R"}, {"Net", 28, "R"}}
	row := func(bold bool, cells ...string) {
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont("Helvetica", style, 8)
		for i, c := range cells {
			pdf.CellFormat(cols[i].width, 5, tr(c), "B", 0, cols[i].align, false, 0, "")
		}
		pdf.Ln(-1)
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	row(true, titles...)
	for _, l := range s.Lines {
		ref := l.Reference
		if l.Method != "" {
			ref = l.Method + " " + ref
		}
		row(false, l.Kind, l.Operator, l.Retailer, l.Product, ref, l.Currency, strconv.FormatInt(l.Codes, 10),
			FormatMinor(l.FaceValue, l.Currency), FormatMinor(l.Commission, l.Currency), FormatMinor(l.Margin, l.Currency), FormatMinor(l.Net, l.Currency))
	}
	pdf.Ln(4)
	for _, t := range s.Totals {
		row(true, "total", "", "", "", "top-ups "+FormatMinor(t.TopUps, t.Currency), t.Currency, strconv.FormatInt(t.Codes, 10),
			FormatMinor(t.FaceValue, t.Currency), FormatMinor(t.Commission, t.Currency), FormatMinor(t.Margin, t.Currency), FormatMinor(t.Net, t.Currency))
		pdf.SetFont("Helvetica", "", 10)
		pdf.CellFormat(0, 6, tr(fmt.Sprintf("%s: opening balance %s, movements %s, closing balance %s", t.Currency,
			FormatAmount(t.Opening, t.Currency), FormatAmount(t.Net, t.Currency), FormatAmount(t.Closing, t.Currency))), "", 1, "L", false, 0, "")
	}
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "I", 8)
	pdf.MultiCell(0, 4, tr("Balances are what the platform owes the party: a retailer's negative balance is what it owes. "+
		"The signed XML of this statement is the authoritative copy; it is in the center's exchange log."), "", "L", false)
	return pdf.Output(w)
}

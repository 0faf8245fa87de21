package pos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-pdf/fpdf"
	"github.com/skip2/go-qrcode"
)

// PDFPrinter writes each ticket as an 80 mm wide PDF in a directory (a "print to file" for a
// shop without a thermal printer, or to mail a ticket). A duplicate gets its own file.
type PDFPrinter struct {
	Dir string
}

// Describe names the printer.
func (p *PDFPrinter) Describe() string { return "PDF printer in " + p.Dir }

// PathOf returns where the ticket's PDF goes.
func (p *PDFPrinter) PathOf(t Ticket) string {
	name := t.TicketNo
	if t.Duplicate {
		name += "-DUPLICATE-" + t.Time.UTC().Format("20060102T150405")
		if n, err := filepath.Glob(filepath.Join(p.Dir, t.TicketNo+"-DUPLICATE-*.pdf")); err == nil {
			name += fmt.Sprintf("-%d", len(n)+1)
		}
	}
	return filepath.Join(p.Dir, name+".pdf")
}

// Print writes the PDF, synced, atomically (temp file then rename).
func (p *PDFPrinter) Print(_ context.Context, t Ticket) error {
	lines := t.Lines(32)
	height := 12 + float64(len(lines))*4.2 + 50
	pdf := fpdf.NewCustom(&fpdf.InitType{UnitStr: "mm", Size: fpdf.SizeType{Wd: 80, Ht: height}})
	pdf.SetMargins(4, 4, 4)
	pdf.SetAutoPageBreak(false, 0)
	pdf.AddPage()
	pin := groupPIN(string(t.PIN))
	for _, l := range lines {
		switch strings.TrimSpace(l) {
		case pin:
			pdf.SetFont("Courier", "B", 14)
			pdf.CellFormat(72, 7, pin, "", 1, "C", false, 0, "")
		case "*** DUPLICATE ***":
			pdf.SetFont("Courier", "B", 11)
			pdf.CellFormat(72, 5, "*** DUPLICATE ***", "", 1, "C", false, 0, "")
		default:
			pdf.SetFont("Courier", "", 9)
			pdf.CellFormat(72, 4.2, l, "", 1, "L", false, 0, "")
		}
	}
	png, err := qrcode.Encode(t.QRContent(), qrcode.Medium, 256)
	if err != nil {
		return printerDown(p, err)
	}
	pdf.RegisterImageOptionsReader("qr", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
	pdf.ImageOptions("qr", 20, pdf.GetY()+2, 40, 40, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	var out bytes.Buffer
	if err := pdf.Output(&out); err != nil {
		return printerDown(p, err)
	}
	defer clear(out.Bytes())
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return printerDown(p, err)
	}
	path := p.PathOf(t)
	tmp, err := os.CreateTemp(p.Dir, ".ticket-*")
	if err != nil {
		return printerDown(p, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return printerDown(p, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return printerDown(p, err)
	}
	if err := tmp.Close(); err != nil {
		return printerDown(p, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return printerDown(p, err)
	}
	return nil
}

package pos

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/skip2/go-qrcode"

	"github.com/evoucher/evoucher"
)

// Printer prints tickets. Print returns only when the whole ticket reached the device (or
// file); an error means the ticket may be missing or partial, and the sale stays recorded
// as not printed, so it can be printed again as a DUPLICATE.
type Printer interface {
	Print(ctx context.Context, t Ticket) error
	// Describe names the printer for the clerk: "ESC/POS printer at 10.0.0.7:9100".
	Describe() string
}

// printerDown wraps a printer failure in an unavailable error that says what to do.
func printerDown(p Printer, err error) error {
	return &evoucher.Error{Kind: evoucher.KindUnavailable, Reason: "printer_down",
		Message: fmt.Sprintf("%s failed: %v", p.Describe(), err), Err: err}
}

// TextPrinter writes tickets as plain text, with the QR code drawn in block characters, to a
// writer (the screen) or appended to a file (synced before Print returns).
type TextPrinter struct {
	W     io.Writer // when set, tickets go here
	Path  string    // otherwise, appended to this file
	Width int       // columns; 0 means 40
}

// Describe names the printer.
func (p *TextPrinter) Describe() string {
	if p.W != nil {
		return "text printer (screen)"
	}
	return "text printer " + p.Path
}

// Print writes the ticket.
func (p *TextPrinter) Print(_ context.Context, t Ticket) error {
	width := p.Width
	if width == 0 {
		width = 40
	}
	var b strings.Builder
	b.WriteString(strings.Repeat("=", width) + "\n")
	b.WriteString(t.Text(width))
	if q, err := qrcode.New(t.QRContent(), qrcode.Medium); err == nil {
		q.DisableBorder = false
		b.WriteString(q.ToSmallString(false))
	}
	b.WriteString(strings.Repeat("=", width) + "\n")
	out := b.String()
	defer clear([]byte(out)) // best effort: the string's bytes are the GC's
	if p.W != nil {
		_, err := io.WriteString(p.W, out)
		if err != nil {
			return printerDown(p, err)
		}
		return nil
	}
	f, err := os.OpenFile(p.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return printerDown(p, err)
	}
	if _, err := f.WriteString(out); err != nil {
		f.Close()
		return printerDown(p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return printerDown(p, err)
	}
	if err := f.Close(); err != nil {
		return printerDown(p, err)
	}
	return nil
}

package pos

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// LinePrinter prints plain lines (a shift report): the text and ESC/POS printers can.
type LinePrinter interface {
	PrintLines(ctx context.Context, lines []string) error
}

// PrintLines writes lines as they are.
func (p *TextPrinter) PrintLines(_ context.Context, lines []string) error {
	out := strings.Join(lines, "\n") + "\n"
	if p.W != nil {
		_, err := io.WriteString(p.W, out)
		return err
	}
	f, err := os.OpenFile(p.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return printerDown(p, err)
	}
	defer f.Close()
	if _, err := f.WriteString(out); err != nil {
		return printerDown(p, err)
	}
	return f.Sync()
}

// PrintLines sends lines and a cut.
func (p *ESCPOSPrinter) PrintLines(ctx context.Context, lines []string) error {
	var b bytes.Buffer
	b.Write(escInit)
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.Write(escFeedCut)
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return printerDown(p, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(b.Bytes()); err != nil {
		return printerDown(p, err)
	}
	return nil
}

// ShiftLines renders a shift summary for printing at width columns.
func ShiftLines(terminal string, sh Shift, reportSeq int64, width int) []string {
	rule := strings.Repeat("-", width)
	out := []string{"SHIFT REPORT  terminal " + terminal, rule,
		"shift   " + itoa(sh.ID),
		"opened  " + sh.Opened.UTC().Format("2006-01-02 15:04") + " UTC",
		"closed  " + sh.Closed.UTC().Format("2006-01-02 15:04") + " UTC", rule}
	for _, l := range sh.Lines {
		ok := "reconciled"
		if !l.Reconciled() {
			ok = "MISMATCH"
		}
		out = append(out, l.Operator+" "+l.Product+"  "+ok,
			"  opening  "+itoa(int64(l.Opening)),
			"  received "+itoa(int64(l.Received)),
			"  sold     "+itoa(int64(l.Sold)),
			"  returned "+itoa(int64(l.Returned)))
		if l.Voided > 0 {
			out = append(out, "  refused  "+itoa(int64(l.Voided)))
		}
		out = append(out, "  closing  "+itoa(int64(l.Closing)))
	}
	out = append(out, rule, "reprints "+itoa(int64(sh.Reprints))+"   unprinted "+itoa(int64(sh.Unprinted)),
		"wrong PINs "+itoa(int64(sh.CardEvents["wrong_pin"]))+"   cards refused "+itoa(int64(sh.CardEvents["refused"])),
		"sales report "+itoa(reportSeq)+" queued for the center")
	if sh.Reconciled() {
		out = append(out, "RECONCILED")
	} else {
		out = append(out, "NOT RECONCILED: call the retailer's manager")
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

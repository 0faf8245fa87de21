package pos_test

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/evoucher/evoucher/pos"
	"github.com/evoucher/evoucher/xml/message"
)

func cornerTicket(name string) pos.Ticket {
	return pos.Ticket{TicketNo: "T-CORNER-1-000001", Serial: "100000000000", Operator: "OP-A", Product: "P10", FaceValue: 1000,
		Currency: "EUR", Retailer: "R-CORNER", RetailerName: name, Terminal: "T-CORNER-1", Salesman: "V-1",
		Time: time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC), PIN: message.PIN("12345678901234"),
		Instructions: "Dial *123*12345678901234# then press call", DialString: "*123*12345678901234#"}
}

// heading is the ticket's lines before "terminal …", trimmed; it fails when a line is wider
// than width or holds a character a printer must not receive.
func heading(t *testing.T, tk pos.Ticket, width int) []string {
	t.Helper()
	var out []string
	for _, l := range tk.Lines(width) {
		if n := utf8.RuneCountInString(l); n > width {
			t.Errorf("width %d: line of %d columns %q", width, n, l)
		}
		if i := strings.IndexFunc(l, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
			t.Errorf("width %d: line %q holds %q", width, l, []rune(l[i:])[0])
		}
		if strings.HasPrefix(strings.TrimSpace(l), "terminal ") {
			return out
		}
		out = append(out, strings.TrimSpace(l))
	}
	t.Fatalf("width %d: no terminal line", width)
	return nil
}

func TestTicketShopName(t *testing.T) {
	t.Parallel()
	for _, width := range []int{32, 40, 42} {
		t.Run(strconv.Itoa(width), func(t *testing.T) { shopNameAt(t, width) })
	}
	t.Run("OKESCPOSBytes", func(t *testing.T) {
		p := &pos.ESCPOSPrinter{Width: 32}
		dirty, clean := p.Encode(cornerTicket("Corner\x1b@\x1dV Shop")), p.Encode(cornerTicket("Corner @ V Shop"))
		if !bytes.Equal(dirty, clean) {
			t.Fatalf("the name's control bytes reach the printer:\n%q\n%q", dirty, clean)
		}
	})
}

// shopNameAt checks a ticket's heading at width columns.
func shopNameAt(t *testing.T, width int) {
	t.Run("OK", func(t *testing.T) {
		if h := heading(t, cornerTicket("Corner Shop"), width); len(h) != 1 || h[0] != "Corner Shop (R-CORNER)" {
			t.Fatalf("width %d: heading %q", width, h)
		}
	})
	t.Run("OKWithoutName", func(t *testing.T) {
		for _, name := range []string{"", " \t", "\x1b\x1d\u202e"} {
			if h := heading(t, cornerTicket(name), width); len(h) != 1 || h[0] != "R-CORNER" {
				t.Fatalf("width %d, name %q: heading %q", width, name, h)
			}
		}
	})
	t.Run("OKLongName", func(t *testing.T) {
		// 64 characters, the most a shipment carries: two lines of name at most, the id below.
		want := map[int][]string{
			32: {"Épicerie du Marché Central et", "Tabac Presse de la Gare...", "(R-CORNER)"},
			40: {"Épicerie du Marché Central et Tabac", "Presse de la Gare Saint-Jean", "(R-CORNER)"},
			42: {"Épicerie du Marché Central et Tabac Presse", "de la Gare Saint-Jean", "(R-CORNER)"},
		}[width]
		h := heading(t, cornerTicket("Épicerie du Marché Central et Tabac Presse de la Gare Saint-Jean"), width)
		if !slices.Equal(h, want) {
			t.Fatalf("width %d: heading %q, want %q", width, h, want)
		}
	})
	t.Run("OKControlCharactersStripped", func(t *testing.T) {
		// ESC @ resets an ESC/POS printer and GS V cuts the paper; a bidi override would
		// reverse the line.
		h := heading(t, cornerTicket("Corner\x1b@\x1dV\x00 Shop\u202e\r\n"), width)
		if len(h) != 1 || h[0] != "Corner @ V Shop (R-CORNER)" {
			t.Fatalf("width %d: heading %q", width, h)
		}
	})
}

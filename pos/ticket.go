package pos

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/evoucher/evoucher/xml/message"
)

// Ticket is what is printed for one sale. It holds the PIN in clear: build it right before
// printing and Zero it right after.
type Ticket struct {
	Duplicate    bool
	TicketNo     string
	Serial       string
	Operator     string
	Product      string
	FaceValue    int64 // minor units
	Currency     string
	Retailer     string // the retailer's id
	RetailerName string // the shop's name, printed before its id; "" prints the id alone
	Terminal     string
	Salesman     string
	Time         time.Time
	Expiry       time.Time
	PIN          message.PIN
	Instructions string // the refill instructions with the PIN in place of {PIN}
	DialString   string // what to dial: the word of the instructions holding the PIN
}

// QRContent is what the ticket's QR code holds: a tel: URI of the dial string, so a phone
// that scans it opens its dialer with the recharge ready.
func (t Ticket) QRContent() string {
	return "tel:" + strings.NewReplacer("#", "%23", " ", "").Replace(t.DialString)
}

// NewTicket makes the ticket of a sale whose code opened to pin. The dial string is the
// product's refill template with the PIN in place of {PIN}.
func NewTicket(s Sale, terminal string, pin message.PIN, duplicate bool) Ticket {
	t := Ticket{Duplicate: duplicate, TicketNo: s.Ticket, Serial: s.Serial, Operator: s.Operator, Product: s.Product,
		FaceValue: s.FaceValue, Currency: s.Currency, Retailer: s.Retailer, RetailerName: s.RetailerName, Terminal: terminal, Salesman: s.Vendor,
		Time: s.SoldAt, Expiry: s.Expiry, PIN: pin, Instructions: strings.ReplaceAll(s.Refill, "{PIN}", string(pin))}
	t.DialString = t.Instructions
	for _, w := range strings.Fields(t.Instructions) {
		if len(pin) > 0 && strings.Contains(w, string(pin)) {
			t.DialString = w
		}
	}
	return t
}

// Zero wipes the PIN from the ticket.
func (t *Ticket) Zero() {
	t.PIN.Zero()
	t.Instructions, t.DialString = "", ""
}

// Money formats minor units: 1000 EUR → "10.00 EUR".
func Money(minor int64, currency string) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, minor/100, minor%100, currency)
}

// groupPIN spaces a PIN in groups of four for reading aloud and typing.
func groupPIN(p string) string {
	var b strings.Builder
	for i, r := range p {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Lines renders the ticket as text lines at most width columns wide (32 suits a 58 mm roll,
// 42 an 80 mm one, 40 a handheld); the QR code is not included.
func (t Ticket) Lines(width int) []string {
	if width < 24 {
		width = 24
	}
	center := func(s string) string {
		n := utf8.RuneCountInString(s)
		if n >= width {
			return s
		}
		return strings.Repeat(" ", (width-n)/2) + s
	}
	rule := strings.Repeat("-", width)
	pair := func(k, v string) string {
		if len(k)+len(v)+1 > width {
			return k + "\n" + strings.Repeat(" ", max(0, width-len(v))) + v
		}
		return k + strings.Repeat(" ", width-len(k)-len(v)) + v
	}
	var out []string
	add := func(s ...string) {
		for _, l := range s {
			out = append(out, strings.Split(l, "\n")...)
		}
	}
	if t.Duplicate {
		add(center("*** DUPLICATE ***"), center("already sold - not a new code"))
	}
	for _, l := range t.shopLines(width) {
		add(center(l))
	}
	add(center("terminal "+t.Terminal), rule,
		center(t.Operator+" "+t.Product), center(Money(t.FaceValue, t.Currency)), rule,
		center("PIN"), center(groupPIN(string(t.PIN))), rule)
	add(wrap("To recharge: "+t.Instructions, width)...)
	add(rule, pair("Serial", t.Serial), pair("Ticket", t.TicketNo), pair("Salesman", t.Salesman),
		pair("Date", t.Time.UTC().Format("2006-01-02 15:04:05")+" UTC"))
	if !t.Expiry.IsZero() {
		add(pair("Valid until", t.Expiry.Format(time.DateOnly)))
	}
	if t.Duplicate {
		add(rule, center("*** DUPLICATE ***"))
	}
	return out
}

// maxNameLines bounds the lines a shop's name takes on a ticket.
const maxNameLines = 2

// shopLines is the ticket's heading: "Corner Shop (R-CORNER)" on one line when it fits, else
// the name on up to maxNameLines lines and "(R-CORNER)" below; the id alone when the name is
// missing or has nothing printable.
func (t Ticket) shopLines(width int) []string {
	// Bounded and without control characters (printable): an ESC/POS printer takes control
	// bytes for commands. The name is signed by the center, but typed into its registry.
	name := strings.Join(strings.Fields(printable(t.RetailerName, message.MaxRetailerName)), " ")
	if name == "" {
		return []string{t.Retailer}
	}
	if one := name + " (" + t.Retailer + ")"; utf8.RuneCountInString(one) <= width {
		return []string{one}
	}
	lines := wrap(name, width)
	if len(lines) > maxNameLines {
		last := []rune(lines[maxNameLines-1])
		lines = append(lines[:maxNameLines-1], string(last[:min(len(last), width-3)])+"...")
	}
	return append(lines, "("+t.Retailer+")")
}

// Text renders the ticket at width columns, one line each, ending with a newline.
func (t Ticket) Text(width int) string { return strings.Join(t.Lines(width), "\n") + "\n" }

// wrap breaks s at spaces into lines of at most width columns.
func wrap(s string, width int) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(s) {
		for r := []rune(w); len(r) > width; r = []rune(w) {
			if line != "" {
				out, line = append(out, line), ""
			}
			out, w = append(out, string(r[:width])), string(r[width:])
		}
		switch {
		case line == "":
			line = w
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= width:
			line += " " + w
		default:
			out, line = append(out, line), w
		}
	}
	if line != "" {
		out = append(out, line)
	}
	return out
}

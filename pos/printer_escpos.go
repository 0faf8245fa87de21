package pos

import (
	"bytes"
	"context"
	"net"
	"time"
)

// ESC/POS commands used (Epson's ESC/POS reference; every 80 mm and 58 mm thermal printer on
// port 9100 speaks them).
var (
	escInit        = []byte{0x1b, '@'}        // ESC @: initialise
	escAlignLeft   = []byte{0x1b, 'a', 0}     // ESC a 0
	escAlignCenter = []byte{0x1b, 'a', 1}     // ESC a 1
	escBoldOn      = []byte{0x1b, 'E', 1}     // ESC E 1
	escBoldOff     = []byte{0x1b, 'E', 0}     // ESC E 0
	escDoubleOn    = []byte{0x1d, '!', 0x11}  // GS ! 0x11: double width and height
	escDoubleOff   = []byte{0x1d, '!', 0}     // GS ! 0
	escFeedCut     = []byte{0x1d, 'V', 66, 3} // GS V 66 n: feed n lines and cut (partial)
)

// ESCPOSPrinter sends tickets as ESC/POS bytes over TCP to a network thermal printer (raw
// port 9100): init, text, the QR code as the printer's own QR command (GS ( k), cut.
type ESCPOSPrinter struct {
	Addr    string        // host:port
	Width   int           // characters per line; 0 means 42 (80 mm roll, font A)
	Timeout time.Duration // connect and write; 0 means 5 s
}

// Describe names the printer.
func (p *ESCPOSPrinter) Describe() string { return "ESC/POS printer at " + p.Addr }

// Print connects, sends the whole ticket and closes the connection.
func (p *ESCPOSPrinter) Print(ctx context.Context, t Ticket) error {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	data := p.Encode(t)
	defer clear(data)
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return printerDown(p, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(data); err != nil {
		conn.Close()
		return printerDown(p, err)
	}
	// A clean close after the write: the printer has every byte in its buffer.
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := tc.CloseWrite(); err != nil {
			conn.Close()
			return printerDown(p, err)
		}
	}
	if err := conn.Close(); err != nil {
		return printerDown(p, err)
	}
	return nil
}

// Encode returns the ESC/POS bytes of a ticket.
func (p *ESCPOSPrinter) Encode(t Ticket) []byte {
	width := p.Width
	if width == 0 {
		width = 42
	}
	var b bytes.Buffer
	b.Write(escInit)
	lines := t.Lines(width)
	pin := groupPIN(string(t.PIN))
	for _, l := range lines {
		trimmed := trimSpace(l)
		switch {
		case trimmed == pin && pin != "":
			// The PIN big and bold, centred.
			b.Write(escAlignCenter)
			b.Write(escBoldOn)
			b.Write(escDoubleOn)
			b.WriteString(trimmed + "\n")
			b.Write(escDoubleOff)
			b.Write(escBoldOff)
			b.Write(escAlignLeft)
		case trimmed == "*** DUPLICATE ***":
			b.Write(escAlignCenter)
			b.Write(escBoldOn)
			b.WriteString(trimmed + "\n")
			b.Write(escBoldOff)
			b.Write(escAlignLeft)
		default:
			b.WriteString(l + "\n")
		}
	}
	b.Write(escAlignCenter)
	b.Write(qrCommands(t.QRContent()))
	b.Write(escAlignLeft)
	b.Write(escFeedCut)
	return b.Bytes()
}

func trimSpace(s string) string { return string(bytes.TrimSpace([]byte(s))) }

// qrCommands is the GS ( k sequence that stores data and prints it as a QR code: model 2,
// module size 6, error correction M.
func qrCommands(data string) []byte {
	var b bytes.Buffer
	fn := func(cn, fn byte, params ...byte) {
		n := len(params) + 2
		b.Write([]byte{0x1d, '(', 'k', byte(n), byte(n >> 8), cn, fn})
		b.Write(params)
	}
	fn(49, 65, 50, 0)                          // model 2
	fn(49, 67, 6)                              // module size
	fn(49, 69, 49)                             // error correction M
	fn(49, 80, append([]byte{48}, data...)...) // store the data
	fn(49, 81, 48)                             // print it
	return b.Bytes()
}

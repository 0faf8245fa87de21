package pkcs11

import (
	"fmt"
	"io"
	"log/slog"
)

const redacted = "[redacted]"

// PIN is a token PIN (or SO PIN). Every way of printing it (fmt with any verb, String,
// GoString, slog, encoding.TextMarshaler) yields "[redacted]"; only string(pin) reveals it.
type PIN string

// String returns "[redacted]".
func (PIN) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (PIN) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so %x or %q cannot leak the PIN either.
func (PIN) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue returns "[redacted]" for log/slog.
func (PIN) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "[redacted]", so a Config marshalled into JSON or a log line does not
// carry the PIN. It never returns an error.
func (PIN) MarshalText() ([]byte, error) { return []byte(redacted), nil }

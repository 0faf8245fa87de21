package pkcs11_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/evoucher/evoucher/pki/pkcs11"
)

func TestPIN(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-PIN"
	pin := pkcs11.PIN(secret)
	cfg := pkcs11.Config{Module: "/m.so", TokenLabel: "tok", PIN: pin}

	t.Run("FmtRedacted", func(t *testing.T) {
		t.Parallel()
		for _, format := range []string{"%v", "%s", "%#v", "%+v", "%q", "%x", "%10s", "%d"} {
			got := fmt.Sprintf(format, pin)
			if got != "[redacted]" {
				t.Errorf("Sprintf(%q, pin) = %q, want [redacted]", format, got)
			}
			if got := fmt.Sprintf(format, cfg); strings.Contains(got, secret) {
				t.Errorf("Sprintf(%q, cfg) = %q leaks the PIN", format, got)
			}
		}
		if pin.String() != "[redacted]" || pin.GoString() != "[redacted]" {
			t.Errorf("String() = %q, GoString() = %q", pin.String(), pin.GoString())
		}
	})
	t.Run("SlogRedacted", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
			slog.New(h).Info("open", "pin", pin, slog.Any("cfg", cfg))
		}
		out := buf.String()
		if strings.Contains(out, secret) || strings.Count(out, "[redacted]") < 4 {
			t.Errorf("slog output leaks or lacks [redacted]:\n%s", out)
		}
	})
	t.Run("JSONRedacted", func(t *testing.T) {
		t.Parallel()
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secret) || !strings.Contains(string(b), `"PIN":"[redacted]"`) {
			t.Errorf("json.Marshal(cfg) = %s", b)
		}
	})
	t.Run("ConversionKeepsValue", func(t *testing.T) {
		t.Parallel()
		if string(pin) != secret {
			t.Errorf("string(pin) = %q", string(pin))
		}
	})
}

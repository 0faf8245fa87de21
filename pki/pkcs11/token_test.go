package pkcs11_test

import (
	"crypto/ecdsa"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

func TestOpen(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		cfg := testhsm.MustConfig(t)
		tok, err := pkcs11.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Label() != cfg.TokenLabel {
			t.Errorf("Label() = %q, want %q", tok.Label(), cfg.TokenLabel)
		}
		if err := tok.Ping(); err != nil {
			t.Errorf("Ping: %v", err)
		}
		if err := tok.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := tok.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := tok.Ping(); err == nil {
			t.Error("Ping after Close succeeded")
		}
		if _, _, err := tok.AESKey("k"); err == nil {
			t.Error("AESKey after Close succeeded")
		}
	})
	t.Run("ErrPINIncorrect", func(t *testing.T) {
		t.Parallel()
		cfg := testhsm.MustConfig(t)
		cfg.PIN += "x"
		tok, err := pkcs11.Open(cfg)
		if !errors.Is(err, pkcs11.ErrPINIncorrect) {
			if tok != nil {
				_ = tok.Close()
			}
			t.Fatalf("Open with a wrong PIN: err = %v, want ErrPINIncorrect", err)
		}
		if strings.Contains(err.Error(), string(cfg.PIN)) {
			t.Errorf("error %q contains the PIN", err)
		}
	})
	t.Run("ErrPINIncorrectWhileOpen", func(t *testing.T) {
		t.Parallel()
		cfg := testhsm.MustConfig(t)
		first, err := pkcs11.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		wrong := cfg
		wrong.PIN += "x"
		if tok, err := pkcs11.Open(wrong); !errors.Is(err, pkcs11.ErrPINIncorrect) {
			if tok != nil {
				_ = tok.Close()
			}
			t.Fatalf("Open with a wrong PIN while the token is open: err = %v, want ErrPINIncorrect", err)
		}
		second, err := pkcs11.Open(cfg)
		if err != nil {
			t.Fatalf("Open with the right PIN while the token is open: %v", err)
		}
		if err := second.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrTokenNotFound", func(t *testing.T) {
		t.Parallel()
		cfg := testhsm.MustConfig(t)
		cfg.TokenLabel = "no-such-token"
		_, err := pkcs11.Open(cfg)
		if !errors.Is(err, pkcs11.ErrTokenNotFound) || !strings.Contains(err.Error(), `"no-such-token"`) {
			t.Fatalf("Open of an unknown label: err = %v, want ErrTokenNotFound naming the label", err)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		t.Parallel()
		good := testhsm.MustConfig(t)
		for name, change := range map[string]func(*pkcs11.Config){
			"EmptyModule":     func(c *pkcs11.Config) { c.Module = "" },
			"MissingModule":   func(c *pkcs11.Config) { c.Module = filepath.Join(t.TempDir(), "none.so") },
			"ModuleIsDir":     func(c *pkcs11.Config) { c.Module = t.TempDir() },
			"EmptyLabel":      func(c *pkcs11.Config) { c.TokenLabel = "" },
			"LongLabel":       func(c *pkcs11.Config) { c.TokenLabel = strings.Repeat("x", 33) },
			"EmptyPIN":        func(c *pkcs11.Config) { c.PIN = "" },
			"OneSession":      func(c *pkcs11.Config) { c.MaxSessions = 1 },
			"NegativeSession": func(c *pkcs11.Config) { c.MaxSessions = -1 },
		} {
			cfg := good
			change(&cfg)
			if tok, err := pkcs11.Open(cfg); !errors.Is(err, pkcs11.ErrInvalid) {
				if tok != nil {
					_ = tok.Close()
				}
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
	})
	t.Run("SameTokenTwice", func(t *testing.T) {
		t.Parallel()
		cfg := testhsm.MustConfig(t)
		cfg.MaxSessions = 2
		a, err := pkcs11.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pkcs11.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ka, _, err := a.ECDSAKey("shared")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		// b keeps the login alive after a closed.
		kb, created, err := b.ECDSAKey("shared")
		if err != nil || created {
			t.Fatalf("ECDSAKey on the second handle: created=%v err=%v", created, err)
		}
		if !kb.Public().(*ecdsa.PublicKey).Equal(ka.Public()) {
			t.Error("the second handle sees another key")
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

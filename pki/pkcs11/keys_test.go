package pkcs11_test

import (
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

func TestKeyInfo(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)
	MustRSAKey(t, tok, "rsa", 2048)
	if _, _, err := tok.ECDSAKey("ec"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tok.AESKey("aes"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []pkcs11.KeyInfo{
		{Label: "rsa", Type: "RSA", Bits: 2048},
		{Label: "ec", Type: "ECDSA", Bits: 256},
		{Label: "aes", Type: "AES", Bits: 256},
	} {
		t.Run("NonExtractable"+want.Type, func(t *testing.T) {
			t.Parallel()
			want.Sensitive, want.AlwaysSensitive, want.NeverExtractable, want.Persistent = true, true, true, true
			got, err := tok.KeyInfo(want.Label)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("KeyInfo(%q) = %+v, want %+v", want.Label, got, want)
			}
		})
	}
	t.Run("ErrKeyNotFound", func(t *testing.T) {
		t.Parallel()
		if _, err := tok.KeyInfo("none"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Errorf("err = %v, want ErrKeyNotFound", err)
		}
	})
}

func TestKeyMismatch(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)
	MustRSAKey(t, tok, "rsa", 2048)
	if _, _, err := tok.ECDSAKey("ec"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tok.AESKey("aes"); err != nil {
		t.Fatal(err)
	}
	attempts := map[string]func(label string) error{
		"RSAKey":       func(l string) error { _, _, err := tok.RSAKey(l, 2048); return err },
		"FindRSAKey":   func(l string) error { _, err := tok.FindRSAKey(l); return err },
		"ECDSAKey":     func(l string) error { _, _, err := tok.ECDSAKey(l); return err },
		"FindECDSAKey": func(l string) error { _, err := tok.FindECDSAKey(l); return err },
		"AESKey":       func(l string) error { _, _, err := tok.AESKey(l); return err },
		"FindAESKey":   func(l string) error { _, err := tok.FindAESKey(l); return err },
	}
	for _, label := range []string{"rsa", "ec", "aes"} {
		for name, try := range attempts {
			if strings.Contains(strings.ToLower(name), label) {
				continue
			}
			t.Run("ErrKeyMismatch/"+name+"On"+label, func(t *testing.T) {
				t.Parallel()
				if err := try(label); !errors.Is(err, pkcs11.ErrKeyMismatch) {
					t.Errorf("%s(%q): err = %v, want ErrKeyMismatch", name, label, err)
				}
			})
		}
	}
	t.Run("ExistingKeysUnchanged", func(t *testing.T) {
		for _, label := range []string{"rsa", "ec", "aes"} {
			if _, err := tok.KeyInfo(label); err != nil {
				t.Errorf("KeyInfo(%q): %v", label, err)
			}
		}
	})
}

func TestDeleteKey(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)

	t.Run("ThenErrKeyNotFound", func(t *testing.T) {
		t.Parallel()
		old := MustRSAKey(t, tok, "rotate", 2048)
		if err := tok.DeleteKey("rotate"); err != nil {
			t.Fatal(err)
		}
		if _, err := tok.FindRSAKey("rotate"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Fatalf("FindRSAKey after DeleteKey: err = %v, want ErrKeyNotFound", err)
		}
		if _, err := tok.KeyInfo("rotate"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Fatalf("KeyInfo after DeleteKey: err = %v, want ErrKeyNotFound", err)
		}
		// The label is free again, for a new key of any kind.
		k, created, err := tok.RSAKey("rotate", 3072)
		if err != nil || !created {
			t.Fatalf("RSAKey after DeleteKey: created=%v err=%v", created, err)
		}
		if k.Public().(*rsa.PublicKey).Equal(old.Public()) {
			t.Fatal("the new key is the deleted one")
		}
	})
	t.Run("AESThenErrKeyNotFound", func(t *testing.T) {
		t.Parallel()
		if _, _, err := tok.AESKey("kek-1"); err != nil {
			t.Fatal(err)
		}
		if err := tok.DeleteKey("kek-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := tok.FindAESKey("kek-1"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Fatalf("FindAESKey after DeleteKey: err = %v, want ErrKeyNotFound", err)
		}
	})
	t.Run("ErrKeyNotFound", func(t *testing.T) {
		t.Parallel()
		if err := tok.DeleteKey("none"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Errorf("err = %v, want ErrKeyNotFound", err)
		}
	})
}

func TestLabels(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)
	for name, label := range map[string]string{"Empty": "", "TooLong": strings.Repeat("k", 33), "TrailingBlank": "k "} {
		t.Run("ErrInvalid"+name, func(t *testing.T) {
			t.Parallel()
			for what, err := range map[string]error{
				"RSAKey":    func() error { _, _, err := tok.RSAKey(label, 2048); return err }(),
				"ECDSAKey":  func() error { _, _, err := tok.ECDSAKey(label); return err }(),
				"AESKey":    func() error { _, _, err := tok.AESKey(label); return err }(),
				"FindAES":   func() error { _, err := tok.FindAESKey(label); return err }(),
				"DeleteKey": tok.DeleteKey(label),
				"KeyInfo":   func() error { _, err := tok.KeyInfo(label); return err }(),
			} {
				if !errors.Is(err, pkcs11.ErrInvalid) {
					t.Errorf("%s(%q): err = %v, want ErrInvalid", what, label, err)
				}
			}
		})
	}
	t.Run("ThirtyTwoBytesOK", func(t *testing.T) {
		t.Parallel()
		label := strings.Repeat("k", 32)
		if _, _, err := tok.AESKey(label); err != nil {
			t.Fatal(err)
		}
		if _, err := tok.FindAESKey(label); err != nil {
			t.Fatal(err)
		}
	})
}

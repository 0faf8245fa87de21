package pkcs11_test

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

func TestAESKey(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)
	aead, created, err := tok.AESKey("kek")
	if err != nil || !created {
		t.Fatalf("first AESKey: created=%v err=%v", created, err)
	}
	if aead.NonceSize() != 12 || aead.Overhead() != 16 {
		t.Fatalf("NonceSize()=%d Overhead()=%d, want 12 and 16", aead.NonceSize(), aead.Overhead())
	}
	dek := []byte("a 32-byte data key, to be wrapped")
	aad := []byte("batch B-7")
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	sealed := aead.Seal(nil, nonce, dek, aad)

	t.Run("SealAppendsTag", func(t *testing.T) {
		t.Parallel()
		if len(sealed) != len(dek)+16 {
			t.Fatalf("sealed %d bytes, want %d", len(sealed), len(dek)+16)
		}
		if bytes.Contains(sealed, dek[:16]) {
			t.Fatal("the ciphertext contains the plaintext")
		}
		prefix := []byte("prefix")
		out := aead.Seal(prefix, nonce, dek, aad)
		if !bytes.Equal(out[:len(prefix)], prefix) || !bytes.Equal(out[len(prefix):], sealed) {
			t.Fatal("Seal(dst, ...) does not append to dst")
		}
	})
	t.Run("ReusedKeyOpens", func(t *testing.T) {
		t.Parallel()
		again, created, err := tok.AESKey("kek")
		if err != nil || created {
			t.Fatalf("second AESKey: created=%v err=%v", created, err)
		}
		found, err := tok.FindAESKey("kek")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []cipher.AEAD{aead, again, found} {
			pt, err := a.Open(nil, nonce, sealed, aad)
			if err != nil || !bytes.Equal(pt, dek) {
				t.Fatalf("Open = %q, %v; want the data key", pt, err)
			}
		}
	})
	t.Run("EmptyAADOpens", func(t *testing.T) {
		t.Parallel()
		ct := aead.Seal(nil, nonce, dek, nil)
		if pt, err := aead.Open(nil, nonce, ct, nil); err != nil || !bytes.Equal(pt, dek) {
			t.Fatalf("Open = %q, %v", pt, err)
		}
	})
	t.Run("ErrTampered", func(t *testing.T) {
		t.Parallel()
		for _, i := range []int{0, len(dek), len(sealed) - 1} {
			ct := bytes.Clone(sealed)
			ct[i] ^= 0x80
			if pt, err := aead.Open(nil, nonce, ct, aad); err == nil {
				t.Errorf("byte %d flipped: Open succeeded with %q", i, pt)
			}
		}
		if _, err := aead.Open(nil, nonce, sealed[:15], aad); err == nil {
			t.Error("a ciphertext shorter than the tag opened")
		}
	})
	t.Run("ErrWrongAAD", func(t *testing.T) {
		t.Parallel()
		if pt, err := aead.Open(nil, nonce, sealed, []byte("batch B-8")); err == nil {
			t.Errorf("Open with another AAD succeeded with %q", pt)
		}
		if _, err := aead.Open(nil, nonce, sealed, nil); err == nil {
			t.Error("Open without the AAD succeeded")
		}
	})
	t.Run("ErrWrongNonce", func(t *testing.T) {
		t.Parallel()
		other := bytes.Clone(nonce)
		other[0] ^= 1
		if _, err := aead.Open(nil, other, sealed, aad); err == nil {
			t.Error("Open with another nonce succeeded")
		}
	})
	t.Run("PanicsOnNonceSize", func(t *testing.T) {
		t.Parallel()
		defer func() {
			if recover() == nil {
				t.Error("Seal with a 16-byte nonce did not panic")
			}
		}()
		aead.Seal(nil, make([]byte, 16), dek, aad)
	})
	t.Run("ErrOtherKey", func(t *testing.T) {
		t.Parallel()
		other, _, err := tok.AESKey("other-kek")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Open(nil, nonce, sealed, aad); err == nil {
			t.Error("another key opened the ciphertext")
		}
	})
	t.Run("ErrKeyNotFound", func(t *testing.T) {
		t.Parallel()
		if _, err := tok.FindAESKey("none"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Errorf("err = %v, want ErrKeyNotFound", err)
		}
	})
}

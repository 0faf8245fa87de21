package pkcs11_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"testing"

	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

func TestECDSAKey(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)
	k, created, err := tok.ECDSAKey("log")
	if err != nil || !created {
		t.Fatalf("first ECDSAKey: created=%v err=%v", created, err)
	}
	pub := k.Public().(*ecdsa.PublicKey)
	if pub.Curve != elliptic.P256() {
		t.Fatalf("curve is %s, want P-256", pub.Curve.Params().Name)
	}

	t.Run("ReusedNotCreated", func(t *testing.T) {
		t.Parallel()
		k2, created, err := tok.ECDSAKey("log")
		if err != nil || created {
			t.Fatalf("second ECDSAKey: created=%v err=%v", created, err)
		}
		k3, err := tok.FindECDSAKey("log")
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal(k2.Public()) || !pub.Equal(k3.Public()) || k3.Label() != "log" {
			t.Error("the key found is not the key created")
		}
	})
	t.Run("SignatureVerifiesASN1", func(t *testing.T) {
		t.Parallel()
		d := sha256.Sum256([]byte("checkpoint 42"))
		sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(pub, d[:], sig) {
			t.Fatal("signature does not verify")
		}
		d[0] ^= 1
		if ecdsa.VerifyASN1(pub, d[:], sig) {
			t.Fatal("signature verifies for another digest")
		}
		d384 := sha512.Sum384([]byte("checkpoint 42"))
		sig, err = k.Sign(rand.Reader, d384[:], crypto.SHA384)
		if err != nil || !ecdsa.VerifyASN1(pub, d384[:], sig) {
			t.Fatalf("SHA-384 signature: err=%v", err)
		}
	})
	t.Run("ErrUnsupportedSHA1", func(t *testing.T) {
		t.Parallel()
		d := sha1.Sum([]byte("x"))
		if _, err := k.Sign(rand.Reader, d[:], crypto.SHA1); !errors.Is(err, pkcs11.ErrUnsupported) {
			t.Errorf("Sign with SHA-1: err = %v, want ErrUnsupported", err)
		}
	})
	t.Run("ErrKeyNotFound", func(t *testing.T) {
		t.Parallel()
		if _, err := tok.FindECDSAKey("none"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Errorf("err = %v, want ErrKeyNotFound", err)
		}
	})
}

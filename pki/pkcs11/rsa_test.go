package pkcs11_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

// MustRSAKey returns the RSA key labelled label, created if missing.
func MustRSAKey(tb testing.TB, tok *pkcs11.Token, label string, bits int) *pkcs11.RSAKey {
	tb.Helper()
	k, _, err := tok.RSAKey(label, bits)
	if err != nil {
		tb.Fatalf("RSAKey(%q, %d): %v", label, bits, err)
	}
	return k
}

func TestRSAKey(t *testing.T) {
	t.Parallel()
	for _, bits := range []int{2048, 3072} {
		t.Run(fmt.Sprintf("CreatedThenReused%d", bits), func(t *testing.T) {
			t.Parallel()
			tok := testhsm.MustToken(t)
			k1, created, err := tok.RSAKey("center-sign", bits)
			if err != nil || !created {
				t.Fatalf("first RSAKey: created=%v err=%v", created, err)
			}
			pub := k1.Public().(*rsa.PublicKey)
			if pub.N.BitLen() != bits || pub.E != 65537 {
				t.Fatalf("public key has %d bits, e=%d", pub.N.BitLen(), pub.E)
			}
			k2, created, err := tok.RSAKey("center-sign", bits)
			if err != nil || created {
				t.Fatalf("second RSAKey: created=%v err=%v", created, err)
			}
			k3, err := tok.FindRSAKey("center-sign")
			if err != nil {
				t.Fatal(err)
			}
			if !pub.Equal(k2.Public()) || !pub.Equal(k3.Public()) {
				t.Error("the key found is not the key created")
			}
			if k3.Label() != "center-sign" {
				t.Errorf("Label() = %q", k3.Label())
			}
		})
	}
	t.Run("ErrInvalidSize", func(t *testing.T) {
		t.Parallel()
		tok := testhsm.MustToken(t)
		for _, bits := range []int{0, 1024, 2047, 2049, 8192} {
			if _, _, err := tok.RSAKey("small", bits); !errors.Is(err, pkcs11.ErrInvalid) {
				t.Errorf("RSAKey(%d bits): err = %v, want ErrInvalid", bits, err)
			}
		}
		if _, err := tok.FindRSAKey("small"); !errors.Is(err, pkcs11.ErrKeyNotFound) {
			t.Errorf("a refused size left a key behind: FindRSAKey err = %v", err)
		}
	})
	t.Run("ErrKeyMismatchSize", func(t *testing.T) {
		t.Parallel()
		tok := testhsm.MustToken(t)
		MustRSAKey(t, tok, "k", 2048)
		if _, _, err := tok.RSAKey("k", 3072); !errors.Is(err, pkcs11.ErrKeyMismatch) {
			t.Errorf("RSAKey with another size: err = %v, want ErrKeyMismatch", err)
		}
	})
}

func TestRSAKeySign(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)
	k := MustRSAKey(t, tok, "sign", 2048)
	pub := k.Public().(*rsa.PublicKey)
	msg := []byte("<Shipment Id=\"S-1\"/>")
	d256 := sha256.Sum256(msg)

	t.Run("PKCS1v15SHA256Verifies", func(t *testing.T) {
		t.Parallel()
		sig, err := k.Sign(rand.Reader, d256[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d256[:], sig); err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d256[1:], sig); err == nil {
			t.Fatal("signature verifies for another digest")
		}
	})
	t.Run("PSSVerifies", func(t *testing.T) {
		t.Parallel()
		for _, salt := range []int{rsa.PSSSaltLengthEqualsHash, rsa.PSSSaltLengthAuto, 20} {
			opts := &rsa.PSSOptions{SaltLength: salt, Hash: crypto.SHA256}
			sig, err := k.Sign(rand.Reader, d256[:], opts)
			if err != nil {
				t.Fatalf("salt %d: %v", salt, err)
			}
			if err := rsa.VerifyPSS(pub, crypto.SHA256, d256[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
				t.Fatalf("salt %d: PSS signature does not verify: %v", salt, err)
			}
		}
	})
	t.Run("ErrUnsupportedWeakHash", func(t *testing.T) {
		t.Parallel()
		d1 := sha1.Sum(msg)
		for _, opts := range []crypto.SignerOpts{crypto.SHA1, crypto.MD5, crypto.Hash(0), &rsa.PSSOptions{Hash: crypto.SHA1}, nil} {
			if _, err := k.Sign(rand.Reader, d1[:], opts); !errors.Is(err, pkcs11.ErrUnsupported) {
				t.Errorf("Sign with %v: err = %v, want ErrUnsupported", opts, err)
			}
		}
	})
	t.Run("ErrInvalidDigest", func(t *testing.T) {
		t.Parallel()
		if _, err := k.Sign(rand.Reader, d256[:31], crypto.SHA256); !errors.Is(err, pkcs11.ErrInvalid) {
			t.Errorf("Sign of a short digest: err = %v, want ErrInvalid", err)
		}
	})
	t.Run("ConcurrentSignaturesVerify", func(t *testing.T) {
		t.Parallel()
		const goroutines, each = 16, 8
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					d := sha256.Sum256(fmt.Appendf(nil, "message %d/%d", g, i))
					sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
					if err == nil {
						err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
					}
					if err != nil {
						errs <- fmt.Errorf("goroutine %d, signature %d: %w", g, i, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestRSAKeyDecrypt(t *testing.T) {
	t.Parallel()
	tok := testhsm.MustToken(t)
	k := MustRSAKey(t, tok, "encrypt", 2048)
	pub := k.Public().(*rsa.PublicKey)
	dek := []byte("0123456789abcdef0123456789abcdef") // an AES-256 transport key

	t.Run("OAEPSHA1", func(t *testing.T) {
		t.Parallel()
		ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, dek, nil)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := k.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1})
		if err != nil {
			t.Fatal(err)
		}
		if string(pt) != string(dek) {
			t.Fatalf("decrypted %x, want %x", pt, dek)
		}
		ct[len(ct)-1] ^= 1
		if _, err := k.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1}); err == nil || errors.Is(err, pkcs11.ErrUnsupported) {
			t.Fatalf("a tampered ciphertext: err = %v, want a decryption error", err)
		}
		if _, err := k.Decrypt(rand.Reader, ct[1:], &rsa.OAEPOptions{Hash: crypto.SHA1}); err == nil || errors.Is(err, pkcs11.ErrUnsupported) {
			t.Fatalf("a short ciphertext: err = %v, want a decryption error", err)
		}
	})
	t.Run("OAEPSHA256", func(t *testing.T) {
		t.Parallel()
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil)
		if err != nil {
			t.Fatal(err)
		}
		// SoftHSM 2.6 implements OAEP with SHA-1 only (CKR_ARGUMENTS_BAD otherwise); a token
		// that has SHA-256 must decrypt correctly.
		pt, err := k.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256})
		switch {
		case err == nil && string(pt) != string(dek):
			t.Fatalf("decrypted %x, want %x", pt, dek)
		case err != nil && (!errors.Is(err, pkcs11.ErrUnsupported) || !strings.Contains(err.Error(), "RSA-OAEP with SHA-256")):
			t.Fatalf("err = %v, want ErrUnsupported naming RSA-OAEP with SHA-256", err)
		case err != nil:
			t.Logf("token refuses RSA-OAEP with SHA-256, as expected of SoftHSM 2.6: %v", err)
		}
	})
	t.Run("ErrUnsupportedPKCS1v15", func(t *testing.T) {
		t.Parallel()
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, dek)
		if err != nil {
			t.Fatal(err)
		}
		for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}, rsa.OAEPOptions{Hash: crypto.SHA1}} {
			pt, err := k.Decrypt(rand.Reader, ct, opts)
			if !errors.Is(err, pkcs11.ErrUnsupported) || pt != nil {
				t.Errorf("Decrypt with %T: pt=%x err=%v, want ErrUnsupported", opts, pt, err)
			}
		}
	})
	t.Run("ErrUnsupportedOAEPHash", func(t *testing.T) {
		t.Parallel()
		for _, opts := range []*rsa.OAEPOptions{{Hash: crypto.MD5}, {Hash: crypto.SHA256, MGFHash: crypto.SHA1}} {
			if _, err := k.Decrypt(rand.Reader, make([]byte, 256), opts); !errors.Is(err, pkcs11.ErrUnsupported) {
				t.Errorf("Decrypt with %+v: err = %v, want ErrUnsupported", opts, err)
			}
		}
	})
}

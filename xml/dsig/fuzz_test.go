package dsig_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"math/big"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/dsig"
)

// FuzzVerify feeds Verify mutations of the saved valid and hostile documents, trusting every
// certificate. Nobody can sign for the saved documents' keys any more, so whatever Verify
// accepts must be content one of the valid documents signed: the returned element's canonical
// form must be one of theirs. Every refusal must be an invalid error, never a panic.
func FuzzVerify(f *testing.F) {
	valid, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.xml"))
	hostile, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.xml"))
	if len(valid) == 0 || len(hostile) == 0 {
		f.Fatal("no testdata/valid or testdata/hostile documents: run go test -update once")
	}
	signed := map[string]bool{}
	for _, path := range valid {
		b := mustRead(f, path)
		el, _, err := dsig.Verify(mustParse(f, b), acceptAll)
		if err != nil {
			f.Fatalf("%s: %v", path, err)
		}
		signed[string(canonical(f, el))] = true
		f.Add(b)
	}
	for _, path := range hostile {
		f.Add(mustRead(f, path))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc := etree.NewDocument()
		if doc.ReadFromBytes(b) != nil {
			return
		}
		el, cert, err := dsig.Verify(doc, acceptAll)
		if err != nil {
			if el != nil || cert != nil {
				t.Fatalf("refused (%v) but returned an element or certificate", err)
			}
			if evoucher.KindOf(err) != evoucher.KindInvalid {
				t.Fatalf("refusal of kind %s, want invalid: %v", evoucher.KindOf(err), err)
			}
			return
		}
		if el == nil || cert == nil {
			t.Fatal("accepted without returning the element and certificate")
		}
		if c := canonical(t, el); !signed[string(c)] {
			t.Fatalf("accepted content that no valid document signed:\n%s\ninput:\n%s", c, b)
		}
	})
}

// FuzzVerifyRSA holds the verification of RSASSA-PKCS1-v1_5 SHA-256 signatures under a
// 3072-bit key, kept as a Verifier keeps it (montgomery.go's arithmetic), to crypto/rsa's,
// and its public operation to math/big's Exp. The input is a signature or, with raw, a block
// that the target signs with the private key, so that mutations of a valid block reach the
// comparison of the block the signature recovers. The key is made from a fixed seed, so that
// a saved input means the same at every run.
func FuzzVerifyRSA(f *testing.F) {
	key := mustFixedRSAKey(f, 3072, 65537, 1)
	pub, k := &key.PublicKey, key.Size()
	h, good := mustSignHash(f, key)
	valid := pkcs1Block(k, 0xff, 0, prefixSHA256, h, 0)
	f.Add(good, false)
	f.Add(make([]byte, k), false)
	f.Add(append(make([]byte, k-1), 1), false)
	f.Add(pub.N.FillBytes(make([]byte, k)), false)
	f.Add(new(big.Int).Sub(pub.N, big.NewInt(1)).FillBytes(make([]byte, k)), false)
	f.Add(valid, true)
	f.Add(pkcs1Block(k, 0xfe, 0, prefixSHA256, h, 0), true)
	f.Add(pkcs1Block(k, 0xff, 0xff, prefixSHA256, h, 0), true)
	f.Add(pkcs1Block(k, 0xff, 0, prefixSHA1, h[:20], 0), true)
	f.Add(pkcs1Block(k, 0xff, 0, prefixSHA256, h, 4), true)
	verify := dsig.RSAVerifier(pub)
	e := big.NewInt(int64(pub.E))
	f.Fuzz(func(t *testing.T, b []byte, raw bool) {
		sig := b
		if raw {
			if len(b) != k || new(big.Int).SetBytes(b).Cmp(pub.N) >= 0 {
				return
			}
			sig = rawSignature(key, b)
		}
		got, want := verify(h, sig), rsa.VerifyPKCS1v15(pub, crypto.SHA256, h, sig)
		if (got == nil) != (want == nil) {
			t.Fatalf("verify: %v, crypto/rsa: %v, for the signature %x", got, want, sig)
		}
		if raw && (got == nil) != bytes.Equal(b, valid) {
			t.Fatalf("verify: %v for the block %x", got, b)
		}
		if s := new(big.Int).SetBytes(sig); len(sig) == k && s.Cmp(pub.N) < 0 {
			want := new(big.Int).Exp(s, e, pub.N)
			if got := dsig.MontExp(pub.N, s, uint(pub.E)); got.Cmp(want) != 0 {
				t.Fatalf("s^E mod N for s = %x: got %x, want %x", s, got, want)
			}
		}
	})
}

package pki_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"testing"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
)

// FuzzParseCSR: enrolment requests come from anyone holding a code; never panic, refuse with
// an invalid error.
func FuzzParseCSR(f *testing.F) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048) // a seed's key, not the platform's
	der, _ := pki.NewCSR(key, "seed")
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := pki.ParseCSR(b)
		if err != nil {
			if evoucher.KindOf(err) != evoucher.KindInvalid {
				t.Fatalf("refusal of another kind: %v", err)
			}
			return
		}
		if req.CheckSignature() != nil {
			t.Fatal("accepted a request whose signature does not check")
		}
	})
}

package dsig_test

import (
	"fmt"
	"testing"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// BenchmarkVerify verifies one CodeBatch message of about 3 KB, signed with an RSA-2048 key
// (as operators and retailers sign) and with an RSA-3072 key (as the center signs), with a
// Verifier that has seen its signer before, as an auditor going through a log does: Before is
// Verify as it was (etreeutils' copies, crypto/rsa or math/big without precomputation), Verify
// and VerifyRoot are the package's. The document is parsed once: parsing is not measured.
//
//	go test -run '^$' -bench BenchmarkVerify -count 3 ./xml/dsig/
func BenchmarkVerify(b *testing.B) {
	for _, bits := range []int{2048, 3072} {
		key, cert := mustSelfSigned(b, bits)
		signed, err := dsig.SignBytes(newBatch(), key, cert)
		if err != nil {
			b.Fatal(err)
		}
		doc := mustParse(b, signed)
		v := dsig.NewVerifier()
		for _, m := range []struct {
			name   string
			verify func(*etree.Document, dsig.Trust) (*etree.Element, any, error)
		}{
			{"Before", func(d *etree.Document, t dsig.Trust) (*etree.Element, any, error) { return v.VerifyBefore(d, t) }},
			{"Verify", func(d *etree.Document, t dsig.Trust) (*etree.Element, any, error) { return v.Verify(d, t) }},
			{"VerifyRoot", func(d *etree.Document, t dsig.Trust) (*etree.Element, any, error) { return v.VerifyRoot(d, t) }},
		} {
			b.Run(fmt.Sprintf("RSA%d_%dB/%s", bits, len(signed), m.name), func(b *testing.B) {
				for b.Loop() {
					if _, _, err := m.verify(doc, acceptAll); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVerifyRSA is the public-key operation alone. Before is as it was before keys were
// kept: crypto/rsa for RSA-2048, which computes the modulus' Montgomery constants at every
// verification, and math/big's Exp for RSA-3072, which divides after every step for an
// exponent of one word. Kept is under the key a Verifier keeps: montgomery.go's
// exponentiation, on math/big's loops and, on amd64, the package's own assembly for the row
// operation and the reduction.
//
//	go test -run '^$' -bench BenchmarkVerifyRSA -count 6 ./xml/dsig/
func BenchmarkVerifyRSA(b *testing.B) {
	for _, bits := range []int{2048, 3072} {
		key, _ := mustSelfSigned(b, bits)
		hashed, sig := mustSignHash(b, key)
		for _, v := range []struct {
			name   string
			verify func(hashed, sig []byte) error
		}{
			{"Before", func(hashed, sig []byte) error { return dsig.VerifyRSABefore(&key.PublicKey, hashed, sig) }},
			{"Kept", dsig.RSAVerifier(&key.PublicKey)},
		} {
			b.Run(fmt.Sprintf("RSA%d/%s", bits, v.name), func(b *testing.B) {
				for b.Loop() {
					if err := v.verify(hashed, sig); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkVerifyBytes verifies one message from its bytes, as an auditor does for every
// entry of a log: ParseVerifyRoot is message.Parse then VerifyRoot (how the auditor did),
// VerifyBytes is the one-pass path, with a Verifier that has seen the signer before.
//
//	go test -run '^$' -bench BenchmarkVerifyBytes -count 3 ./xml/dsig/
func BenchmarkVerifyBytes(b *testing.B) {
	for _, bits := range []int{2048, 3072} {
		key, cert := mustSelfSigned(b, bits)
		doc := newBatch()
		for i := range 12 { // about 3 KB, as the log's messages
			doc.Root().CreateElement("Note").SetText(fmt.Sprintf("line %d of the batch's notes, to make it the size of a message", i))
		}
		doc.Indent(2)
		signed, err := dsig.SignBytes(doc, key, cert)
		if err != nil {
			b.Fatal(err)
		}
		v := dsig.NewVerifier()
		trustFor := func(*etree.Element) (dsig.Trust, error) { return acceptAll, nil }
		b.Run(fmt.Sprintf("RSA%d_%dB/ParseVerifyRoot", bits, len(signed)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, err := message.Parse(signed, message.DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := v.VerifyRoot(d, acceptAll); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("RSA%d_%dB/VerifyBytes", bits, len(signed)), func(b *testing.B) {
			b.ReportAllocs()
			before := dsig.FastVerifies()
			for b.Loop() {
				if _, _, err := v.VerifyBytes(signed, message.DefaultLimits, trustFor); err != nil {
					b.Fatal(err)
				}
			}
			if dsig.FastVerifies() == before {
				b.Fatal("the fast path was not taken")
			}
		})
	}
}

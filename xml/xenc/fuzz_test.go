package xenc_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/xenc"
)

// FuzzDecrypt feeds mutations of testdata/ok.xml and testdata/hostile/ to Decrypt. The
// recipient is the in-memory key of testdata/recipient.pem, not a token: a SoftHSM2 round trip
// per input would slow fuzzing to a crawl, and the parsing and refusals under test are the same
// whatever the key. Decrypt must never panic, must refuse with an invalid-kind error and a
// reason, and may only ever return the plaintext of ok.xml: a mutated ciphertext, IV, tag or
// wrapped key never yields plaintext.
func FuzzDecrypt(f *testing.F) {
	to := testRecipient(f)
	want := hostilePlaintext()
	seeds, _ := filepath.Glob(filepath.Join("testdata", "hostile", "*.xml"))
	seeds = append(seeds, filepath.Join("testdata", "ok.xml"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(b); err != nil || doc.Root() == nil {
			return
		}
		pt, err := xenc.Decrypt(doc.Root(), to.cert, to.key)
		if err != nil {
			if pt != nil {
				t.Fatalf("refused (%v) but returned %d bytes", err, len(pt))
			}
			if evoucher.KindOf(err) != evoucher.KindInvalid || evoucher.ReasonOf(err) == "" {
				t.Fatalf("refusal without an invalid kind and a reason: %v", err)
			}
			return
		}
		if !bytes.Equal(pt, want) {
			t.Fatalf("decrypted %q from a mutated document", pt)
		}
	})
}

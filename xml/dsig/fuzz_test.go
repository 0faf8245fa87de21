package dsig_test

import (
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

package xmltok_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/evoucher/evoucher/xml/internal/xmltok"
)

var lim = xmltok.Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxElements: 10_000}

// seeds are documents the subset takes and some it refuses, and every saved example.
func seeds(t testing.TB) [][]byte {
	out := [][]byte{
		[]byte(`<a/>`),
		[]byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<r xmlns="urn:x" Id="i1"><p:c xmlns:p="urn:p" p:k="v &amp; &#x41;">t&lt;x</p:c></r>` + "\n"),
		[]byte(`<a b='1' c="2"><d>é&#233;</d></a>`),
		[]byte(`<a><!-- no --></a>`), []byte(`<a>]]></a>`), []byte("<a>\r</a>"), []byte(`<a b="1" b="2"/>`),
		[]byte(`<a></b>`), []byte(`<a/><b/>`), []byte(`x<a/>`), []byte(`<a:b:c/>`), []byte(`<a>&foo;</a>`),
	}
	for _, dir := range []string{"../../message/testdata", "../../dsig/testdata"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

type item struct {
	start bool
	name  string
	attrs []string // name=value, decoded
}

// reference reads b with encoding/xml, strictly, as the sequence of start and end tags with
// their names and decoded attributes.
func reference(b []byte) ([]item, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.Entity = nil
	var out []item
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			it := item{start: true, name: qname(tok.Name)}
			for _, a := range tok.Attr {
				it.attrs = append(it.attrs, qname(a.Name)+"="+a.Value)
			}
			out = append(out, it)
		case xml.EndElement:
			out = append(out, item{name: qname(tok.Name)})
		}
	}
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// check holds an accepted document's tokens to their invariants and to encoding/xml's reading
// of the same bytes.
func check(t *testing.T, b []byte) {
	var tk xmltok.Tokenizer
	if !tk.Tokenize(b, lim) {
		return
	}
	want, err := reference(b)
	if err != nil {
		t.Fatalf("the tokenizer took %q, encoding/xml refuses it: %v", b, err)
	}
	var got []item
	prev := int32(-1)
	for i, tok := range tk.Toks {
		if tok.S < 0 || tok.E < tok.S || int(tok.E) > len(b) {
			t.Fatalf("token %d of %q out of bounds: %+v", i, b, tok)
		}
		switch tok.Kind {
		case xmltok.Start, xmltok.End:
			if m := tk.Toks[tok.Match]; m.Match != int32(i) || m.Depth != tok.Depth || m.Kind == tok.Kind {
				t.Fatalf("token %d of %q and its match %d disagree", i, b, tok.Match)
			}
			it := item{start: tok.Kind == xmltok.Start, name: string(b[tok.S:tok.E])}
			if it.start {
				if tok.S <= prev {
					t.Fatalf("start tag %d of %q before the previous one", i, b)
				}
				prev = tok.S
				for _, a := range tk.Attrs[tok.A0:tok.A1] {
					it.attrs = append(it.attrs, string(b[a.S:a.E])+"="+string(tk.Decode(a.VS, a.VE, a.Refs)))
				}
			}
			got = append(got, it)
		case xmltok.Text:
		default:
			t.Fatalf("token %d of %q has kind %d", i, b, tok.Kind)
		}
	}
	if len(got) == 0 || !got[0].start || tk.Toks[0].Match != int32(len(tk.Toks)-1) {
		t.Fatalf("%q: the tokens do not start and end with the root", b)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d tags, encoding/xml reads %d", b, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.start != w.start || g.name != w.name || len(g.attrs) != len(w.attrs) {
			t.Fatalf("%q: tag %d is %+v, encoding/xml reads %+v", b, i, g, w)
		}
		for j := range g.attrs {
			if g.attrs[j] != w.attrs[j] {
				t.Fatalf("%q: tag %d attribute %d is %q, encoding/xml reads %q", b, i, j, g.attrs[j], w.attrs[j])
			}
		}
	}
}

// TestTokenize: the seeds the subset takes are read as encoding/xml reads them, and the
// ones outside it are refused.
func TestTokenize(t *testing.T) {
	var tk xmltok.Tokenizer
	took := 0
	for _, b := range seeds(t) {
		check(t, b)
		if tk.Tokenize(b, lim) {
			took++
		}
	}
	if took < 5 {
		t.Fatalf("the tokenizer took %d seeds: the comparison proves little", took)
	}
	for _, b := range []string{`<a><!-- no --></a>`, "<a>\r</a>", `<a b="1" b="2"/>`, `<a></b>`, `<a/><b/>`, `x<a/>`, `<a>&foo;</a>`} {
		if tk.Tokenize([]byte(b), lim) {
			t.Errorf("took %q", b)
		}
	}
}

func FuzzTokenize(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(check)
}

// BenchmarkTokenize tokenizes signed messages of about 3 KB, as the auditor does for every
// entry of a log: signed.xml has its signature on one line, xmlsec1.xml as xmlsec1 indents it.
//
//	go test -run '^$' -bench Tokenize -count 6 ./xml/internal/xmltok/
func BenchmarkTokenize(b *testing.B) {
	for _, name := range []string{"signed.xml", "xmlsec1.xml"} {
		doc, err := os.ReadFile(filepath.Join("../../dsig/testdata/valid", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			var tk xmltok.Tokenizer
			for b.Loop() {
				if !tk.Tokenize(doc, lim) {
					b.Fatal("refused")
				}
			}
		})
	}
}

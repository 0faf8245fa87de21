package message_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// diffDocs returns "" when got and want are the same tree, token for token, down to the
// unexported flags and links etree keeps (seen through IsWhitespace, IsCData, Parent, Index,
// Attr.Element), and else the first difference.
func diffDocs(got, want *etree.Document) string {
	if !reflect.DeepEqual(got.ReadSettings, want.ReadSettings) {
		return fmt.Sprintf("ReadSettings %+v, want %+v", got.ReadSettings, want.ReadSettings)
	}
	if got.WriteSettings != want.WriteSettings {
		return fmt.Sprintf("WriteSettings %+v, want %+v", got.WriteSettings, want.WriteSettings)
	}
	if got.Parent() != nil || want.Parent() != nil || got.Index() != want.Index() {
		return "document element has a parent or another index"
	}
	return diffElements("/", &got.Element, &want.Element)
}

func diffElements(path string, g, w *etree.Element) string {
	if g.Space != w.Space || g.Tag != w.Tag {
		return fmt.Sprintf("%s: element %q:%q, want %q:%q", path, g.Space, g.Tag, w.Space, w.Tag)
	}
	path += g.FullTag()
	if (g.Attr == nil) != (w.Attr == nil) || len(g.Attr) != len(w.Attr) {
		return fmt.Sprintf("%s: attributes %#v, want %#v", path, g.Attr, w.Attr)
	}
	for i := range g.Attr {
		ga, wa := &g.Attr[i], &w.Attr[i]
		if ga.Space != wa.Space || ga.Key != wa.Key || ga.Value != wa.Value {
			return fmt.Sprintf("%s: attribute %d %q:%q=%q, want %q:%q=%q", path, i, ga.Space, ga.Key, ga.Value, wa.Space, wa.Key, wa.Value)
		}
		if ga.Element() != g || wa.Element() != w {
			return fmt.Sprintf("%s: attribute %d not bound to its element", path, i)
		}
	}
	if (g.Child == nil) != (w.Child == nil) || len(g.Child) != len(w.Child) {
		return fmt.Sprintf("%s: %d children, want %d", path, len(g.Child), len(w.Child))
	}
	for i := range g.Child {
		gc, wc := g.Child[i], w.Child[i]
		at := fmt.Sprintf("%s[%d]", path, i)
		if reflect.TypeOf(gc) != reflect.TypeOf(wc) {
			return fmt.Sprintf("%s: %T, want %T", at, gc, wc)
		}
		if gc.Parent() != g || wc.Parent() != w || gc.Index() != i || wc.Index() != i {
			return fmt.Sprintf("%s: parent or index wrong (index %d, want %d)", at, gc.Index(), wc.Index())
		}
		switch gc := gc.(type) {
		case *etree.Element:
			if d := diffElements(at+"/", gc, wc.(*etree.Element)); d != "" {
				return d
			}
		case *etree.CharData:
			wc := wc.(*etree.CharData)
			if gc.Data != wc.Data || gc.IsWhitespace() != wc.IsWhitespace() || gc.IsCData() != wc.IsCData() {
				return fmt.Sprintf("%s: text %q (white %v, cdata %v), want %q (white %v, cdata %v)", at,
					gc.Data, gc.IsWhitespace(), gc.IsCData(), wc.Data, wc.IsWhitespace(), wc.IsCData())
			}
		case *etree.ProcInst:
			wc := wc.(*etree.ProcInst)
			if gc.Target != wc.Target || gc.Inst != wc.Inst {
				return fmt.Sprintf("%s: <?%s %s?>, want <?%s %s?>", at, gc.Target, gc.Inst, wc.Target, wc.Inst)
			}
		case *etree.Comment:
			if gc.Data != wc.(*etree.Comment).Data {
				return fmt.Sprintf("%s: comment %q, want %q", at, gc.Data, wc.(*etree.Comment).Data)
			}
		case *etree.Directive:
			if gc.Data != wc.(*etree.Directive).Data {
				return fmt.Sprintf("%s: directive %q, want %q", at, gc.Data, wc.(*etree.Directive).Data)
			}
		default:
			return fmt.Sprintf("%s: unknown token %T", at, gc)
		}
	}
	return ""
}

// writeSettings are the serializations diffWritten compares.
var writeSettings = []etree.WriteSettings{
	{},
	{CanonicalEndTags: true, CanonicalText: true, CanonicalAttrVal: true},
	{AttrSingleQuote: true},
}

// diffWritten compares the serializations of got and want, as read and once indented
// (indenting looks at the white-space flags of the text tokens).
func diffWritten(got, want *etree.Document) string {
	for _, ws := range writeSettings {
		for _, indent := range []bool{false, true} {
			g, w := got.Copy(), want.Copy()
			g.WriteSettings, w.WriteSettings = ws, ws
			if indent {
				g.Indent(2)
				w.Indent(2)
			}
			gb, err1 := g.WriteToBytes()
			wb, err2 := w.WriteToBytes()
			if err1 != nil || err2 != nil || !bytes.Equal(gb, wb) {
				return fmt.Sprintf("written with %+v (indent %v):\n%q\nwant\n%q", ws, indent, gb, wb)
			}
		}
	}
	return ""
}

// mustAgree holds Parse and its fast path to the slow path for b: the same tree or the same
// error. It reports whether the fast path took b.
func mustAgree(tb testing.TB, b []byte, lim message.Limits) (fast bool) {
	tb.Helper()
	want, werr := message.ParseSlow(b, lim)
	if doc := message.ParseFast(b, lim); doc != nil {
		if werr != nil {
			tb.Fatalf("fast path accepted what the slow path refuses (%v):\n%q", werr, b)
		}
		if d := diffDocs(doc, want); d != "" {
			tb.Fatalf("fast path built another tree: %s\ndocument %q", d, b)
		}
		if d := diffWritten(doc, want); d != "" {
			tb.Fatalf("fast path tree is written differently: %s", d)
		}
		fast = true
	}
	got, gerr := message.Parse(b, lim)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) || evoucher.ReasonOf(gerr) != evoucher.ReasonOf(werr) ||
		evoucher.KindOf(gerr) != evoucher.KindOf(werr) {
		tb.Fatalf("Parse error %v, slow path %v\ndocument %q", gerr, werr, b)
	}
	if (got == nil) != (want == nil) {
		tb.Fatalf("Parse returned %v, slow path %v", got, want)
	}
	if got != nil {
		if d := diffDocs(got, want); d != "" {
			tb.Fatalf("Parse built another tree: %s\ndocument %q", d, b)
		}
	}
	return fast
}

// mustAgreeAtLimits runs mustAgree with the default limits and with limits at and just
// below what b needs, when the slow path accepts b.
func mustAgreeAtLimits(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	fast = mustAgree(t, b, message.DefaultLimits)
	doc, err := message.ParseSlow(b, message.DefaultLimits)
	if err != nil {
		return fast
	}
	depth, elems := shape(doc.Root(), 1)
	exact := message.Limits{MaxBytes: len(b), MaxDepth: depth, MaxElements: elems}
	if !mustAgree(t, b, exact) && fast {
		t.Errorf("fast path refuses limits that fit exactly")
	}
	for _, lim := range []message.Limits{
		{MaxBytes: len(b) - 1, MaxDepth: depth, MaxElements: elems},
		{MaxBytes: len(b), MaxDepth: depth - 1, MaxElements: elems},
		{MaxBytes: len(b), MaxDepth: depth, MaxElements: elems - 1},
	} {
		if mustAgree(t, b, lim) {
			t.Errorf("fast path took %+v, tighter than the document", lim)
		}
	}
	return fast
}

// shape returns the depth and element count of the tree under el, at depth d.
func shape(el *etree.Element, d int) (depth, elems int) {
	depth, elems = d, 1
	for _, c := range el.ChildElements() {
		cd, ce := shape(c, d+1)
		depth, elems = max(depth, cd), elems+ce
	}
	return depth, elems
}

// corpusDirs are the directories of documents the differential tests and the fuzz target
// start from: this package's examples and the hostile and valid documents of dsig and
// codevault.
var corpusDirs = []string{
	"testdata",
	filepath.Join("..", "dsig", "testdata", "valid"),
	filepath.Join("..", "dsig", "testdata", "hostile"),
	filepath.Join("..", "..", "codevault", "testdata", "hostile"),
}

func mustCorpus(tb testing.TB) map[string][]byte {
	tb.Helper()
	docs := map[string][]byte{}
	for _, dir := range corpusDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
		if err != nil || len(files) == 0 {
			tb.Fatalf("no documents in %s (%v)", dir, err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				tb.Fatal(err)
			}
			docs[file] = b
		}
	}
	return docs
}

// edgeCases are small documents at the borders of the fast path's subset; fast says whether
// it must take them (the slow path decides what the others give).
var edgeCases = []struct {
	doc  string
	fast bool
}{
	{`<a/>`, true},
	{`<a></a>`, true},
	{"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>x</a>\n", true},
	{`<?xml version='1.0'?><a/>`, true},
	{"\t\n <a/> \n", true},
	{`<?xml version="1.0" ?><a/>`, false},
	{`<?xml version="1.1"?><a/>`, false},
	{`<?xml version="1.0" encoding="ISO-8859-1"?><a/>`, false},
	{`<?xml version="1.0" encoding="uTf-8"?><a/>`, false},
	{` <?xml version="1.0"?><a/>`, false},
	{`<?xml-stylesheet href="s"?><a/>`, false},
	{`<?xml?><a/>`, false},
	{`<?xml version="1.0"?><?xml version="1.0"?><a/>`, false},
	{`<?xml version="1.0"`, false},
	{`<a x="1"y='2' z = "3"	w` + "\n" + `="4"/>`, true},
	{`<a x="1" x="2"/>`, false},
	{`<a x="1" b:x="2" xmlns:b="u"/>`, true},
	{`<a:b xmlns:a="u"><a:c/></a:b>`, true},
	{`<a:b xmlns:a="u"></a:c>`, false},
	{`<a:b xmlns:a="u"></b>`, false},
	{`<:a/>`, false},
	{`<a:/>`, false},
	{`<a:b:c/>`, false},
	{`<a :b="1"/>`, false},
	{`<a b:="1"/>`, false},
	{`<_a.b-c9 _:x="1"/>`, true},
	{`<9a/>`, false},
	{`<-a/>`, false},
	{`<a>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#x1F600;&#0065;&#xe9;&#xE9;</a>`, true},
	{`<a x="&lt;&gt;&amp;&apos;&quot;&#65;&#x9;&#xA;&#xD;&#10;"/>`, true},
	{`<a>&#xD;</a>`, true},
	{`<a>&#32;&#9;</a>`, true},
	{`<a>&#0;</a>`, false},
	{`<a>&#xD800;</a>`, false},
	{`<a>&#xFFFE;</a>`, false},
	{`<a>&#X41;</a>`, false},
	{`<a>&#x110000;</a>`, false},
	{`<a>&#99999999;</a>`, false},
	{`<a>&#00000065;</a>`, false},
	{`<a>&#x;</a>`, false},
	{`<a>&#;</a>`, false},
	{`<a>&#65</a>`, false},
	{`<a>&e;</a>`, false},
	{`<a>&lt</a>`, false},
	{`<a>&LT;</a>`, false},
	{`<a>&</a>`, false},
	{`<a x="&"/>`, false},
	{`<a x="&amp"/>`, false},
	{`<a>]]></a>`, false},
	{`<a>]]]></a>`, false},
	{`<a>]] ></a>`, true},
	{`<a x="]]>"/>`, true},
	{`<a>]]&gt;</a>`, true},
	{`<a>]&amp;]></a>`, true},
	{"<a>x\r\ny</a>", false},
	{"<a>x\ry</a>", false},
	{"<a x=\"x\r\"/>", false},
	{"<a\r/>", false},
	{"<a/>\r\n", false},
	{"<a x=\"a\tb\nc  d\"/>", true},
	{`<a x="<"/>`, false},
	{`<a x=">"/>`, true},
	{`<a x='"'/>`, true},
	{`<a x="'"/>`, true},
	{`<a x="1/>`, false},
	{`<a x=1/>`, false},
	{`<a x/>`, false},
	{`<a x=/>`, false},
	{`<a x="1"`, false},
	{`<a/ >`, false},
	{`<a / >`, false},
	{`<a >x</a >`, true},
	{"<a\n  b=\"1\"\n/>", true},
	{"<a></a\n>", true},
	{"<a></ a>", false},
	{"<a>é€😀\x7f</a>", true},
	{"<a x=\"é€😀\"/>", true},
	{"<a>\xff</a>", false},
	{"<a>\xc3</a>", false},
	{"<a x=\"\xc3\"/>", false},
	{"<a>\xc3&amp;\xa9</a>", false},
	{"<a>\xef\xbf\xbe</a>", false},
	{"<a>\xed\xa0\x80</a>", false},
	{"<a>\x01</a>", false},
	{"<a>\x00</a>", false},
	{"<a>\x0c</a>", false},
	{"<é/>", false},
	{"<aé/>", false},
	{"<a é=\"1\"/>", false},
	{"<a/>\u00a0", false},
	{"\ufeff<a/>", false},
	{`<a><!-- c --></a>`, false},
	{`<a><![CDATA[x]]></a>`, false},
	{`<!DOCTYPE a><a/>`, false},
	{`<a><?pi x?></a>`, false},
	{`<a></b>`, false},
	{`<a>`, false},
	{`<a><b></a>`, false},
	{`</a>`, false},
	{`<a/></a>`, false},
	{`<a/><b/>`, false},
	{`<a/>x`, false},
	{`x<a/>`, false},
	{`<a/>&#32;`, false},
	{``, false},
	{"  \n", false},
	{`<`, false},
	{`<a`, false},
	{`< a/>`, false},
	{`<a>x<`, false},
	{`<a>x</`, false},
	{`<a><b>text</b>  <c x="1"> mixed <d/> tail </c></a>`, true},
}

func TestParseAgrees(t *testing.T) {
	t.Run("EdgeCases", func(t *testing.T) {
		for _, c := range edgeCases {
			if fast := mustAgree(t, []byte(c.doc), message.DefaultLimits); fast != c.fast {
				t.Errorf("fast path taken: %v, want %v for %q", fast, c.fast, c.doc)
			}
		}
	})
	t.Run("Corpus", func(t *testing.T) {
		for name, b := range mustCorpus(t) {
			t.Run(filepath.Base(filepath.Dir(name))+"/"+filepath.Base(name), func(t *testing.T) {
				fast := mustAgreeAtLimits(t, b)
				if filepath.Dir(name) == "testdata" && !fast {
					t.Errorf("fast path does not take the example %s", name)
				}
			})
		}
	})
	t.Run("Built", func(t *testing.T) {
		key, cert := mustSigner(t)
		for name, doc := range builtDocs() {
			t.Run(name, func(t *testing.T) {
				unsigned, err := doc.WriteToBytes()
				if err != nil {
					t.Fatal(err)
				}
				if !mustAgreeAtLimits(t, unsigned) {
					t.Errorf("fast path does not take the unsigned %s", name)
				}
				signed, err := dsig.SignBytes(doc, key, cert)
				if err != nil {
					t.Fatal(err)
				}
				if !mustAgreeAtLimits(t, signed) {
					t.Errorf("fast path does not take the signed %s", name)
				}
			})
		}
	})
	t.Run("Deep", func(t *testing.T) {
		// etree refuses nesting deeper than 1024 whatever the limits say.
		for _, n := range []int{1024, 1025} {
			b := []byte(strings.Repeat("<a>", n) + strings.Repeat("</a>", n))
			if fast := mustAgree(t, b, message.Limits{MaxBytes: 1 << 20, MaxDepth: 2000, MaxElements: 2000}); fast != (n <= 1024) {
				t.Errorf("depth %d: fast path taken: %v", n, fast)
			}
		}
	})
	t.Run("ManyAttributes", func(t *testing.T) {
		for _, n := range []int{64, 65, 1000} {
			var b strings.Builder
			b.WriteString("<a")
			for i := range n {
				fmt.Fprintf(&b, ` a%d="%d"`, i, i)
			}
			b.WriteString("/>")
			if fast := mustAgree(t, []byte(b.String()), message.DefaultLimits); fast != (n <= 64) {
				t.Errorf("%d attributes: fast path taken: %v", n, fast)
			}
		}
	})
}

// TestParseTakesFastPath makes sure an exchange document, as signed, goes through the fast
// path: the speed-up must not vanish silently.
func TestParseTakesFastPath(t *testing.T) {
	key, cert := mustSigner(t)
	b, err := dsig.SignBytes(message.BuildBatchReceipt(exampleBatchReceipt()), key, cert)
	if err != nil {
		t.Fatal(err)
	}
	before := message.FastParses()
	doc, err := message.Parse(b, message.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if n := message.FastParses() - before; n != 1 {
		t.Fatalf("the fast path built %d documents for one signed BatchReceipt, want 1", n)
	}
	if r, err := message.ReadBatchReceipt(doc.Root()); err != nil || r.Accepted != 20 {
		t.Fatalf("read back %+v, %v", r, err)
	}
}

// FuzzParseAgrees holds Parse to its slow path on any input and limits: the same tree or the
// same error.
func FuzzParseAgrees(f *testing.F) {
	for _, b := range mustCorpus(f) {
		f.Add(b, uint16(0), uint16(0))
	}
	for _, c := range edgeCases {
		f.Add([]byte(c.doc), uint16(0), uint16(0))
	}
	f.Add([]byte(`<a><b><c/></b><b/></a>`), uint16(2), uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, maxDepth, maxElements uint16) {
		lim := message.DefaultLimits
		if maxDepth != 0 {
			lim.MaxDepth = int(maxDepth)
		}
		if maxElements != 0 {
			lim.MaxElements = int(maxElements)
		}
		mustAgree(t, b, lim)
	})
}

// BenchmarkParse compares the two paths of Parse on a signed BatchReceipt of about 3 KB.
func BenchmarkParse(b *testing.B) {
	doc := mustRead(b, "BatchReceipt.xml")
	for _, c := range []struct {
		name  string
		parse func([]byte, message.Limits) (*etree.Document, error)
	}{{"Fast", message.Parse}, {"Slow", message.ParseSlow}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			before := message.FastParses()
			for b.Loop() {
				if _, err := c.parse(doc, message.DefaultLimits); err != nil {
					b.Fatal(err)
				}
			}
			if fast := message.FastParses() != before; fast != (c.name == "Fast") {
				b.Fatalf("fast path taken: %v", fast)
			}
		})
	}
}

func mustSigner(tb testing.TB) (crypto.Signer, *x509.Certificate) {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "center"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

func exampleEnvelope(typ string) message.Envelope {
	return message.Envelope{Type: typ, ID: "x-0d7c1e2a-4b3f-4a8e-9c6d-5e4f3a2b1c0d", MessageID: "0d7c1e2a-4b3f-4a8e-9c6d-5e4f3a2b1c0d",
		Sender: message.Center, Recipient: "OP-A", Created: time.Date(2026, 11, 24, 9, 30, 0, 123456789, time.UTC)}
}

func exampleBatchReceipt() message.BatchReceipt {
	return message.BatchReceipt{Envelope: exampleEnvelope("BatchReceipt"), BatchID: "B-1", Part: 3, Parts: 3,
		Status: message.StatusAccepted, Accepted: 20, BatchDigest: [32]byte{1, 2, 3}, InReplyTo: "dd589522-1c32-42e3-ba0b-e936cebfb8c4",
		LogIndex: 41, LogProof: message.LogProof{Size: 42, Root: bytes.Repeat([]byte{7}, 32), Hashes: [][]byte{bytes.Repeat([]byte{9}, 32)}}}
}

func stubEncrypted() *etree.Element {
	ed := etree.NewElement("xenc:EncryptedData")
	ed.CreateAttr("xmlns:xenc", "http://www.w3.org/2001/04/xmlenc#")
	ed.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ed.CreateElement("xenc:EncryptionMethod").CreateAttr("Algorithm", "http://www.w3.org/2009/xmlenc11#aes256-gcm")
	ed.AddChild(stubKey("a2V5"))
	ed.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(strings.Repeat("Y2lwaGVy", 100))
	return ed
}

// builtDocs are documents of every Build function, with text that needs escaping.
func builtDocs() map[string]*etree.Document {
	odd := `vault stock <80> & "low" — 'ok' é€😀 ]]> tab	end`
	created := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	return map[string]*etree.Document{
		"CodeBatch": message.BuildCodeBatch(exampleEnvelope("CodeBatch"), message.BatchHeader{BatchID: "B-1", Part: 1, Parts: 2,
			Product: "P10", FaceValue: 1000, Currency: "EUR", Count: 20, TotalFaceValue: 20000, LotCount: 40, LotFaceValue: 40000,
			PurchaseOrder: "PO-1"}, stubEncrypted()),
		"BatchReceipt":  message.BuildBatchReceipt(exampleBatchReceipt()),
		"PurchaseOrder": message.BuildPurchaseOrder(message.PurchaseOrder{Envelope: exampleEnvelope("PurchaseOrder"), OrderID: "PO-1", Product: "P10", Quantity: 500, Reason: odd}),
		"Shipment":      message.BuildShipment(exampleShipment()),
		"ShipmentAck":   message.BuildShipmentAck(message.ShipmentAck{Envelope: exampleEnvelope("ShipmentAck"), ShipmentID: "S-1", Count: 2}),
		"SalesReport": message.BuildSalesReport(message.SalesReport{Envelope: exampleEnvelope("SalesReport"), Seq: 7,
			Sales: []message.Sale{{Serial: "100000000000", Ticket: "T 1/2", Vendor: "V-1", Time: created, Reprints: 1}},
			Stock: []message.StockLevel{{Operator: "OP-A", Product: "P10", Count: 3}}}),
		"StockOrder":     message.BuildStockOrder(message.StockOrder{Envelope: exampleEnvelope("StockOrder"), Operator: "OP-A", Product: "P10", Quantity: 5}),
		"StockReturn":    message.BuildStockReturn(message.StockReturn{Envelope: exampleEnvelope("StockReturn"), ShipmentID: "S-1", Encrypted: stubEncrypted()}),
		"Receipt":        message.BuildReceipt(message.Receipt{Envelope: exampleEnvelope("Receipt"), InReplyTo: "x", Status: "accepted", Detail: odd}),
		"KeyShareUpdate": message.BuildKeyShareUpdate(message.KeyShareUpdate{Envelope: exampleEnvelope("KeyShareUpdate"), ShipmentID: "S-1", VendorShares: map[string]*etree.Element{"V-1": stubKey("dg==")}}),
		"Statement":      message.BuildStatement(exampleStatement()),
	}
}

package dsig

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"hash"
	"sync"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher/xml/internal/xmltok"
	"github.com/evoucher/evoucher/xml/message"
)

// This file holds VerifyBytes' fast path. It never refuses: it accepts a document, or leaves
// it to the fallback (message.Parse, then VerifyRoot), which decides. So it only has to be sure
// that what it accepts VerifyRoot accepts too, with the same root and certificate. It takes
// the tokens of xmltok, from which message.Parse builds its fast-path tree, and recognises
// one shape, the one SignBytes writes (and xmlsec1, white space between the signature's
// elements and in its base64 included):
//
//   - the root element without prefix, with attributes without prefix and at most a default
//     namespace declaration, exactly one of them an identifier (Id, ID, id…), Id, without
//     references;
//   - its content: any elements and text in the tokenizer's subset, whose prefixes are
//     declared, that declare no empty namespace, nothing for the prefixes xml and xmlns (nor
//     use them), carry no identifier equal to the root's and no ds:Signature, and whose
//     attributes' exclusive canonical order is decided by their local names;
//   - then, as the root's last child element with only raw white space after it, exactly
//     <P:Signature xmlns:P="xmldsig#"> with SignedInfo (CanonicalizationMethod exc-c14n,
//     SignatureMethod rsa-sha256, one Reference URI="#Id" with the Transforms
//     enveloped-signature then exc-c14n, DigestMethod sha256 and DigestValue), SignatureValue
//     and KeyInfo/X509Data/X509Certificate, all with the prefix P, no other attribute, raw
//     white space only between them, the method elements empty and the values raw text.
//
// It checks what VerifyRoot checks on that shape, in an order of its own (it decides nothing
// but acceptance): the digest of the root without its signature, the signer's certificate
// (from the Verifier's cache) and key, trustFor and trust, then the signature over SignedInfo.
// The canonical forms are streamed into SHA-256 by the rules of canonicalizer.element
// (c14n.go), on tokens instead of a tree.

// binding is a namespace declaration in the document's bytes: prefix nil is the default one.
type tokBinding struct{ prefix, uri []byte }

var (
	bNSXML   = []byte(nsXML)
	bNSXMLNS = []byte(nsXMLNS)
	bNSDSig  = []byte(nsDSig)
	bXML     = []byte("xml")
	bXMLNS   = []byte("xmlns")
)

// tokDefaultBindings are defaultBindings.
var tokDefaultBindings = []tokBinding{{nil, bNSXML}, {bXML, bNSXML}, {bXMLNS, bNSXMLNS}}

// outAttr is an attribute of a canonical element: one of the document's (attr ≥ 0, an index
// in tokenizer.attrs) or a rendered namespace declaration (attr < 0, value uri).
type outAttr struct {
	rank       int8
	space, key []byte
	attr       int32
	uri        []byte
}

type fastState struct {
	xmltok.Tokenizer
	scope, rendered []tokBinding
	marks           [][2]int32 // scope and rendered lengths at each open element
	used            [][]byte
	attrs           []outAttr
	top             []outAttr // the sorted attributes of the element canonicalized, when asked
	out             []byte    // canonical output not yet hashed
	sha             hash.Hash
	sigBuf          []byte
}

var fastPool = sync.Pool{New: func() any {
	return &fastState{out: make([]byte, 0, c14nBufSize), sha: sha256.New()}
}}

func (f *fastState) release() {
	keep := f.Tokenizer.Release()
	clear(f.scope[:cap(f.scope)])
	clear(f.rendered[:cap(f.rendered)])
	clear(f.used[:cap(f.used)])
	clear(f.attrs[:cap(f.attrs)])
	clear(f.top[:cap(f.top)])
	if !keep || cap(f.scope) > 256 || cap(f.sigBuf) > 4096 {
		return // a large or hostile document's; let it go
	}
	fastPool.Put(f)
}

// verifyFast accepts b, returning what VerifyBytes returns, or reports false.
func verifyFast(b []byte, lim message.Limits, trustFor TrustFor, cache *certCache) (*etree.Element, *x509.Certificate, bool) {
	f := fastPool.Get().(*fastState)
	defer f.release()
	if !f.Tokenize(b, xmltok.Limits{MaxBytes: lim.MaxBytes, MaxDepth: lim.MaxDepth, MaxElements: lim.MaxElements}) {
		return nil, nil, false
	}
	toks := f.Toks

	// The root.
	root := &toks[0]
	if root.Colon >= 0 {
		return nil, nil, false
	}
	var rootID []byte
	ids := 0
	for _, a := range f.Tokenizer.Attrs[root.A0:root.A1] {
		name := b[a.S:a.E]
		switch {
		case a.Colon >= 0:
			return nil, nil, false
		case string(name) == "xmlns":
			continue
		case bytes.EqualFold(name, []byte(idAttr)):
			ids++
			if string(name) == idAttr {
				rootID = b[a.VS:a.VE]
				if a.Refs {
					return nil, nil, false
				}
			}
		}
	}
	if ids != 1 || len(rootID) == 0 {
		return nil, nil, false
	}

	// The signature: the root's last child element, with raw white space after it.
	k := root.Match - 1
	for ; k > 0 && toks[k].Kind == xmltok.Text; k-- {
		if toks[k].Refs || !xmltok.Blank(b[toks[k].S:toks[k].E]) {
			return nil, nil, false
		}
	}
	if toks[k].Kind != xmltok.End || toks[k].Depth != 2 {
		return nil, nil, false
	}
	sig, ok := f.signature(toks[k].Match, rootID)
	if !ok {
		return nil, nil, false
	}

	// The digest of the root without its signature, which also checks the content.
	f.resetC14N()
	if !f.canonicalize(0, sig.start, sig.end, true, rootID) {
		return nil, nil, false
	}
	var sum [sha256.Size]byte
	f.sha.Sum(sum[:0])
	if subtle.ConstantTimeCompare(sum[:], sig.digest[:]) != 1 {
		return nil, nil, false
	}

	// The signer, trustFor and trust.
	s := cache.getBytes(sig.cert)
	if s == nil {
		var err error
		if s, err = signerOf(string(sig.cert), cache); err != nil {
			return nil, nil, false
		}
	} else if checkKey(s.cert.PublicKey, "the signer's certificate") != nil {
		return nil, nil, false
	}
	parsed := etree.NewElement(string(b[root.S:root.E]))
	for _, a := range f.Tokenizer.Attrs[root.A0:root.A1] {
		parsed.CreateAttr(string(b[a.S:a.E]), string(f.Decode(a.VS, a.VE, a.Refs)))
	}
	signed := etree.NewElement(parsed.Tag)
	signed.Attr = make([]etree.Attr, len(f.top))
	for i, a := range f.top {
		if a.attr < 0 {
			// The root's default namespace: the root declares the only one in its scope.
			signed.Attr[i] = etree.Attr{Key: "xmlns", Value: parsed.SelectAttrValue("xmlns", string(a.uri))}
		} else {
			signed.Attr[i] = parsed.Attr[a.attr-root.A0]
		}
	}
	trust, err := trustFor(parsed)
	if err != nil || trust == nil || trust(s.cert) != nil {
		return nil, nil, false
	}

	// The signature over SignedInfo, canonicalized with the namespaces in scope.
	f.resetC14N()
	if !f.declare(0) || !f.declare(sig.start) || !f.canonicalize(sig.signedInfo, -1, -1, false, nil) {
		return nil, nil, false
	}
	f.sha.Sum(sum[:0])
	sigValue, ok := f.base64(sig.sigValue)
	if !ok || s.rsaKey().verify(sum[:], sigValue) != nil {
		return nil, nil, false
	}
	return signed, s.cert, true
}

// sigShape is what signature reads from a ds:Signature of the fast path's shape.
type sigShape struct {
	start, end int32 // its tokens
	signedInfo int32 // SignedInfo's start token
	digest     [sha256.Size]byte
	sigValue   []byte // SignatureValue's text
	cert       []byte // X509Certificate's text
}

// signature reads the ds:Signature whose start token is start.
func (f *fastState) signature(start int32, rootID []byte) (sigShape, bool) {
	b, toks := f.B, f.Toks
	sig := sigShape{start: start, end: toks[start].Match}
	st := &toks[start]
	if st.Colon < 0 || string(b[st.Colon+1:st.E]) != "Signature" || st.A1-st.A0 != 1 {
		return sig, false
	}
	prefix := b[st.S:st.Colon]
	if bytes.Equal(prefix, bXML) || bytes.Equal(prefix, bXMLNS) {
		return sig, false
	}
	a := f.Tokenizer.Attrs[st.A0]
	if a.Colon < 0 || string(b[a.S:a.Colon]) != "xmlns" || !bytes.Equal(b[a.Colon+1:a.E], prefix) || a.Refs || string(b[a.VS:a.VE]) != nsDSig {
		return sig, false
	}
	c := sigCursor{f: f, prefix: prefix, i: start + 1, ok: true}
	si := c.open("SignedInfo", "", "")
	sig.signedInfo = si
	c.leaf("CanonicalizationMethod", "Algorithm", algExcC14N)
	c.leaf("SignatureMethod", "Algorithm", algRSASHA256)
	ref := c.open("Reference", "URI", "#"+string(rootID))
	ts := c.open("Transforms", "", "")
	c.leaf("Transform", "Algorithm", algEnveloped)
	c.leaf("Transform", "Algorithm", algExcC14N)
	c.close(ts)
	c.leaf("DigestMethod", "Algorithm", algSHA256)
	digest := c.text("DigestValue")
	c.close(ref)
	c.close(si)
	sig.sigValue = c.text("SignatureValue")
	ki := c.open("KeyInfo", "", "")
	xd := c.open("X509Data", "", "")
	sig.cert = c.text("X509Certificate")
	c.close(xd)
	c.close(ki)
	c.close(start)
	if !c.ok || c.i != sig.end+1 {
		return sig, false
	}
	d, ok := f.base64(digest)
	if !ok || len(d) != sha256.Size {
		return sig, false
	}
	copy(sig.digest[:], d)
	return sig, true
}

// base64 decodes p as base64.StdEncoding.DecodeString does, into a buffer of f's.
func (f *fastState) base64(p []byte) ([]byte, bool) {
	n := base64.StdEncoding.DecodedLen(len(p))
	if cap(f.sigBuf) < n {
		f.sigBuf = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(f.sigBuf[:n], p)
	return f.sigBuf[:n], err == nil
}

// sigCursor walks the tokens of a ds:Signature, expecting them one by one; ok turns false at
// the first that is not the one expected, and everything after is then ignored.
type sigCursor struct {
	f      *fastState
	prefix []byte
	i      int32
	ok     bool
}

// skipBlank skips raw white space.
func (c *sigCursor) skipBlank() {
	toks := c.f.Toks
	for c.i < int32(len(toks)) && toks[c.i].Kind == xmltok.Text {
		t := &toks[c.i]
		if t.Refs || !xmltok.Blank(c.f.B[t.S:t.E]) {
			c.ok = false
			return
		}
		c.i++
	}
}

// open expects the start tag of P:name, with the one attribute attr="value" (none: "") and
// returns its index.
func (c *sigCursor) open(name, attr, value string) int32 {
	c.skipBlank()
	f := c.f
	if !c.ok || c.i >= int32(len(f.Toks)) {
		c.ok = false
		return 0
	}
	t := &f.Toks[c.i]
	b := f.B
	if t.Kind != xmltok.Start || t.Colon < 0 || !bytes.Equal(b[t.S:t.Colon], c.prefix) || string(b[t.Colon+1:t.E]) != name {
		c.ok = false
		return 0
	}
	switch {
	case attr == "" && t.A1 != t.A0:
		c.ok = false
	case attr != "":
		if t.A1-t.A0 != 1 {
			c.ok = false
			break
		}
		a := f.Tokenizer.Attrs[t.A0]
		if a.Colon >= 0 || a.Refs || string(b[a.S:a.E]) != attr || string(b[a.VS:a.VE]) != value {
			c.ok = false
		}
	}
	c.i++
	return c.i - 1
}

// close expects the end tag of the element whose start tag is start.
func (c *sigCursor) close(start int32) {
	c.skipBlank()
	if !c.ok || c.i >= int32(len(c.f.Toks)) || c.f.Toks[c.i].Kind != xmltok.End || c.f.Toks[c.i].Match != start {
		c.ok = false
		return
	}
	c.i++
}

// leaf expects an empty P:name with the one attribute attr="value".
func (c *sigCursor) leaf(name, attr, value string) {
	start := c.open(name, attr, value)
	if !c.ok || c.i >= int32(len(c.f.Toks)) || c.f.Toks[c.i].Kind != xmltok.End || c.f.Toks[c.i].Match != start {
		c.ok = false
		return
	}
	c.i++
}

// text expects P:name without attributes holding only text without references, and returns
// the text.
func (c *sigCursor) text(name string) []byte {
	start := c.open(name, "", "")
	toks := c.f.Toks
	if !c.ok || c.i+1 >= int32(len(toks)) || toks[c.i].Kind != xmltok.Text || toks[c.i].Refs || toks[c.i+1].Kind != xmltok.End || toks[c.i+1].Match != start {
		c.ok = false
		return nil
	}
	t := &toks[c.i]
	c.i += 2
	return c.f.B[t.S:t.E]
}

// resetC14N starts a canonical form: the namespaces of etreeutils' default context, nothing
// output yet, SHA-256 reset.
func (f *fastState) resetC14N() {
	f.scope = append(f.scope[:0], tokDefaultBindings...)
	f.rendered = append(f.rendered[:0], tokDefaultBindings...)
	f.marks, f.used, f.attrs, f.top, f.out = f.marks[:0], f.used[:0], f.attrs[:0], f.top[:0], f.out[:0]
	f.sha.Reset()
}

// prefixOf returns the prefix of a name (nil: none) and its local part.
func (f *fastState) prefixOf(s, e, colon int32) (prefix, local []byte) {
	if colon < 0 {
		return nil, f.B[s:e]
	}
	return f.B[s:colon], f.B[colon+1 : e]
}

// declare pushes the namespace declarations of the start tag tok onto the scope, as
// canonicalizer.declare does, and reports false for those the fast path leaves to the
// fallback: empty ones, ones with references, the default namespace bound to xmlns' and
// anything declared for the prefixes xml and xmlns.
func (f *fastState) declare(tok int32) bool {
	b, t := f.B, &f.Toks[tok]
	for _, a := range f.Tokenizer.Attrs[t.A0:t.A1] {
		prefix, local := f.prefixOf(a.S, a.E, a.Colon)
		var p []byte
		switch {
		case prefix == nil && string(local) == "xmlns":
			p = nil
		case string(prefix) == "xmlns":
			if string(local) == "xml" || string(local) == "xmlns" {
				return false
			}
			p = local
		default:
			continue
		}
		uri := b[a.VS:a.VE]
		if a.Refs || len(uri) == 0 || bytes.Equal(uri, bNSXMLNS) {
			return false
		}
		f.scope = append(f.scope, tokBinding{p, uri})
	}
	return true
}

func lookupBytes(stack []tokBinding, prefix []byte) ([]byte, bool) {
	for i := len(stack) - 1; i >= 0; i-- {
		if bytes.Equal(stack[i].prefix, prefix) {
			return stack[i].uri, true
		}
	}
	return nil, false
}

func outLess(a, b *outAttr) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return bytes.Compare(a.key, b.key) < 0
}

// canonicalize streams into f.sha the exclusive canonical form of the element whose start
// token is from, without the tokens skipFrom to skipTo (-1: none). With top, it keeps the
// element's sorted attributes in f.top. With content, the element is the root and rootID its
// identifier, and it also checks the element and its content for the fast path (see above):
// no ds:Signature, no other element with the identifier rootID.
func (f *fastState) canonicalize(from, skipFrom, skipTo int32, top bool, rootID []byte) bool {
	b := f.B
	last := f.Toks[from].Match
	for k := from; k <= last; k++ {
		if k == skipFrom {
			k = skipTo
			continue
		}
		t := &f.Toks[k]
		switch t.Kind {
		case xmltok.Text:
			f.escape(f.Decode(t.S, t.E, t.Refs), false)
		case xmltok.End:
			f.writeBytes([]byte("</"))
			f.writeBytes(b[t.S:t.E])
			f.writeBytes([]byte(">"))
			m := f.marks[len(f.marks)-1]
			f.marks = f.marks[:len(f.marks)-1]
			f.scope, f.rendered = f.scope[:m[0]], f.rendered[:m[1]]
		case xmltok.Start:
			f.marks = append(f.marks, [2]int32{int32(len(f.scope)), int32(len(f.rendered))})
			if !f.declare(k) || !f.startTag(k, top && k == from, rootID != nil, rootID != nil && k != from, rootID) {
				return false
			}
		}
		if len(f.out) >= c14nBufSize/2 {
			f.sha.Write(f.out)
			f.out = f.out[:0]
		}
	}
	f.sha.Write(f.out)
	f.out = f.out[:0]
	return true
}

// startTag writes the canonical start tag of the element whose start token is tok, as
// canonicalizer.element does. With sigs, it refuses a ds:Signature (the root included, as
// scanDocument counts it); with ids, an attribute whose local name is an identifier's
// (Id, ID, id…) with the value rootID.
func (f *fastState) startTag(tok int32, top, sigs, ids bool, rootID []byte) bool {
	b, t := f.B, &f.Toks[tok]
	prefix, local := f.prefixOf(t.S, t.E, t.Colon)
	if bytes.Equal(prefix, bXML) || bytes.Equal(prefix, bXMLNS) {
		return false
	}
	if sigs && string(local) == "Signature" {
		if uri, _ := lookupBytes(f.scope, prefix); bytes.Equal(uri, bNSDSig) {
			return false // a second signature
		}
	}
	f.used = append(f.used[:0], prefix)
	f.attrs = f.attrs[:0]
	for i := t.A0; i < t.A1; i++ {
		a := &f.Tokenizer.Attrs[i]
		ap, al := f.prefixOf(a.S, a.E, a.Colon)
		if ids && bytes.EqualFold(al, []byte(idAttr)) && bytes.Equal(f.Decode(a.VS, a.VE, a.Refs), rootID) {
			return false // the root's identifier again
		}
		switch {
		case ap == nil && string(al) == "xmlns", string(ap) == "xmlns":
			continue
		case bytes.Equal(ap, bXML):
			return false
		case ap == nil:
			f.attrs = append(f.attrs, outAttr{rank: 2, key: al, attr: i})
		default:
			f.attrs = append(f.attrs, outAttr{rank: 3, space: ap, key: al, attr: i})
			seen := false
			for _, u := range f.used {
				seen = seen || u != nil && bytes.Equal(u, ap)
			}
			if !seen {
				f.used = append(f.used, ap)
			}
		}
	}
	for _, p := range f.used {
		uri, ok := lookupBytes(f.scope, p)
		if !ok {
			return false
		}
		if r, ok := lookupBytes(f.rendered, p); ok && bytes.Equal(r, uri) {
			continue
		}
		f.rendered = append(f.rendered, tokBinding{p, uri})
		if p == nil {
			f.attrs = append(f.attrs, outAttr{rank: 0, key: bXMLNS, attr: -1, uri: uri})
		} else {
			f.attrs = append(f.attrs, outAttr{rank: 1, space: bXMLNS, key: p, attr: -1, uri: uri})
		}
	}
	attrs := f.attrs
	for i := 1; i < len(attrs); i++ {
		for j := i; j > 0 && outLess(&attrs[j], &attrs[j-1]); j-- {
			attrs[j], attrs[j-1] = attrs[j-1], attrs[j]
		}
	}
	for i := 1; i < len(attrs); i++ {
		if attrs[i].rank >= 2 && attrs[i].rank == attrs[i-1].rank && bytes.Equal(attrs[i].key, attrs[i-1].key) {
			return false
		}
	}
	if top {
		f.top = append(f.top[:0], attrs...)
	}
	f.writeBytes([]byte("<"))
	f.writeBytes(b[t.S:t.E])
	for i := range attrs {
		a := &attrs[i]
		f.writeBytes([]byte(" "))
		if a.space != nil {
			f.writeBytes(a.space)
			f.writeBytes([]byte(":"))
		}
		f.writeBytes(a.key)
		f.writeBytes([]byte(`="`))
		if a.attr < 0 {
			f.escape(a.uri, true)
		} else {
			ta := &f.Tokenizer.Attrs[a.attr]
			f.escape(f.Decode(ta.VS, ta.VE, ta.Refs), true)
		}
		f.writeBytes([]byte(`"`))
	}
	f.writeBytes([]byte(">"))
	return true
}

func (f *fastState) writeBytes(p []byte) { f.out = append(f.out, p...) }

// escape writes s as canonicalizer.escape does, for the characters the tokenizer lets
// through (no control characters but tab, newline and, from a reference, carriage return).
func (f *fastState) escape(s []byte, attr bool) {
	last := 0
	for i, c := range s {
		var esc string
		switch c {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			if attr {
				continue
			}
			esc = "&gt;"
		case '"':
			if !attr {
				continue
			}
			esc = "&quot;"
		case '\t':
			if !attr {
				continue
			}
			esc = "&#x9;"
		case '\n':
			if !attr {
				continue
			}
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		f.out = append(f.out, s[last:i]...)
		f.out = append(f.out, esc...)
		last = i + 1
	}
	f.out = append(f.out, s[last:]...)
}

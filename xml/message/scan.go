package message

import (
	"bytes"
	"sync/atomic"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// This file holds Parse's fast path: a single-pass scanner for the strict subset of XML that
// exchange documents are written in, building the same etree tree as parseSlow (Check, then
// etree's parser, both on encoding/xml's RawToken). It never refuses anything itself: on
// anything outside the subset, or anything parseSlow would refuse, it gives up (returns nil)
// and Parse runs parseSlow, whose error is the one returned. So it only ever has to be sure
// of one thing: whatever it accepts, parseSlow accepts too, as the same tree.
//
// The subset:
//   - an optional XML declaration at offset 0, exactly one of acceptedDecls;
//   - elements and attributes named [A-Za-z_:][A-Za-z0-9_:.-]* with at most one colon, not
//     first or last (RawToken splits prefix:local there, as etree's CreateElement does);
//     attribute values quoted, at most maxFastAttrs attributes, no duplicates;
//   - text and attribute values of valid UTF-8 in XML's character range, without \r (which
//     encoding/xml rewrites), with the five predefined entities and character references of
//     at most 7 digits; "]]>" only in attribute values (encoding/xml refuses it in text);
//   - only ' ', '\t' and '\n' around the root element;
//   - nothing starting with <! or <? after the declaration (comments, CDATA, DOCTYPE, PIs);
//   - lim and etree's own nesting limit respected, end tags matching.

// fastParses counts the documents parseFast built. It is the hook by which a test makes
// sure exchange documents do take the fast path: the speed-up could otherwise vanish silently.
var fastParses atomic.Uint64

// maxFastAttrs bounds the attributes of one element on the fast path: etree's CreateAttr
// looks for an attribute of the same name first, so n attributes cost n², and an element
// with more goes to parseSlow (linear in them).
const maxFastAttrs = 64

// etreeMaxDepth is etree's own nesting limit (ReadSettings.MaxDepth 0 means 1024).
const etreeMaxDepth = 1024

// acceptedDecls are the XML declarations the fast path takes: version 1.0 and no encoding
// other than UTF-8, which is what encoding/xml accepts without a CharsetReader.
var acceptedDecls = [...]string{
	`version="1.0"`, `version="1.0" encoding="UTF-8"`, `version="1.0" encoding="utf-8"`,
	`version='1.0'`, `version='1.0' encoding='UTF-8'`, `version='1.0' encoding='utf-8'`,
}

// Byte classes of the scanner.
const (
	cBad      = iota // not handled: control characters, \r, < in a value
	cPlain           // taken as is
	cAmp             // starts a reference
	cGT              // > is plain but ends "]]>"
	cNonASCII        // starts a multi-byte UTF-8 sequence
)

// The scanner's byte tables: charClass for text and attribute values, nameByte as
// encoding/xml's isNameByte, nameStart the ASCII bytes encoding/xml's isName takes first.
var charClass, nameByte, nameStart = byteTables()

func byteTables() (class [256]uint8, name, start [256]bool) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			class[c] = cNonASCII
		case c == '&':
			class[c] = cAmp
		case c == '>':
			class[c] = cGT
		case c == '<':
			class[c] = cBad
		case c >= 0x20 || c == '\t' || c == '\n':
			class[c] = cPlain
		}
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		start[c] = letter || c == '_' || c == ':'
		name[c] = start[c] || '0' <= c && c <= '9' || c == '.' || c == '-'
	}
	return class, name, start
}

type scanner struct {
	b     []byte
	stack []openElement
	attrs []pendingAttr
	buf   []byte // references decoded
}

// openElement is an element whose end tag is still to come.
type openElement struct {
	el         *etree.Element
	start, end int // its name in b
}

type pendingAttr struct {
	start, end int // name in b
	value      string
}

// parseFast returns the document parseSlow would return for b, or nil when b is outside the
// subset it handles (see above) or parseSlow would refuse it.
func parseFast(b []byte, lim Limits) *etree.Document {
	if len(b) > lim.MaxBytes {
		return nil
	}
	maxDepth := min(lim.MaxDepth, etreeMaxDepth)
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{Permissive: false, PreserveCData: true}
	var (
		stack [16]openElement
		attrs [8]pendingAttr
	)
	s := scanner{b: b, stack: stack[:0], attrs: attrs[:0]}
	i, ok := 0, true
	if bytes.HasPrefix(b, []byte("<?xml")) {
		if i, ok = s.declaration(&doc.Element); !ok {
			return nil
		}
	}
	elems, roots := 0, 0
	for i < len(b) {
		if b[i] != '<' {
			j := bytes.IndexByte(b[i:], '<')
			if j < 0 {
				j = len(b)
			} else {
				j += i
			}
			if len(s.stack) == 0 {
				if !blank(b[i:j]) {
					return nil
				}
				appendCharData(&doc.Element, string(b[i:j]))
			} else {
				text, ok := s.chars(i, j, true)
				if !ok {
					return nil
				}
				appendCharData(s.stack[len(s.stack)-1].el, text)
			}
			i = j
			continue
		}
		if i+1 >= len(b) {
			return nil
		}
		switch b[i+1] {
		case '/':
			i, ok = s.endTag(i + 2)
		case '?', '!':
			return nil
		default:
			parent := &doc.Element
			if len(s.stack) == 0 {
				roots++
			} else {
				parent = s.stack[len(s.stack)-1].el
			}
			elems++
			if roots > 1 || elems > lim.MaxElements || len(s.stack)+1 > maxDepth {
				return nil
			}
			i, ok = s.startTag(i+1, parent)
		}
		if !ok {
			return nil
		}
	}
	if roots != 1 || len(s.stack) != 0 {
		return nil
	}
	fastParses.Add(1)
	return doc
}

// appendCharData adds text to parent as etree's parser does: CreateText leaves the token's
// flags clear, SetData sets the white-space flag the parser would have set.
func appendCharData(parent *etree.Element, text string) {
	parent.CreateText(text).SetData(text)
}

// blank reports whether p is only the white space the fast path takes outside the root.
func blank(p []byte) bool {
	for _, c := range p {
		if c != ' ' && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

// space skips the white space encoding/xml skips inside tags, except \r: the byte after the
// returned index is then never what the caller expects, so it gives up.
func (s *scanner) space(k int) int {
	for k < len(s.b) && (s.b[k] == ' ' || s.b[k] == '\t' || s.b[k] == '\n') {
		k++
	}
	return k
}

// name returns the bounds of the name starting at k. A name must end with an ASCII byte
// (encoding/xml takes any non-ASCII byte into the name and checks it against Unicode tables)
// and hold at most one colon, neither first nor last.
func (s *scanner) name(k int) (start, end int, ok bool) {
	b := s.b
	if k >= len(b) || !nameStart[b[k]] {
		return 0, 0, false
	}
	start = k
	for k++; k < len(b) && nameByte[b[k]]; k++ {
	}
	if k >= len(b) || b[k] >= utf8.RuneSelf {
		return 0, 0, false
	}
	if c := bytes.IndexByte(b[start:k], ':'); c >= 0 {
		if c == 0 || start+c == k-1 || bytes.IndexByte(b[start+c+1:k], ':') >= 0 {
			return 0, 0, false
		}
	}
	return start, k, true
}

// declaration reads the XML declaration that b starts with into doc and returns the index
// after it.
func (s *scanner) declaration(doc *etree.Element) (int, bool) {
	b := s.b
	k := len("<?xml")
	if k >= len(b) || b[k] >= utf8.RuneSelf || nameByte[b[k]] {
		return 0, false // another target: <?xml-stylesheet, <?xmlfoo…
	}
	k = s.space(k)
	end := bytes.Index(b[k:], []byte("?>"))
	if end < 0 {
		return 0, false
	}
	inst := b[k : k+end]
	for _, d := range acceptedDecls {
		if string(inst) == d {
			doc.CreateProcInst("xml", d)
			return k + end + 2, true
		}
	}
	return 0, false
}

// startTag reads the start tag whose name begins at k into a new child of parent and returns
// the index after the tag.
func (s *scanner) startTag(k int, parent *etree.Element) (int, bool) {
	b := s.b
	ns, ne, ok := s.name(k)
	if !ok {
		return 0, false
	}
	k = ne
	s.attrs = s.attrs[:0]
	empty := false
	for {
		k = s.space(k)
		if k >= len(b) {
			return 0, false
		}
		if b[k] == '>' {
			k++
			break
		}
		if b[k] == '/' {
			if k+1 >= len(b) || b[k+1] != '>' {
				return 0, false
			}
			k += 2
			empty = true
			break
		}
		an, ae, ok := s.name(k)
		if !ok {
			return 0, false
		}
		if k = s.space(ae); k >= len(b) || b[k] != '=' {
			return 0, false
		}
		if k = s.space(k + 1); k >= len(b) || b[k] != '"' && b[k] != '\'' {
			return 0, false
		}
		end := bytes.IndexByte(b[k+1:], b[k])
		if end < 0 {
			return 0, false
		}
		end += k + 1
		value, ok := s.chars(k+1, end, false)
		if !ok || len(s.attrs) == maxFastAttrs {
			return 0, false
		}
		for _, a := range s.attrs {
			if bytes.Equal(b[a.start:a.end], b[an:ae]) {
				return 0, false
			}
		}
		s.attrs = append(s.attrs, pendingAttr{start: an, end: ae, value: value})
		k = end + 1
	}
	el := parent.CreateElement(string(b[ns:ne]))
	if len(s.attrs) > 0 {
		el.Attr = make([]etree.Attr, 0, len(s.attrs))
		for _, a := range s.attrs {
			el.CreateAttr(string(b[a.start:a.end]), a.value)
		}
	}
	if !empty {
		s.stack = append(s.stack, openElement{el: el, start: ns, end: ne})
	}
	return k, true
}

// endTag reads the end tag whose name begins at k, closes the open element it matches and
// returns the index after the tag.
func (s *scanner) endTag(k int) (int, bool) {
	b := s.b
	ns, ne, ok := s.name(k)
	if !ok || len(s.stack) == 0 {
		return 0, false
	}
	if k = s.space(ne); k >= len(b) || b[k] != '>' {
		return 0, false
	}
	top := s.stack[len(s.stack)-1]
	if !bytes.Equal(b[ns:ne], b[top.start:top.end]) {
		return 0, false
	}
	s.stack = s.stack[:len(s.stack)-1]
	return k + 1, true
}

// chars returns the text (inText) or attribute value b[i:j] with its references replaced,
// as encoding/xml's Decoder.text does.
func (s *scanner) chars(i, j int, inText bool) (string, bool) {
	b := s.b
	decoded := false
	run := i // first byte not yet copied to s.buf, once decoding
	for k := i; k < j; {
		for k < j && charClass[b[k]] == cPlain {
			k++
		}
		if k == j {
			break
		}
		switch charClass[b[k]] {
		case cGT:
			// encoding/xml refuses "]]>" in text (the bytes as read: a reference in
			// between resets its look-back, and no reference holds ']').
			if inText && k-i >= 2 && b[k-1] == ']' && b[k-2] == ']' {
				return "", false
			}
			k++
		case cNonASCII:
			r, n := utf8.DecodeRune(b[k:j])
			if r == utf8.RuneError && n == 1 || !inCharRange(r) {
				return "", false
			}
			k += n
		case cAmp:
			r, n := reference(b[k:j])
			if n == 0 {
				return "", false
			}
			if !decoded {
				s.buf = s.buf[:0]
				decoded = true
			}
			s.buf = append(s.buf, b[run:k]...)
			s.buf = utf8.AppendRune(s.buf, r)
			k += n
			run = k
		default:
			return "", false
		}
	}
	if !decoded {
		return string(b[i:j]), true
	}
	s.buf = append(s.buf, b[run:j]...)
	return string(s.buf), true
}

// reference decodes the reference p starts with and returns the character and the length of
// the reference, or a length of 0 for anything but the five predefined entities and
// character references of 1 to 7 digits to a character in XML's range.
func reference(p []byte) (rune, int) {
	for _, e := range [...]struct {
		ref string
		r   rune
	}{{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&apos;", '\''}, {"&quot;", '"'}} {
		if len(p) >= len(e.ref) && string(p[:len(e.ref)]) == e.ref {
			return e.r, len(e.ref)
		}
	}
	if len(p) < 3 || p[1] != '#' {
		return 0, 0
	}
	k, base := 2, rune(10)
	if p[2] == 'x' {
		k, base = 3, 16
	}
	start := k
	var r rune
	for ; k < len(p) && k-start < 7; k++ {
		d := digit(p[k])
		if d < 0 || d >= base {
			break
		}
		r = r*base + d
	}
	if k == start || k >= len(p) || p[k] != ';' || !inCharRange(r) {
		return 0, 0
	}
	return r, k + 1
}

func digit(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// inCharRange is encoding/xml's isInCharacterRange: XML's Char production.
func inCharRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

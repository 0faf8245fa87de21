package dsig

import (
	"bytes"
	"unicode/utf8"

	"github.com/evoucher/evoucher/xml/message"
)

// This file holds VerifyBytes' tokenizer: one pass over a document that records its tags and
// texts as offsets into the bytes, without building a tree. It takes exactly the rules of
// message's parseFast (xml/message/scan.go), of which it is a copy trimmed down to
// recognising: whatever it accepts, message.Parse accepts too, as the tree its tokens
// describe, so that VerifyBytes' fast path decides on the document the fallback would parse.
// On anything else it gives up, and VerifyBytes falls back. The rules:
//   - an optional XML declaration at offset 0, exactly one of acceptedDecls;
//   - names [A-Za-z_:][A-Za-z0-9_:.-]* with at most one colon, not first or last; attribute
//     values quoted, at most maxFastAttrs attributes, no duplicate names;
//   - text and attribute values of valid UTF-8 in XML's character range, without \r, with the
//     five predefined entities and character references of at most 7 digits; "]]>" only in
//     attribute values;
//   - only ' ', '\t' and '\n' around the root element;
//   - nothing starting with <! or <? after the declaration;
//   - the caller's limits and etree's nesting limit, end tags matching.

// maxFastAttrs and etreeMaxDepth are parseFast's.
const (
	maxFastAttrs  = 64
	etreeMaxDepth = 1024
)

// acceptedDecls are the XML declarations parseFast takes.
var acceptedDecls = [...]string{
	`version="1.0"`, `version="1.0" encoding="UTF-8"`, `version="1.0" encoding="utf-8"`,
	`version='1.0'`, `version='1.0' encoding='UTF-8'`, `version='1.0' encoding='utf-8'`,
}

// Byte classes of the tokenizer, as parseFast's.
const (
	cBad      = iota // not handled: control characters, \r, < in a value
	cPlain           // taken as is
	cAmp             // starts a reference
	cGT              // > is plain but ends "]]>"
	cNonASCII        // starts a multi-byte UTF-8 sequence
)

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

// Kinds of tokens.
const (
	tokStart = iota + 1
	tokEnd
	tokText
)

// token is a start tag, an end tag (an empty element gives both) or a text, by its offsets.
type token struct {
	kind   uint8
	refs   bool  // text: holds references
	depth  int32 // start and end: the element's depth (root: 1); text: its parent's
	s, e   int32 // start and end: the name; text: the text
	colon  int32 // start and end: the colon's offset in the name, -1 when none
	a0, a1 int32 // start: its attributes in tokenizer.attrs
	match  int32 // start: the index of its end token; end: of its start token
}

// tokAttr is an attribute, by its offsets.
type tokAttr struct {
	s, e   int32 // name
	colon  int32 // the colon's offset in the name, -1 when none
	vs, ve int32 // value, between the quotes
	refs   bool  // the value holds references
}

type tokenizer struct {
	b     []byte
	toks  []token
	attrs []tokAttr
	open  []int32 // start tokens of the elements whose end tag is still to come
	buf   []byte  // a value with its references replaced (decode)
}

// tokenize records b's tokens, and reports false when b is outside the subset above (or
// parseFast would not take it with lim).
func (t *tokenizer) tokenize(b []byte, lim message.Limits) bool {
	t.b, t.toks, t.attrs, t.open = b, t.toks[:0], t.attrs[:0], t.open[:0]
	if len(b) > lim.MaxBytes || len(b) >= 1<<31-1 {
		return false
	}
	maxDepth := min(lim.MaxDepth, etreeMaxDepth)
	i, ok := 0, true
	if bytes.HasPrefix(b, []byte("<?xml")) {
		if i, ok = t.declaration(); !ok {
			return false
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
			if len(t.open) == 0 {
				if !blank(b[i:j]) {
					return false
				}
			} else {
				refs, ok := t.chars(i, j, true)
				if !ok {
					return false
				}
				t.toks = append(t.toks, token{kind: tokText, refs: refs, depth: int32(len(t.open)), s: int32(i), e: int32(j)})
			}
			i = j
			continue
		}
		if i+1 >= len(b) {
			return false
		}
		switch b[i+1] {
		case '/':
			i, ok = t.endTag(i + 2)
		case '?', '!':
			return false
		default:
			if len(t.open) == 0 {
				roots++
			}
			elems++
			if roots > 1 || elems > lim.MaxElements || len(t.open)+1 > maxDepth {
				return false
			}
			i, ok = t.startTag(i + 1)
		}
		if !ok {
			return false
		}
	}
	return roots == 1 && len(t.open) == 0
}

// blank reports whether p is only the white space the subset takes outside the root.
func blank(p []byte) bool {
	for _, c := range p {
		if c != ' ' && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

func (t *tokenizer) space(k int) int {
	for k < len(t.b) && (t.b[k] == ' ' || t.b[k] == '\t' || t.b[k] == '\n') {
		k++
	}
	return k
}

// name returns the bounds of the name starting at k and the offset of its colon (-1: none).
func (t *tokenizer) name(k int) (start, end, colon int, ok bool) {
	b := t.b
	if k >= len(b) || !nameStart[b[k]] {
		return 0, 0, 0, false
	}
	start = k
	for k++; k < len(b) && nameByte[b[k]]; k++ {
	}
	if k >= len(b) || b[k] >= utf8.RuneSelf {
		return 0, 0, 0, false
	}
	colon = -1
	if c := bytes.IndexByte(b[start:k], ':'); c >= 0 {
		if c == 0 || start+c == k-1 || bytes.IndexByte(b[start+c+1:k], ':') >= 0 {
			return 0, 0, 0, false
		}
		colon = start + c
	}
	return start, k, colon, true
}

func (t *tokenizer) declaration() (int, bool) {
	b := t.b
	k := len("<?xml")
	if k >= len(b) || b[k] >= utf8.RuneSelf || nameByte[b[k]] {
		return 0, false
	}
	k = t.space(k)
	end := bytes.Index(b[k:], []byte("?>"))
	if end < 0 {
		return 0, false
	}
	inst := b[k : k+end]
	for _, d := range acceptedDecls {
		if string(inst) == d {
			return k + end + 2, true
		}
	}
	return 0, false
}

func (t *tokenizer) startTag(k int) (int, bool) {
	b := t.b
	ns, ne, nc, ok := t.name(k)
	if !ok {
		return 0, false
	}
	k = ne
	a0 := len(t.attrs)
	empty := false
	for {
		k = t.space(k)
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
		an, ae, ac, ok := t.name(k)
		if !ok {
			return 0, false
		}
		if k = t.space(ae); k >= len(b) || b[k] != '=' {
			return 0, false
		}
		if k = t.space(k + 1); k >= len(b) || b[k] != '"' && b[k] != '\'' {
			return 0, false
		}
		end := bytes.IndexByte(b[k+1:], b[k])
		if end < 0 {
			return 0, false
		}
		end += k + 1
		refs, ok := t.chars(k+1, end, false)
		if !ok || len(t.attrs)-a0 == maxFastAttrs {
			return 0, false
		}
		for _, a := range t.attrs[a0:] {
			if bytes.Equal(b[a.s:a.e], b[an:ae]) {
				return 0, false
			}
		}
		t.attrs = append(t.attrs, tokAttr{s: int32(an), e: int32(ae), colon: int32(ac), vs: int32(k + 1), ve: int32(end), refs: refs})
		k = end + 1
	}
	depth := int32(len(t.open) + 1)
	start := int32(len(t.toks))
	t.toks = append(t.toks, token{kind: tokStart, depth: depth, s: int32(ns), e: int32(ne), colon: int32(nc), a0: int32(a0), a1: int32(len(t.attrs))})
	if empty {
		t.toks[start].match = start + 1
		t.toks = append(t.toks, token{kind: tokEnd, depth: depth, s: int32(ns), e: int32(ne), colon: int32(nc), match: start})
	} else {
		t.open = append(t.open, start)
	}
	return k, true
}

func (t *tokenizer) endTag(k int) (int, bool) {
	b := t.b
	ns, ne, _, ok := t.name(k)
	if !ok || len(t.open) == 0 {
		return 0, false
	}
	if k = t.space(ne); k >= len(b) || b[k] != '>' {
		return 0, false
	}
	start := t.open[len(t.open)-1]
	top := &t.toks[start]
	if !bytes.Equal(b[ns:ne], b[top.s:top.e]) {
		return 0, false
	}
	t.open = t.open[:len(t.open)-1]
	end := int32(len(t.toks))
	top.match = end
	t.toks = append(t.toks, token{kind: tokEnd, depth: top.depth, s: top.s, e: top.e, colon: top.colon, match: start})
	return k + 1, true
}

// chars checks the text (inText) or attribute value b[i:j] as parseFast's chars does, and
// reports whether it holds references.
func (t *tokenizer) chars(i, j int, inText bool) (refs, ok bool) {
	b := t.b
	for k := i; k < j; {
		for k < j && charClass[b[k]] == cPlain {
			k++
		}
		if k == j {
			break
		}
		switch charClass[b[k]] {
		case cGT:
			if inText && k-i >= 2 && b[k-1] == ']' && b[k-2] == ']' {
				return false, false
			}
			k++
		case cNonASCII:
			r, n := utf8.DecodeRune(b[k:j])
			if r == utf8.RuneError && n == 1 || !inCharRange(r) {
				return false, false
			}
			k += n
		case cAmp:
			_, n := reference(b[k:j])
			if n == 0 {
				return false, false
			}
			refs = true
			k += n
		default:
			return false, false
		}
	}
	return refs, true
}

// decode returns b[i:j] with its references replaced (refs), valid until the next decode.
func (t *tokenizer) decode(i, j int32, refs bool) []byte {
	if !refs {
		return t.b[i:j]
	}
	t.buf = t.buf[:0]
	run := i
	for k := i; k < j; k++ {
		if t.b[k] != '&' {
			continue
		}
		r, n := reference(t.b[k:j])
		t.buf = append(t.buf, t.b[run:k]...)
		t.buf = utf8.AppendRune(t.buf, r)
		k += int32(n) - 1
		run = k + 1
	}
	t.buf = append(t.buf, t.b[run:j]...)
	return t.buf
}

// reference is parseFast's: the character the reference p starts with stands for, and its
// length, or a length of 0 for anything but the five predefined entities and character
// references of 1 to 7 digits to a character in XML's range.
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

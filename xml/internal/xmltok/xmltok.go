// Package xmltok owns the strict subset of XML that exchange documents are written in, and
// the one tokenizer that recognises it. message.Parse builds its fast-path etree tree from the
// tokens and dsig.VerifyBytes verifies from them, so both decide on the same rules: whatever
// the tokenizer accepts, encoding/xml's RawToken (as etree reads it) accepts too, as the tree
// the tokens describe. It never refuses anything itself: on anything outside the subset it
// gives up, and its callers fall back to encoding/xml, whose error is the one returned.
//
// The subset:
//   - an optional XML declaration at offset 0, exactly one of AcceptedDecls;
//   - elements and attributes named [A-Za-z_:][A-Za-z0-9_:.-]* with at most one colon, not
//     first or last (RawToken splits prefix:local there, as etree's CreateElement does);
//     attribute values quoted, at most MaxAttrs attributes, no duplicates;
//   - text and attribute values of valid UTF-8 in XML's character range, without \r (which
//     encoding/xml rewrites), with the five predefined entities and character references of
//     at most 7 digits; "]]>" only in attribute values (encoding/xml refuses it in text);
//   - only ' ', '\t' and '\n' around the root element;
//   - nothing starting with <! or <? after the declaration (comments, CDATA, DOCTYPE, PIs);
//   - the caller's Limits and etree's own nesting limit respected, end tags matching;
//   - documents under 2 GiB (offsets are int32).
package xmltok

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// MaxAttrs bounds the attributes of one element: etree's CreateAttr looks for an attribute of
// the same name first, so n attributes cost n², and an element with more goes to the
// fallback (linear in them).
const MaxAttrs = 64

// EtreeMaxDepth is etree's own nesting limit (ReadSettings.MaxDepth 0 means 1024).
const EtreeMaxDepth = 1024

// AcceptedDecls are the XML declarations the subset takes: version 1.0 and no encoding other
// than UTF-8, which is what encoding/xml accepts without a CharsetReader.
var AcceptedDecls = [...]string{
	`version="1.0"`, `version="1.0" encoding="UTF-8"`, `version="1.0" encoding="utf-8"`,
	`version='1.0'`, `version='1.0' encoding='UTF-8'`, `version='1.0' encoding='utf-8'`,
}

// Limits are the caller's bounds on a document; one beyond them is outside the subset.
type Limits struct {
	MaxBytes    int // whole document
	MaxDepth    int // element nesting (root: 1)
	MaxElements int // elements in all
}

// Byte classes of the tokenizer.
const (
	cBad      = iota // not handled: control characters, \r, < in a value
	cPlain           // taken as is
	cAmp             // starts a reference
	cGT              // > is plain but ends "]]>"
	cNonASCII        // starts a multi-byte UTF-8 sequence
)

// The tokenizer's byte tables: charClass for text and attribute values, nameByte as
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

// Kind is the kind of a Token.
type Kind uint8

// Kinds of tokens.
const (
	Start Kind = iota + 1 // a start tag
	End                   // an end tag; an empty element gives a Start and an End
	Text                  // a text inside the root element
)

// Token is a start tag, an end tag or a text, by its offsets in Tokenizer.B.
type Token struct {
	Kind  Kind
	Refs  bool  // Text: holds references
	Depth int32 // Start and End: the element's depth (root: 1); Text: its parent's
	S, E  int32 // Start and End: the name; Text: the text
	Colon int32 // Start and End: the colon's offset in the name, -1 when none
	A0    int32 // Start: its attributes are Tokenizer.Attrs[A0:A1]
	A1    int32
	Match int32 // Start: the index of its End token; End: of its Start token
}

// Attr is an attribute, by its offsets in Tokenizer.B.
type Attr struct {
	S, E   int32 // name
	Colon  int32 // the colon's offset in the name, -1 when none
	VS, VE int32 // value, between the quotes
	Refs   bool  // the value holds references
}

// Span is a run of bytes of Tokenizer.B, empty when S == E.
type Span struct{ S, E int32 }

// Tokenizer records a document's tokens. Its zero value is ready; reusing one reuses its
// buffers.
type Tokenizer struct {
	B     []byte  // the document of the last Tokenize
	Toks  []Token // its tokens in document order; Toks[0] is the root's Start
	Attrs []Attr  // the attributes of the Start tokens
	Decl  string  // the XML declaration's content, one of AcceptedDecls, or "" when none
	// Before and After are the white space before the root element (after the declaration)
	// and after it, which etree keeps as text of the document.
	Before, After Span
	open          []int32 // Start tokens of the elements whose end tag is still to come
	buf           []byte  // a value with its references replaced (Decode)
}

// Tokenize records b's tokens, and reports false when b is outside the subset (see the
// package doc) or beyond lim. The tokens are valid until the next Tokenize or Release.
func (t *Tokenizer) Tokenize(b []byte, lim Limits) bool {
	t.B, t.Toks, t.Attrs, t.open = b, t.Toks[:0], t.Attrs[:0], t.open[:0]
	t.Decl, t.Before, t.After = "", Span{}, Span{}
	if len(b) > lim.MaxBytes || len(b) >= 1<<31-1 {
		return false
	}
	maxDepth := min(lim.MaxDepth, EtreeMaxDepth)
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
				if !Blank(b[i:j]) {
					return false
				}
				// One run at most on each side: whatever follows it is the root's start
				// tag, or the end of b, or outside the subset.
				if roots == 0 {
					t.Before = Span{int32(i), int32(j)}
				} else {
					t.After = Span{int32(i), int32(j)}
				}
			} else {
				refs, ok := t.chars(i, j, true)
				if !ok {
					return false
				}
				t.Toks = append(t.Toks, Token{Kind: Text, Refs: refs, Depth: int32(len(t.open)), S: int32(i), E: int32(j)})
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

// Release drops the reference to the document, and reports whether the buffers are small
// enough to be worth keeping for another document (a large or hostile one's are not).
func (t *Tokenizer) Release() (keep bool) {
	t.B = nil
	return cap(t.Toks) <= 4096 && cap(t.Attrs) <= 4096 && cap(t.open) <= 4096 && cap(t.buf) <= 1<<16
}

// Blank reports whether p is only the white space the subset takes outside the root.
func Blank(p []byte) bool {
	for _, c := range p {
		if c != ' ' && c != '\t' && c != '\n' {
			return false
		}
	}
	return true
}

// space skips the white space encoding/xml skips inside tags, except \r: the byte after the
// returned index is then never what the caller expects, so it gives up.
func (t *Tokenizer) space(k int) int {
	for k < len(t.B) && (t.B[k] == ' ' || t.B[k] == '\t' || t.B[k] == '\n') {
		k++
	}
	return k
}

// name returns the bounds of the name starting at k and the offset of its colon (-1: none).
// A name must end with an ASCII byte (encoding/xml takes any non-ASCII byte into the name and
// checks it against Unicode tables) and hold at most one colon, neither first nor last.
func (t *Tokenizer) name(k int) (start, end, colon int, ok bool) {
	b := t.B
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

// declaration reads the XML declaration that B starts with into Decl and returns the index
// after it.
func (t *Tokenizer) declaration() (int, bool) {
	b := t.B
	k := len("<?xml")
	if k >= len(b) || b[k] >= utf8.RuneSelf || nameByte[b[k]] {
		return 0, false // another target: <?xml-stylesheet, <?xmlfoo…
	}
	k = t.space(k)
	end := bytes.Index(b[k:], []byte("?>"))
	if end < 0 {
		return 0, false
	}
	inst := b[k : k+end]
	for _, d := range AcceptedDecls {
		if string(inst) == d {
			t.Decl = d
			return k + end + 2, true
		}
	}
	return 0, false
}

// startTag records the start tag whose name begins at k and returns the index after it.
func (t *Tokenizer) startTag(k int) (int, bool) {
	b := t.B
	ns, ne, nc, ok := t.name(k)
	if !ok {
		return 0, false
	}
	k = ne
	a0 := len(t.Attrs)
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
		if !ok || len(t.Attrs)-a0 == MaxAttrs {
			return 0, false
		}
		for _, a := range t.Attrs[a0:] {
			if bytes.Equal(b[a.S:a.E], b[an:ae]) {
				return 0, false
			}
		}
		t.Attrs = append(t.Attrs, Attr{S: int32(an), E: int32(ae), Colon: int32(ac), VS: int32(k + 1), VE: int32(end), Refs: refs})
		k = end + 1
	}
	depth := int32(len(t.open) + 1)
	start := int32(len(t.Toks))
	t.Toks = append(t.Toks, Token{Kind: Start, Depth: depth, S: int32(ns), E: int32(ne), Colon: int32(nc), A0: int32(a0), A1: int32(len(t.Attrs))})
	if empty {
		t.Toks[start].Match = start + 1
		t.Toks = append(t.Toks, Token{Kind: End, Depth: depth, S: int32(ns), E: int32(ne), Colon: int32(nc), Match: start})
	} else {
		t.open = append(t.open, start)
	}
	return k, true
}

// endTag records the end tag whose name begins at k, which must match the innermost open
// element, and returns the index after it.
func (t *Tokenizer) endTag(k int) (int, bool) {
	b := t.B
	ns, ne, _, ok := t.name(k)
	if !ok || len(t.open) == 0 {
		return 0, false
	}
	if k = t.space(ne); k >= len(b) || b[k] != '>' {
		return 0, false
	}
	start := t.open[len(t.open)-1]
	top := &t.Toks[start]
	if !bytes.Equal(b[ns:ne], b[top.S:top.E]) {
		return 0, false
	}
	t.open = t.open[:len(t.open)-1]
	end := int32(len(t.Toks))
	top.Match = end
	t.Toks = append(t.Toks, Token{Kind: End, Depth: top.Depth, S: top.S, E: top.E, Colon: top.Colon, Match: start})
	return k + 1, true
}

// chars checks the text (inText) or attribute value B[i:j] as encoding/xml's Decoder.text
// reads it, and reports whether it holds references.
func (t *Tokenizer) chars(i, j int, inText bool) (refs, ok bool) {
	b := t.B
	for k := i; k < j; {
		if k+8 <= j {
			// Most of a signed message is long runs of plain ASCII (base64, URIs, names):
			// skip them eight bytes at a time, to the first byte special8 flags.
			m := special8(binary.LittleEndian.Uint64(b[k : k+8]))
			if m == 0 {
				k += 8
				continue
			}
			k += bits.TrailingZeros64(m) / 8
		}
		switch charClass[b[k]] {
		case cPlain: // \t or \n (which special8 flags), or a byte of the last seven
			k++
		case cGT:
			// encoding/xml refuses "]]>" in text (the bytes as read: a reference in
			// between resets its look-back, and no reference holds ']').
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

// special8 returns 0 when the eight bytes of x are all printable ASCII other than '&', '<'
// and '>', which chars takes as they are. Otherwise the high bit of the first (least
// significant) byte that is not is set: bytes ≥ 0x80, < 0x20 (\t and \n included, to keep it
// short) and those three. Bits above it may be set too, as a borrow propagates up: chars
// only trusts the lowest, and a byte flagged needlessly merely goes through charClass.
func special8(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	ctl := (x - 0x20*ones) &^ x       // high bit set in bytes < 0x20
	amp := x ^ '&'*ones               // 0 in bytes '&'
	ang := (x | 0x02*ones) ^ '>'*ones // 0 in bytes '<' (0x3C) and '>' (0x3E)
	amp = (amp - ones) &^ amp         // high bit set in bytes '&'
	ang = (ang - ones) &^ ang         // high bit set in bytes '<' and '>'
	return (x | ctl | amp | ang) & highs
}

// Decode returns B[i:j] with its references replaced (refs: as the token says it holds
// some), valid until the next Decode.
func (t *Tokenizer) Decode(i, j int32, refs bool) []byte {
	if !refs {
		return t.B[i:j]
	}
	t.buf = t.buf[:0]
	run := i
	for k := i; k < j; k++ {
		if t.B[k] != '&' {
			continue
		}
		r, n := reference(t.B[k:j])
		t.buf = append(t.buf, t.B[run:k]...)
		t.buf = utf8.AppendRune(t.buf, r)
		k += int32(n) - 1
		run = k + 1
	}
	t.buf = append(t.buf, t.B[run:j]...)
	return t.buf
}

// reference decodes the reference p starts with: the character it stands for, and its
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

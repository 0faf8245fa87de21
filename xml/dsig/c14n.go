package dsig

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// This file streams the exclusive canonical form (without comments, without
// InclusiveNamespaces: the only form the profile accepts) of an element into a hash, byte for
// byte as goxmldsig's etreeutils produces it (NSDetatch for SignedInfo, TransformExcC14n, then
// etree's WriteTo with canonicalWrite), but without copying the tree, its namespace maps or
// its attributes. etreeutils departs from the W3C recommendation in places, and the digests
// must be the ones goxmldsig (which signs) computes, so it is etreeutils that is followed, not
// the recommendation:
//
//   - the default namespace starts bound to the XML namespace, so an element in no namespace
//     whose output ancestors rendered no default namespace still renders xmlns="" when one of
//     its ancestors (or itself) declared xmlns="";
//   - attributes with a prefix are sorted by local name, then by the namespace URI that a
//     declaration of their prefix on the same output element gives (none: ""), not by URI
//     first: the stream handles local names that differ and leaves the rest (two prefixed
//     attributes with the same local name) to etreeutils;
//   - CDATA sections that the parser kept (etree's ReadSettings.PreserveCData) are written as
//     CDATA sections, not as escaped text, and characters outside XML's Char production are
//     written as U+FFFD, as etree writes them.
//
// Whatever it does not reproduce it reports as errFallback, and the caller then takes the
// etreeutils path: the reserved prefixes xml and xmlns declared other than as XML allows
// (etreeutils refuses those), prefixes in use but not declared, processing instructions and
// declarations inside the element (the profile refuses them before), more than etreeutils'
// traversal limit of elements under SignedInfo, and the attribute order above.
// TestCanonicalStream and FuzzCanonicalStream hold it to etreeutils.

// errFallback reports an input the stream does not reproduce; etreeutils must canonicalize it.
var errFallback = errors.New("dsig: canonicalize with etreeutils")

// nsXMLNS is bound to the prefix xmlns in every document, and cannot be declared.
const nsXMLNS = "http://www.w3.org/2000/xmlns/"

// detachLimit is etreeutils' traversal limit: NSDetatch refuses a subtree of more elements.
const detachLimit = 1000

// binding is one namespace declaration: prefix "" is the default namespace.
type binding struct{ prefix, uri string }

// defaultBindings are etreeutils' NewDefaultNSContext, with which both the namespaces in scope
// and those already rendered start.
var defaultBindings = []binding{{"", nsXML}, {"xml", nsXML}, {"xmlns", nsXMLNS}}

// lookup returns the innermost binding of prefix in stack.
func lookup(stack []binding, prefix string) (string, bool) {
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i].prefix == prefix {
			return stack[i].uri, true
		}
	}
	return "", false
}

// c14nBufSize is how much canonical output is gathered before it is written to the hash.
const c14nBufSize = 4096

// canonicalizer streams canonical forms. It keeps its stacks and buffer between uses (in
// c14nPool) so that canonicalizing a message allocates nothing.
type canonicalizer struct {
	w        io.Writer
	buf      []byte
	scope    []binding // the declarations in scope, innermost last
	rendered []binding // the declarations output ancestors rendered, innermost last
	attrs    []etree.Attr
	used     []string
	sha      hash.Hash

	// keepTop, when set, makes element record the sorted attributes of the top element.
	keepTop bool
	top     []etree.Attr
}

var c14nPool = sync.Pool{New: func() any {
	return &canonicalizer{buf: make([]byte, 0, c14nBufSize), sha: sha256.New()}
}}

func getCanonicalizer(w io.Writer) *canonicalizer {
	c := c14nPool.Get().(*canonicalizer)
	c.w = w
	c.buf = c.buf[:0]
	c.scope = append(c.scope[:0], defaultBindings...)
	c.rendered = append(c.rendered[:0], defaultBindings...)
	c.keepTop, c.top = false, nil
	return c
}

func (c *canonicalizer) release() {
	c.w = nil
	c.top = nil
	clear(c.attrs[:cap(c.attrs)]) // drop references to the document
	clear(c.scope[:cap(c.scope)])
	clear(c.rendered[:cap(c.rendered)])
	clear(c.used[:cap(c.used)])
	if cap(c.attrs) > 256 || cap(c.scope) > 256 || cap(c.rendered) > 256 {
		return // a hostile document's; let it go
	}
	c14nPool.Put(c)
}

// digestExcC14N returns the SHA-256 of el's exclusive canonical form, without its child at
// index skip (-1: none), or errFallback. With inherit, el is canonicalized as NSDetatch then
// TransformExcC14n do it, with the namespaces declared by its ancestors in scope (for
// SignedInfo); without, as TransformExcC14n does on a copy of el (for the root). With top,
// it also returns el's attributes as they are in the canonical form, sorted (for VerifyRoot).
func digestExcC14N(el *etree.Element, skip int, inherit, top bool) (sum [sha256.Size]byte, attrs []etree.Attr, err error) {
	c := getCanonicalizer(nil)
	defer c.release()
	c.sha.Reset()
	c.w = c.sha
	c.keepTop = top
	if err := c.canonicalize(el, skip, inherit); err != nil {
		return sum, nil, err
	}
	c.sha.Sum(sum[:0])
	return sum, c.top, nil
}

// writeExcC14N writes el's exclusive canonical form to w, as digestExcC14N hashes it.
func writeExcC14N(w io.Writer, el *etree.Element, skip int, inherit bool) error {
	c := getCanonicalizer(w)
	defer c.release()
	return c.canonicalize(el, skip, inherit)
}

func (c *canonicalizer) canonicalize(el *etree.Element, skip int, inherit bool) error {
	if inherit {
		if countElements(el, detachLimit+1) > detachLimit {
			return errFallback
		}
		if err := c.declareAncestors(el.Parent()); err != nil {
			return err
		}
	}
	if err := c.element(el, skip); err != nil {
		return err
	}
	return c.flush()
}

// declareAncestors pushes the declarations of el and its ancestors, outermost first, as
// etreeutils' NSBuildParentContext gathers them.
func (c *canonicalizer) declareAncestors(el *etree.Element) error {
	if el == nil {
		return nil
	}
	if err := c.declareAncestors(el.Parent()); err != nil {
		return err
	}
	return c.declare(el)
}

// countElements counts el and its descendant elements, up to max.
func countElements(el *etree.Element, max int) int {
	n := 1
	for _, t := range el.Child {
		if n >= max {
			break
		}
		if e, ok := t.(*etree.Element); ok {
			n += countElements(e, max-n)
		}
	}
	return n
}

// declare pushes el's namespace declarations onto the scope, as etreeutils' SubContext does.
func (c *canonicalizer) declare(el *etree.Element) error {
	for _, a := range el.Attr {
		switch {
		case a.Space == "xmlns":
			if a.Key == "xml" && a.Value != nsXML || a.Key == "xmlns" {
				return errFallback
			}
			c.scope = append(c.scope, binding{a.Key, a.Value})
		case a.Space == "" && a.Key == "xmlns":
			if a.Value == nsXMLNS {
				return errFallback
			}
			c.scope = append(c.scope, binding{"", a.Value})
		}
	}
	return nil
}

// isDecl reports whether a is a namespace declaration, as etreeutils sees them.
func isDecl(a *etree.Attr) bool {
	return a.Space == "xmlns" || a.Space == "" && a.Key == "xmlns"
}

// attrRank orders a canonical element's attributes as etreeutils' SortedAttrs does: the
// default namespace declaration, prefix declarations, attributes without a prefix, then
// attributes with one; within each rank, by local name (by prefix for declarations).
func attrRank(a *etree.Attr) int {
	switch {
	case a.Space == "" && a.Key == "xmlns":
		return 0
	case a.Space == "xmlns":
		return 1
	case a.Space == "":
		return 2
	}
	return 3
}

func attrLess(a, b *etree.Attr) bool {
	if ra, rb := attrRank(a), attrRank(b); ra != rb {
		return ra < rb
	}
	return a.Key < b.Key
}

func (c *canonicalizer) element(el *etree.Element, skip int) error {
	scopeMark, renderedMark, attrsMark, usedMark := len(c.scope), len(c.rendered), len(c.attrs), len(c.used)
	if err := c.declare(el); err != nil {
		return err
	}

	// The prefixes el visibly utilizes, and its attributes but the declarations.
	c.used = append(c.used, el.Space)
	for i := range el.Attr {
		a := &el.Attr[i]
		if isDecl(a) {
			continue
		}
		c.attrs = append(c.attrs, *a)
		if a.Space != "" && !has(c.used[usedMark:], a.Space) {
			c.used = append(c.used, a.Space)
		}
	}
	// Render those not rendered with the same value by an output ancestor.
	for _, prefix := range c.used[usedMark:] {
		uri, ok := lookup(c.scope, prefix)
		if !ok {
			return errFallback
		}
		if r, ok := lookup(c.rendered, prefix); ok && r == uri {
			continue
		}
		c.rendered = append(c.rendered, binding{prefix, uri})
		if prefix == "" {
			c.attrs = append(c.attrs, etree.Attr{Key: "xmlns", Value: uri})
		} else {
			c.attrs = append(c.attrs, etree.Attr{Space: "xmlns", Key: prefix, Value: uri})
		}
	}
	c.used = c.used[:usedMark]

	attrs := c.attrs[attrsMark:]
	for i := 1; i < len(attrs); i++ { // insertion sort: elements have few attributes
		for j := i; j > 0 && attrLess(&attrs[j], &attrs[j-1]); j-- {
			attrs[j], attrs[j-1] = attrs[j-1], attrs[j]
		}
	}
	for i := 1; i < len(attrs); i++ {
		if attrRank(&attrs[i]) >= 2 && attrRank(&attrs[i]) == attrRank(&attrs[i-1]) && attrs[i].Key == attrs[i-1].Key {
			// Duplicates (the profile refuses them), or prefixed attributes that
			// etreeutils orders by a URI it looks up among the attributes, its own way.
			return errFallback
		}
	}
	if c.keepTop {
		c.keepTop = false
		c.top = append([]etree.Attr(nil), attrs...)
	}

	c.buf = append(c.buf, '<')
	c.tag(el)
	for i := range attrs {
		a := &attrs[i]
		c.buf = append(c.buf, ' ')
		if a.Space != "" {
			c.writeString(a.Space)
			c.buf = append(c.buf, ':')
		}
		c.writeString(a.Key)
		c.buf = append(c.buf, '=', '"')
		c.escape(a.Value, true)
		c.buf = append(c.buf, '"')
	}
	c.buf = append(c.buf, '>')
	clear(attrs)
	c.attrs = c.attrs[:attrsMark]

	for i, t := range el.Child {
		if i == skip {
			continue
		}
		switch t := t.(type) {
		case *etree.Element:
			if err := c.element(t, -1); err != nil {
				return err
			}
		case *etree.CharData:
			if t.IsCData() {
				c.writeString("<![CDATA[")
				c.writeString(strings.ReplaceAll(t.Data, "]]>", "]]]]><![CDATA[>"))
				c.writeString("]]>")
			} else {
				c.escape(t.Data, false)
			}
		case *etree.Comment:
			// Exclusive c14n without comments drops them.
		default:
			return errFallback
		}
		if len(c.buf) >= c14nBufSize/2 {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}

	c.buf = append(c.buf, '<', '/')
	c.tag(el)
	c.buf = append(c.buf, '>')
	c.scope = c.scope[:scopeMark]
	c.rendered = c.rendered[:renderedMark]
	return nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *canonicalizer) tag(el *etree.Element) {
	if el.Space != "" {
		c.writeString(el.Space)
		c.buf = append(c.buf, ':')
	}
	c.writeString(el.Tag)
}

func (c *canonicalizer) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// writeString appends s to the buffer, writing the buffer out when s does not fit.
func (c *canonicalizer) writeString(s string) {
	for len(s) > 0 {
		if len(c.buf) == cap(c.buf) {
			_ = c.flush() // only a test's writer fails, and it does not
		}
		n := copy(c.buf[len(c.buf):cap(c.buf)], s)
		c.buf = c.buf[:len(c.buf)+n]
		s = s[n:]
	}
}

// escText and escAttr mark the ASCII bytes that etree's canonical escaping changes in text and
// in attribute values: the markup characters and control characters, which are either
// escaped or (outside XML's Char production) replaced by U+FFFD.
var escText, escAttr = escapeTables()

func escapeTables() (text, attr [utf8.RuneSelf]bool) {
	for b := range utf8.RuneSelf {
		ctl := b < 0x20 && b != '\t' && b != '\n' && b != '\r'
		text[b] = ctl || b == '&' || b == '<' || b == '>' || b == '\r'
		attr[b] = ctl || b == '&' || b == '<' || b == '"' || b == '\t' || b == '\n' || b == '\r'
	}
	return text, attr
}

// escape writes s as etree's escapeString writes it in the canonical modes (escapeCanonicalAttr
// for attribute values, escapeCanonicalText for text).
func (c *canonicalizer) escape(s string, attr bool) {
	table := &escText
	if attr {
		table = &escAttr
	}
	last := 0
	for i := 0; i < len(s); {
		b := s[i]
		var esc string
		width := 1
		if b < utf8.RuneSelf {
			if !table[b] {
				i++
				continue
			}
			switch b {
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '"':
				esc = "&quot;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default:
				esc = "\uFFFD"
			}
		} else {
			var r rune
			r, width = utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && width == 1 || !isInCharacterRange(r) {
				esc = "\uFFFD"
			} else {
				i += width
				continue
			}
		}
		c.writeString(s[last:i])
		c.writeString(esc)
		i += width
		last = i
	}
	c.writeString(s[last:])
}

// isInCharacterRange is etree's test for XML's Char production.
func isInCharacterRange(r rune) bool {
	return r == 0x09 ||
		r == 0x0A ||
		r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// digestEtreeutils is the path digestExcC14N reproduces, for the inputs it leaves to
// etreeutils: a canonical copy of el (detached with the namespaces in scope when inherit),
// without its child at index skip, and the SHA-256 of that copy written with canonicalWrite.
func digestEtreeutils(el *etree.Element, skip int, inherit bool) ([sha256.Size]byte, *etree.Element, error) {
	var sum [sha256.Size]byte
	cp, err := canonicalCopy(el, skip, inherit)
	if err != nil {
		return sum, nil, err
	}
	return canonicalHash(cp), cp, nil
}

// canonicalCopy returns the exclusive canonical form of el as a new tree, as etreeutils makes
// it: detached with the namespaces in scope (NSBuildParentContext, NSDetatch) when inherit,
// a plain copy otherwise; without its child at index skip; then TransformExcC14n.
func canonicalCopy(el *etree.Element, skip int, inherit bool) (*etree.Element, error) {
	var cp *etree.Element
	if inherit {
		ctx, err := etreeutils.NSBuildParentContext(el)
		if err != nil {
			return nil, err
		}
		if cp, err = etreeutils.NSDetatch(ctx, el); err != nil {
			return nil, err
		}
	} else {
		cp = el.Copy()
	}
	if skip >= 0 {
		if skip >= len(cp.Child) {
			return nil, errors.New("dsig: no child to leave out at that index")
		}
		cp.RemoveChildAt(skip)
	}
	if err := etreeutils.TransformExcC14n(cp, "", false); err != nil {
		return nil, err
	}
	return cp, nil
}

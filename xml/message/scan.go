package message

import (
	"sync"
	"sync/atomic"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher/xml/internal/xmltok"
)

// This file holds Parse's fast path: xmltok's single pass over the strict subset of XML that
// exchange documents are written in, then the same etree tree as parseSlow (Check, then
// etree's parser, both on encoding/xml's RawToken) built from its tokens. It never refuses
// anything itself: on anything outside the subset (see xmltok), or anything parseSlow would
// refuse, it gives up (returns nil) and Parse runs parseSlow, whose error is the one
// returned. So it only ever has to be sure of one thing: whatever it accepts, parseSlow
// accepts too, as the same tree.

// fastParses counts the documents parseFast built. It is the hook by which a test makes
// sure exchange documents do take the fast path: the speed-up could otherwise vanish silently.
var fastParses atomic.Uint64

// tokenizers keeps parseFast's token buffers from one document to the next.
var tokenizers = sync.Pool{New: func() any { return new(xmltok.Tokenizer) }}

// parseFast returns the document parseSlow would return for b, or nil when b is outside the
// subset xmltok takes or parseSlow would refuse it.
func parseFast(b []byte, lim Limits) *etree.Document {
	t := tokenizers.Get().(*xmltok.Tokenizer)
	defer func() {
		if t.Release() {
			tokenizers.Put(t)
		}
	}()
	if !t.Tokenize(b, xmltok.Limits{MaxBytes: lim.MaxBytes, MaxDepth: lim.MaxDepth, MaxElements: lim.MaxElements}) {
		return nil
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{Permissive: false, PreserveCData: true}
	if t.Decl != "" {
		doc.CreateProcInst("xml", t.Decl)
	}
	if t.Before.S < t.Before.E {
		appendCharData(&doc.Element, string(b[t.Before.S:t.Before.E]))
	}
	var stack [16]*etree.Element
	open := append(stack[:0], &doc.Element)
	for i := range t.Toks {
		tok := &t.Toks[i]
		switch tok.Kind {
		case xmltok.Start:
			el := open[len(open)-1].CreateElement(string(b[tok.S:tok.E]))
			if tok.A1 > tok.A0 {
				el.Attr = make([]etree.Attr, 0, tok.A1-tok.A0)
				for _, a := range t.Attrs[tok.A0:tok.A1] {
					el.CreateAttr(string(b[a.S:a.E]), string(t.Decode(a.VS, a.VE, a.Refs)))
				}
			}
			open = append(open, el)
		case xmltok.End:
			open = open[:len(open)-1]
		case xmltok.Text:
			appendCharData(open[len(open)-1], string(t.Decode(tok.S, tok.E, tok.Refs)))
		}
	}
	if t.After.S < t.After.E {
		appendCharData(&doc.Element, string(b[t.After.S:t.After.E]))
	}
	fastParses.Add(1)
	return doc
}

// appendCharData adds text to parent as etree's parser does: CreateText leaves the token's
// flags clear, SetData sets the white-space flag the parser would have set.
func appendCharData(parent *etree.Element, text string) {
	parent.CreateText(text).SetData(text)
}

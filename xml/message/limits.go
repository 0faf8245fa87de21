// Package message owns the exchange documents of namespace urn:evoucher:exchange:1 and their
// common envelope, and the limits every untrusted document must pass before it is parsed.
//
// Every document is one root element in that namespace with the attributes Id (an XML name,
// referenced by the signature), MessageId (a UUID, unique forever), Sender and Recipient
// (party ids: an operator id, a terminal id, or "center") and Created (RFC 3339 UTC), and one
// enveloped ds:Signature as its last child (package dsig). The documents:
//
//	CodeBatch     operator → center   Header (BatchId, Part, Parts, Product, FaceValue@currency,
//	                                  Count, TotalFaceValue, CodesDigest, LotCount,
//	                                  LotFaceValue, PurchaseOrder?) + xenc:EncryptedData whose
//	                                  plaintext is a Codes element (below)
//	BatchReceipt  center → operator   BatchId, Part, Status (accepted|duplicate), Accepted,
//	                                  Duplicate, BatchDigest, InReplyTo
//	PurchaseOrder center → operator   OrderId, Product, Quantity, Reason
//
// The plaintext of a CodeBatch is
//
//	<Codes xmlns="urn:evoucher:exchange:1" BatchId="…" Part="1" HeaderDigest="base64">
//	  <Code Serial="…" PIN="…" Expiry="2027-12-31"/> …
//	</Codes>
//
// XML Encryption 1.1 gives AES-GCM no additional authenticated data, so the header is bound to
// the ciphertext inside the authenticated plaintext: HeaderDigest is the SHA-256 of the
// header's fields (HeaderBinding), and BatchId and Part must match the header.
// CodesDigest is the SHA-256 of the lines "serial,pin,expiry\n" of the part, in order.
// The distribution documents between the center and terminals (Shipment, ShipmentAck,
// SalesReport, …) are listed in distribution.go.
// Examples of each document are in testdata/ (Shipment.xml unsigned, its key shares stand-ins).
//
// The package never decrypts or verifies: it builds and reads documents for dsig and xenc.
package message

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"

	"github.com/beevik/etree"

	"github.com/evoucher/evoucher"
)

// NS is the namespace of every exchange document.
const NS = "urn:evoucher:exchange:1"

// Limits bound what an untrusted document may cost before it is parsed.
type Limits struct {
	MaxBytes    int // whole document
	MaxDepth    int // element nesting
	MaxElements int // elements in all
}

// DefaultLimits fit a CodeBatch part of 100,000 codes (the codes travel encrypted, so a part
// is a handful of elements and one large base64 text).
var DefaultLimits = Limits{MaxBytes: 32 << 20, MaxDepth: 24, MaxElements: 10_000}

func invalid(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, reason, format, args...)
}

// Check scans b without building anything and refuses it when it is larger, deeper or has
// more elements than lim allows, or holds a DTD, an entity reference other than XML's five, a
// processing instruction other than the XML declaration, or a comment.
func Check(b []byte, lim Limits) error {
	if len(b) > lim.MaxBytes {
		return invalid("too_large", "document of %d bytes exceeds the limit of %d bytes", len(b), lim.MaxBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.Entity = nil // only the five predefined entities and character references
	depth, elems, roots, first := 0, 0, 0, true
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("malformed", "document is not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if roots++; roots > 1 {
					return invalid("malformed", "document has more than one root element")
				}
			}
			depth++
			elems++
			if depth > lim.MaxDepth {
				return invalid("too_deep", "document nests deeper than %d elements", lim.MaxDepth)
			}
			if elems > lim.MaxElements {
				return invalid("too_many_elements", "document has more than %d elements", lim.MaxElements)
			}
		case xml.EndElement:
			depth--
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return invalid("processing_instruction", "document contains a processing instruction <?%s?>: none are accepted", t.Target)
			}
		case xml.Directive:
			return invalid("dtd", "document contains a DTD or declaration: none are accepted")
		case xml.Comment:
			return invalid("comment", "document contains a comment: none are accepted")
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return invalid("malformed", "text outside the root element")
			}
		}
		first = false
	}
	if elems == 0 {
		return invalid("malformed", "document has no root element")
	}
	return nil
}

// Parse checks b against lim and parses it. It returns invalid errors naming the reason.
//
// Clean documents, as every exchange document is, take a single-pass scanner (parseFast);
// anything it does not handle, and every document that is refused, goes through parseSlow,
// so the document or error returned is always the one parseSlow returns.
func Parse(b []byte, lim Limits) (*etree.Document, error) {
	if doc := parseFast(b, lim); doc != nil {
		return doc, nil
	}
	return parseSlow(b, lim)
}

// parseSlow is Check followed by etree's parser: encoding/xml twice. It is the reference for
// what Parse returns.
func parseSlow(b []byte, lim Limits) (*etree.Document, error) {
	if err := Check(b, lim); err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{Permissive: false, PreserveCData: true}
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, invalid("malformed", "document cannot be parsed: %v", err)
	}
	if doc.Root() == nil {
		return nil, invalid("malformed", "document has no root element")
	}
	return doc, nil
}

// child returns the only child element named tag in the exchange namespace.
func child(el *etree.Element, tag string) (*etree.Element, error) {
	var found *etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == NS {
			if found != nil {
				return nil, invalid("malformed", "%s has more than one %s", el.Tag, tag)
			}
			found = c
		}
	}
	if found == nil {
		return nil, invalid("malformed", "%s has no %s", el.Tag, tag)
	}
	return found, nil
}

func childText(el *etree.Element, tag string) (string, error) {
	c, err := child(el, tag)
	if err != nil {
		return "", err
	}
	if len(c.ChildElements()) > 0 {
		return "", invalid("malformed", "%s must hold text only", tag)
	}
	return c.Text(), nil
}

// optionalChildText is childText for an element that may be absent: "" then.
func optionalChildText(el *etree.Element, tag string) (string, error) {
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == NS {
			return childText(el, tag)
		}
	}
	return "", nil
}

package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// BatchHeader is the clear part of a CodeBatch: what the operator declares about the codes.
type BatchHeader struct {
	BatchID        string
	Part, Parts    int
	Product        string
	FaceValue      int64 // minor units, per code
	Currency       string
	Count          int      // codes in this part
	TotalFaceValue int64    // Count × FaceValue
	CodesDigest    [32]byte // SHA-256 of the part's "serial,pin,expiry\n" lines
	LotCount       int64    // codes in the whole lot (all parts)
	LotFaceValue   int64
	PurchaseOrder  string // the order this lot answers, if any
}

// CodeBatch is a parsed CodeBatch document: envelope, header and the encrypted codes.
type CodeBatch struct {
	Envelope
	Header    BatchHeader
	Encrypted *etree.Element // the xenc:EncryptedData holding a Codes element
}

// HeaderBinding is the digest that binds a header (and its sender) to the encrypted codes: it
// is carried as HeaderDigest inside the encrypted Codes element.
func HeaderBinding(sender string, h BatchHeader) [32]byte {
	s := strings.Join([]string{"evoucher-codebatch-v1", sender, h.BatchID, strconv.Itoa(h.Part), strconv.Itoa(h.Parts),
		h.Product, strconv.FormatInt(h.FaceValue, 10), h.Currency, strconv.Itoa(h.Count),
		strconv.FormatInt(h.TotalFaceValue, 10), base64.StdEncoding.EncodeToString(h.CodesDigest[:]),
		strconv.FormatInt(h.LotCount, 10), strconv.FormatInt(h.LotFaceValue, 10), h.PurchaseOrder}, "\n")
	return sha256.Sum256([]byte(s))
}

// BuildCodeBatch returns an unsigned CodeBatch document.
func BuildCodeBatch(e Envelope, h BatchHeader, encrypted *etree.Element) *etree.Document {
	doc, root := newRoot("CodeBatch", e)
	hd := root.CreateElement("Header")
	addText(hd, "BatchId", h.BatchID)
	part := hd.CreateElement("Part")
	part.CreateAttr("Index", strconv.Itoa(h.Part))
	part.CreateAttr("Of", strconv.Itoa(h.Parts))
	addText(hd, "Product", h.Product)
	addText(hd, "FaceValue", strconv.FormatInt(h.FaceValue, 10)).CreateAttr("Currency", h.Currency)
	addText(hd, "Count", strconv.Itoa(h.Count))
	addText(hd, "TotalFaceValue", strconv.FormatInt(h.TotalFaceValue, 10))
	addText(hd, "CodesDigest", base64.StdEncoding.EncodeToString(h.CodesDigest[:]))
	addText(hd, "LotCount", strconv.FormatInt(h.LotCount, 10))
	addText(hd, "LotFaceValue", strconv.FormatInt(h.LotFaceValue, 10))
	if h.PurchaseOrder != "" {
		addText(hd, "PurchaseOrder", h.PurchaseOrder)
	}
	root.AddChild(encrypted)
	return doc
}

const xencNS = "http://www.w3.org/2001/04/xmlenc#"

// ReadCodeBatch reads a verified CodeBatch root element. It checks the header's arithmetic
// (TotalFaceValue = Count × FaceValue, part within parts) and returns invalid errors naming the
// field at fault.
func ReadCodeBatch(root *etree.Element) (CodeBatch, error) {
	env, err := ReadEnvelope(root)
	if err != nil {
		return CodeBatch{}, err
	}
	if env.Type != "CodeBatch" {
		return CodeBatch{}, invalid("malformed", "document is a %s, not a CodeBatch", env.Type)
	}
	hd, err := child(root, "Header")
	if err != nil {
		return CodeBatch{}, err
	}
	var h BatchHeader
	var errs []error
	text := func(tag string) string {
		s, err := childText(hd, tag)
		errs = append(errs, err)
		return s
	}
	integer := func(tag string) int64 {
		s := text(tag)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, invalid("malformed", "%s %q is not a positive integer", tag, s))
		}
		return n
	}
	h.BatchID = text("BatchId")
	h.Product = text("Product")
	h.FaceValue = integer("FaceValue")
	h.Count = int(integer("Count"))
	h.TotalFaceValue = integer("TotalFaceValue")
	h.LotCount = integer("LotCount")
	h.LotFaceValue = integer("LotFaceValue")
	if po, err := child(hd, "PurchaseOrder"); err == nil {
		h.PurchaseOrder = po.Text()
	}
	if fv, err := child(hd, "FaceValue"); err == nil {
		h.Currency = fv.SelectAttrValue("Currency", "")
	}
	digest, err := base64.StdEncoding.DecodeString(text("CodesDigest"))
	if err != nil || len(digest) != 32 {
		errs = append(errs, invalid("malformed", "CodesDigest is not a base64 SHA-256"))
	}
	copy(h.CodesDigest[:], digest)
	if part, err := child(hd, "Part"); err != nil {
		errs = append(errs, err)
	} else {
		h.Part, _ = strconv.Atoi(part.SelectAttrValue("Index", ""))
		h.Parts, _ = strconv.Atoi(part.SelectAttrValue("Of", ""))
	}
	if err := errors.Join(errs...); err != nil {
		// Report the first: they are all invalid errors.
		for _, e := range errs {
			if e != nil {
				return CodeBatch{}, e
			}
		}
	}
	switch {
	case !partyPattern.MatchString(h.BatchID):
		return CodeBatch{}, invalid("malformed", "BatchId %q is not valid", h.BatchID)
	case !partyPattern.MatchString(h.Product):
		return CodeBatch{}, invalid("malformed", "Product %q is not valid", h.Product)
	case len(h.Currency) != 3 || strings.ToUpper(h.Currency) != h.Currency:
		return CodeBatch{}, invalid("malformed", "currency %q is not an ISO 4217 code", h.Currency)
	case h.Parts < 1 || h.Part < 1 || h.Part > h.Parts || h.Parts > 10_000:
		return CodeBatch{}, invalid("malformed", "part %d of %d is not valid", h.Part, h.Parts)
	case h.TotalFaceValue/h.FaceValue != int64(h.Count) || h.TotalFaceValue%h.FaceValue != 0:
		return CodeBatch{}, invalid("control_totals", "TotalFaceValue %d is not Count %d × FaceValue %d", h.TotalFaceValue, h.Count, h.FaceValue)
	case h.LotFaceValue/h.FaceValue != h.LotCount || h.LotFaceValue%h.FaceValue != 0:
		return CodeBatch{}, invalid("control_totals", "LotFaceValue %d is not LotCount %d × FaceValue %d", h.LotFaceValue, h.LotCount, h.FaceValue)
	case int64(h.Count) > h.LotCount:
		return CodeBatch{}, invalid("control_totals", "part Count %d exceeds LotCount %d", h.Count, h.LotCount)
	}
	var enc *etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "EncryptedData" && c.NamespaceURI() == xencNS {
			if enc != nil {
				return CodeBatch{}, invalid("malformed", "CodeBatch has more than one EncryptedData")
			}
			enc = c
		}
	}
	if enc == nil {
		return CodeBatch{}, invalid("malformed", "CodeBatch has no EncryptedData")
	}
	return CodeBatch{Envelope: env, Header: h, Encrypted: enc}, nil
}

// PIN is a code's secret. It prints as [redacted]; Zero overwrites it.
type PIN []byte

// Format hides the PIN from every fmt verb.
func (PIN) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// LogValue hides the PIN from slog.
func (PIN) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Zero overwrites the PIN's bytes.
func (p PIN) Zero() { clear(p) }

// Code is one recharge code in clear: only ever in memory, between decryption and
// re-encryption.
type Code struct {
	Serial string
	PIN    PIN
	Expiry time.Time // a date, UTC midnight
}

// CodesWriter builds the plaintext Codes element of one part and its CodesDigest.
type CodesWriter struct {
	buf    bytes.Buffer
	digest hash.Hash
	count  int
}

// NewCodesWriter starts the plaintext of part of batchID.
func NewCodesWriter() *CodesWriter {
	return &CodesWriter{digest: sha256.New()}
}

// Add appends one code.
func (w *CodesWriter) Add(c Code) {
	exp := c.Expiry.Format(time.DateOnly)
	w.buf.WriteString(`<Code Serial="`)
	_ = xml.EscapeText(&w.buf, []byte(c.Serial))
	w.buf.WriteString(`" PIN="`)
	_ = xml.EscapeText(&w.buf, c.PIN)
	w.buf.WriteString(`" Expiry="` + exp + "\"/>\n")
	w.digest.Write([]byte(c.Serial + ","))
	w.digest.Write(c.PIN)
	w.digest.Write([]byte("," + exp + "\n"))
	w.count++
}

// Count is the number of codes added.
func (w *CodesWriter) Count() int { return w.count }

// Digest is the CodesDigest of the codes added.
func (w *CodesWriter) Digest() [32]byte {
	var d [32]byte
	copy(d[:], w.digest.Sum(nil))
	return d
}

// Finish returns the Codes element bound to the header; the caller encrypts it and then
// zeroes it with clear().
func (w *CodesWriter) Finish(sender string, h BatchHeader) []byte {
	b := HeaderBinding(sender, h)
	var out bytes.Buffer
	out.Grow(w.buf.Len() + 200)
	fmt.Fprintf(&out, `<Codes xmlns="%s" BatchId="%s" Part="%d" HeaderDigest="%s">`+"\n", NS, h.BatchID, h.Part, base64.StdEncoding.EncodeToString(b[:]))
	out.Write(w.buf.Bytes())
	out.WriteString("</Codes>")
	clear(w.buf.Bytes())
	return out.Bytes()
}

// maxCodeField bounds serials and PINs.
const maxCodeField = 64

// ReadCodes parses the decrypted plaintext of part h of a batch from sender, calling fn for
// each code in order (the Code's PIN aliases a buffer reused for the next code: fn must copy
// or encrypt it before returning). It checks that the Codes element is bound to this header
// and that the count and CodesDigest match; invalid errors name what does not.
func ReadCodes(plaintext []byte, sender string, h BatchHeader, fn func(Code) error) error {
	digest := sha256.New()
	count := 0
	err := readCodesElement(plaintext, func(t xml.StartElement) error { return checkBinding(t, sender, h) }, func(c Code) error {
		digest.Write([]byte(c.Serial + ","))
		digest.Write(c.PIN)
		digest.Write([]byte("," + c.Expiry.Format(time.DateOnly) + "\n"))
		count++
		if count > h.Count {
			return invalid("control_totals", "the part holds more codes than its Count %d", h.Count)
		}
		return fn(c)
	})
	if err != nil {
		return err
	}
	if count != h.Count {
		return invalid("control_totals", "the part holds %d codes, its Count says %d", count, h.Count)
	}
	if !bytes.Equal(digest.Sum(nil), h.CodesDigest[:]) {
		return invalid("control_totals", "the codes do not match the CodesDigest of the header")
	}
	return nil
}

// readCodesElement parses a Codes element: bound checks its start tag, fn gets each Code.
func readCodesElement(plaintext []byte, bound func(xml.StartElement) error, fn func(Code) error) error {
	d := xml.NewDecoder(bytes.NewReader(plaintext))
	d.Strict = true
	d.Entity = nil
	count, depth := 0, 0
	pin := make(PIN, 0, maxCodeField)
	defer pin.Zero()
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("malformed_codes", "decrypted codes are not well-formed XML")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local == "Codes":
				if err := bound(t); err != nil {
					return err
				}
			case depth == 2 && t.Name.Local == "Code":
				c, err := readCode(t, pin[:0])
				if err != nil {
					return fmt.Errorf("code %d: %w", count+1, err)
				}
				pin = c.PIN
				count++
				if err := fn(c); err != nil {
					return err
				}
			default:
				return invalid("malformed_codes", "unexpected element %s in the decrypted codes", t.Name.Local)
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return invalid("malformed_codes", "unexpected text in the decrypted codes")
			}
		default:
			return invalid("malformed_codes", "decrypted codes hold something other than elements")
		}
	}
	if count == 0 {
		return invalid("malformed_codes", "no codes")
	}
	return nil
}

func checkBinding(t xml.StartElement, sender string, h BatchHeader) error {
	want := HeaderBinding(sender, h)
	var batch, part, hd string
	for _, a := range t.Attr {
		switch a.Name.Local {
		case "BatchId":
			batch = a.Value
		case "Part":
			part = a.Value
		case "HeaderDigest":
			hd = a.Value
		}
	}
	if batch != h.BatchID || part != strconv.Itoa(h.Part) || hd != base64.StdEncoding.EncodeToString(want[:]) {
		return invalid("header_mismatch", "the encrypted codes belong to another header (batch %q part %q): the header was altered or the codes moved", batch, part)
	}
	return nil
}

func readCode(t xml.StartElement, pin PIN) (Code, error) {
	var c Code
	var haveSerial, havePIN, haveExp bool
	for _, a := range t.Attr {
		switch a.Name.Local {
		case "Serial":
			c.Serial, haveSerial = a.Value, true
		case "PIN":
			c.PIN, havePIN = append(pin, a.Value...), true
		case "Expiry":
			exp, err := time.Parse(time.DateOnly, a.Value)
			if err != nil {
				return Code{}, invalid("bad_code", "Expiry %q is not a date", a.Value)
			}
			c.Expiry, haveExp = exp, true
		default:
			return Code{}, invalid("bad_code", "unexpected attribute %s", a.Name.Local)
		}
	}
	switch {
	case !haveSerial || !havePIN || !haveExp:
		return Code{}, invalid("bad_code", "a Code needs Serial, PIN and Expiry")
	case len(c.Serial) == 0 || len(c.Serial) > maxCodeField || len(c.PIN) == 0 || len(c.PIN) > maxCodeField:
		return Code{}, invalid("bad_code", "serial %q or its PIN is empty or longer than %d characters", c.Serial, maxCodeField)
	}
	return c, nil
}

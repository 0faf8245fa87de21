package message

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// The distribution documents, center ↔ terminal:
//
//	Shipment      center → terminal   ShipmentId, Retailer, RetailerName? (the shop's name for its
//	                                  tickets, at most MaxRetailerName characters; absent from
//	                                  shipments of older centers), Product (Operator, Code, FaceValue,
//	                                  Currency), RefillTemplate, KeyShares (TerminalShare and one
//	                                  VendorShare per active card, each an xenc:EncryptedKey of a
//	                                  32-byte share; the shipment key is their XOR), Codes: a line
//	                                  per code, "serial expiry base64(IV ‖ AES-256-GCM(PIN) ‖ tag)"
//	                                  under the shipment key, AAD ShipmentAAD(shipment, serial)
//	ShipmentAck   terminal → center   ShipmentId, Count, SerialsDigest
//	SalesReport   terminal → center   Seq (gap-free per terminal), Sales: a line per sale,
//	                                  "serial ticket vendor time reprints", Stock* (Operator,
//	                                  Product, Count)
//
// Repeated items travel as lines of one element, serials and tickets path-escaped: the
// signature library refuses documents of more than about a thousand elements.
//	StockOrder    terminal → center   Operator, Product, Quantity
//	StockReturn   terminal → center   ShipmentId, and an xenc:EncryptedData to the center holding
//	                                  a Codes element (as in a CodeBatch) of the codes handed back
//	Receipt       center → terminal   InReplyTo, Status, Detail: the answer to an ack, report
//	                                  or return

// ShipmentProduct is what a shipment's codes are.
type ShipmentProduct struct {
	Operator, Code string
	FaceValue      int64
	Currency       string
}

// SealedCode is one code of a shipment: its PIN sealed under the shipment key.
type SealedCode struct {
	Serial string
	Expiry time.Time
	Sealed []byte // IV ‖ ciphertext ‖ tag
}

// Shipment is stock sent to one terminal.
type Shipment struct {
	Envelope
	ShipmentID     string
	Retailer       string
	RetailerName   string // the shop's name as its tickets show it; "" when the center sent none
	Product        ShipmentProduct
	RefillTemplate string
	TerminalShare  *etree.Element            // xenc:EncryptedKey to the terminal
	VendorShares   map[string]*etree.Element // vendor id → xenc:EncryptedKey to its card
	Codes          []SealedCode
}

// MaxRetailerName bounds a Shipment's RetailerName, in characters: a ticket prints it on two
// lines at most.
const MaxRetailerName = 64

// ShipmentAAD is the additional data a shipment's PIN ciphertext is bound to.
func ShipmentAAD(shipmentID, serial string) []byte {
	return []byte("evoucher-shipment-v1|" + shipmentID + "|" + serial)
}

// SerialsDigest is the SHA-256 of a shipment's serials, one per line, in order; a
// ShipmentAck carries it to prove what arrived.
func SerialsDigest(serials []string) [32]byte {
	h := sha256.New()
	for _, s := range serials {
		h.Write([]byte(s + "\n"))
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// BuildShipment returns an unsigned Shipment document.
func BuildShipment(s Shipment) *etree.Document {
	doc, root := newRoot("Shipment", s.Envelope)
	addText(root, "ShipmentId", s.ShipmentID)
	addText(root, "Retailer", s.Retailer)
	if s.RetailerName != "" {
		addText(root, "RetailerName", s.RetailerName)
	}
	p := root.CreateElement("Product")
	p.CreateAttr("Operator", s.Product.Operator)
	p.CreateAttr("Code", s.Product.Code)
	p.CreateAttr("FaceValue", strconv.FormatInt(s.Product.FaceValue, 10))
	p.CreateAttr("Currency", s.Product.Currency)
	addText(root, "RefillTemplate", s.RefillTemplate)
	ks := root.CreateElement("KeyShares")
	ks.CreateElement("TerminalShare").AddChild(s.TerminalShare)
	for _, v := range sortedKeys(s.VendorShares) {
		vs := ks.CreateElement("VendorShare")
		vs.CreateAttr("Vendor", v)
		vs.AddChild(s.VendorShares[v])
	}
	// One element for all codes, a line per code: goxmldsig refuses documents of more than about
	// a thousand elements, and a shipment may hold many more codes.
	cs := root.CreateElement("Codes")
	cs.CreateAttr("Count", strconv.Itoa(len(s.Codes)))
	var b strings.Builder
	b.WriteByte('\n')
	for _, c := range s.Codes {
		b.WriteString(url.PathEscape(c.Serial) + " " + c.Expiry.Format(time.DateOnly) + " " + base64.StdEncoding.EncodeToString(c.Sealed) + "\n")
	}
	cs.SetText(b.String())
	return doc
}

// ReadShipment reads a verified Shipment root element.
func ReadShipment(root *etree.Element) (Shipment, error) {
	env, err := readTyped(root, "Shipment")
	if err != nil {
		return Shipment{}, err
	}
	s := Shipment{Envelope: env, VendorShares: map[string]*etree.Element{}}
	var errs [3]error
	s.ShipmentID, errs[0] = childText(root, "ShipmentId")
	s.Retailer, errs[1] = childText(root, "Retailer")
	s.RefillTemplate, errs[2] = childText(root, "RefillTemplate")
	if err := first(errs[:]...); err != nil {
		return Shipment{}, err
	}
	// Optional: shipments signed before the name travelled have none.
	if s.RetailerName, err = optionalChildText(root, "RetailerName"); err != nil {
		return Shipment{}, err
	}
	if utf8.RuneCountInString(s.RetailerName) > MaxRetailerName {
		return Shipment{}, invalid("malformed", "RetailerName is longer than %d characters", MaxRetailerName)
	}
	p, err := child(root, "Product")
	if err != nil {
		return Shipment{}, err
	}
	s.Product = ShipmentProduct{Operator: p.SelectAttrValue("Operator", ""), Code: p.SelectAttrValue("Code", ""),
		Currency: p.SelectAttrValue("Currency", "")}
	if s.Product.FaceValue, err = strconv.ParseInt(p.SelectAttrValue("FaceValue", ""), 10, 64); err != nil || s.Product.FaceValue <= 0 {
		return Shipment{}, invalid("malformed", "Product FaceValue is not a positive integer")
	}
	ks, err := child(root, "KeyShares")
	if err != nil {
		return Shipment{}, err
	}
	for _, c := range ks.ChildElements() {
		key := onlyChild(c)
		if key == nil || key.Tag != "EncryptedKey" {
			return Shipment{}, invalid("malformed", "a key share must hold one EncryptedKey")
		}
		switch c.Tag {
		case "TerminalShare":
			if s.TerminalShare != nil {
				return Shipment{}, invalid("malformed", "more than one TerminalShare")
			}
			s.TerminalShare = key
		case "VendorShare":
			v := c.SelectAttrValue("Vendor", "")
			if !partyPattern.MatchString(v) || s.VendorShares[v] != nil {
				return Shipment{}, invalid("malformed", "VendorShare for %q is not valid or repeated", v)
			}
			s.VendorShares[v] = key
		default:
			return Shipment{}, invalid("malformed", "unexpected %s in KeyShares", c.Tag)
		}
	}
	if s.TerminalShare == nil {
		return Shipment{}, invalid("malformed", "no TerminalShare")
	}
	cs, err := child(root, "Codes")
	if err != nil {
		return Shipment{}, err
	}
	if len(cs.ChildElements()) > 0 {
		return Shipment{}, invalid("malformed", "shipment Codes hold lines, not elements")
	}
	for _, line := range strings.Split(cs.Text(), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return Shipment{}, invalid("malformed", "a shipment code line is not valid")
		}
		serial, err0 := url.PathUnescape(f[0])
		exp, err1 := time.Parse(time.DateOnly, f[1])
		sealed, err2 := base64.StdEncoding.DecodeString(f[2])
		if err0 != nil || err1 != nil || err2 != nil || serial == "" || len(sealed) < 12+16+1 {
			return Shipment{}, invalid("malformed", "a shipment code line is not valid")
		}
		s.Codes = append(s.Codes, SealedCode{Serial: serial, Expiry: exp, Sealed: sealed})
	}
	if n, _ := strconv.Atoi(cs.SelectAttrValue("Count", "")); n != len(s.Codes) || n == 0 {
		return Shipment{}, invalid("control_totals", "the shipment holds %d codes, its Count says %d", len(s.Codes), n)
	}
	return s, nil
}

// ShipmentAck confirms a terminal received a shipment whole.
type ShipmentAck struct {
	Envelope
	ShipmentID    string
	Count         int
	SerialsDigest [32]byte
}

// BuildShipmentAck returns an unsigned ShipmentAck document.
func BuildShipmentAck(a ShipmentAck) *etree.Document {
	doc, root := newRoot("ShipmentAck", a.Envelope)
	addText(root, "ShipmentId", a.ShipmentID)
	addText(root, "Count", strconv.Itoa(a.Count))
	addText(root, "SerialsDigest", base64.StdEncoding.EncodeToString(a.SerialsDigest[:]))
	return doc
}

// ReadShipmentAck reads a verified ShipmentAck root element.
func ReadShipmentAck(root *etree.Element) (ShipmentAck, error) {
	env, err := readTyped(root, "ShipmentAck")
	if err != nil {
		return ShipmentAck{}, err
	}
	a := ShipmentAck{Envelope: env}
	var errs [3]error
	var count, digest string
	a.ShipmentID, errs[0] = childText(root, "ShipmentId")
	count, errs[1] = childText(root, "Count")
	digest, errs[2] = childText(root, "SerialsDigest")
	if err := first(errs[:]...); err != nil {
		return ShipmentAck{}, err
	}
	d, err := base64.StdEncoding.DecodeString(digest)
	if a.Count, _ = strconv.Atoi(count); a.Count <= 0 || err != nil || len(d) != 32 {
		return ShipmentAck{}, invalid("malformed", "ShipmentAck Count or SerialsDigest is not valid")
	}
	copy(a.SerialsDigest[:], d)
	return a, nil
}

// Sale is one ticket printed.
type Sale struct {
	Serial   string
	Ticket   string
	Vendor   string
	Time     time.Time
	Reprints int
}

// StockLevel is a terminal's count of one product, as it reports it.
type StockLevel struct {
	Operator, Product string
	Count             int
}

// SalesReport carries a terminal's sales since its previous report; Seq is gap-free per
// terminal.
type SalesReport struct {
	Envelope
	Seq   int64
	Sales []Sale
	Stock []StockLevel
}

// BuildSalesReport returns an unsigned SalesReport document.
func BuildSalesReport(r SalesReport) *etree.Document {
	doc, root := newRoot("SalesReport", r.Envelope)
	addText(root, "Seq", strconv.FormatInt(r.Seq, 10))
	// One element for all sales, a line per sale, as for shipment codes.
	var b strings.Builder
	b.WriteByte('\n')
	for _, s := range r.Sales {
		b.WriteString(url.PathEscape(s.Serial) + " " + url.PathEscape(s.Ticket) + " " + s.Vendor + " " +
			s.Time.UTC().Format(time.RFC3339Nano) + " " + strconv.Itoa(s.Reprints) + "\n")
	}
	addText(root, "Sales", b.String())
	for _, st := range r.Stock {
		el := root.CreateElement("Stock")
		el.CreateAttr("Operator", st.Operator)
		el.CreateAttr("Product", st.Product)
		el.CreateAttr("Count", strconv.Itoa(st.Count))
	}
	return doc
}

// maxReportLines bounds one report.
const maxReportLines = 100_000

// ReadSalesReport reads a verified SalesReport root element.
func ReadSalesReport(root *etree.Element) (SalesReport, error) {
	env, err := readTyped(root, "SalesReport")
	if err != nil {
		return SalesReport{}, err
	}
	r := SalesReport{Envelope: env}
	seq, err := childText(root, "Seq")
	if err != nil {
		return SalesReport{}, err
	}
	if r.Seq, err = strconv.ParseInt(seq, 10, 64); err != nil || r.Seq <= 0 {
		return SalesReport{}, invalid("malformed", "Seq %q is not a positive integer", seq)
	}
	sales, err := childText(root, "Sales")
	if err != nil {
		return SalesReport{}, err
	}
	for _, line := range strings.Split(sales, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			return SalesReport{}, invalid("malformed", "a sale line is not valid")
		}
		serial, err0 := url.PathUnescape(f[0])
		ticket, err1 := url.PathUnescape(f[1])
		t, err2 := time.Parse(time.RFC3339Nano, f[3])
		rp, err3 := strconv.Atoi(f[4])
		if err0 != nil || err1 != nil || err2 != nil || err3 != nil || rp < 0 || serial == "" || ticket == "" || !partyPattern.MatchString(f[2]) {
			return SalesReport{}, invalid("malformed", "a sale line is not valid")
		}
		r.Sales = append(r.Sales, Sale{Serial: serial, Ticket: ticket, Vendor: f[2], Time: t.UTC(), Reprints: rp})
		if len(r.Sales) > maxReportLines {
			return SalesReport{}, invalid("too_large", "a report holds at most %d sales", maxReportLines)
		}
	}
	for _, el := range root.ChildElements() {
		if el.Tag != "Stock" {
			continue
		}
		n, err := strconv.Atoi(el.SelectAttrValue("Count", ""))
		st := StockLevel{Operator: el.SelectAttrValue("Operator", ""), Product: el.SelectAttrValue("Product", ""), Count: n}
		if err != nil || n < 0 || st.Operator == "" || st.Product == "" || len(r.Stock) > 1000 {
			return SalesReport{}, invalid("malformed", "a Stock line is not valid")
		}
		r.Stock = append(r.Stock, st)
	}
	return r, nil
}

// StockOrder is a terminal asking for stock of one product.
type StockOrder struct {
	Envelope
	Operator, Product string
	Quantity          int
}

// BuildStockOrder returns an unsigned StockOrder document.
func BuildStockOrder(o StockOrder) *etree.Document {
	doc, root := newRoot("StockOrder", o.Envelope)
	addText(root, "Operator", o.Operator)
	addText(root, "Product", o.Product)
	addText(root, "Quantity", strconv.Itoa(o.Quantity))
	return doc
}

// ReadStockOrder reads a verified StockOrder root element.
func ReadStockOrder(root *etree.Element) (StockOrder, error) {
	env, err := readTyped(root, "StockOrder")
	if err != nil {
		return StockOrder{}, err
	}
	o := StockOrder{Envelope: env}
	var errs [3]error
	var q string
	o.Operator, errs[0] = childText(root, "Operator")
	o.Product, errs[1] = childText(root, "Product")
	q, errs[2] = childText(root, "Quantity")
	if err := first(errs[:]...); err != nil {
		return StockOrder{}, err
	}
	if o.Quantity, err = strconv.Atoi(q); err != nil || o.Quantity <= 0 || o.Quantity > 100_000 {
		return StockOrder{}, invalid("malformed", "Quantity %q is not between 1 and 100000", q)
	}
	return o, nil
}

// StockReturn hands unsold codes back to the center, re-encrypted to it.
type StockReturn struct {
	Envelope
	ShipmentID string
	Encrypted  *etree.Element // xenc:EncryptedData holding a Codes element
}

// BuildStockReturn returns an unsigned StockReturn document.
func BuildStockReturn(r StockReturn) *etree.Document {
	doc, root := newRoot("StockReturn", r.Envelope)
	addText(root, "ShipmentId", r.ShipmentID)
	root.AddChild(r.Encrypted)
	return doc
}

// ReadStockReturn reads a verified StockReturn root element.
func ReadStockReturn(root *etree.Element) (StockReturn, error) {
	env, err := readTyped(root, "StockReturn")
	if err != nil {
		return StockReturn{}, err
	}
	r := StockReturn{Envelope: env}
	if r.ShipmentID, err = childText(root, "ShipmentId"); err != nil {
		return StockReturn{}, err
	}
	for _, c := range root.ChildElements() {
		if c.Tag == "EncryptedData" && c.NamespaceURI() == xencNS {
			if r.Encrypted != nil {
				return StockReturn{}, invalid("malformed", "StockReturn has more than one EncryptedData")
			}
			r.Encrypted = c
		}
	}
	if r.Encrypted == nil {
		return StockReturn{}, invalid("malformed", "StockReturn has no EncryptedData")
	}
	return r, nil
}

// Receipt is the center's signed answer to an ack, a report or a return.
type Receipt struct {
	Envelope
	InReplyTo string
	Status    string // "accepted" or "duplicate"
	Detail    string
	LogIndex  uint64   // the answered document's entry in the exchange log
	LogProof  LogProof // its inclusion in the tree right after it was appended
}

// BuildReceipt returns an unsigned Receipt document.
func BuildReceipt(r Receipt) *etree.Document {
	doc, root := newRoot("Receipt", r.Envelope)
	addText(root, "InReplyTo", r.InReplyTo)
	addText(root, "Status", r.Status)
	addText(root, "Detail", r.Detail)
	addText(root, "LogIndex", strconv.FormatUint(r.LogIndex, 10))
	addLogProof(root, r.LogProof)
	return doc
}

// ReadReceipt reads a verified Receipt root element.
func ReadReceipt(root *etree.Element) (Receipt, error) {
	env, err := readTyped(root, "Receipt")
	if err != nil {
		return Receipt{}, err
	}
	r := Receipt{Envelope: env}
	var errs [3]error
	r.InReplyTo, errs[0] = childText(root, "InReplyTo")
	r.Status, errs[1] = childText(root, "Status")
	r.Detail, errs[2] = childText(root, "Detail")
	if li, err := childText(root, "LogIndex"); err == nil {
		r.LogIndex, _ = strconv.ParseUint(li, 10, 64)
	}
	p, err := readLogProof(root)
	if err != nil {
		return Receipt{}, err
	}
	r.LogProof = p
	return r, first(errs[:]...)
}

func readTyped(root *etree.Element, typ string) (Envelope, error) {
	env, err := ReadEnvelope(root)
	if err != nil {
		return Envelope{}, err
	}
	if env.Type != typ {
		return Envelope{}, invalid("malformed", "document is a %s, not a %s", env.Type, typ)
	}
	return env, nil
}

func first(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func onlyChild(el *etree.Element) *etree.Element {
	cs := el.ChildElements()
	if len(cs) != 1 {
		return nil
	}
	return cs[0]
}

func sortedKeys(m map[string]*etree.Element) []string {
	return slices.Sorted(maps.Keys(m))
}

// ReturnCodes builds the plaintext of a StockReturn: the codes handed back, bound to the
// shipment they came in.
func ReturnCodes(shipmentID string, codes []Code) []byte {
	w := NewCodesWriter()
	for _, c := range codes {
		w.Add(c)
	}
	var out []byte
	out = append(out, `<Codes xmlns="`+NS+`" ShipmentId="`...)
	out = append(out, shipmentID...)
	out = append(out, "\">\n"...)
	out = append(out, w.buf.Bytes()...)
	clear(w.buf.Bytes())
	return append(out, "</Codes>"...)
}

// ReadReturnCodes parses the decrypted plaintext of a StockReturn for shipmentID, calling fn
// for each code (its PIN aliases a reused buffer). It refuses codes bound to another shipment.
func ReadReturnCodes(plaintext []byte, shipmentID string, fn func(Code) error) error {
	return readCodesElement(plaintext, func(t xml.StartElement) error {
		for _, a := range t.Attr {
			if a.Name.Local == "ShipmentId" && a.Value == shipmentID {
				return nil
			}
		}
		return invalid("header_mismatch", "the returned codes are bound to another shipment")
	}, fn)
}

// KeyShareUpdate gives vendor cards enrolled after a shipment was sent their shares of its
// key (center → terminal).
type KeyShareUpdate struct {
	Envelope
	ShipmentID   string
	VendorShares map[string]*etree.Element // vendor id → xenc:EncryptedKey to its card
}

// BuildKeyShareUpdate returns an unsigned KeyShareUpdate document.
func BuildKeyShareUpdate(u KeyShareUpdate) *etree.Document {
	doc, root := newRoot("KeyShareUpdate", u.Envelope)
	addText(root, "ShipmentId", u.ShipmentID)
	for _, v := range sortedKeys(u.VendorShares) {
		vs := root.CreateElement("VendorShare")
		vs.CreateAttr("Vendor", v)
		vs.AddChild(u.VendorShares[v])
	}
	return doc
}

// ReadKeyShareUpdate reads a verified KeyShareUpdate root element.
func ReadKeyShareUpdate(root *etree.Element) (KeyShareUpdate, error) {
	env, err := readTyped(root, "KeyShareUpdate")
	if err != nil {
		return KeyShareUpdate{}, err
	}
	u := KeyShareUpdate{Envelope: env, VendorShares: map[string]*etree.Element{}}
	if u.ShipmentID, err = childText(root, "ShipmentId"); err != nil {
		return KeyShareUpdate{}, err
	}
	for _, c := range root.ChildElements() {
		if c.Tag != "VendorShare" {
			continue
		}
		v, key := c.SelectAttrValue("Vendor", ""), onlyChild(c)
		if !partyPattern.MatchString(v) || key == nil || key.Tag != "EncryptedKey" || u.VendorShares[v] != nil {
			return KeyShareUpdate{}, invalid("malformed", "a VendorShare is not valid")
		}
		u.VendorShares[v] = key
	}
	if len(u.VendorShares) == 0 {
		return KeyShareUpdate{}, invalid("malformed", "a KeyShareUpdate carries no share")
	}
	return u, nil
}

package message

import (
	"encoding/base64"
	"strconv"

	"github.com/beevik/etree"
)

// Receipt statuses.
const (
	StatusAccepted  = "accepted"  // the part was stored now
	StatusDuplicate = "duplicate" // the part had been stored before; nothing was added
)

// BatchReceipt is the center's signed answer to a CodeBatch part.
type BatchReceipt struct {
	Envelope
	BatchID     string
	Part, Parts int
	Status      string
	Accepted    int      // codes stored by this part
	Duplicate   int      // codes of this part already in the vault (a repeated part)
	BatchDigest [32]byte // SHA-256 of the CodeBatch bytes as received
	InReplyTo   string   // the CodeBatch's MessageId
	LogIndex    uint64   // the CodeBatch's entry in the exchange log
	LogProof    LogProof // its inclusion in the tree right after it was appended
}

// LogProof is an entry's inclusion proof in the log tree of Size entries with root Root.
type LogProof struct {
	Size   uint64
	Root   []byte
	Hashes [][]byte
}

func addLogProof(parent *etree.Element, p LogProof) {
	el := parent.CreateElement("LogProof")
	el.CreateAttr("Size", strconv.FormatUint(p.Size, 10))
	el.CreateAttr("Root", base64.StdEncoding.EncodeToString(p.Root))
	for _, h := range p.Hashes {
		addText(el, "Hash", base64.StdEncoding.EncodeToString(h))
	}
}

// SetLogEntry sets the LogIndex and LogProof of an unsigned Receipt or BatchReceipt (the last
// two elements BuildReceipt and BuildBatchReceipt write): a receipt is built with the effect
// it answers, and completed once its message has its place in the log.
func SetLogEntry(root *etree.Element, index uint64, p LogProof) error {
	li, lp := root.SelectElement("LogIndex"), root.SelectElement("LogProof")
	if li == nil || lp == nil || root.ChildElements()[len(root.ChildElements())-1] != lp {
		return invalid("malformed", "%s has no LogIndex and LogProof to set", root.Tag)
	}
	li.SetText(strconv.FormatUint(index, 10))
	root.RemoveChild(lp)
	addLogProof(root, p)
	return nil
}

func readLogProof(parent *etree.Element) (LogProof, error) {
	el, err := child(parent, "LogProof")
	if err != nil {
		return LogProof{}, nil // optional
	}
	var p LogProof
	var err1, err2 error
	p.Size, err1 = strconv.ParseUint(el.SelectAttrValue("Size", ""), 10, 64)
	p.Root, err2 = base64.StdEncoding.DecodeString(el.SelectAttrValue("Root", ""))
	if err1 != nil || err2 != nil || len(p.Root) != 32 {
		return LogProof{}, invalid("malformed", "LogProof is not valid")
	}
	for _, h := range el.ChildElements() {
		b, err := base64.StdEncoding.DecodeString(h.Text())
		if h.Tag != "Hash" || err != nil || len(b) != 32 || len(p.Hashes) >= 64 {
			return LogProof{}, invalid("malformed", "LogProof hash is not valid")
		}
		p.Hashes = append(p.Hashes, b)
	}
	return p, nil
}

// BuildBatchReceipt returns an unsigned BatchReceipt document.
func BuildBatchReceipt(r BatchReceipt) *etree.Document {
	doc, root := newRoot("BatchReceipt", r.Envelope)
	addText(root, "InReplyTo", r.InReplyTo)
	addText(root, "BatchId", r.BatchID)
	part := root.CreateElement("Part")
	part.CreateAttr("Index", strconv.Itoa(r.Part))
	part.CreateAttr("Of", strconv.Itoa(r.Parts))
	addText(root, "Status", r.Status)
	addText(root, "Accepted", strconv.Itoa(r.Accepted))
	addText(root, "Duplicate", strconv.Itoa(r.Duplicate))
	addText(root, "BatchDigest", base64.StdEncoding.EncodeToString(r.BatchDigest[:]))
	addText(root, "LogIndex", strconv.FormatUint(r.LogIndex, 10))
	addLogProof(root, r.LogProof)
	return doc
}

// ReadBatchReceipt reads a verified BatchReceipt root element.
func ReadBatchReceipt(root *etree.Element) (BatchReceipt, error) {
	env, err := ReadEnvelope(root)
	if err != nil {
		return BatchReceipt{}, err
	}
	if env.Type != "BatchReceipt" {
		return BatchReceipt{}, invalid("malformed", "document is a %s, not a BatchReceipt", env.Type)
	}
	r := BatchReceipt{Envelope: env}
	var errs [7]error
	r.InReplyTo, errs[0] = childText(root, "InReplyTo")
	r.BatchID, errs[1] = childText(root, "BatchId")
	r.Status, errs[2] = childText(root, "Status")
	var acc, dup, dig string
	acc, errs[3] = childText(root, "Accepted")
	dup, errs[4] = childText(root, "Duplicate")
	dig, errs[5] = childText(root, "BatchDigest")
	var part *etree.Element
	part, errs[6] = child(root, "Part")
	for _, e := range errs {
		if e != nil {
			return BatchReceipt{}, e
		}
	}
	r.Part, _ = strconv.Atoi(part.SelectAttrValue("Index", ""))
	r.Parts, _ = strconv.Atoi(part.SelectAttrValue("Of", ""))
	var err1, err2 error
	r.Accepted, err1 = strconv.Atoi(acc)
	r.Duplicate, err2 = strconv.Atoi(dup)
	d, err3 := base64.StdEncoding.DecodeString(dig)
	if err1 != nil || err2 != nil || err3 != nil || len(d) != 32 || (r.Status != StatusAccepted && r.Status != StatusDuplicate) {
		return BatchReceipt{}, invalid("malformed", "BatchReceipt fields are not valid")
	}
	copy(r.BatchDigest[:], d)
	if li, err := childText(root, "LogIndex"); err == nil {
		if r.LogIndex, err = strconv.ParseUint(li, 10, 64); err != nil {
			return BatchReceipt{}, invalid("malformed", "LogIndex %q is not a number", li)
		}
	}
	var err4 error
	if r.LogProof, err4 = readLogProof(root); err4 != nil {
		return BatchReceipt{}, err4
	}
	return r, nil
}

// PurchaseOrder is the center's signed request for more stock of one product.
type PurchaseOrder struct {
	Envelope
	OrderID  string
	Product  string
	Quantity int
	Reason   string // why it was raised, for people: "vault stock 80 below reorder level 100"
}

// BuildPurchaseOrder returns an unsigned PurchaseOrder document.
func BuildPurchaseOrder(p PurchaseOrder) *etree.Document {
	doc, root := newRoot("PurchaseOrder", p.Envelope)
	addText(root, "OrderId", p.OrderID)
	addText(root, "Product", p.Product)
	addText(root, "Quantity", strconv.Itoa(p.Quantity))
	addText(root, "Reason", p.Reason)
	return doc
}

// ReadPurchaseOrder reads a verified PurchaseOrder root element.
func ReadPurchaseOrder(root *etree.Element) (PurchaseOrder, error) {
	env, err := ReadEnvelope(root)
	if err != nil {
		return PurchaseOrder{}, err
	}
	if env.Type != "PurchaseOrder" {
		return PurchaseOrder{}, invalid("malformed", "document is a %s, not a PurchaseOrder", env.Type)
	}
	p := PurchaseOrder{Envelope: env}
	var errs [4]error
	var qty string
	p.OrderID, errs[0] = childText(root, "OrderId")
	p.Product, errs[1] = childText(root, "Product")
	qty, errs[2] = childText(root, "Quantity")
	p.Reason, errs[3] = childText(root, "Reason")
	for _, e := range errs {
		if e != nil {
			return PurchaseOrder{}, e
		}
	}
	if p.Quantity, err = strconv.Atoi(qty); err != nil || p.Quantity <= 0 {
		return PurchaseOrder{}, invalid("malformed", "Quantity %q is not a positive integer", qty)
	}
	return p, nil
}

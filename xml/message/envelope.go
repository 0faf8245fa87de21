package message

import (
	"regexp"
	"time"

	"github.com/beevik/etree"
)

// Envelope is what every exchange document carries on its root element.
type Envelope struct {
	Type      string    `json:"type"` // the root element's name: CodeBatch, BatchReceipt, …
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	Sender    string    `json:"sender"`
	Recipient string    `json:"recipient"`
	Created   time.Time `json:"created"`
}

// Center is the party id of the central platform in Sender and Recipient.
const Center = "center"

var (
	idPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]{0,63}$`)
	uuidPattern  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	partyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// ReadEnvelope reads and checks the envelope of a document's root element. It returns an
// invalid error naming the attribute at fault.
func ReadEnvelope(root *etree.Element) (Envelope, error) {
	if root.NamespaceURI() != NS {
		return Envelope{}, invalid("malformed", "root element %s is not in namespace %s", root.Tag, NS)
	}
	e := Envelope{
		Type:      root.Tag,
		ID:        root.SelectAttrValue("Id", ""),
		MessageID: root.SelectAttrValue("MessageId", ""),
		Sender:    root.SelectAttrValue("Sender", ""),
		Recipient: root.SelectAttrValue("Recipient", ""),
	}
	switch {
	case !idPattern.MatchString(e.ID):
		return Envelope{}, invalid("malformed", "root Id %q is not an XML name", e.ID)
	case !uuidPattern.MatchString(e.MessageID):
		return Envelope{}, invalid("malformed", "MessageId %q is not a lower-case UUID", e.MessageID)
	case !partyPattern.MatchString(e.Sender):
		return Envelope{}, invalid("malformed", "Sender %q is not a party id", e.Sender)
	case !partyPattern.MatchString(e.Recipient):
		return Envelope{}, invalid("malformed", "Recipient %q is not a party id", e.Recipient)
	}
	created, err := time.Parse(time.RFC3339Nano, root.SelectAttrValue("Created", ""))
	if err != nil {
		return Envelope{}, invalid("malformed", "Created is not an RFC 3339 time: %v", err)
	}
	e.Created = created.UTC()
	return e, nil
}

// newRoot starts a document of type typ with the envelope attributes set.
func newRoot(typ string, e Envelope) (*etree.Document, *etree.Element) {
	doc := etree.NewDocument()
	root := doc.CreateElement(typ)
	root.CreateAttr("xmlns", NS)
	root.CreateAttr("Id", e.ID)
	root.CreateAttr("MessageId", e.MessageID)
	root.CreateAttr("Sender", e.Sender)
	root.CreateAttr("Recipient", e.Recipient)
	root.CreateAttr("Created", e.Created.UTC().Format(time.RFC3339Nano))
	return doc, root
}

func addText(parent *etree.Element, tag, text string) *etree.Element {
	el := parent.CreateElement(tag)
	el.SetText(text)
	return el
}

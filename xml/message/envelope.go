package message

import (
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

// The envelope's patterns, matched without regexp: every message is checked against them, and
// an auditor checks a million (the regular expressions cost more than the rest of reading an
// envelope). TestPatternsAgree and FuzzPatternsAgree hold them to the expressions in their
// comments.
var (
	idPattern    = asciiName{first: func(c byte) bool { return isLetter(c) || c == '_' }}   // ^[A-Za-z_][A-Za-z0-9._-]{0,63}$
	uuidPattern  = lowerUUID{}                                                              // ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$
	partyPattern = asciiName{first: func(c byte) bool { return isLetter(c) || isDigit(c) }} // ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$
)

// asciiName matches one byte first accepts, then up to 63 of [A-Za-z0-9._-].
type asciiName struct{ first func(byte) bool }

func (p asciiName) MatchString(s string) bool {
	if len(s) == 0 || len(s) > 64 || !p.first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// lowerUUID matches a UUID in lower-case hexadecimal, 8-4-4-4-12.
type lowerUUID struct{}

func (lowerUUID) MatchString(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isDigit(c) && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

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

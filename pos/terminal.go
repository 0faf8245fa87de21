// Package pos owns the terminal side of the exchange: opening the center's shipments,
// decrypting one code at the moment of sale with the terminal's key share and the inserted
// vendor card's share, checking cards against the CRL, and building the signed
// acknowledgements, sales reports, orders and returns a terminal sends. It never keeps a
// decrypted PIN beyond the call that prints it, and never stores the shipment key.
package pos

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// KeyPair is a key in a token (terminal token or vendor card) that signs and unwraps.
type KeyPair interface {
	crypto.Signer
	crypto.Decrypter
}

// Terminal is one POS terminal's identity: its id, its token key and certificate, and the
// platform CA it trusts.
type Terminal struct {
	ID   string
	Key  KeyPair
	Cert *x509.Certificate
	CA   *x509.Certificate
	Now  func() time.Time
}

// Card is an inserted, PIN-unlocked vendor card.
type Card struct {
	Vendor string
	Key    crypto.Decrypter
	Cert   *x509.Certificate
}

func (t *Terminal) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// OpenShipment verifies a Shipment from the center (signature profile, a center-sign
// certificate from the platform CA valid when it was made, addressed to this terminal) and
// reads it. It decrypts nothing.
func (t *Terminal) OpenShipment(raw []byte) (message.Shipment, error) {
	signed, err := t.fromCenter(raw)
	if err != nil {
		return message.Shipment{}, err
	}
	return message.ReadShipment(signed)
}

// OpenReceipt verifies and reads the center's Receipt.
func (t *Terminal) OpenReceipt(raw []byte) (message.Receipt, error) {
	signed, err := t.fromCenter(raw)
	if err != nil {
		return message.Receipt{}, err
	}
	return message.ReadReceipt(signed)
}

// OpenReceiptFor verifies and reads the center's Receipt for sent, a document this terminal
// sent: the receipt must answer it (InReplyTo is its MessageId) and its log proof must show
// sent, byte for byte, as the entry the receipt names, in the exchange log's tree of the size
// the proof gives (RFC 6962). The terminal then holds the center's signed word that its
// document is in the log, checkable against any later checkpoint. A receipt that does not
// hold is refused (invalid, "bad_receipt"): the document stays to be sent again.
func (t *Terminal) OpenReceiptFor(raw, sent []byte) (message.Receipt, error) {
	rc, err := t.OpenReceipt(raw)
	if err != nil {
		return rc, err
	}
	id, err := messageIDOf(sent)
	if err != nil {
		return rc, err
	}
	if rc.InReplyTo != id {
		return rc, evoucher.Errorf(evoucher.KindInvalid, "bad_receipt", "the center's receipt answers %s, not %s", rc.InReplyTo, id)
	}
	p := auditlog.Proof{Index: rc.LogIndex, Size: rc.LogProof.Size, Root: rc.LogProof.Root, Hashes: rc.LogProof.Hashes}
	if err := p.Verify(sent); err != nil {
		return rc, evoucher.Errorf(evoucher.KindInvalid, "bad_receipt", "the center's receipt for %s does not prove it in the exchange log at %d: %v", id, rc.LogIndex, err)
	}
	return rc, nil
}

func (t *Terminal) fromCenter(raw []byte) (*etree.Element, error) {
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		return nil, err
	}
	env, err := message.ReadEnvelope(doc.Root())
	if err != nil {
		return nil, err
	}
	signed, _, err := dsig.Verify(doc, func(cert *x509.Certificate) error {
		_, err := pki.CheckOffline(cert, t.CA, pki.RoleCenterSign, env.Created)
		return err
	})
	if err != nil {
		return nil, err
	}
	if env.Sender != message.Center || env.Recipient != t.ID {
		return nil, evoucher.Errorf(evoucher.KindForbidden, "not_for_us", "the document is from %s for %s, not from the center for %s", env.Sender, env.Recipient, t.ID)
	}
	return signed, nil
}

// Reveal decrypts one code of a shipment, for printing: the terminal's share is unwrapped by
// the terminal's key, the vendor's share by the inserted card, and only their combination
// opens the code. Neither alone decrypts anything. The caller zeroes the PIN after printing.
func (t *Terminal) Reveal(s message.Shipment, card Card, serial string) (message.PIN, error) {
	var sealed []byte
	for _, c := range s.Codes {
		if c.Serial == serial {
			sealed = c.Sealed
		}
	}
	if sealed == nil {
		return nil, evoucher.Errorf(evoucher.KindNotFound, "unknown_serial", "serial %s is not in shipment %s", serial, s.ShipmentID)
	}
	vs, ok := s.VendorShares[card.Vendor]
	if !ok {
		return nil, evoucher.Errorf(evoucher.KindForbidden, "no_share", "shipment %s carries no share for vendor card %s: sync first", s.ShipmentID, card.Vendor)
	}
	ts, err := xenc.UnwrapKey(s.TerminalShare, t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("terminal share: %w", err)
	}
	defer clear(ts)
	cs, err := xenc.UnwrapKey(vs, card.Cert, card.Key)
	if err != nil {
		return nil, fmt.Errorf("vendor card share: %w", err)
	}
	defer clear(cs)
	if len(ts) != 32 || len(cs) != 32 {
		return nil, errors.New("key shares have the wrong length")
	}
	key := make([]byte, 32)
	defer clear(key)
	subtle.XORBytes(key, ts, cs)
	return openSealed(key, sealed, message.ShipmentAAD(s.ShipmentID, serial))
}

func openSealed(key, sealed, aad []byte) (message.PIN, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize()+g.Overhead() {
		return nil, errors.New("sealed code too short")
	}
	pin, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], aad)
	if err != nil {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_ciphertext", "the code does not open: wrong card, wrong terminal or altered shipment")
	}
	return message.PIN(pin), nil
}

// CheckCard refuses a vendor card whose certificate is not a vendor certificate from the
// platform CA, is not valid now, or is listed in crl (DER, signed by the CA).
func (t *Terminal) CheckCard(card *x509.Certificate, crl []byte) (pki.Identity, error) {
	id, err := pki.CheckOffline(card, t.CA, pki.RoleVendor, t.now())
	if err != nil {
		return pki.Identity{}, err
	}
	list, err := x509.ParseRevocationList(crl)
	if err != nil {
		return pki.Identity{}, fmt.Errorf("CRL: %w", err)
	}
	if err := list.CheckSignatureFrom(t.CA); err != nil {
		return pki.Identity{}, fmt.Errorf("CRL is not signed by the platform CA: %w", err)
	}
	for _, e := range list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(card.SerialNumber) == 0 {
			return pki.Identity{}, evoucher.Errorf(evoucher.KindUnauthorized, "revoked",
				"vendor card %s was revoked on %s: selling with it is refused", id.Entity, e.RevocationTime.UTC().Format(time.RFC3339))
		}
	}
	return id, nil
}

func (t *Terminal) envelope(prefix string) message.Envelope {
	id := uuid.NewString()
	return message.Envelope{ID: prefix + id, MessageID: id, Sender: t.ID, Recipient: message.Center, Created: t.now().UTC()}
}

func (t *Terminal) sign(doc *etree.Document) ([]byte, error) {
	return dsig.SignBytes(doc, t.Key, t.Cert)
}

// Ack builds the signed ShipmentAck of a shipment received whole.
func (t *Terminal) Ack(s message.Shipment) ([]byte, error) {
	serials := make([]string, len(s.Codes))
	for i, c := range s.Codes {
		serials[i] = c.Serial
	}
	return t.sign(message.BuildShipmentAck(message.ShipmentAck{Envelope: t.envelope("ack-"), ShipmentID: s.ShipmentID,
		Count: len(serials), SerialsDigest: message.SerialsDigest(serials)}))
}

// Report builds the signed SalesReport number seq.
func (t *Terminal) Report(seq int64, sales []message.Sale, stock []message.StockLevel) ([]byte, error) {
	return t.sign(message.BuildSalesReport(message.SalesReport{Envelope: t.envelope("sr-"), Seq: seq, Sales: sales, Stock: stock}))
}

// Order builds a signed StockOrder.
func (t *Terminal) Order(operator, product string, quantity int) ([]byte, error) {
	return t.sign(message.BuildStockOrder(message.StockOrder{Envelope: t.envelope("so-"), Operator: operator, Product: product, Quantity: quantity}))
}

// Return builds a signed StockReturn of codes of shipment s, decrypted with card and
// re-encrypted to the center's encryption certificate.
func (t *Terminal) Return(s message.Shipment, card Card, serials []string, center *x509.Certificate) ([]byte, error) {
	codes := make([]message.Code, 0, len(serials))
	defer func() {
		for _, c := range codes {
			c.PIN.Zero()
		}
	}()
	for _, serial := range serials {
		pin, err := t.Reveal(s, card, serial)
		if err != nil {
			return nil, err
		}
		var exp time.Time
		for _, c := range s.Codes {
			if c.Serial == serial {
				exp = c.Expiry
			}
		}
		codes = append(codes, message.Code{Serial: serial, PIN: pin, Expiry: exp})
	}
	plain := message.ReturnCodes(s.ShipmentID, codes)
	enc, err := xenc.Encrypt(plain, xenc.TypeElement, xenc.Recipient{Cert: center})
	clear(plain)
	if err != nil {
		return nil, err
	}
	return t.sign(message.BuildStockReturn(message.StockReturn{Envelope: t.envelope("rt-"), ShipmentID: s.ShipmentID, Encrypted: enc}))
}

// ApplyShares verifies a KeyShareUpdate from the center for shipment s and adds the shares it
// carries for vendor cards enrolled since s was sent.
func (t *Terminal) ApplyShares(s *message.Shipment, raw []byte) error {
	signed, err := t.fromCenter(raw)
	if err != nil {
		return err
	}
	u, err := message.ReadKeyShareUpdate(signed)
	if err != nil {
		return err
	}
	if u.ShipmentID != s.ShipmentID {
		return evoucher.Errorf(evoucher.KindInvalid, "wrong_shipment", "the key shares are for shipment %s, not %s", u.ShipmentID, s.ShipmentID)
	}
	for v, k := range u.VendorShares {
		s.VendorShares[v] = k
	}
	return nil
}

// ShareUpdateFor reads which shipment a verified-later KeyShareUpdate is for, so a terminal can
// file it; it verifies nothing.
func ShareUpdateFor(raw []byte) (string, error) {
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		return "", err
	}
	for _, c := range doc.Root().ChildElements() {
		if c.Tag == "ShipmentId" {
			return c.Text(), nil
		}
	}
	return "", evoucher.Errorf(evoucher.KindInvalid, "malformed", "no ShipmentId")
}

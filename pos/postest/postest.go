// Package postest builds a self-contained world for a POS terminal, for tests and the
// benchmark: a platform CA, the center's signing and encryption keys (in memory), certificates
// for a terminal and vendor cards whose keys the caller supplies (real SoftHSM2 tokens), and a
// fake center that signs shipments, receipts and CRLs exactly as the real one does. It never
// serves production: its CA key is in memory.
package postest

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pos"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// World is a CA and a center around one terminal.
type World struct {
	Retailer string
	// RetailerName is the shop's name its shipments carry; "" sends none (as an older center).
	RetailerName string
	CA           *x509.Certificate
	caKey        *rsa.PrivateKey
	Sign         *x509.Certificate
	signKey      *rsa.PrivateKey
	Enc          *x509.Certificate
	EncKey       *rsa.PrivateKey
	Term         *pos.Terminal

	mu       sync.Mutex
	serial   int64
	revoked  []x509.RevocationListEntry
	crlNo    int64
	pending  [][]byte
	shares   [][]byte
	Received [][]byte // documents the terminal sent, in order
	Offline  bool     // when set, every call fails as unreachable
	// Refuse, when set, decides the answer to a document: a non-nil error refuses it.
	Refuse func(doc []byte) error
	// BadProof, when set, makes receipts whose log proof is not of the document they answer.
	BadProof bool
	// Sold records the sales authorised online: serial → ticket.
	Sold map[string]string
	// Mode is the terminal's selling mode as this center sets it: "online", "offline", or ""
	// (not said, as an older center).
	Mode string
	// Alarms are this center's alarms about the terminal, sent with every answer to Pending;
	// nil sends none at all (as an older center).
	Alarms []pos.CenterAlarm
}

// CenterAlarms says the center's alarms about the terminal, as the real center's sync answer
// does.
func (w *World) CenterAlarms() ([]pos.CenterAlarm, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]pos.CenterAlarm(nil), w.Alarms...), w.Alarms != nil
}

// OnlineMode says the terminal's selling mode, as the real center's sync answer does.
func (w *World) OnlineMode() (online, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Mode == "online", w.Mode != ""
}

// New makes a world for terminal termID of retailer, whose key is termKey.
func New(termID, retailer string, termKey pos.KeyPair) (*World, error) {
	w := &World{Retailer: retailer, Sold: map[string]string{}}
	var err error
	if w.caKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "postest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &w.caKey.PublicKey, w.caKey)
	if err != nil {
		return nil, err
	}
	w.CA, _ = x509.ParseCertificate(der)
	w.serial = 1
	if w.signKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if w.Sign, err = w.Issue("center-sign", "center", w.signKey.Public()); err != nil {
		return nil, err
	}
	if w.EncKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if w.Enc, err = w.Issue("center-encrypt", "center", w.EncKey.Public()); err != nil {
		return nil, err
	}
	tc, err := w.Issue("terminal", termID, termKey.Public())
	if err != nil {
		return nil, err
	}
	w.Term = &pos.Terminal{ID: termID, Key: termKey, Cert: tc, CA: w.CA}
	return w, nil
}

// Issue certifies pub for role and entity, as the platform CA does (identity URI SAN).
func (w *World) Issue(role, entity string, pub crypto.PublicKey) (*x509.Certificate, error) {
	w.mu.Lock()
	w.serial++
	n := w.serial
	w.mu.Unlock()
	u, _ := url.Parse("urn:evoucher:" + role + ":" + entity)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: entity},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), URIs: []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, w.CA, pub, w.caKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Card certifies a vendor card's key.
func (w *World) Card(vendor string, key pos.KeyPair) (pos.Card, error) {
	c, err := w.Issue("vendor", vendor, key.Public())
	return pos.Card{Vendor: vendor, Key: key, Cert: c}, err
}

// Revoke puts a certificate on the next CRL.
func (w *World) Revoke(c *x509.Certificate) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.revoked = append(w.revoked, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Second)})
}

func (w *World) env(prefix string) message.Envelope {
	id := uuid.NewString()
	return message.Envelope{ID: prefix + id, MessageID: id, Sender: message.Center, Recipient: w.Term.ID, Created: time.Now().UTC()}
}

// Shipment builds a signed shipment of n codes of product (operator OP-A, 10.00 EUR) with
// serials from first on, its key split between the terminal and the cards given. It returns
// the document and the PINs by serial.
func (w *World) Shipment(id, product string, first, n int, cards ...pos.Card) ([]byte, map[string]string, error) {
	key := make([]byte, 32)
	ts := make([]byte, 32)
	_, _ = rand.Read(key)
	_, _ = rand.Read(ts)
	defer clear(key)
	vs := make([]byte, 32)
	subtle.XORBytes(vs, key, ts)
	tsEl, err := xenc.WrapKey(ts, xenc.Recipient{Cert: w.Term.Cert})
	if err != nil {
		return nil, nil, err
	}
	sh := message.Shipment{Envelope: w.env("sh-"), ShipmentID: id, Retailer: w.Retailer, RetailerName: w.RetailerName,
		Product:        message.ShipmentProduct{Operator: "OP-A", Code: product, FaceValue: 1000, Currency: "EUR"},
		RefillTemplate: "Dial *123*{PIN}# then press call", TerminalShare: tsEl, VendorShares: map[string]*etree.Element{}}
	for _, c := range cards {
		el, err := xenc.WrapKey(vs, xenc.Recipient{Cert: c.Cert})
		if err != nil {
			return nil, nil, err
		}
		sh.VendorShares[c.Vendor] = el
	}
	block, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(block)
	pins := map[string]string{}
	for i := range n {
		serial := fmt.Sprintf("%012d", first+i)
		pin := fmt.Sprintf("%014d", (first+i)*7919%100_000_000_000_000)
		nonce := make([]byte, 12)
		_, _ = rand.Read(nonce)
		sealed := g.Seal(nonce, nonce, []byte(pin), message.ShipmentAAD(id, serial))
		sh.Codes = append(sh.Codes, message.SealedCode{Serial: serial, Expiry: time.Now().AddDate(1, 0, 0).Truncate(24 * time.Hour).UTC(), Sealed: sealed})
		pins[serial] = pin
	}
	raw, err := dsig.SignBytes(message.BuildShipment(sh), w.signKey, w.Sign)
	return raw, pins, err
}

// Offer queues a document for the terminal's next sync.
func (w *World) Offer(shipment []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, shipment)
}

// ---- pos.Remote ----

func (w *World) down() error {
	if w.Offline {
		return evoucher.Errorf(evoucher.KindUnavailable, "center_unreachable", "the center is unreachable (postest offline): check the network")
	}
	return nil
}

// Pending returns the shipments offered and not acknowledged.
func (w *World) Pending(context.Context) ([][]byte, [][]byte, error) {
	if err := w.down(); err != nil {
		return nil, nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.pending...), append([][]byte(nil), w.shares...), nil
}

// Exchange verifies a terminal's document and answers with a signed Receipt; an ack removes
// the shipment from the pending list.
func (w *World) Exchange(_ context.Context, doc []byte) ([]byte, error) {
	if err := w.down(); err != nil {
		return nil, err
	}
	if w.Refuse != nil {
		if err := w.Refuse(doc); err != nil {
			return nil, err
		}
	}
	d, err := message.Parse(doc, message.DefaultLimits)
	if err != nil {
		return nil, err
	}
	signed, _, err := dsig.Verify(d, func(c *x509.Certificate) error {
		if !c.Equal(w.Term.Cert) {
			return fmt.Errorf("not the terminal")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	env, _ := message.ReadEnvelope(signed)
	w.mu.Lock()
	w.Received = append(w.Received, doc)
	if env.Type == "ShipmentAck" {
		a, _ := message.ReadShipmentAck(signed)
		var keep [][]byte
		for _, p := range w.pending {
			pd, _ := message.Parse(p, message.DefaultLimits)
			if sh, err := message.ReadShipment(pd.Root()); err == nil && sh.ShipmentID == a.ShipmentID {
				continue
			}
			keep = append(keep, p)
		}
		w.pending = keep
	}
	w.mu.Unlock()
	// The receipt proves the document as the one entry of a log of its own, unless BadProof.
	logged := doc
	if w.BadProof {
		logged = append([]byte(nil), doc...)
		logged[len(logged)-1] ^= 1
	}
	lp := message.LogProof{Size: 1, Root: auditlog.LeafHash(logged)}
	return dsig.SignBytes(message.BuildReceipt(message.Receipt{Envelope: w.env("rc-"), InReplyTo: env.MessageID,
		Status: message.StatusAccepted, Detail: env.Type + " taken", LogProof: lp}), w.signKey, w.Sign)
}

// CRL returns a fresh CRL signed by the CA.
func (w *World) CRL(context.Context) ([]byte, error) {
	if err := w.down(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.crlNo++
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(w.crlNo), ThisUpdate: time.Now(),
		NextUpdate: time.Now().Add(24 * time.Hour), RevokedCertificateEntries: w.revoked}, w.CA, w.caKey)
}

// Certificate returns the center's encryption certificate.
func (w *World) Certificate(_ context.Context, name string) ([]byte, error) {
	if err := w.down(); err != nil {
		return nil, err
	}
	if name != "center-encrypt" {
		return nil, evoucher.Errorf(evoucher.KindNotFound, "unknown", "no %s", name)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.Enc.Raw}), nil
}

// Authorize records an online sale, refusing a code sold on another ticket.
func (w *World) Authorize(_ context.Context, s message.Sale) error {
	if err := w.down(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.Sold[s.Serial]; ok && t != s.Ticket {
		return evoucher.Errorf(evoucher.KindConflict, "sold_twice", "serial %s was already sold on another ticket", s.Serial)
	}
	w.Sold[s.Serial] = s.Ticket
	return nil
}

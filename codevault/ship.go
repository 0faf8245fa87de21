package codevault

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// Parties tells the vault who may receive stock (package retailer).
type Parties interface {
	// RetailerOf returns the id and the name of the retailer a terminal belongs to.
	RetailerOf(ctx context.Context, terminalID string) (id, name string, err error)
	TerminalCertificate(ctx context.Context, terminalID string, at time.Time) (*x509.Certificate, error)
	VendorCards(ctx context.Context, retailerID string, at time.Time) (map[string]*x509.Certificate, error)
}

// ShipRequest asks for stock of one product for one terminal.
type ShipRequest struct {
	Terminal          string
	Operator, Product string
	Quantity          int
}

// ShipmentInfo is a shipment as sent.
type ShipmentInfo struct {
	ID       string
	Terminal string
	Count    int
	Document []byte // the signed Shipment

	env message.Envelope // for the log entry, which the caller appends last
}

// shipKeyAAD binds a wrapped shipment key or terminal share to its shipment.
func shipKeyAAD(id, what, kekLabel string) []byte {
	return []byte("evoucher-shipkey-v1|" + id + "|" + what + "|" + kekLabel)
}

// Ship reserves up to Quantity codes of the product for the terminal, earliest expiry first
// (FOR UPDATE SKIP LOCKED, so concurrent orders never wait on each other or take the same
// code), re-encrypts each PIN under a fresh shipment key, splits that key into a share
// wrapped to the terminal and a share wrapped to every active vendor card of its retailer,
// and records the signed Shipment — all in one transaction. It returns conflict
// "out_of_stock" when the vault has none, "no_vendor_card" when the retailer has no card that
// could unlock the stock, and not found for an unknown or revoked terminal.
func (v *Vault) Ship(ctx context.Context, req ShipRequest) (ShipmentInfo, error) {
	to, err := v.recipients(ctx, req)
	if err != nil {
		return ShipmentInfo{}, err
	}
	release, err := v.shipSlot(ctx)
	if err != nil {
		return ShipmentInfo{}, err
	}
	defer release()
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return ShipmentInfo{}, err
	}
	defer tx.Rollback(ctx)
	info, err := v.ship(ctx, tx, req, to)
	if err != nil {
		tx.Rollback(ctx)
		v.refusedForCredit(ctx, to.retailerID, err, to.now)
		return ShipmentInfo{}, err
	}
	// The log's lock is taken last, so concurrent shipments serialise only for the commit.
	idx, err := auditlog.Append(ctx, tx, logged(info.env, info.Document))
	if err != nil {
		return ShipmentInfo{}, err
	}
	if err := setLogIndex(ctx, tx, info.ID, int64(idx), ""); err != nil {
		return ShipmentInfo{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return ShipmentInfo{}, err
	}
	v.meter.Shipped(req.Terminal, req.Product, info.Count)
	return info, nil
}

// shipSlot waits for one of the process's shipping slots (Config.Shipping) and returns its
// release. A reservation scans the vault's stock index from its earliest code and steps over
// every code that a shipment still in flight holds locked (SKIP LOCKED), and over the codes of
// shipments committed while an older one was in flight (their index entries die only once no
// transaction could still see them). A shipment holds its codes until it commits, after its
// turn at the log's lock, so with dozens in flight each reservation would step over tens of
// thousands of codes: on a 2-core machine, 32 at once cost PostgreSQL twice the CPU of 4.
// Waiting here, before the transaction opens, holds neither a connection nor a lock.
func (v *Vault) shipSlot(ctx context.Context) (func(), error) {
	select {
	case v.shipping <- struct{}{}:
		return func() { <-v.shipping }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// setLogIndex names the log entry that holds a shipment's signed document, and, for a
// StockOrder's shipment, makes it the order's stored answer, in one round trip (the log's
// lock is held).
func setLogIndex(ctx context.Context, tx pgx.Tx, shipmentID string, idx int64, orderMessageID string) error {
	if orderMessageID == "" {
		_, err := tx.Exec(ctx, `UPDATE shipments SET log_index = $2 WHERE id = $1`, shipmentID, idx)
		return err
	}
	_, err := tx.Exec(ctx, `WITH answer AS (UPDATE messages SET response_index = $2 WHERE message_id = $3)
		UPDATE shipments SET log_index = $2 WHERE id = $1`, shipmentID, idx, orderMessageID)
	return err
}

// shipTo is who a shipment is for and who can open it.
type shipTo struct {
	retailerID   string
	retailerName string // as the terminal's tickets print it, at most message.MaxRetailerName characters
	termCert     *x509.Certificate
	cards        map[string]*x509.Certificate // vendor id → card certificate
	now          time.Time
}

// recipients checks a request and finds who can open its shipment: the terminal's
// certificate and its retailer's active vendor cards.
func (v *Vault) recipients(ctx context.Context, req ShipRequest) (shipTo, error) {
	now := v.now().UTC()
	fail := func(err error) (shipTo, error) { return shipTo{now: now}, err }
	if v.parties == nil {
		return fail(errors.New("codevault: no retailer registry configured"))
	}
	if req.Quantity <= 0 || req.Quantity > 100_000 {
		return fail(evoucher.Errorf(evoucher.KindInvalid, "bad_quantity", "quantity %d is not between 1 and 100000", req.Quantity))
	}
	retailerID, retailerName, err := v.parties.RetailerOf(ctx, req.Terminal)
	if err != nil {
		return fail(err)
	}
	termCert, err := v.parties.TerminalCertificate(ctx, req.Terminal, now)
	if err != nil {
		return fail(err)
	}
	cards, err := v.parties.VendorCards(ctx, retailerID, now)
	if err != nil {
		return fail(err)
	}
	if len(cards) == 0 {
		return fail(evoucher.Errorf(evoucher.KindConflict, "no_vendor_card", "retailer %s has no active vendor card to unlock stock: enrol one first", retailerID))
	}
	return shipTo{retailerID: retailerID, retailerName: ticketName(retailerName), termCert: termCert, cards: cards, now: now}, nil
}

// ticketName is a registry name as a shipment carries it: spaces collapsed, control and
// format characters dropped (most control characters cannot be written in XML 1.0) and cut to
// message.MaxRetailerName characters, so that no terminal refuses the shipment for it. The
// terminal strips again what a printer must not receive.
func ticketName(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case !unicode.IsGraphic(r) || r == utf8.RuneError:
			return -1
		}
		return r
	}, name)
	r := []rune(strings.Join(strings.Fields(name), " "))
	if len(r) > message.MaxRetailerName {
		r = r[:message.MaxRetailerName]
	}
	return strings.TrimSpace(string(r))
}

// ship does Ship's work in the caller's transaction.
func (v *Vault) ship(ctx context.Context, tx pgx.Tx, req ShipRequest, to shipTo) (ShipmentInfo, error) {
	termCert, cards, now := to.termCert, to.cards, to.now
	var status, refill, currency string
	var face int64
	err := tx.QueryRow(ctx, `SELECT t.status, p.refill_template, p.face_value, p.currency FROM terminals t, products p
		WHERE t.id = $1 AND p.operator_id = $2 AND p.code = $3 FOR SHARE OF t`, req.Terminal, req.Operator, req.Product).Scan(&status, &refill, &face, &currency)
	if errors.Is(err, pgx.ErrNoRows) {
		return ShipmentInfo{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_product", "no terminal %s or no product %s of %s", req.Terminal, req.Product, req.Operator)
	}
	if err != nil {
		return ShipmentInfo{}, err
	}
	if status != "active" {
		return ShipmentInfo{}, evoucher.Errorf(evoucher.KindForbidden, "terminal_revoked", "terminal %s is revoked: it receives no stock", req.Terminal)
	}
	kekLabel, kek, err := v.activeKEK(ctx, tx)
	if err != nil {
		return ShipmentInfo{}, err
	}
	id := "S-" + uuid.NewString()
	key, share := make([]byte, 32), make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return ShipmentInfo{}, err
	}
	if _, err := rand.Read(share); err != nil {
		return ShipmentInfo{}, err
	}
	defer clear(key)
	defer clear(share)
	keyW, err := wrap(kek, key, shipKeyAAD(id, "key", kekLabel))
	if err != nil {
		return ShipmentInfo{}, err
	}
	shareW, err := wrap(kek, share, shipKeyAAD(id, "terminal-share", kekLabel))
	if err != nil {
		return ShipmentInfo{}, err
	}
	msgID := uuid.NewString()
	vendors := slices.Sorted(maps.Keys(cards))
	// One statement reserves the codes and records the shipment with its final count (none when
	// nothing was reserved). Its signed document is not stored here: it is appended to the
	// exchange log last, and the shipment names that entry (setLogIndex).
	rows, err := tx.Query(ctx, `WITH picked AS (
			SELECT id FROM codes WHERE operator_id = $1 AND product = $2 AND state = 'in_vault' AND expires_on > $5::date
			ORDER BY expires_on, id LIMIT $3 FOR UPDATE SKIP LOCKED),
		moved AS (
			UPDATE codes c SET state = 'shipped', shipment_id = $4 FROM picked WHERE c.id = picked.id
			RETURNING c.serial, c.batch_id, c.part, c.pin_ct, c.expires_on),
		shipment AS (
			INSERT INTO shipments (id, terminal_id, operator_id, product, count, kek_label, key_wrapped, share_wrapped, message_id, vendors, created_at)
			SELECT $4, $6, $1, $2, count(*), $7, $8, $9, $10, $11, $12 FROM moved HAVING count(*) > 0)
		SELECT * FROM moved`, req.Operator, req.Product, req.Quantity, id, now, req.Terminal, kekLabel, keyW, shareW, msgID, vendors, now)
	if err != nil {
		return ShipmentInfo{}, err
	}
	type held struct {
		serial  string
		batch   int64
		part    int
		ct      []byte
		expires time.Time
	}
	codes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (held, error) {
		var h held
		err := r.Scan(&h.serial, &h.batch, &h.part, &h.ct, &h.expires)
		return h, err
	})
	if err != nil {
		return ShipmentInfo{}, err
	}
	if len(codes) == 0 {
		return ShipmentInfo{}, evoucher.Errorf(evoucher.KindConflict, "out_of_stock", "the vault has no %s of %s to ship", req.Product, req.Operator)
	}
	shipAEAD, err := dekCipher(key)
	if err != nil {
		return ShipmentInfo{}, err
	}
	deks := map[[2]int64]cipher.AEAD{}
	sealed := make([]message.SealedCode, 0, len(codes))
	var aad []byte
	for _, c := range codes {
		dek, err := v.partCipher(ctx, tx, deks, c.batch, c.part)
		if err != nil {
			return ShipmentInfo{}, err
		}
		aad = pinAAD(aad, c.serial, c.batch, c.part)
		pin, err := dek.Open(nil, c.ct[:nonceSize], c.ct[nonceSize:], aad)
		if err != nil {
			return ShipmentInfo{}, fmt.Errorf("code %s does not open under its data key", c.serial)
		}
		out := make([]byte, nonceSize, nonceSize+len(pin)+tagSize)
		if _, err := rand.Read(out); err != nil {
			return ShipmentInfo{}, err
		}
		out = shipAEAD.Seal(out, out, pin, message.ShipmentAAD(id, c.serial))
		clear(pin)
		sealed = append(sealed, message.SealedCode{Serial: c.serial, Expiry: c.expires, Sealed: out})
	}
	vendorShare := make([]byte, 32)
	defer clear(vendorShare)
	subtle.XORBytes(vendorShare, key, share)
	termEK, err := xenc.WrapKey(share, xenc.Recipient{Cert: termCert, Name: req.Terminal})
	if err != nil {
		return ShipmentInfo{}, err
	}
	vendorEKs := map[string]*etree.Element{}
	for vendor, card := range cards {
		if vendorEKs[vendor], err = xenc.WrapKey(vendorShare, xenc.Recipient{Cert: card, Name: vendor}); err != nil {
			return ShipmentInfo{}, err
		}
	}
	senv := message.Envelope{Type: "Shipment", ID: "sh-" + msgID, MessageID: msgID, Sender: message.Center, Recipient: req.Terminal, Created: now}
	doc, err := v.sign(message.BuildShipment(message.Shipment{
		Envelope:   senv,
		ShipmentID: id, Retailer: to.retailerID, RetailerName: to.retailerName, RefillTemplate: refill,
		Product:       message.ShipmentProduct{Operator: req.Operator, Code: req.Product, FaceValue: face, Currency: currency},
		TerminalShare: termEK, VendorShares: vendorEKs, Codes: sealed,
	}))
	if err != nil {
		return ShipmentInfo{}, err
	}
	// Charged last, so the retailer's account is locked only until the commit.
	if v.ledger != nil {
		if err := v.ledger.ChargeShipment(ctx, tx, id); err != nil {
			return ShipmentInfo{}, err
		}
	}
	return ShipmentInfo{ID: id, Terminal: req.Terminal, Count: len(sealed), Document: doc, env: senv}, nil
}

// refusedForCredit raises a credit_limit alarm about the retailer when err refused a shipment
// for its credit. It runs after the shipment's rollback, on its own connection.
func (v *Vault) refusedForCredit(ctx context.Context, retailerID string, err error, now time.Time) {
	if evoucher.ReasonOf(err) != "credit_limit" {
		return
	}
	if aerr := raiseAlarm(context.WithoutCancel(ctx), v.db, AlarmCreditLimit, retailerID, evoucher.MessageOf(err), now); aerr != nil {
		slog.ErrorContext(ctx, "could not raise a credit_limit alarm", "retailer", retailerID, "err", aerr)
	}
}

// partCipher returns the DEK of a batch part as an AEAD, unwrapping it in the HSM once per
// part and call.
func (v *Vault) partCipher(ctx context.Context, tx pgx.Tx, cache map[[2]int64]cipher.AEAD, batch int64, part int) (cipher.AEAD, error) {
	k := [2]int64{batch, int64(part)}
	if a, ok := cache[k]; ok {
		return a, nil
	}
	var wrapped []byte
	var label string
	if err := tx.QueryRow(ctx, `SELECT dek_wrapped, kek_label FROM batch_parts WHERE batch_id = $1 AND part = $2`, batch, part).Scan(&wrapped, &label); err != nil {
		return nil, err
	}
	kek, err := v.keys.FindAESKey(label)
	if err != nil {
		return nil, fmt.Errorf("KEK %q: %w", label, err)
	}
	dek, err := unwrap(kek, wrapped, dekAAD(batch, part, label))
	if err != nil {
		return nil, fmt.Errorf("batch %d part %d: %w", batch, part, err)
	}
	a, err := dekCipher(dek)
	clear(dek)
	if err != nil {
		return nil, err
	}
	cache[k] = a
	return a, nil
}

// PendingShipments returns the signed Shipments sent to a terminal and not yet confirmed,
// oldest first: what its next sync fetches.
func (v *Vault) PendingShipments(ctx context.Context, terminalID string) ([][]byte, error) {
	rows, err := v.db.Query(ctx, `SELECT log_index FROM shipments WHERE terminal_id = $1 AND state = 'sent' ORDER BY created_at, id`, terminalID)
	if err != nil {
		return nil, err
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	return auditlog.Messages(ctx, v.db, idx...)
}

// Quarantine takes every unsold code held by a terminal out of circulation (a revoked or
// lost terminal) and marks the terminal revoked, in the caller's transaction. It returns the
// number of codes quarantined.
func Quarantine(ctx context.Context, tx pgx.Tx, terminalID string) (int, error) {
	if _, err := tx.Exec(ctx, `UPDATE terminals SET status = 'revoked' WHERE id = $1`, terminalID); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, `UPDATE codes SET state = 'quarantined' WHERE state IN ('shipped', 'delivered')
		AND shipment_id IN (SELECT id FROM shipments WHERE terminal_id = $1)`, terminalID)
	return int(tag.RowsAffected()), err
}

// QuarantinedCode is a serial an operator should block.
type QuarantinedCode struct {
	Operator string    `json:"operator"`
	Product  string    `json:"product"`
	Serial   string    `json:"serial"`
	Terminal string    `json:"terminal"`
	Expires  time.Time `json:"expires"`
}

// Quarantined lists quarantined codes, of one operator and/or one terminal when given.
func (v *Vault) Quarantined(ctx context.Context, operatorID, terminalID string) ([]QuarantinedCode, error) {
	rows, err := v.db.Query(ctx, `SELECT c.operator_id, c.product, c.serial, s.terminal_id, c.expires_on
		FROM codes c JOIN shipments s ON s.id = c.shipment_id WHERE c.state = 'quarantined'
		AND ($1 = '' OR c.operator_id = $1) AND ($2 = '' OR s.terminal_id = $2) ORDER BY c.operator_id, c.product, c.serial`, operatorID, terminalID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (QuarantinedCode, error) {
		var q QuarantinedCode
		err := r.Scan(&q.Operator, &q.Product, &q.Serial, &q.Terminal, &q.Expires)
		return q, err
	})
}

// OnRevoke is the PKI's revocation hook (pki.Config.OnRevoke): revoking a terminal's
// certificate for any reason but "superseded" (a routine re-enrolment) quarantines the
// terminal's unsold stock in the same transaction.
func OnRevoke(ctx context.Context, tx pgx.Tx, r pki.Revocation) error {
	if r.Role != pki.RoleTerminal || r.Reason == "superseded" {
		return nil
	}
	_, err := Quarantine(ctx, tx, r.Entity)
	return err
}

// ShareUpdates gives the vendor cards enrolled since a terminal's unfinished shipments were
// sent their shares of those shipments' keys: one signed KeyShareUpdate per shipment that had
// a card missing. A terminal's sync fetches them with its shipments.
func (v *Vault) ShareUpdates(ctx context.Context, terminalID string) ([][]byte, error) {
	if v.parties == nil {
		return nil, nil
	}
	now := v.now().UTC()
	retailerID, _, err := v.parties.RetailerOf(ctx, terminalID)
	if err != nil {
		return nil, err
	}
	cards, err := v.parties.VendorCards(ctx, retailerID, now)
	if err != nil {
		return nil, err
	}
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `SELECT id, vendors, kek_label, key_wrapped, share_wrapped FROM shipments
		WHERE terminal_id = $1 AND state IN ('sent', 'confirmed') ORDER BY created_at, id FOR UPDATE`, terminalID)
	if err != nil {
		return nil, err
	}
	type ship struct {
		id, label  string
		vendors    []string
		key, share []byte
	}
	ships, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ship, error) {
		var s ship
		err := r.Scan(&s.id, &s.vendors, &s.label, &s.key, &s.share)
		return s, err
	})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, s := range ships {
		var missing []string
		for vendor := range cards {
			if !slices.Contains(s.vendors, vendor) {
				missing = append(missing, vendor)
			}
		}
		if len(missing) == 0 {
			continue
		}
		slices.Sort(missing)
		kek, err := v.keys.FindAESKey(s.label)
		if err != nil {
			return nil, fmt.Errorf("KEK %q: %w", s.label, err)
		}
		key, err := unwrap(kek, s.key, shipKeyAAD(s.id, "key", s.label))
		if err != nil {
			return nil, fmt.Errorf("shipment %s key: %w", s.id, err)
		}
		share, err := unwrap(kek, s.share, shipKeyAAD(s.id, "terminal-share", s.label))
		if err != nil {
			clear(key)
			return nil, fmt.Errorf("shipment %s terminal share: %w", s.id, err)
		}
		vendorShare := make([]byte, 32)
		subtle.XORBytes(vendorShare, key, share)
		clear(key)
		clear(share)
		eks := map[string]*etree.Element{}
		for _, vendor := range missing {
			if eks[vendor], err = xenc.WrapKey(vendorShare, xenc.Recipient{Cert: cards[vendor], Name: vendor}); err != nil {
				clear(vendorShare)
				return nil, err
			}
		}
		clear(vendorShare)
		id := uuid.NewString()
		kenv := message.Envelope{Type: "KeyShareUpdate", ID: "ks-" + id, MessageID: id, Sender: message.Center, Recipient: terminalID, Created: now}
		doc, err := v.sign(message.BuildKeyShareUpdate(message.KeyShareUpdate{Envelope: kenv, ShipmentID: s.id, VendorShares: eks}))
		if err != nil {
			return nil, err
		}
		if _, err := auditlog.Append(ctx, tx, logged(kenv, doc)); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE shipments SET vendors = vendors || $2 WHERE id = $1`, s.id, missing); err != nil {
			return nil, err
		}
		out = append(out, doc)
	}
	return out, tx.Commit(ctx)
}

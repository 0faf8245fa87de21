package codevault

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

func refused(kind evoucher.Kind, reason, format string, args ...any) error {
	return evoucher.Errorf(kind, reason, format, args...)
}

// Receive takes one exchange document from peer (the mTLS identity that sent it) and returns
// the signed answer. Today it takes CodeBatch parts from operators. A refused document stores
// nothing but a line in the refusal journal and an alarm, and is counted; the error says why.
// The exact same bytes sent again return the same answer and change nothing.
func (v *Vault) Receive(ctx context.Context, peer pki.Identity, raw []byte) ([]byte, error) {
	digest := sha256.Sum256(raw)
	resp, env, err := v.receive(ctx, peer, raw, digest)
	if err != nil && evoucher.KindOf(err) != evoucher.KindInternal && evoucher.KindOf(err) != evoucher.KindUnavailable {
		v.refuse(ctx, peer, env, raw, digest, err)
	}
	return resp, err
}

func (v *Vault) receive(ctx context.Context, peer pki.Identity, raw []byte, digest [32]byte) ([]byte, message.Envelope, error) {
	var env message.Envelope
	doc, err := message.Parse(raw, v.limits)
	if err != nil {
		return nil, env, err
	}
	env, err = message.ReadEnvelope(doc.Root())
	if err != nil {
		return nil, env, err
	}
	// An exact retry by its sender gets the answer it got the first time; anyone else sending
	// the same bytes goes through the checks below and is refused.
	var stored, answer []byte
	var storedIdx, logMessage *int64
	var sender, messageID string
	err = v.db.QueryRow(ctx, `SELECT response, response_index, answer, log_message, sender, message_id FROM messages WHERE digest = $1`, digest[:]).
		Scan(&stored, &storedIdx, &answer, &logMessage, &sender, &messageID)
	if err == nil && stored == nil && answer != nil && sender == peer.Entity {
		// Recorded, but the center stopped before its receipt was signed.
		resp, err := v.deliver(ctx, messageID, answer, logMessage)
		return resp, env, err
	}
	if err == nil && stored == nil && storedIdx != nil && sender == peer.Entity {
		// An answer kept in the exchange log only (a StockOrder's Shipment).
		docs, err := auditlog.Messages(ctx, v.db, *storedIdx)
		if err != nil {
			return nil, env, err
		}
		return docs[0], env, nil
	}
	if err == nil && stored != nil && sender == peer.Entity {
		return stored, env, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, env, err
	}
	var resp []byte
	switch env.Type {
	case "CodeBatch":
		resp, err = v.ingest(ctx, peer, inbound{doc, env, raw, digest})
	case "ShipmentAck":
		resp, err = v.ack(ctx, peer, inbound{doc, env, raw, digest})
	case "SalesReport":
		var orders []ShipRequest
		resp, orders, err = v.report(ctx, peer, inbound{doc, env, raw, digest})
		// Restock below-minimum products now; the terminal fetches the shipments at its next
		// sync. A failure here does not undo the report.
		for _, o := range orders {
			if _, serr := v.Ship(ctx, o); serr != nil {
				slog.WarnContext(ctx, "automatic restock failed", "terminal", o.Terminal, "product", o.Product, "err", serr)
			}
		}
	case "StockOrder":
		resp, err = v.order(ctx, peer, inbound{doc, env, raw, digest})
	case "StockReturn":
		resp, err = v.giveBack(ctx, peer, inbound{doc, env, raw, digest})
	default:
		return nil, env, refused(evoucher.KindInvalid, "unsupported_type", "the center does not take %s documents", env.Type)
	}
	return resp, env, err
}

// verify checks the signature profile and that the signer is sender, holds a valid
// certificate of role at the message's creation time, and is the party on the connection.
func (v *Vault) verify(ctx context.Context, peer pki.Identity, doc *etree.Document, env message.Envelope, role pki.Role) (*etree.Element, error) {
	if peer.Entity != env.Sender {
		return nil, refused(evoucher.KindForbidden, "sender_mismatch", "%s sent a document claiming to be from %s", peer, env.Sender)
	}
	// Cheap checks first; they read the envelope before the signature is checked, which is
	// safe because they can only refuse, and the signed envelope must equal it below.
	now := v.now()
	switch {
	case env.Recipient != message.Center:
		return nil, refused(evoucher.KindInvalid, "wrong_recipient", "the document is addressed to %s, not to the center", env.Recipient)
	case env.Created.Before(now.Add(-v.maxAge)):
		return nil, refused(evoucher.KindInvalid, "stale", "the document was created at %s, more than %s ago: seal it again and resend", env.Created.Format(time.RFC3339), v.maxAge)
	case env.Created.After(now.Add(v.maxSkew)):
		return nil, refused(evoucher.KindInvalid, "future", "the document was created at %s, in the future: check the sender's clock", env.Created.Format(time.RFC3339))
	}
	signed, _, err := dsig.Verify(doc, func(cert *x509.Certificate) error {
		id, err := v.pki.Verify(ctx, cert, role, env.Created)
		if err != nil {
			return err
		}
		if id.Entity != env.Sender {
			return refused(evoucher.KindForbidden, "sender_mismatch", "the document is signed by %s but claims to be from %s", id, env.Sender)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Read the envelope again from what the signature covers, and only from that.
	signedEnv, err := message.ReadEnvelope(signed)
	if err != nil {
		return nil, err
	}
	if signedEnv != env {
		return nil, refused(evoucher.KindInvalid, "signature_wrapping", "the signed element is not the document's root")
	}
	var n int
	if err := v.db.QueryRow(ctx, `SELECT count(*) FROM messages WHERE message_id = $1`, env.MessageID).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, refused(evoucher.KindConflict, "replay", "MessageId %s was already used by another document", env.MessageID)
	}
	return signed, nil
}

type productRules struct {
	faceValue int64
	currency  string
	serial    *regexp.Regexp
	pin       *regexp.Regexp
	level     int
	quantity  int
}

// inbound is a received document: parsed, its envelope, its bytes and their digest.
type inbound struct {
	doc    *etree.Document
	env    message.Envelope
	raw    []byte
	digest [32]byte
}

// logProof proves entry index in the tree that ends with it, reading through q.
func logProof(ctx context.Context, q auditlog.Querier, index uint64) (message.LogProof, error) {
	p, err := auditlog.ProveTx(ctx, q, index, index+1)
	return message.LogProof{Size: p.Size, Root: p.Root, Hashes: p.Hashes}, err
}

// logged is the log entry of a document with this envelope.
func logged(env message.Envelope, raw []byte) *auditlog.Entry {
	return &auditlog.Entry{Type: env.Type, Sender: env.Sender, Recipient: env.Recipient, MessageID: env.MessageID, Time: env.Created, Data: raw}
}

func (v *Vault) ingest(ctx context.Context, peer pki.Identity, in inbound) ([]byte, error) {
	doc, env, digest := in.doc, in.env, in.digest
	signed, err := v.verify(ctx, peer, doc, env, pki.RoleOperatorSign)
	if err != nil {
		return nil, err
	}
	cb, err := message.ReadCodeBatch(signed)
	if err != nil {
		return nil, err
	}
	h := cb.Header
	rules, err := v.rules(ctx, env.Sender, h)
	if err != nil {
		return nil, err
	}
	plaintext, err := xenc.Decrypt(cb.Encrypted, v.encCert, v.dec)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)

	tx, err := v.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	batchID, err := v.batch(ctx, tx, env.Sender, h)
	if err != nil {
		return nil, err
	}
	now := v.now().UTC()
	if _, err := tx.Exec(ctx, `INSERT INTO messages (message_id, type, sender, digest, received_at) VALUES ($1, $2, $3, $4, $5)`,
		env.MessageID, env.Type, env.Sender, digest[:], now); err != nil {
		if isUnique(err) {
			return nil, refused(evoucher.KindConflict, "replay", "MessageId %s was already used by another document", env.MessageID)
		}
		return nil, err
	}
	receipt := message.BatchReceipt{BatchID: h.BatchID, Part: h.Part, Parts: h.Parts, BatchDigest: digest, InReplyTo: env.MessageID}
	var have []byte
	var haveCount int
	err = tx.QueryRow(ctx, `SELECT codes_digest, count FROM batch_parts WHERE batch_id = $1 AND part = $2`, batchID, h.Part).Scan(&have, &haveCount)
	switch {
	case err == nil:
		// The part is stored already, under another message: a re-sealed resend.
		if string(have) != string(h.CodesDigest[:]) {
			return nil, refused(evoucher.KindConflict, "batch_conflict", "part %d of batch %s was already stored with other codes", h.Part, h.BatchID)
		}
		if err := message.ReadCodes(plaintext, env.Sender, h, func(message.Code) error { return nil }); err != nil {
			return nil, err
		}
		receipt.Status, receipt.Duplicate = message.StatusDuplicate, haveCount
	case errors.Is(err, pgx.ErrNoRows):
		if err := v.storePart(ctx, tx, env.Sender, batchID, h, rules, plaintext, env.MessageID, now); err != nil {
			return nil, err
		}
		receipt.Status, receipt.Accepted = message.StatusAccepted, h.Count
		if err := v.afterStore(ctx, tx, env.Sender, h, rules, now); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	// The batch goes in the exchange log's queue with what it caused. The receipt is stored
	// unsigned with what it answers; it is completed with the batch's entry once sequenced,
	// and signed, after the commit (deliver, migrations 0014 and 0015).
	ids, err := auditlog.Enqueue(ctx, tx, logged(env, in.raw))
	if err != nil {
		return nil, err
	}
	unsigned, err := message.BuildBatchReceipt(receiptEnvelope(receipt, env, now)).WriteToBytes()
	if err != nil {
		return nil, err
	}
	if err := v.prepare(ctx, tx, env.MessageID, unsigned, ids[0]); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	if receipt.Status == message.StatusAccepted {
		v.meter.Accepted(env.Sender, h.Product, h.Count)
	}
	return v.deliver(ctx, env.MessageID, unsigned, &ids[0])
}

func receiptEnvelope(r message.BatchReceipt, in message.Envelope, now time.Time) message.BatchReceipt {
	id := uuid.NewString()
	r.Envelope = message.Envelope{Type: "BatchReceipt", ID: "br-" + id, MessageID: id, Sender: message.Center, Recipient: in.Sender, Created: now}
	return r
}

// sign signs a document with the center-sign key and serialises it.
func (v *Vault) sign(doc *etree.Document) ([]byte, error) {
	b, err := dsig.SignBytes(doc, v.signer, v.sigCert)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", doc.Root().Tag, err)
	}
	return b, nil
}

// rules loads the product the header names and checks the header against it.
func (v *Vault) rules(ctx context.Context, operatorID string, h message.BatchHeader) (productRules, error) {
	var r productRules
	var serial, pin string
	err := v.db.QueryRow(ctx, `SELECT face_value, currency, serial_pattern, pin_pattern, reorder_level, reorder_quantity
		FROM products WHERE operator_id = $1 AND code = $2`, operatorID, h.Product).
		Scan(&r.faceValue, &r.currency, &serial, &pin, &r.level, &r.quantity)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, refused(evoucher.KindInvalid, "unknown_product", "operator %s has no product %s", operatorID, h.Product)
	}
	if err != nil {
		return r, err
	}
	if r.faceValue != h.FaceValue || r.currency != h.Currency {
		return r, refused(evoucher.KindInvalid, "face_value_mismatch", "product %s is worth %d %s, the batch says %d %s", h.Product, r.faceValue, r.currency, h.FaceValue, h.Currency)
	}
	if r.serial, err = regexp.Compile("^(?:" + serial + ")$"); err != nil {
		return r, err
	}
	if r.pin, err = regexp.Compile("^(?:" + pin + ")$"); err != nil {
		return r, err
	}
	return r, nil
}

// batch finds or creates the batch row of a part and checks the part agrees with it.
func (v *Vault) batch(ctx context.Context, tx pgx.Tx, operatorID string, h message.BatchHeader) (int64, error) {
	var id, lotCount, lotValue int64
	var product string
	var parts int
	// DO NOTHING, not DO UPDATE: parts of one lot stored at the same time must not queue on a
	// lock of the batch row.
	_, err := tx.Exec(ctx, `INSERT INTO batches (operator_id, ref, product, parts, lot_count, lot_face_value, purchase_order, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, ''), $8) ON CONFLICT (operator_id, ref) DO NOTHING`,
		operatorID, h.BatchID, h.Product, h.Parts, h.LotCount, h.LotFaceValue, h.PurchaseOrder, v.now().UTC())
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" {
		return 0, refused(evoucher.KindInvalid, "unknown_order", "purchase order %q is not known", h.PurchaseOrder)
	}
	if err != nil {
		return 0, err
	}
	if err := tx.QueryRow(ctx, `SELECT id, product, parts, lot_count, lot_face_value FROM batches WHERE operator_id = $1 AND ref = $2`,
		operatorID, h.BatchID).Scan(&id, &product, &parts, &lotCount, &lotValue); err != nil {
		return 0, err
	}
	if product != h.Product || parts != h.Parts || lotCount != h.LotCount || lotValue != h.LotFaceValue {
		return 0, refused(evoucher.KindConflict, "batch_conflict", "part %d of batch %s disagrees with the parts already received (product, parts or lot totals)", h.Part, h.BatchID)
	}
	return id, nil
}

// storePart seals every PIN under a fresh DEK and copies the codes into the vault.
func (v *Vault) storePart(ctx context.Context, tx pgx.Tx, operatorID string, batchID int64, h message.BatchHeader,
	rules productRules, plaintext []byte, messageID string, now time.Time) error {
	kekLabel, kek, err := v.activeKEK(ctx, tx)
	if err != nil {
		return err
	}
	dek, wrapped, err := newDEK(kek, dekAAD(batchID, h.Part, kekLabel))
	if err != nil {
		return err
	}
	defer clear(dek)
	aead, err := dekCipher(dek)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO batch_parts (batch_id, part, message_id, count, face_value, codes_digest, kek_label, dek_wrapped, received_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, batchID, h.Part, messageID, h.Count, h.TotalFaceValue, h.CodesDigest[:], kekLabel, wrapped, now); err != nil {
		return err
	}
	src := newCodeSource(ctx, plaintext, operatorID, h, batchID, rules, aead, now)
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"codes"},
		[]string{"operator_id", "serial", "product", "batch_id", "part", "pin_ct", "expires_on"}, src)
	src.stop()
	if srcErr := src.Err(); srcErr != nil {
		return srcErr
	}
	if errors.As(err, new(*pgconn.PgError)) && isUnique(err) {
		var pe *pgconn.PgError
		errors.As(err, &pe)
		return refused(evoucher.KindConflict, "duplicate_serial", "a serial is already in the vault or twice in the batch: %s", strings.TrimPrefix(pe.Detail, "Key "))
	}
	return err
}

// afterStore fulfils the purchase order the batch answers and orders more when the vault's
// stock of the product is below its reorder level.
func (v *Vault) afterStore(ctx context.Context, tx pgx.Tx, operatorID string, h message.BatchHeader, rules productRules, now time.Time) error {
	if h.PurchaseOrder != "" {
		tag, err := tx.Exec(ctx, `UPDATE purchase_orders SET state = 'fulfilled', fulfilled_at = $4
			WHERE id = $1 AND operator_id = $2 AND product = $3 AND state = 'open'`, h.PurchaseOrder, operatorID, h.Product, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var state, owner, product string
			err := tx.QueryRow(ctx, `SELECT state, operator_id, product FROM purchase_orders WHERE id = $1`, h.PurchaseOrder).Scan(&state, &owner, &product)
			if err != nil || owner != operatorID || product != h.Product {
				return refused(evoucher.KindInvalid, "unknown_order", "purchase order %q is not an order of %s for %s", h.PurchaseOrder, operatorID, h.Product)
			}
		}
	}
	return v.reorder(ctx, tx, operatorID, h.Product, rules, now)
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

package codevault

import (
	"context"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// fromTerminal verifies a terminal's document and opens the transaction that records it,
// with the message registered (replays refused). The caller commits.
func (v *Vault) fromTerminal(ctx context.Context, peer pki.Identity, in inbound) (*etree.Element, pgx.Tx, error) {
	env, digest := in.env, in.digest
	signed, err := v.verify(ctx, peer, in.doc, env, pki.RoleTerminal)
	if err != nil {
		return nil, nil, err
	}
	tx, err := v.register(ctx, env, digest)
	return signed, tx, err
}

// register opens the transaction that records a terminal's verified document: the message is
// registered (replays refused) and the terminal seen. Nothing in that transaction may wait for
// another pool connection.
func (v *Vault) register(ctx context.Context, env message.Envelope, digest [32]byte) (pgx.Tx, error) {
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO messages (message_id, type, sender, digest, received_at) VALUES ($1, $2, $3, $4, $5)`,
		env.MessageID, env.Type, env.Sender, digest[:], v.now().UTC()); err != nil {
		tx.Rollback(ctx)
		if isUnique(err) {
			return nil, refused(evoucher.KindConflict, "replay", "MessageId %s was already used by another document", env.MessageID)
		}
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE terminals SET last_seen_at = $2 WHERE id = $1`, env.Sender, v.now().UTC()); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}

// answer logs a terminal's document and commits tx with a Receipt stored unsigned as the
// message's answer; then it completes, signs, logs and stores the receipt (deliver) and
// returns it. The document is queued in the log with its effects (migration 0015) and the
// receipt, which names its entry and proves it, is completed once it is sequenced; the HSM
// signature is made after the commit too (migration 0014). An error after the commit leaves
// the message recorded: the terminal's retry gets the receipt.
func (v *Vault) answer(ctx context.Context, tx pgx.Tx, in inbound, status, detail string) ([]byte, error) {
	env := in.env
	ids, err := auditlog.Enqueue(ctx, tx, logged(env, in.raw))
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	renv := message.Envelope{Type: "Receipt", ID: "rc-" + id, MessageID: id, Sender: message.Center, Recipient: env.Sender, Created: v.now().UTC()}
	unsigned, err := message.BuildReceipt(message.Receipt{Envelope: renv, InReplyTo: env.MessageID, Status: status, Detail: detail}).WriteToBytes()
	if err != nil {
		return nil, err
	}
	if err := v.prepare(ctx, tx, env.MessageID, unsigned, ids[0]); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return v.deliver(ctx, env.MessageID, unsigned, &ids[0])
}

// prepare stores a message's unsigned answer and the log message its document was queued as.
func (v *Vault) prepare(ctx context.Context, tx pgx.Tx, messageID string, unsigned []byte, logMessage int64) error {
	_, err := tx.Exec(ctx, `UPDATE messages SET answer = $2, log_message = $3 WHERE message_id = $1`, messageID, unsigned, logMessage)
	return err
}

// deliver completes the receipt prepared, unsigned, for message messageID with the log entry
// of the document it answers (logMessage, as queued; nil for a receipt prepared before
// migration 0015, which names its entry already), signs it, logs it and stores it as the
// message's response, in a transaction of its own, and returns it once it is in the log's
// tree. When the response is stored already (a retry answered at the same time), it returns
// that one and logs nothing.
func (v *Vault) deliver(ctx context.Context, messageID string, unsigned []byte, logMessage *int64) ([]byte, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(unsigned); err != nil {
		return nil, fmt.Errorf("answer to %s: %w", messageID, err)
	}
	renv, err := message.ReadEnvelope(doc.Root())
	if err != nil {
		return nil, fmt.Errorf("answer to %s: %w", messageID, err)
	}
	if logMessage != nil {
		idx, err := v.seq.Index(ctx, *logMessage)
		if err != nil {
			return nil, err
		}
		lp, err := logProof(ctx, v.db, idx)
		if err != nil {
			return nil, err
		}
		if err := message.SetLogEntry(doc.Root(), idx, lp); err != nil {
			return nil, fmt.Errorf("answer to %s: %w", messageID, err)
		}
	}
	resp, err := v.sign(doc)
	if err != nil {
		return nil, err
	}
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	var stored []byte
	if err := tx.QueryRow(ctx, `SELECT response FROM messages WHERE message_id = $1 FOR UPDATE`, messageID).Scan(&stored); err != nil {
		return nil, err
	}
	if stored != nil {
		return stored, nil
	}
	if _, err := auditlog.Enqueue(ctx, tx, logged(renv, resp)); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE messages SET response = $2 WHERE message_id = $1`, messageID, resp); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	// A receipt is in the log before it is sent.
	if err := v.seq.Sync(ctx); err != nil {
		return nil, err
	}
	return resp, nil
}

// ack confirms a shipment: Sent → Confirmed, its codes shipped → delivered.
func (v *Vault) ack(ctx context.Context, peer pki.Identity, in inbound) ([]byte, error) {
	env := in.env
	signed, tx, err := v.fromTerminal(ctx, peer, in)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	a, err := message.ReadShipmentAck(signed)
	if err != nil {
		return nil, err
	}
	var terminal, state string
	err = tx.QueryRow(ctx, `SELECT terminal_id, state FROM shipments WHERE id = $1 FOR UPDATE`, a.ShipmentID).Scan(&terminal, &state)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && terminal != env.Sender) {
		return nil, refused(evoucher.KindForbidden, "not_your_shipment", "shipment %s was not sent to %s", a.ShipmentID, env.Sender)
	}
	if err != nil {
		return nil, err
	}
	if state != "sent" {
		return v.answer(ctx, tx, in, message.StatusDuplicate, "shipment "+a.ShipmentID+" was confirmed already")
	}
	// The terminal proves what arrived: the digest of the serials in the shipment's order.
	shipped, err := v.shipmentSerials(ctx, tx, a.ShipmentID)
	if err != nil {
		return nil, err
	}
	if a.Count != len(shipped) || a.SerialsDigest != message.SerialsDigest(shipped) {
		return nil, refused(evoucher.KindInvalid, "control_totals", "the acknowledgement of %s does not match what was shipped (%d codes)", a.ShipmentID, len(shipped))
	}
	now := v.now().UTC()
	if _, err := tx.Exec(ctx, `UPDATE shipments SET state = 'confirmed', confirmed_at = $2 WHERE id = $1`, a.ShipmentID, now); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE codes SET state = 'delivered' WHERE shipment_id = $1 AND state = 'shipped'`, a.ShipmentID); err != nil {
		return nil, err
	}
	return v.answer(ctx, tx, in, message.StatusAccepted, fmt.Sprintf("shipment %s confirmed: %d codes delivered", a.ShipmentID, a.Count))
}

// shipmentSerials returns a shipment's serials in the order of its document.
func (v *Vault) shipmentSerials(ctx context.Context, tx pgx.Tx, id string) ([]string, error) {
	var idx int64
	if err := tx.QueryRow(ctx, `SELECT log_index FROM shipments WHERE id = $1`, id).Scan(&idx); err != nil {
		return nil, err
	}
	docs, err := auditlog.Messages(ctx, tx, idx)
	if err != nil {
		return nil, err
	}
	raw := docs[0]
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, err
	}
	s, err := message.ReadShipment(doc.Root())
	if err != nil {
		return nil, err
	}
	out := make([]string, len(s.Codes))
	for i, c := range s.Codes {
		out[i] = c.Serial
	}
	return out, nil
}

// report takes a SalesReport: gap-free by sequence, each sale recorded once.
func (v *Vault) report(ctx context.Context, peer pki.Identity, in inbound) ([]byte, []ShipRequest, error) {
	env := in.env
	signed, tx, err := v.fromTerminal(ctx, peer, in)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(ctx)
	r, err := message.ReadSalesReport(signed)
	if err != nil {
		return nil, nil, err
	}
	var last int64
	var retailer string
	if err := tx.QueryRow(ctx, `SELECT report_seq, retailer_id FROM terminals WHERE id = $1 FOR UPDATE`, env.Sender).Scan(&last, &retailer); err != nil {
		return nil, nil, err
	}
	switch {
	case r.Seq <= last:
		return nil, nil, refused(evoucher.KindConflict, "report_replayed", "report %d of %s was taken already (last is %d)", r.Seq, env.Sender, last)
	case r.Seq > last+1:
		now := v.now().UTC()
		// The alarm must outlive the refusal's rollback.
		_ = raiseAlarm(context.WithoutCancel(ctx), v.db, "report_gap", env.Sender,
			fmt.Sprintf("terminal %s sent sales report %d but %d is the next expected: reports %d to %d are missing", env.Sender, r.Seq, last+1, last+1, r.Seq-1), now)
		return nil, nil, refused(evoucher.KindConflict, "report_gap", "report %d of %s leaves a gap: send report %d first", r.Seq, env.Sender, last+1)
	}
	if err := v.recordSales(ctx, tx, env.Sender, retailer, r.Sales, r.Seq); err != nil {
		return nil, nil, err
	}
	var orders []ShipRequest
	for _, st := range r.Stock {
		var min, max int
		var auto bool
		err := tx.QueryRow(ctx, `UPDATE terminal_products SET reported_stock = $4, reported_at = $5
			WHERE terminal_id = $1 AND operator_id = $2 AND product = $3 RETURNING min_level, max_level, auto_reorder`,
			env.Sender, st.Operator, st.Product, st.Count, r.Created).Scan(&min, &max, &auto)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // a product the center keeps no levels for at this terminal
		}
		if err != nil {
			return nil, nil, err
		}
		if st.Count < min && auto {
			orders = append(orders, ShipRequest{Terminal: env.Sender, Operator: st.Operator, Product: st.Product, Quantity: max - st.Count})
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE terminals SET report_seq = $2 WHERE id = $1`, env.Sender, r.Seq); err != nil {
		return nil, nil, err
	}
	if err := completeShipments(ctx, tx, env.Sender, v.now().UTC()); err != nil {
		return nil, nil, err
	}
	resp, err := v.answer(ctx, tx, in, message.StatusAccepted, fmt.Sprintf("report %d: %d sales recorded", r.Seq, len(r.Sales)))
	if err != nil {
		return nil, nil, err
	}
	for range r.Sales {
		v.meter.Sold(env.Sender)
	}
	return resp, orders, nil
}

// recordSales records a report's sales with a few set-based statements (one lookup, one
// update, one insert), deciding each sale in report order as recordSale does for one.
func (v *Vault) recordSales(ctx context.Context, tx pgx.Tx, terminal, retailer string, sales []message.Sale, seq int64) error {
	if len(sales) == 0 {
		return nil
	}
	serials := make([]string, len(sales))
	vendors := map[string]bool{}
	for i, s := range sales {
		serials[i] = s.Serial
		vendors[s.Vendor] = true
	}
	vlist := make([]string, 0, len(vendors))
	for vid := range vendors {
		vlist = append(vlist, vid)
	}
	var ok int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM vendors WHERE id = ANY($1) AND retailer_id = $2`, vlist, retailer).Scan(&ok); err != nil {
		return err
	}
	if ok != len(vlist) {
		return refused(evoucher.KindForbidden, "unknown_vendor", "a vendor of the report does not sell for %s's retailer", terminal)
	}
	type held struct {
		id    int64
		state string
	}
	// The codes are found through the (operator_id, serial) key first, materialised, then
	// checked against the terminal's shipments and locked. Written as one join, the generic
	// plan a pooled connection switches to after five runs walked codes_shipment over every
	// code ever shipped to the terminal, comparing each serial with the whole array: a cost
	// that grows with the terminal's history.
	rows, err := tx.Query(ctx, `WITH wanted AS MATERIALIZED (
			SELECT id FROM codes WHERE serial = ANY($1)
			AND operator_id = ANY(ARRAY(SELECT DISTINCT operator_id FROM shipments WHERE terminal_id = $2)))
		SELECT c.serial, c.id, c.state FROM wanted w JOIN codes c ON c.id = w.id JOIN shipments sh ON sh.id = c.shipment_id
		WHERE sh.terminal_id = $2 FOR UPDATE OF c`, serials, terminal)
	if err != nil {
		return err
	}
	codes := map[string]held{}
	for rows.Next() {
		var serial string
		var h held
		if err := rows.Scan(&serial, &h.id, &h.state); err != nil {
			rows.Close()
			return err
		}
		codes[serial] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var ids, rpIDs []int64
	var times []time.Time
	var vendorsOf, tickets, rpTickets []string
	var reprints, rpCounts []int32
	ticketOf := map[string]string{} // serial → ticket sold in this report
	for _, s := range sales {
		h, found := codes[s.Serial]
		if !found {
			return refused(evoucher.KindForbidden, "not_your_code", "serial %s was never shipped to %s", s.Serial, terminal)
		}
		if t, soldHere := ticketOf[s.Serial]; soldHere {
			if t != s.Ticket {
				return refused(evoucher.KindConflict, "sold_twice", "serial %s is sold twice in the report", s.Serial)
			}
			continue
		}
		switch h.state {
		case "shipped", "delivered":
			ticketOf[s.Serial] = s.Ticket
			ids, times, vendorsOf, tickets, reprints = append(ids, h.id), append(times, s.Time), append(vendorsOf, s.Vendor), append(tickets, s.Ticket), append(reprints, int32(s.Reprints))
		case "sold":
			ticketOf[s.Serial] = s.Ticket
			rpIDs, rpTickets, rpCounts = append(rpIDs, h.id), append(rpTickets, s.Ticket), append(rpCounts, int32(s.Reprints))
		default:
			return refused(evoucher.KindConflict, "not_sellable", "serial %s is %s and cannot be sold", s.Serial, h.state)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE codes c SET state = 'sold', sold_at = x.t FROM unnest($1::bigint[], $2::timestamptz[]) AS x(id, t)
			WHERE c.id = x.id`, ids, times); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sales (code_id, terminal_id, vendor_id, ticket, sold_at, reprints, report_seq)
			SELECT x.id, $1, x.v, x.k, x.t, x.r, $7 FROM unnest($2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::int[]) AS x(id, v, k, t, r)`,
			terminal, ids, vendorsOf, tickets, times, reprints, seq)
		if isUnique(err) {
			return refused(evoucher.KindConflict, "ticket_reused", "a ticket of the report was already used for another code")
		}
		if err != nil {
			return err
		}
		if v.ledger != nil {
			if err := v.ledger.ChargeSales(ctx, tx, ids); err != nil {
				return err
			}
		}
	}
	if len(rpIDs) > 0 {
		// Codes sold before: the same ticket again is a reprint; another ticket is a second sale.
		tag, err := tx.Exec(ctx, `UPDATE sales s SET reprints = greatest(s.reprints, x.r) FROM unnest($1::bigint[], $2::text[], $3::int[]) AS x(id, k, r)
			WHERE s.code_id = x.id AND s.ticket = x.k`, rpIDs, rpTickets, rpCounts)
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(rpIDs) {
			return refused(evoucher.KindConflict, "sold_twice", "a serial of the report was already sold on another ticket")
		}
	}
	return nil
}

// recordSale marks one code sold by a terminal. A sale already recorded by the same terminal
// and ticket only updates its reprint count; anything else about a code not at this terminal
// is refused.
func (v *Vault) recordSale(ctx context.Context, tx pgx.Tx, terminal, retailer string, s message.Sale, seq *int64) error {
	var codeID int64
	var state, shipTerminal string
	// The code is found through the (operator_id, serial) key, for the operators whose stock
	// the terminal received (a shipment holds codes of its own operator only). Joined on
	// shipment_id instead, the planner may walk codes_shipment over every code shipped, as it
	// does when codes was last analysed before the shipments (after a large ingest).
	err := tx.QueryRow(ctx, `SELECT c.id, c.state, sh.terminal_id FROM codes c LEFT JOIN shipments sh ON sh.id = c.shipment_id
		WHERE c.serial = $1 AND c.operator_id = ANY(ARRAY(SELECT DISTINCT operator_id FROM shipments WHERE terminal_id = $2))
		AND coalesce(sh.terminal_id, '') = $2 FOR UPDATE OF c`, s.Serial, terminal).Scan(&codeID, &state, &shipTerminal)
	if errors.Is(err, pgx.ErrNoRows) {
		return refused(evoucher.KindForbidden, "not_your_code", "serial %s was never shipped to %s", s.Serial, terminal)
	}
	if err != nil {
		return err
	}
	var vendorRetailer string
	if err := tx.QueryRow(ctx, `SELECT retailer_id FROM vendors WHERE id = $1`, s.Vendor).Scan(&vendorRetailer); err != nil || vendorRetailer != retailer {
		return refused(evoucher.KindForbidden, "unknown_vendor", "vendor %s does not sell for %s's retailer", s.Vendor, terminal)
	}
	switch state {
	case "shipped", "delivered":
		if _, err := tx.Exec(ctx, `UPDATE codes SET state = 'sold', sold_at = $2 WHERE id = $1`, codeID, s.Time); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sales (code_id, terminal_id, vendor_id, ticket, sold_at, reprints, report_seq) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			codeID, terminal, s.Vendor, s.Ticket, s.Time, s.Reprints, seq)
		if isUnique(err) {
			return refused(evoucher.KindConflict, "ticket_reused", "ticket %s of %s was already used for another code", s.Ticket, terminal)
		}
		if err != nil || v.ledger == nil {
			return err
		}
		return v.ledger.ChargeSales(ctx, tx, []int64{codeID})
	case "sold":
		tag, err := tx.Exec(ctx, `UPDATE sales SET reprints = greatest(reprints, $3) WHERE code_id = $1 AND ticket = $2`, codeID, s.Ticket, s.Reprints)
		if err == nil && tag.RowsAffected() == 0 {
			return refused(evoucher.KindConflict, "sold_twice", "serial %s was already sold on another ticket", s.Serial)
		}
		return err
	default:
		return refused(evoucher.KindConflict, "not_sellable", "serial %s is %s and cannot be sold", s.Serial, state)
	}
}

// completeShipments moves a terminal's confirmed shipments with no code left on the shelf to
// Completed.
func completeShipments(ctx context.Context, tx pgx.Tx, terminal string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE shipments s SET state = 'completed', completed_at = $2
		WHERE s.terminal_id = $1 AND s.state = 'confirmed'
		AND NOT EXISTS (SELECT 1 FROM codes c WHERE c.shipment_id = s.id AND c.state IN ('shipped', 'delivered'))`, terminal, now)
	return err
}

// order takes a StockOrder and answers with the Shipment.
func (v *Vault) order(ctx context.Context, peer pki.Identity, in inbound) ([]byte, error) {
	env := in.env
	signed, err := v.verify(ctx, peer, in.doc, env, pki.RoleTerminal)
	if err != nil {
		return nil, err
	}
	o, err := message.ReadStockOrder(signed)
	if err != nil {
		return nil, err
	}
	// Who can open the shipment is looked up before the transaction opens: inside it, a
	// second pool connection could wait for ever on a pool held by transactions like this one.
	req := ShipRequest{Terminal: env.Sender, Operator: o.Operator, Product: o.Product, Quantity: o.Quantity}
	to, err := v.recipients(ctx, req)
	if err != nil {
		return nil, err
	}
	release, err := v.shipSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	// The order, its shipment and the answer commit together: a crash leaves either all or
	// nothing, and a retry of the same bytes gets the same shipment.
	tx, err := v.register(ctx, env, in.digest)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	s, err := v.ship(ctx, tx, req, to)
	if err != nil {
		tx.Rollback(ctx)
		v.refusedForCredit(ctx, to.retailerID, err, to.now)
		return nil, err
	}
	// Logged last, the order then its shipment, so the log's lock is held only for the commit.
	// The shipment's entry is also the order's stored answer, for a retry of the same bytes.
	idx, err := auditlog.Append(ctx, tx, logged(env, in.raw), logged(s.env, s.Document))
	if err != nil {
		return nil, err
	}
	if err := setLogIndex(ctx, tx, s.ID, int64(idx)+1, env.MessageID); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	v.meter.Shipped(req.Terminal, req.Product, s.Count)
	return s.Document, nil
}

// giveBack takes a StockReturn: each code, re-encrypted to the center, must be one shipped to
// this terminal and unsold, and its PIN must be the vault's; the codes go back in the vault.
func (v *Vault) giveBack(ctx context.Context, peer pki.Identity, in inbound) ([]byte, error) {
	env := in.env
	signed, tx, err := v.fromTerminal(ctx, peer, in)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	r, err := message.ReadStockReturn(signed)
	if err != nil {
		return nil, err
	}
	plaintext, err := xenc.Decrypt(r.Encrypted, v.encCert, v.dec)
	if err != nil {
		return nil, err
	}
	defer clear(plaintext)
	deks := map[[2]int64]cipher.AEAD{}
	n := 0
	var aad []byte
	err = message.ReadReturnCodes(plaintext, r.ShipmentID, func(c message.Code) error {
		var id, batch int64
		var part int
		var state string
		var ct []byte
		err := tx.QueryRow(ctx, `SELECT c.id, c.batch_id, c.part, c.state, c.pin_ct FROM codes c JOIN shipments s ON s.id = c.shipment_id
			WHERE c.serial = $1 AND s.id = $2 AND s.terminal_id = $3 FOR UPDATE OF c`, c.Serial, r.ShipmentID, env.Sender).Scan(&id, &batch, &part, &state, &ct)
		if errors.Is(err, pgx.ErrNoRows) {
			return refused(evoucher.KindForbidden, "not_your_code", "serial %s was not shipped to %s in %s", c.Serial, env.Sender, r.ShipmentID)
		}
		if err != nil {
			return err
		}
		if state != "shipped" && state != "delivered" {
			return refused(evoucher.KindConflict, "not_returnable", "serial %s is %s and cannot be returned", c.Serial, state)
		}
		dek, err := v.partCipher(ctx, tx, deks, batch, part)
		if err != nil {
			return err
		}
		aad = pinAAD(aad, c.Serial, batch, part)
		pin, err := dek.Open(nil, ct[:nonceSize], ct[nonceSize:], aad)
		if err != nil {
			return err
		}
		same := subtle.ConstantTimeCompare(pin, c.PIN) == 1
		clear(pin)
		if !same {
			return refused(evoucher.KindInvalid, "wrong_pin", "the returned code %s does not match the vault's", c.Serial)
		}
		if _, err := tx.Exec(ctx, `UPDATE codes SET state = 'in_vault', shipment_id = NULL WHERE id = $1`, id); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Pay-on-shipment stock returned unsold is credited back; quarantined stock is not.
	if v.ledger != nil {
		if err := v.ledger.CreditReturn(ctx, tx, r.ShipmentID, n); err != nil {
			return nil, err
		}
	}
	if err := completeShipments(ctx, tx, env.Sender, v.now().UTC()); err != nil {
		return nil, err
	}
	return v.answer(ctx, tx, in, message.StatusAccepted, fmt.Sprintf("%d codes of %s back in the vault", n, r.ShipmentID))
}

// Authorize records one sale before the ticket is printed, for a terminal in online mode: the
// code must be at this terminal and unsold. The sale's later line in a SalesReport is taken as
// the same sale. It returns the refusals of a report's sale.
func (v *Vault) Authorize(ctx context.Context, terminal string, s message.Sale) error {
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var retailer, status string
	if err := tx.QueryRow(ctx, `UPDATE terminals SET last_seen_at = $2 WHERE id = $1 RETURNING retailer_id, status`,
		terminal, v.now().UTC()).Scan(&retailer, &status); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return refused(evoucher.KindNotFound, "unknown_terminal", "no terminal %s", terminal)
		}
		return err
	}
	if status != "active" {
		return refused(evoucher.KindForbidden, "terminal_revoked", "terminal %s is revoked", terminal)
	}
	if err := v.recordSale(ctx, tx, terminal, retailer, s, nil); err != nil {
		return err
	}
	if err := completeShipments(ctx, tx, terminal, v.now().UTC()); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	v.meter.Sold(terminal)
	return nil
}

package netest

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher/xml/message"
)

// Totals is what CheckInvariants counted, and where it found things, for a test to compare
// with what its terminals know.
type Totals struct {
	Codes                                          int // rows in codes
	InVault, Shipped, Delivered, Sold, Quarantined int // codes by state
	Elsewhere                                      int // codes in any other state
	OutOfVault                                     int // codes placed in a shipment
	Shipments, ShipmentCodes                       int // shipments, and the sum of their counts
	SentShipments, ConfirmedShipments, Completed   int // shipments by state
	DocumentSerials                                int // serials in all stored shipment documents
	Sales                                          int // rows in sales

	ShipmentsByTerminal map[string][]string        // terminal → its shipments' ids
	ShipmentTerminal    map[string]string          // shipment id → terminal
	SerialsByShipment   map[string][]string        // shipment id → serials, in its document's order
	ReportSeq           map[string]int64           // terminal → report_seq, the last report taken
	SalesByTerminal     map[string]map[string]bool // terminal → serials it sold
}

// CheckInvariants checks, on one snapshot of the database, what must hold whatever the servers
// went through, and returns what it counted with every violation found (joined):
//
//   - the vault holds exactly uploaded codes, and each is in exactly one state and place: in
//     the vault with no shipment, or out of it (shipped, delivered, sold, quarantined) in
//     exactly one shipment; in_vault + out of vault = uploaded, nothing lost;
//   - every stored shipment document parses, names its shipment and terminal, holds as many
//     codes as its row counts, and no serial is in two documents; every code row placed in a
//     shipment is in that shipment's document; the codes out of the vault add up to the sum
//     of the shipments' counts;
//   - a sent shipment has no delivered code and a confirmed one no code merely shipped;
//   - every sale is of a sold code, by the terminal the code was shipped to, from a report
//     the terminal's report_seq has reached; sold codes and sales are as many (a code is sold
//     once: sales is keyed by code);
//   - every document recorded with a receipt is a logged message, and every logged message
//     is in the log's tree or in its queue, not both.
//
// It assumes no stock was returned (a returned code goes back in the vault and may be shipped
// again, legitimately in a second document).
func (n *Network) CheckInvariants(ctx context.Context, uploaded int) (Totals, error) {
	tot := Totals{ShipmentsByTerminal: map[string][]string{}, ShipmentTerminal: map[string]string{},
		SerialsByShipment: map[string][]string{}, ReportSeq: map[string]int64{}, SalesByTerminal: map[string]map[string]bool{}}
	tx, err := n.DB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return tot, err
	}
	defer tx.Rollback(ctx)
	var bad []error
	violate := func(format string, args ...any) {
		if len(bad) < 20 {
			bad = append(bad, fmt.Errorf(format, args...))
		}
	}

	// States and places.
	rows, err := tx.Query(ctx, `SELECT state, shipment_id IS NOT NULL, count(*) FROM codes GROUP BY 1, 2`)
	if err != nil {
		return tot, err
	}
	for rows.Next() {
		var state string
		var placed bool
		var c int
		if err := rows.Scan(&state, &placed, &c); err != nil {
			return tot, err
		}
		tot.Codes += c
		if placed {
			tot.OutOfVault += c
		}
		inVault := state == "in_vault" || state == "returned"
		switch state {
		case "in_vault":
			tot.InVault += c
		case "shipped":
			tot.Shipped += c
		case "delivered":
			tot.Delivered += c
		case "sold":
			tot.Sold += c
		case "quarantined":
			tot.Quarantined += c
		default:
			tot.Elsewhere += c
		}
		if inVault == placed && state != "expired" && state != "void" {
			violate("%d codes are %s but %s a shipment", c, state, map[bool]string{true: "have", false: "have no"}[placed])
		}
	}
	if err := rows.Err(); err != nil {
		return tot, err
	}
	if tot.Codes != uploaded {
		violate("the vault holds %d codes, %d were uploaded", tot.Codes, uploaded)
	}
	if tot.InVault+tot.OutOfVault+tot.Elsewhere != uploaded {
		violate("in the vault %d + out of it %d + elsewhere %d ≠ %d uploaded: codes lost", tot.InVault, tot.OutOfVault, tot.Elsewhere, uploaded)
	}

	// Shipments: the rows, the signed documents, and the codes placed in them.
	// A shipment's signed document is its entry in the exchange log (shipments.log_index).
	rows, err = tx.Query(ctx, `SELECT s.id, s.terminal_id, s.count, s.state, coalesce(l.data, '') FROM shipments s
		LEFT JOIN log_entries l ON l.idx = s.log_index`)
	if err != nil {
		return tot, err
	}
	inDoc := map[string]string{} // serial → shipment whose document holds it
	for rows.Next() {
		var id, terminal, state string
		var count int
		var raw []byte
		if err := rows.Scan(&id, &terminal, &count, &state, &raw); err != nil {
			return tot, err
		}
		tot.Shipments++
		tot.ShipmentCodes += count
		tot.ShipmentsByTerminal[terminal] = append(tot.ShipmentsByTerminal[terminal], id)
		tot.ShipmentTerminal[id] = terminal
		switch state {
		case "sent":
			tot.SentShipments++
		case "confirmed":
			tot.ConfirmedShipments++
		case "completed":
			tot.Completed++
		}
		doc, err := message.Parse(raw, message.DefaultLimits)
		if err != nil {
			violate("shipment %s: stored document does not parse: %v", id, err)
			continue
		}
		sh, err := message.ReadShipment(doc.Root())
		if err != nil {
			violate("shipment %s: stored document is not a Shipment: %v", id, err)
			continue
		}
		if sh.ShipmentID != id || sh.Recipient != terminal || len(sh.Codes) != count {
			violate("shipment %s to %s of %d codes: its document says %s to %s of %d", id, terminal, count, sh.ShipmentID, sh.Recipient, len(sh.Codes))
		}
		serials := make([]string, len(sh.Codes))
		for i, c := range sh.Codes {
			serials[i] = c.Serial
			if other, ok := inDoc[c.Serial]; ok {
				violate("serial %s is in two shipments: %s and %s", c.Serial, other, id)
			}
			inDoc[c.Serial] = id
		}
		tot.SerialsByShipment[id] = serials
		tot.DocumentSerials += len(serials)
	}
	if err := rows.Err(); err != nil {
		return tot, err
	}
	rows, err = tx.Query(ctx, `SELECT serial, shipment_id FROM codes WHERE shipment_id IS NOT NULL`)
	if err != nil {
		return tot, err
	}
	placed := map[string]int{}
	for rows.Next() {
		var serial, ship string
		if err := rows.Scan(&serial, &ship); err != nil {
			return tot, err
		}
		placed[ship]++
		if inDoc[serial] != ship {
			violate("code %s is placed in shipment %s but that shipment's document does not hold it (document: %q)", serial, ship, inDoc[serial])
		}
	}
	if err := rows.Err(); err != nil {
		return tot, err
	}
	for id, serials := range tot.SerialsByShipment {
		if placed[id] != len(serials) {
			violate("shipment %s: its document holds %d codes, %d code rows are placed in it", id, len(serials), placed[id])
		}
	}
	if tot.ShipmentCodes != tot.OutOfVault {
		violate("the shipments count %d codes, %d codes are out of the vault", tot.ShipmentCodes, tot.OutOfVault)
	}
	var c int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM codes c JOIN shipments s ON s.id = c.shipment_id
		WHERE (s.state = 'sent' AND c.state = 'delivered') OR (s.state <> 'sent' AND c.state = 'shipped')`).Scan(&c); err != nil {
		return tot, err
	}
	if c != 0 {
		violate("%d codes disagree with their shipment's state (delivered in a sent one, or shipped in a confirmed one)", c)
	}

	// Sales.
	rows, err = tx.Query(ctx, `SELECT s.terminal_id, c.serial, c.state, sh.terminal_id, s.report_seq, t.report_seq
		FROM sales s JOIN codes c ON c.id = s.code_id JOIN terminals t ON t.id = s.terminal_id
		LEFT JOIN shipments sh ON sh.id = c.shipment_id`)
	if err != nil {
		return tot, err
	}
	for rows.Next() {
		var terminal, serial, state string
		var shipTerminal *string
		var seq *int64
		var last int64
		if err := rows.Scan(&terminal, &serial, &state, &shipTerminal, &seq, &last); err != nil {
			return tot, err
		}
		tot.Sales++
		if tot.SalesByTerminal[terminal] == nil {
			tot.SalesByTerminal[terminal] = map[string]bool{}
		}
		tot.SalesByTerminal[terminal][serial] = true
		switch {
		case state != "sold":
			violate("a sale of %s by %s is recorded but the code is %s", serial, terminal, state)
		case shipTerminal == nil || *shipTerminal != terminal:
			violate("%s sold %s, which was not shipped to it", terminal, serial)
		case seq != nil && *seq > last:
			violate("%s sold %s in report %d, but its last report taken is %d", terminal, serial, *seq, last)
		}
	}
	if err := rows.Err(); err != nil {
		return tot, err
	}
	if tot.Sales != tot.Sold {
		violate("%d sales recorded for %d sold codes", tot.Sales, tot.Sold)
	}
	rows, err = tx.Query(ctx, `SELECT id, report_seq FROM terminals`)
	if err != nil {
		return tot, err
	}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return tot, err
		}
		tot.ReportSeq[id] = seq
	}
	if err := rows.Err(); err != nil {
		return tot, err
	}

	// The exchange log: every document recorded with an answer is a logged message, and every
	// logged message is in the tree or in its queue, never both (migration 0015).
	var unlogged, lost, twice int
	if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM messages m WHERE m.answer IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM log_messages l WHERE l.id = m.log_message AND l.message_id = m.message_id::text)),
			(SELECT count(*) FROM log_messages l WHERE NOT EXISTS (SELECT 1 FROM log_leaves WHERE message = l.id)
				AND NOT EXISTS (SELECT 1 FROM log_pending WHERE message = l.id)),
			(SELECT count(*) FROM log_pending p JOIN log_leaves l ON l.message = p.message)`).Scan(&unlogged, &lost, &twice); err != nil {
		return tot, err
	}
	if unlogged+lost+twice != 0 {
		violate("exchange log: %d recorded documents not logged, %d logged messages neither in the tree nor queued, %d in both", unlogged, lost, twice)
	}
	return tot, errors.Join(bad...)
}

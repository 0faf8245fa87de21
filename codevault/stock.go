package codevault

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/xml/message"
)

// reorder raises a signed PurchaseOrder when the vault's stock of a product is below its
// reorder level and no order for it is open, and keeps a vault_low_stock alarm while it is.
func (v *Vault) reorder(ctx context.Context, tx pgx.Tx, operatorID, product string, rules productRules, now time.Time) error {
	if rules.level <= 0 || rules.quantity <= 0 {
		return nil
	}
	// Count at most up to the level: the answer is only "below or not", and a vault with
	// millions of codes must not be counted in full on every part.
	var stock int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM codes
		WHERE operator_id = $1 AND product = $2 AND state = 'in_vault' LIMIT $3) s`,
		operatorID, product, rules.level).Scan(&stock); err != nil {
		return err
	}
	subject := operatorID + "/" + product
	if stock >= rules.level {
		_, err := tx.Exec(ctx, `UPDATE alarms SET state = 'resolved', resolved_at = $2
			WHERE kind = 'vault_low_stock' AND subject = $1 AND state <> 'resolved'`, subject, now)
		return err
	}
	reason := fmt.Sprintf("vault stock of %s is %d, below its reorder level %d", subject, stock, rules.level)
	if err := raiseAlarm(ctx, tx, "vault_low_stock", subject, reason, now); err != nil {
		return err
	}
	var open int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM purchase_orders WHERE operator_id = $1 AND product = $2 AND state = 'open'`,
		operatorID, product).Scan(&open); err != nil || open > 0 {
		return err
	}
	id := uuid.NewString()
	po := message.PurchaseOrder{
		Envelope: message.Envelope{ID: "po-" + id, MessageID: id, Sender: message.Center, Recipient: operatorID, Created: now},
		OrderID:  "PO-" + now.Format("20060102") + "-" + id[:8], Product: product, Quantity: rules.quantity, Reason: reason,
	}
	doc, err := v.sign(message.BuildPurchaseOrder(po))
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO purchase_orders (id, operator_id, product, quantity, created_at, document)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, po.OrderID, operatorID, product, po.Quantity, now, doc)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	po.Envelope.Type = "PurchaseOrder"
	_, err = auditlog.Append(ctx, tx, logged(po.Envelope, doc))
	return err
}

// raiseAlarm opens an alarm of kind about subject, or counts one more occurrence of the open one.
func raiseAlarm(ctx context.Context, q execer, kind, subject, msg string, now time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO alarms (kind, subject, message, first_at, last_at) VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (kind, subject) WHERE state <> 'resolved'
		DO UPDATE SET occurrences = alarms.occurrences + 1, last_at = EXCLUDED.last_at, message = EXCLUDED.message`,
		kind, subject, msg, now)
	return err
}

// Stock is the vault's count of codes of one product in one state.
type Stock struct {
	Operator, Product, State string
	Codes                    int64
	FaceValue                int64 // of all those codes, minor units
	Currency                 string
}

// Stock returns the vault's codes per operator, product and state.
func (v *Vault) Stock(ctx context.Context) ([]Stock, error) {
	rows, err := v.db.Query(ctx, `SELECT c.operator_id, c.product, c.state, count(*), count(*) * p.face_value, p.currency
		FROM codes c JOIN products p ON p.operator_id = c.operator_id AND p.code = c.product
		GROUP BY c.operator_id, c.product, c.state, p.face_value, p.currency ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Stock, error) {
		var s Stock
		err := row.Scan(&s.Operator, &s.Product, &s.State, &s.Codes, &s.FaceValue, &s.Currency)
		return s, err
	})
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

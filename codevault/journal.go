package codevault

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// JournalFilter selects the rows of a journal. Empty fields select everything; Retailer and
// Operator are also how a caller confines a scoped user to its own retailer or operator.
// From and To bound the journal's time column to [From, To). Limit defaults to 50 and is at
// most 10,000; Offset skips rows (pagination, newest first).
type JournalFilter struct {
	Operator, Retailer, Terminal, Product, State string
	From, To                                     time.Time
	Limit, Offset                                int
}

func (f JournalFilter) limit() int {
	switch {
	case f.Limit <= 0:
		return 50
	case f.Limit > 10_000:
		return 10_000
	}
	return f.Limit
}

func (f JournalFilter) offset() int { return max(f.Offset, 0) }

// timeArg is a nullable time for SQL: nil for the zero time.
func timeArg(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// BatchEntry is one batch an operator sent: every part stored was verified (signature,
// certificate, control totals) before it was; a part that failed is in the refusals journal.
type BatchEntry struct {
	ID            int64      `json:"id"`
	Operator      string     `json:"operator"`
	Ref           string     `json:"ref"`
	Product       string     `json:"product"`
	Parts         int        `json:"parts"`          // announced
	PartsReceived int        `json:"parts_received"` // verified and stored
	LotCount      int64      `json:"lot_count"`      // codes announced for the whole lot
	Codes         int64      `json:"codes"`          // codes stored so far
	LotFaceValue  int64      `json:"lot_face_value"` // minor units
	CreatedAt     time.Time  `json:"created_at"`
	LastPartAt    *time.Time `json:"last_part_at"`
}

// Batches returns the batches f selects (Operator, Product, From/To on the first part's
// arrival), newest first. Retailer, Terminal and State do not apply.
func (v *Vault) Batches(ctx context.Context, f JournalFilter) ([]BatchEntry, error) {
	rows, err := v.db.Query(ctx, `SELECT b.id, b.operator_id, b.ref, b.product, b.parts,
			(SELECT count(*) FROM batch_parts p WHERE p.batch_id = b.id),
			b.lot_count, (SELECT coalesce(sum(p.count), 0) FROM batch_parts p WHERE p.batch_id = b.id),
			b.lot_face_value, b.created_at, (SELECT max(p.received_at) FROM batch_parts p WHERE p.batch_id = b.id)
		FROM batches b
		WHERE ($1 = '' OR b.operator_id = $1) AND ($2 = '' OR b.product = $2)
		  AND ($3::timestamptz IS NULL OR b.created_at >= $3) AND ($4::timestamptz IS NULL OR b.created_at < $4)
		ORDER BY b.created_at DESC, b.id DESC LIMIT $5 OFFSET $6`,
		f.Operator, f.Product, timeArg(f.From), timeArg(f.To), f.limit(), f.offset())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[BatchEntry])
}

// ShipmentEntry is one shipment to a terminal: sent, confirmed (acknowledged by the
// terminal) or completed (every code sold or returned).
type ShipmentEntry struct {
	ID          string     `json:"id"`
	Terminal    string     `json:"terminal"`
	Retailer    string     `json:"retailer"`
	Operator    string     `json:"operator"`
	Product     string     `json:"product"`
	Codes       int        `json:"codes"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
	CompletedAt *time.Time `json:"completed_at"`
}

// Shipments returns the shipments f selects (every field; From/To on when it was sent),
// newest first.
func (v *Vault) Shipments(ctx context.Context, f JournalFilter) ([]ShipmentEntry, error) {
	rows, err := v.db.Query(ctx, `SELECT s.id, s.terminal_id, t.retailer_id, s.operator_id, s.product, s.count, s.state,
			s.created_at, s.confirmed_at, s.completed_at
		FROM shipments s JOIN terminals t ON t.id = s.terminal_id
		WHERE ($1 = '' OR s.operator_id = $1) AND ($2 = '' OR t.retailer_id = $2) AND ($3 = '' OR s.terminal_id = $3)
		  AND ($4 = '' OR s.product = $4) AND ($5 = '' OR s.state = $5)
		  AND ($6::timestamptz IS NULL OR s.created_at >= $6) AND ($7::timestamptz IS NULL OR s.created_at < $7)
		ORDER BY s.created_at DESC, s.id DESC LIMIT $8 OFFSET $9`,
		f.Operator, f.Retailer, f.Terminal, f.Product, f.State, timeArg(f.From), timeArg(f.To), f.limit(), f.offset())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ShipmentEntry])
}

// SaleEntry is one code sold. It names the code by serial only: the PIN never leaves the
// vault in clear.
type SaleEntry struct {
	SoldAt    time.Time `json:"sold_at"`
	Terminal  string    `json:"terminal"`
	Retailer  string    `json:"retailer"`
	Vendor    string    `json:"vendor"`
	Operator  string    `json:"operator"`
	Product   string    `json:"product"`
	Serial    string    `json:"serial"`
	Ticket    string    `json:"ticket"`
	FaceValue int64     `json:"face_value"` // minor units
	Currency  string    `json:"currency"`
	Reprints  int       `json:"reprints"`
	Online    bool      `json:"online"` // authorised online rather than reported
}

// Sales returns the sales f selects (State does not apply; From/To on the time of sale),
// newest first.
func (v *Vault) Sales(ctx context.Context, f JournalFilter) ([]SaleEntry, error) {
	rows, err := v.db.Query(ctx, `SELECT s.sold_at, s.terminal_id, t.retailer_id, s.vendor_id, c.operator_id, c.product,
			c.serial, s.ticket, p.face_value, p.currency, s.reprints, s.report_seq IS NULL
		FROM sales s JOIN terminals t ON t.id = s.terminal_id JOIN codes c ON c.id = s.code_id
		JOIN products p ON p.operator_id = c.operator_id AND p.code = c.product
		WHERE ($1 = '' OR c.operator_id = $1) AND ($2 = '' OR t.retailer_id = $2) AND ($3 = '' OR s.terminal_id = $3)
		  AND ($4 = '' OR c.product = $4)
		  AND ($5::timestamptz IS NULL OR s.sold_at >= $5) AND ($6::timestamptz IS NULL OR s.sold_at < $6)
		ORDER BY s.sold_at DESC, s.code_id DESC LIMIT $7 OFFSET $8`,
		f.Operator, f.Retailer, f.Terminal, f.Product, timeArg(f.From), timeArg(f.To), f.limit(), f.offset())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[SaleEntry])
}

// OrderEntry is one purchase order the vault raised to an operator.
type OrderEntry struct {
	ID          string     `json:"id"`
	Operator    string     `json:"operator"`
	Product     string     `json:"product"`
	Quantity    int        `json:"quantity"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	FulfilledAt *time.Time `json:"fulfilled_at"`
}

// PurchaseOrders returns the purchase orders f selects (Operator, Product, State, From/To on
// creation), newest first.
func (v *Vault) PurchaseOrders(ctx context.Context, f JournalFilter) ([]OrderEntry, error) {
	rows, err := v.db.Query(ctx, `SELECT id, operator_id, product, quantity, state, created_at, fulfilled_at
		FROM purchase_orders
		WHERE ($1 = '' OR operator_id = $1) AND ($2 = '' OR product = $2) AND ($3 = '' OR state = $3)
		  AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
		ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7`,
		f.Operator, f.Product, f.State, timeArg(f.From), timeArg(f.To), f.limit(), f.offset())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[OrderEntry])
}

// RefusalEntry is one refused message: who sent it, what it claimed to be and why it was
// refused. The document itself is never kept.
type RefusalEntry struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Peer       string    `json:"peer"`
	Type       string    `json:"type"`
	MessageID  string    `json:"message_id"`
	Sender     string    `json:"sender"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail"`
	Size       int       `json:"size"`
}

// Refusals returns the refused messages f selects (State filters on the reason; From/To on
// arrival), newest first. The journal is network-wide: Operator, Retailer, Terminal and
// Product do not apply.
func (v *Vault) Refusals(ctx context.Context, f JournalFilter) ([]RefusalEntry, error) {
	rows, err := v.db.Query(ctx, `SELECT id, received_at, peer, type, message_id, sender, reason, detail, size
		FROM refused_messages
		WHERE ($1 = '' OR reason = $1)
		  AND ($2::timestamptz IS NULL OR received_at >= $2) AND ($3::timestamptz IS NULL OR received_at < $3)
		ORDER BY received_at DESC, id DESC LIMIT $4 OFFSET $5`,
		f.State, timeArg(f.From), timeArg(f.To), f.limit(), f.offset())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RefusalEntry])
}

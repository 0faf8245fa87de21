package retailer

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// Level is the stock band the center keeps a terminal in for one product: when the terminal's
// stock falls below Min, it is filled back up to Max.
type Level struct {
	Terminal    string
	Operator    string
	Product     string
	Min         int
	Max         int
	AutoReorder bool // ship without waiting for a StockOrder from the terminal
	// ReportedStock and ReportedAt are what the terminal last reported; nil before its first
	// report. SetLevel leaves them alone.
	ReportedStock *int
	ReportedAt    *time.Time
}

// SetLevel records or replaces the stock band of a terminal for a product, keeping the stock
// the terminal last reported. It returns invalid ("bad_level") unless 0 ≤ Min ≤ Max and
// Max > 0, and not found ("unknown_terminal", "unknown_product") for an unknown terminal or
// product.
func (r *Registry) SetLevel(ctx context.Context, l Level) error {
	switch {
	case l.Min < 0:
		return invalid("bad_level", "minimum level %d cannot be negative", l.Min)
	case l.Max <= 0:
		return invalid("bad_level", "maximum level %d must be positive", l.Max)
	case l.Max < l.Min:
		return invalid("bad_level", "maximum level %d is below the minimum %d", l.Max, l.Min)
	}
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := terminalExists(ctx, tx, l.Terminal); err != nil {
		return err
	}
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM products WHERE operator_id = $1 AND code = $2`, l.Operator, l.Product).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return evoucher.Errorf(evoucher.KindNotFound, "unknown_product", "operator %q has no product %q", l.Operator, l.Product)
	}
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO terminal_products (terminal_id, operator_id, product, min_level, max_level, auto_reorder)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (terminal_id, operator_id, product) DO UPDATE
		SET min_level = excluded.min_level, max_level = excluded.max_level, auto_reorder = excluded.auto_reorder`,
		l.Terminal, l.Operator, l.Product, l.Min, l.Max, l.AutoReorder); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Levels returns a terminal's stock bands, by operator and product; not found
// ("unknown_terminal") when the terminal is unknown.
func (r *Registry) Levels(ctx context.Context, terminalID string) ([]Level, error) {
	tx, err := r.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if err := terminalExists(ctx, tx, terminalID); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT terminal_id, operator_id, product, min_level, max_level, auto_reorder,
		reported_stock, reported_at FROM terminal_products WHERE terminal_id = $1 ORDER BY operator_id, product`, terminalID)
	if err != nil {
		return nil, err
	}
	ls, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Level])
	if err != nil {
		return nil, err
	}
	return ls, tx.Commit(ctx)
}

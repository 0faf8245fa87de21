package operator

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Operators returns every operator, by id.
func (r *Registry) Operators(ctx context.Context) ([]Operator, error) {
	rows, err := r.db.Query(ctx, `SELECT id, name FROM operators ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Operator])
}

// Products returns the products of one operator (every operator's when operatorID is ""),
// by operator and code.
func (r *Registry) Products(ctx context.Context, operatorID string) ([]Product, error) {
	rows, err := r.db.Query(ctx, `SELECT operator_id, code, name, face_value, currency, refill_template, serial_pattern,
		pin_pattern, reorder_level, reorder_quantity FROM products WHERE ($1 = '' OR operator_id = $1) ORDER BY operator_id, code`, operatorID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Product])
}

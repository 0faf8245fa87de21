package auditlog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// MultiQuerier runs a query of many rows: a pool, a connection or a transaction.
type MultiQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Messages returns the logged messages at the given indexes, byte-exact, in the order asked,
// for a record that names its message's entry instead of keeping a copy (a shipment's signed
// document). It returns an error when an index is not in the log.
func Messages(ctx context.Context, q MultiQuerier, indexes ...int64) ([][]byte, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT x.i, l.data FROM unnest($1::bigint[]) WITH ORDINALITY AS x(idx, i)
		JOIN log_entries l ON l.idx = x.idx`, indexes)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(indexes))
	found := 0
	for rows.Next() {
		var i int64
		var data []byte
		if err := rows.Scan(&i, &data); err != nil {
			rows.Close()
			return nil, err
		}
		out[i-1] = data
		found++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if found != len(indexes) {
		return nil, fmt.Errorf("auditlog: %d of %d entries not in the log", len(indexes)-found, len(indexes))
	}
	return out, nil
}

package auditlog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/migrations"
)

// migrateTo applies the embedded migrations before version stop, recording them as the
// runner does, so migrations.Up applies the rest later.
func migrateTo(t *testing.T, db *pgxpool.Pool, stop int) {
	t.Helper()
	ctx := context.Background()
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		checksum bytea NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Version >= stop {
			break
		}
		if _, err := db.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if _, err := db.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, m.Version, m.Name, m.Checksum[:]); err != nil {
			t.Fatal(err)
		}
	}
}

// appendV11 appends n entries as the log did before migration 0012: entries, completed nodes,
// and the size and right edge in log_state.
func appendV11(t *testing.T, db *pgxpool.Pool, n int) {
	t.Helper()
	ctx := context.Background()
	f := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := f.NewEmptyRange(0)
	for i := range n {
		e := entry(i)
		if _, err := db.Exec(ctx, `INSERT INTO log_entries (idx, leaf_hash, type, sender, recipient, message_id, logged_at, data)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, i, auditlog.LeafHash(e.Data), e.Type, e.Sender, e.Recipient, e.MessageID, e.Time, e.Data); err != nil {
			t.Fatal(err)
		}
		if err := rng.Append(auditlog.LeafHash(e.Data), func(id compact.NodeID, h []byte) {
			if id.Level > 0 {
				if _, err := db.Exec(ctx, `INSERT INTO log_nodes (level, idx, hash) VALUES ($1, $2, $3)`, int16(id.Level), int64(id.Index), h); err != nil {
					t.Fatal(err)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(ctx, `UPDATE log_state SET size = $1, edge = $2`, n, rng.Hashes()); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationWithoutStateRow applies migration 0012 to a log written before it, then appends
// with concurrent writers: the tree goes on where it was.
func TestMigrationWithoutStateRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		db := testdb.MustEmptyPool(t)
		migrateTo(t, db, 12)
		appendV11(t, db, 13)
		if _, err := migrations.Up(ctx, db); err != nil {
			t.Fatal(err)
		}
		l, err := auditlog.New(db, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := l.Size(ctx); err != nil || s != 13 {
			t.Fatalf("size %d %v", s, err)
		}
		appendConcurrently(t, db, 13, 40, 8)
		checkTree(t, l, 53)
	})
	t.Run("ErrStateDisagrees", func(t *testing.T) {
		t.Parallel()
		db := testdb.MustEmptyPool(t)
		migrateTo(t, db, 12)
		appendV11(t, db, 5)
		if _, err := db.Exec(ctx, `UPDATE log_state SET size = 4`); err != nil {
			t.Fatal(err)
		}
		if _, err := migrations.Up(ctx, db); err == nil || !strings.Contains(err.Error(), "log_state says 4 entries") {
			t.Fatalf("migrated a log whose state disagrees with its entries: %v", err)
		}
	})
}

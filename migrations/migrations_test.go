package migrations_test

import (
	"context"
	"testing"

	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/migrations"
)

func TestUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no embedded migrations")
	}

	t.Run("FromEmptyThenNoOp", func(t *testing.T) {
		pool := testdb.MustEmptyPool(t)
		first, err := migrations.Up(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != len(all) {
			t.Fatalf("first run applied %d migrations, want %d", len(first), len(all))
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(all) {
			t.Fatalf("schema_migrations has %d rows, want %d", n, len(all))
		}
		var before string
		if err := pool.QueryRow(ctx, `SELECT string_agg(name || applied_at::text, ',' ORDER BY version) FROM schema_migrations`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		second, err := migrations.Up(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if len(second) != 0 {
			t.Fatalf("second run applied %v, want nothing", second)
		}
		var after string
		if err := pool.QueryRow(ctx, `SELECT string_agg(name || applied_at::text, ',' ORDER BY version) FROM schema_migrations`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if before != after {
			t.Fatalf("second run changed schema_migrations: %q -> %q", before, after)
		}
	})

	t.Run("ConcurrentRunnersApplyOnce", func(t *testing.T) {
		pool := testdb.MustEmptyPool(t)
		errs := make(chan error, 4)
		counts := make(chan int, 4)
		for range 4 {
			go func() {
				applied, err := migrations.Up(ctx, pool)
				errs <- err
				counts <- len(applied)
			}()
		}
		total := 0
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			total += <-counts
		}
		if total != len(all) {
			t.Fatalf("four concurrent runners applied %d migrations in all, want %d", total, len(all))
		}
	})

	t.Run("ErrChangedAfterApply", func(t *testing.T) {
		pool := testdb.MustPool(t)
		if _, err := pool.Exec(ctx, `UPDATE schema_migrations SET checksum = '\x00' WHERE version = $1`, all[0].Version); err != nil {
			t.Fatal(err)
		}
		if _, err := migrations.Up(ctx, pool); err == nil {
			t.Fatal("Up accepted a migration whose recorded checksum differs")
		}
	})

	t.Run("ErrUnknownVersion", func(t *testing.T) {
		pool := testdb.MustPool(t)
		if _, err := pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, '9999_future.sql', '\x00')`); err != nil {
			t.Fatal(err)
		}
		if _, err := migrations.Up(ctx, pool); err == nil {
			t.Fatal("Up accepted a database migrated by a newer binary")
		}
	})
}

// Package migrations owns the database schema: numbered, forward-only SQL files embedded in
// the binary, and the small runner that applies them. Each file runs in its own transaction and
// is recorded in schema_migrations with its checksum; a file changed after it was applied is
// refused rather than silently skipped. It never edits or rolls back an applied migration.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockID is the advisory lock that serialises runners started at once (two servers booting).
const lockID = 7_412_000_001

var namePattern = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// Migration is one numbered SQL file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum [32]byte
}

// All returns the embedded migrations in version order. It fails if a file is misnamed or two
// files share a version.
func All() ([]Migration, error) {
	return load(files)
}

func load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		m := namePattern.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b), Checksum: sha256.Sum256(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Up applies every embedded migration not yet recorded, each in its own transaction, and
// returns the names of those it applied (none when the schema is current). It fails, changing
// nothing further, if an applied migration's file has changed since or if the database records
// a version this binary does not know (a newer binary migrated it).
func Up(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	ms, err := All()
	if err != nil {
		return nil, err
	}
	if err := createTable(ctx, pool); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	known := map[int]bool{}
	var applied []string
	for _, m := range ms {
		known[m.Version] = true
		did, err := apply(ctx, pool, m)
		if err != nil {
			return applied, err
		}
		if did {
			applied = append(applied, m.Name)
		}
	}
	rows, err := pool.Query(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return applied, err
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			return applied, err
		}
		if !known[v] {
			return applied, fmt.Errorf("database has migration %s which this binary does not know: upgrade evoucher", name)
		}
	}
	return applied, rows.Err()
}

// createTable creates the runner's own record under the lock, so two runners starting at once
// do not race on it.
func createTable(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		checksum bytea NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func apply(ctx context.Context, pool *pgxpool.Pool, m Migration) (bool, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID); err != nil {
		return false, err
	}
	var sum []byte
	err = tx.QueryRow(ctx, `SELECT checksum FROM schema_migrations WHERE version = $1`, m.Version).Scan(&sum)
	switch {
	case err == nil:
		if string(sum) != string(m.Checksum[:]) {
			return false, fmt.Errorf("migration %s was changed after it was applied: migrations are forward-only, add a new file instead", m.Name)
		}
		return false, nil
	case err != pgx.ErrNoRows:
		return false, err
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
		m.Version, m.Name, m.Checksum[:]); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

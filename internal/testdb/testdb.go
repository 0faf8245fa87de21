// Package testdb gives each test its own fresh PostgreSQL database on the server named by
// DATABASE_URL (make test starts a private cluster when none is given), so test packages and
// parallel tests never share state. It is for tests only.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/migrations"
)

// AdminURL returns DATABASE_URL, failing the test when it is unset: a database test that
// silently skips could never fail.
func AdminURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		tb.Fatal("DATABASE_URL is not set: run the tests with `make test`, which starts a private PostgreSQL cluster")
	}
	return u
}

// MustEmptyURL creates an empty database for this test, dropped when the test ends, and
// returns its URL.
func MustEmptyURL(tb testing.TB) string {
	tb.Helper()
	admin := AdminURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect to DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "evt_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("connect to drop test database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// MustURL returns the URL of a fresh database for this test with every migration applied.
func MustURL(tb testing.TB) string {
	tb.Helper()
	u := MustEmptyURL(tb)
	pool := mustConnect(tb, u)
	defer pool.Close()
	if _, err := migrations.Up(context.Background(), pool); err != nil {
		tb.Fatalf("migrate test database: %v", err)
	}
	return u
}

// MustPool returns a pool on a fresh, migrated database for this test, closed when it ends.
func MustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool := mustConnect(tb, MustURL(tb))
	tb.Cleanup(pool.Close)
	return pool
}

// MustEmptyPool returns a pool on a fresh database with no schema at all.
func MustEmptyPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool := mustConnect(tb, MustEmptyURL(tb))
	tb.Cleanup(pool.Close)
	return pool
}

func mustConnect(tb testing.TB, u string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		tb.Fatalf("connect to test database: %v", err)
	}
	return pool
}

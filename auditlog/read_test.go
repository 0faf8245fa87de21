package auditlog_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/internal/testdb"
)

func TestMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		es := make([]*auditlog.Entry, 12)
		for i := range es {
			es[i] = entry(i)
		}
		_, err := auditlog.Append(ctx, tx, es...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		got, err := auditlog.Messages(ctx, db, 7, 0, 11, 7)
		if err != nil {
			t.Fatal(err)
		}
		for i, idx := range []int{7, 0, 11, 7} {
			if want := entry(idx).Data; !bytes.Equal(got[i], want) {
				t.Fatalf("message %d: %q, want %q", i, got[i], want)
			}
		}
	})
	t.Run("OKNone", func(t *testing.T) {
		if got, err := auditlog.Messages(ctx, db); err != nil || got != nil {
			t.Fatalf("no index: %q %v", got, err)
		}
	})
	t.Run("ErrNotLogged", func(t *testing.T) {
		if _, err := auditlog.Messages(ctx, db, 3, 12); err == nil {
			t.Fatal("a message beyond the log was read")
		}
	})
}

package auditlog_test

import (
	"bytes"
	"context"
	"math/bits"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/internal/testdb"
)

// appendConcurrently has writers append entries first..first+n, one to three per
// transaction; every fourth transaction appends and rolls back first, which must leave no gap.
func appendConcurrently(t *testing.T, db *pgxpool.Pool, first, n, writers int) {
	t.Helper()
	ctx := context.Background()
	var next atomic.Int64
	next.Store(int64(first))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := 0; ; k++ {
				size := 1 + (w+k)%3
				from := int(next.Add(int64(size))) - size
				if from >= first+n {
					return
				}
				var batch []*auditlog.Entry
				for i := from; i < min(from+size, first+n); i++ {
					batch = append(batch, entry(i))
				}
				if k%4 == 3 {
					tx, err := db.Begin(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := auditlog.Append(ctx, tx, entry(-1)); err != nil {
						t.Error(err)
					}
					_ = tx.Rollback(ctx)
				}
				tx, err := db.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				idx, err := auditlog.Append(ctx, tx, batch...)
				if err != nil {
					t.Error(err)
					_ = tx.Rollback(ctx)
					return
				}
				// The receipt's proof, read in the appending transaction.
				p, err := auditlog.ProveTx(ctx, tx, idx, idx+1)
				if err != nil {
					t.Error(err)
				} else if err := p.Verify(batch[0].Data); err != nil {
					t.Errorf("proof of %d read in its transaction: %v", idx, err)
				}
				for i, e := range batch {
					if e.Index != idx+uint64(i) {
						t.Errorf("entry %d of a batch at %d has index %d", i, idx, e.Index)
					}
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// checkTree checks the log holds size entries, indexes 0..size-1, and that the stored tree's
// root and proofs at every size are those recomputed from the entries alone.
func checkTree(t *testing.T, l *auditlog.Log, size uint64) {
	t.Helper()
	ctx := context.Background()
	if s, err := l.Size(ctx); err != nil || s != size {
		t.Fatalf("size %d %v, want %d", s, err, size)
	}
	es, err := l.Entries(ctx, 0, size+10)
	if err != nil || uint64(len(es)) != size {
		t.Fatalf("%d entries %v, want %d", len(es), err, size)
	}
	h := rfc6962.DefaultHasher
	rng := (&compact.RangeFactory{Hash: h.HashChildren}).NewEmptyRange(0)
	for i, e := range es {
		if e.Index != uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		if err := rng.Append(h.HashLeaf(e.Data), nil); err != nil {
			t.Fatal(err)
		}
		s := uint64(i + 1)
		want, _ := rng.GetRootHash(nil)
		got, err := l.Root(ctx, s)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("root at %d differs from the entries' (%v)", s, err)
		}
		p, err := l.InclusionProof(ctx, uint64(i), s)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(h, uint64(i), s, h.HashLeaf(e.Data), p, want); err != nil {
			t.Fatalf("inclusion of %d in %d: %v", i, s, err)
		}
	}
}

// TestAppendConcurrent: concurrent appenders, some rolling back, leave a gap-free log whose
// stored tree is the one recomputed from its entries.
func TestAppendConcurrent(t *testing.T) {
	t.Parallel()
	db := testdb.MustPool(t)
	l, err := auditlog.New(db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendConcurrently(t, db, 0, 150, 8)
	checkTree(t, l, 150)

	t.Run("ErrRepeatableRead", func(t *testing.T) {
		// Its snapshot predates the lock: it could not see the appends before it.
		ctx := context.Background()
		tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := auditlog.Append(ctx, tx, entry(1000)); err == nil {
			t.Fatal("appended in a REPEATABLE READ transaction")
		}
	})
}

// TestNodesBuiltOnDemand: appends store leaves only; the inner nodes are stored, a run at a
// time, when a root or a proof first needs them, and are those recomputed from the entries.
func TestNodesBuiltOnDemand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	l, err := auditlog.New(db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes := func() int {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM log_nodes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A tree of n leaves has n - popcount(n) completed inner nodes.
	inner := func(n uint64) int { return int(n) - bits.OnesCount64(n) }
	for i := range 37 {
		if _, err := auditlog.Append(ctx, db, entry(i)); err != nil { // each its own transaction
			t.Fatal(err)
		}
	}
	if n := nodes(); n != 0 {
		t.Fatalf("%d nodes stored by appends", n)
	}
	if _, err := l.Root(ctx, 37); err != nil {
		t.Fatal(err)
	}
	if n := nodes(); n != inner(37) {
		t.Fatalf("%d nodes after a root at 37, want %d", n, inner(37))
	}
	appendConcurrently(t, db, 37, 20, 4)
	checkTree(t, l, 57)
	if n := nodes(); n != inner(57) {
		t.Fatalf("%d nodes at 57, want %d", n, inner(57))
	}
}

package auditlog_test

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
)

// TestQueueConcurrent: writers queue entries (one or three per transaction, every fourth
// transaction rolled back, some waiting for their index as a receipt does), others append
// with the lock, while sequencings run; afterwards every committed entry is in the tree
// exactly once, nothing rolled back is, nothing is left pending, and the stored tree is the
// one recomputed from the entries.
func TestQueueConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	l, err := auditlog.New(db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	seq := auditlog.NewSequencer(db)
	const writers, perWriter = 8, 40
	var (
		mu        sync.Mutex
		committed = map[int64]string{} // message id → MessageId
		locked    atomic.Int64
		wg        sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for k := range perWriter {
				name := fmt.Sprintf("w%d-%d", w, k)
				e := entry(0)
				e.MessageID = name
				e.Data = []byte(fmt.Sprintf("<StockOrder n=%q/>", name))
				if w == 0 { // the locked path, interleaved with the queue
					if _, err := auditlog.Append(ctx, db, e); err != nil {
						t.Error(err)
						return
					}
					locked.Add(1)
					continue
				}
				batch := []*auditlog.Entry{e}
				if k%3 == 2 {
					for j := range 2 {
						f := *e
						f.MessageID = fmt.Sprintf("%s/%d", name, j)
						f.Data = fmt.Appendf(nil, "<Receipt n=%q/>", f.MessageID)
						batch = append(batch, &f)
					}
				}
				tx, err := db.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				ids, err := auditlog.Enqueue(ctx, tx, batch...)
				if err != nil {
					t.Error(err)
					_ = tx.Rollback(ctx)
					return
				}
				if k%4 == 3 {
					_ = tx.Rollback(ctx)
					continue
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, id := range ids {
					committed[id] = batch[i].MessageID
				}
				mu.Unlock()
				if k%2 == 0 { // as a receipt does: wait for the entry's index
					idx, err := seq.Index(ctx, ids[0])
					if err != nil {
						t.Error(err)
						return
					}
					es, err := l.Entries(ctx, idx, idx+1)
					if err != nil || len(es) != 1 || es[0].MessageID != batch[0].MessageID {
						t.Errorf("entry %d of message %d: %v %v", idx, ids[0], es, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := seq.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	size := uint64(len(committed)) + uint64(locked.Load())
	checkTree(t, l, size)
	var pending, leaves, messages int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM log_pending), (SELECT count(*) FROM log_leaves),
		(SELECT count(*) FROM log_messages)`).Scan(&pending, &leaves, &messages); err != nil {
		t.Fatal(err)
	}
	if pending != 0 || uint64(leaves) != size || uint64(messages) != size {
		t.Fatalf("%d pending, %d leaves, %d messages; want 0 and %d", pending, leaves, messages, size)
	}
	for id, name := range committed {
		var got string
		if err := db.QueryRow(ctx, `SELECT message_id FROM log_entries WHERE message = $1`, id).Scan(&got); err != nil || got != name {
			t.Fatalf("message %d (%s): entry %q %v", id, name, got, err)
		}
	}
	var nodes int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM log_nodes`).Scan(&nodes); err != nil {
		t.Fatal(err)
	}
	if nodes != int(size)-bits.OnesCount64(size) {
		t.Fatalf("%d inner nodes stored for %d leaves", nodes, size)
	}
	if entries, runs := seq.Stats(); entries == 0 || runs == 0 {
		t.Fatalf("the sequencer sequenced %d entries in %d runs", entries, runs)
	}
}

// TestQueueWaitsForCommit: an entry queued by a transaction still open is not sequenced,
// and has no index, until that transaction commits; a checkpoint sequences what is queued.
func TestQueueWaitsForCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	l, err := auditlog.New(db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	seq := auditlog.NewSequencer(db)
	ids, err := auditlog.Enqueue(ctx, db, entry(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := auditlog.IndexOf(ctx, db, ids[0]); err != nil || ok {
		t.Fatalf("queued entry has an index before any sequencing (%v)", err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	open, err := auditlog.Enqueue(ctx, tx, entry(1))
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := seq.Index(ctx, ids[0]); err != nil || idx != 0 {
		t.Fatalf("index %d %v, want 0", idx, err)
	}
	if _, ok, err := auditlog.IndexOf(ctx, db, open[0]); err != nil || ok {
		t.Fatalf("an entry of an open transaction was sequenced (%v)", err)
	}
	if _, err := auditlog.Append(ctx, db, entry(2)); err != nil { // the locked path goes on meanwhile
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Size(ctx); s != 2 {
		t.Fatalf("size %d before the second sequencing, want 2", s)
	}
	key, _, err := testhsm.MustToken(t).ECDSAKey("log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auditlog.NewSigner("evoucher.test/log", key)
	if err != nil {
		t.Fatal(err)
	}
	signing, err := auditlog.New(db, signer, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := signing.Sign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 3 {
		t.Fatalf("checkpoint of size %d, want 3 (the queued entry sequenced)", cp.Size)
	}
	if idx, ok, err := auditlog.IndexOf(ctx, db, open[0]); err != nil || !ok || idx != 2 {
		t.Fatalf("index %d %v %v, want 2", idx, ok, err)
	}
	checkTree(t, l, 3)

	t.Run("ErrRepeatableRead", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var n int64
		if err := tx.QueryRow(ctx, `SELECT log_sequence()`).Scan(&n); err == nil {
			t.Fatal("sequenced in a REPEATABLE READ transaction")
		}
	})
}

// TestSequencerRun: Run sequences what nobody waits for, vacuums the queue, and returns when
// its context ends.
func TestSequencerRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	seq := auditlog.NewSequencer(db)
	ids, err := auditlog.Enqueue(ctx, db, entry(0), entry(1))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- seq.Run(runCtx, 10*time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		idx, ok, err := auditlog.IndexOf(ctx, db, ids[1])
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if idx != 1 {
				t.Fatalf("the second entry queued is at %d", idx)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not sequence the queue in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The queue's dead rows are vacuumed (every second).
	for {
		var vacuums int64
		if err := db.QueryRow(ctx, `SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'log_pending'`).Scan(&vacuums); err != nil {
			t.Fatal(err)
		}
		if vacuums > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not vacuum the queue in 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want its context's end", err)
	}
}

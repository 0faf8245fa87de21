package auditlog_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
)

func entry(i int) *auditlog.Entry {
	return &auditlog.Entry{Type: "CodeBatch", Sender: "OP-A", Recipient: "center", MessageID: fmt.Sprintf("m-%d", i),
		Time: time.Now(), Data: []byte(fmt.Sprintf("<CodeBatch n=\"%d\"/>", i))}
}

func TestLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	tok := testhsm.MustToken(t)
	key, _, err := tok.ECDSAKey("log")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auditlog.NewSigner("evoucher.test/log", key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.New(db, signer, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 37 entries appended by 8 concurrent writers, one or two per transaction.
	var wg sync.WaitGroup
	var next sync.Mutex
	n := 0
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				if n >= 37 {
					next.Unlock()
					return
				}
				batch := []*auditlog.Entry{entry(n)}
				n++
				if w%2 == 0 && n < 37 {
					batch = append(batch, entry(n))
					n++
				}
				next.Unlock()
				tx, err := db.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := auditlog.Append(ctx, tx, batch...); err != nil {
					t.Error(err)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	size, err := l.Size(ctx)
	if err != nil || size != 37 {
		t.Fatalf("size %d %v", size, err)
	}
	// Recompute every root from the entries alone, as an auditor would.
	es, err := l.Entries(ctx, 0, size)
	if err != nil || len(es) != 37 {
		t.Fatalf("%d entries %v", len(es), err)
	}
	f := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := f.NewEmptyRange(0)
	roots := map[uint64][]byte{}
	for i, e := range es {
		if e.Index != uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(e.Data), nil); err != nil {
			t.Fatal(err)
		}
		roots[uint64(i+1)], _ = rng.GetRootHash(nil)
	}
	for s := uint64(1); s <= size; s++ {
		got, err := l.Root(ctx, s)
		if err != nil || string(got) != string(roots[s]) {
			t.Fatalf("root at %d: %v", s, err)
		}
		for _, i := range []uint64{0, s / 2, s - 1} {
			p, err := l.InclusionProof(ctx, i, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, s, rfc6962.DefaultHasher.HashLeaf(es[i].Data), p, roots[s]); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, s, err)
			}
		}
		for _, s1 := range []uint64{1, s / 2, s} {
			if s1 == 0 {
				continue
			}
			p, err := l.ConsistencyProof(ctx, s1, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, s1, s, p, roots[s1], roots[s]); err != nil {
				t.Fatalf("consistency %d→%d: %v", s1, s, err)
			}
		}
	}

	t.Run("Checkpoint", func(t *testing.T) {
		cp, err := l.Sign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, err := auditlog.NewVerifier(signer.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		s, root, err := auditlog.OpenCheckpoint(cp.Note, "evoucher.test/log", v)
		if err != nil || s != 37 || string(root) != string(roots[37]) {
			t.Fatalf("checkpoint %d %v", s, err)
		}
		// Another key's checkpoint is refused.
		k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // an impostor's key
		s2, _ := auditlog.NewSigner("evoucher.test/log", k2)
		v2, _ := auditlog.NewVerifier(s2.VerifierKey())
		if _, _, err := auditlog.OpenCheckpoint(cp.Note, "evoucher.test/log", v2); evoucher.ReasonOf(err) != "bad_checkpoint" {
			t.Fatalf("a checkpoint verified with another key: %v", err)
		}
		forged := append([]byte(nil), cp.Note...)
		forged[len("evoucher.test/log\n")] ^= 1 // the size line
		if _, _, err := auditlog.OpenCheckpoint(forged, "evoucher.test/log", v); err == nil {
			t.Fatal("an altered checkpoint verified")
		}
	})
	t.Run("ErrAppendOnly", func(t *testing.T) {
		for _, q := range []string{
			`UPDATE log_messages SET data = 'x' WHERE id = (SELECT message FROM log_leaves WHERE idx = 3)`,
			`DELETE FROM log_messages WHERE id = (SELECT message FROM log_leaves WHERE idx = 3)`,
			`UPDATE log_leaves SET leaf_hash = sha256('x') WHERE idx = 3`,
			`DELETE FROM log_leaves WHERE idx = 3`,
		} {
			_, err := db.Exec(ctx, q)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
	t.Run("RollbackLeavesNothing", func(t *testing.T) {
		tx, _ := db.Begin(ctx)
		if _, err := auditlog.Append(ctx, tx, entry(99)); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback(ctx)
		if s, _ := l.Size(ctx); s != 37 {
			t.Fatalf("size %d after a rolled back append", s)
		}
	})
	t.Run("ErrBeyondLog", func(t *testing.T) {
		if _, err := l.InclusionProof(ctx, 1, 99); evoucher.ReasonOf(err) != "beyond_log" {
			t.Fatalf("%v", err)
		}
	})
}

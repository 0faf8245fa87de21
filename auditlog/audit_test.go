package auditlog_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	fnote "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// dbSource serves the log straight from the database, as the center's API does.
type dbSource struct {
	log  *auditlog.Log
	crl  []byte
	note []byte // the checkpoint served; the latest when nil
}

func (s *dbSource) Checkpoint(ctx context.Context) ([]byte, error) {
	if s.note != nil {
		return s.note, nil
	}
	cp, err := s.log.Sign(ctx)
	return cp.Note, err
}
func (s *dbSource) Entries(ctx context.Context, from, to uint64) ([]auditlog.Entry, error) {
	return s.log.Entries(ctx, from, to)
}
func (s *dbSource) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	return s.log.ConsistencyProof(ctx, from, to)
}
func (s *dbSource) CRL(context.Context) ([]byte, error) { return s.crl, nil }

type auditEnv struct {
	db     *pgxpool.Pool
	log    *auditlog.Log
	signer *auditlog.Signer
	ca     *x509.Certificate
	src    *dbSource
	sign   func(n int) []byte // a signed PurchaseOrder from the center
}

func mustAuditEnv(t *testing.T, n int) *auditEnv {
	t.Helper()
	ctx := context.Background()
	db := testdb.MustPool(t)
	tok := testhsm.MustToken(t)
	caKey, _, _ := tok.RSAKey("ca", 3072)
	caCert, _, err := pki.EnsureCA(ctx, db, caKey, "ca")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey})
	signKey, _, _ := tok.RSAKey("center-sign", 3072)
	signCert, _, err := a.EnsureCertificate(ctx, signKey, pki.RoleCenterSign, "center", nil)
	if err != nil {
		t.Fatal(err)
	}
	logKey, _, _ := tok.ECDSAKey("log")
	signer, _ := auditlog.NewSigner("evoucher.test/log", logKey)
	l, _ := auditlog.New(db, signer, nil)
	crl, err := a.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &auditEnv{db: db, log: l, signer: signer, ca: caCert, src: &dbSource{log: l, crl: crl}}
	e.sign = func(i int) []byte {
		id := uuid.NewString()
		doc := message.BuildPurchaseOrder(message.PurchaseOrder{
			Envelope: message.Envelope{ID: "po-" + id, MessageID: id, Sender: "center", Recipient: "OP-A", Created: time.Now().UTC()},
			OrderID:  "PO-" + id[:8], Product: "P10", Quantity: 10 + i, Reason: "test"})
		b, err := dsig.SignBytes(doc, signKey, signCert)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	e.append(t, n)
	// A checkpoint, as the server signs one every --checkpoint-interval: the tree's inner
	// nodes are stored then, so the tampering below happens to a log already summed up.
	if _, err := l.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *auditEnv) append(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		raw := e.sign(i)
		doc, _ := message.Parse(raw, message.DefaultLimits)
		env, _ := message.ReadEnvelope(doc.Root())
		tx, _ := e.db.Begin(ctx)
		if _, err := auditlog.Append(ctx, tx, &auditlog.Entry{Type: env.Type, Sender: env.Sender, Recipient: env.Recipient,
			MessageID: env.MessageID, Time: env.Created, Data: raw}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// tamper runs SQL on the log with its append-only triggers off, as a database administrator
// could.
func (e *auditEnv) tamper(t *testing.T, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	for _, q := range append(append([]string{`ALTER TABLE log_leaves DISABLE TRIGGER USER`, `ALTER TABLE log_messages DISABLE TRIGGER USER`, `ALTER TABLE log_nodes DISABLE TRIGGER USER`}, sqls...),
		`ALTER TABLE log_leaves ENABLE TRIGGER USER`, `ALTER TABLE log_messages ENABLE TRIGGER USER`, `ALTER TABLE log_nodes ENABLE TRIGGER USER`) {
		if _, err := e.db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vkey := func(e *auditEnv) string { return e.signer.VerifierKey() }

	t.Run("OKThenIncremental", func(t *testing.T) {
		e := mustAuditEnv(t, 6)
		st, sum, err := auditlog.Audit(ctx, e.src, vkey(e), e.ca, nil)
		if err != nil || st.Size != 6 || sum.Counts["PurchaseOrder from center"] != 6 {
			t.Fatalf("%+v %v", sum, err)
		}
		e.append(t, 5)
		st2, sum2, err := auditlog.Audit(ctx, e.src, vkey(e), e.ca, &st)
		if err != nil || st2.Size != 11 || sum2.From != 6 || sum2.Counts["PurchaseOrder from center"] != 5 {
			t.Fatalf("incremental: %+v %v", sum2, err)
		}
	})
	cases := []struct {
		name     string
		tamper   func(t *testing.T, e *auditEnv)
		verified bool // the auditor verified the log before the tampering
		reason   string
	}{
		{"ErrByteChanged", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `UPDATE log_messages SET data = overlay(data placing '9' from 300 for 1) WHERE id = (SELECT message FROM log_leaves WHERE idx = 2)`)
		}, false, "bad_digest"},
		{"ErrDeleted", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `DELETE FROM log_leaves WHERE idx = 3`)
		}, false, "missing_entries"},
		{"ErrSwapped", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `UPDATE log_leaves SET idx = 1000000 WHERE idx = 1`, `UPDATE log_leaves SET idx = 1 WHERE idx = 4`, `UPDATE log_leaves SET idx = 4 WHERE idx = 1000000`)
		}, false, "root_mismatch"},
		{"ErrAppendedWithoutTree", func(t *testing.T, e *auditEnv) {
			// An entry slipped in by hand at the end (the size follows the entries), with the
			// leaf hash of another: the next checkpoint's root does not match the entries.
			raw := e.sign(99)
			if _, err := e.db.Exec(context.Background(), `WITH m AS (INSERT INTO log_messages (type, sender, recipient, message_id, logged_at, data)
					SELECT type, sender, recipient, message_id, logged_at, $1 FROM log_entries WHERE idx = 5 RETURNING id)
				INSERT INTO log_leaves (idx, leaf_hash, message) SELECT 6, leaf_hash, m.id FROM log_leaves, m WHERE idx = 5`, raw); err != nil {
				t.Fatal(err)
			}
		}, false, ""},
		{"ErrRolledBack", func(t *testing.T, e *auditEnv) {
			e.tamper(t, `DELETE FROM log_leaves WHERE idx >= 4`, `DELETE FROM log_checkpoints`, `DELETE FROM log_nodes`)
			// Rebuild a consistent smaller tree: the log as it was at 4 entries.
			rebuildState(t, e)
		}, true, "rollback"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := mustAuditEnv(t, 6)
			var prev *auditlog.AuditState
			if c.verified {
				st, _, err := auditlog.Audit(ctx, e.src, vkey(e), e.ca, nil)
				if err != nil {
					t.Fatal(err)
				}
				prev = &st
			}
			c.tamper(t, e)
			_, _, err := auditlog.Audit(ctx, e.src, vkey(e), e.ca, prev)
			if err == nil {
				t.Fatal("the tampered log verified")
			}
			if c.reason != "" && evoucher.ReasonOf(err) != c.reason {
				t.Fatalf("refused for %q: %v", evoucher.ReasonOf(err), err)
			}
		})
	}
	t.Run("ErrSplitView", func(t *testing.T) {
		e := mustAuditEnv(t, 4)
		st, _, err := auditlog.Audit(ctx, e.src, vkey(e), e.ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The log's own key signs another tree of the same size for a second auditor.
		forged := signed(t, e.signer, 4, make([]byte, 32))
		e.src.note = forged
		if _, _, err := auditlog.Audit(ctx, e.src, vkey(e), e.ca, &st); evoucher.ReasonOf(err) != "split_view" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("ErrForgedCheckpoint", func(t *testing.T) {
		e := mustAuditEnv(t, 3)
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // not the log's key
		impostor, _ := auditlog.NewSigner("evoucher.test/log", k)
		root, _ := e.log.Root(ctx, 3)
		e.src.note = signed(t, impostor, 3, root)
		if _, _, err := auditlog.Audit(ctx, e.src, vkey(e), e.ca, nil); evoucher.ReasonOf(err) != "bad_checkpoint" {
			t.Fatalf("%v", err)
		}
		// And the real checkpoint with another configured key.
		e.src.note = nil
		if _, _, err := auditlog.Audit(ctx, e.src, impostor.VerifierKey(), e.ca, nil); evoucher.ReasonOf(err) != "bad_checkpoint" {
			t.Fatalf("%v", err)
		}
	})
}

func signed(t *testing.T, s *auditlog.Signer, size uint64, root []byte) []byte {
	t.Helper()
	body := fnote.Checkpoint{Origin: s.Name(), Size: size, Hash: root}.Marshal()
	b, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rebuildState recomputes log_nodes from the entries left, as a careful attacker
// rolling the log back would.
func rebuildState(t *testing.T, e *auditEnv) {
	t.Helper()
	ctx := context.Background()
	es, err := e.log.Entries(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e.tamper(t, `DELETE FROM log_leaves`, `DELETE FROM log_messages`)
	tx, _ := e.db.Begin(ctx)
	for _, en := range es {
		en := en
		if _, err := auditlog.Append(ctx, tx, &en); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWitnessAndCrossCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := mustAuditEnv(t, 5)
	var mu sync.Mutex
	var pushed [][]byte
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pushed = append(pushed, b)
		mu.Unlock()
	}))
	defer ws.Close()
	cp, err := e.log.Sign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := (auditlog.Witness{URL: ws.URL}).Push(ctx, cp.Note); err != nil {
		t.Fatal(err)
	}
	if len(pushed) != 1 || string(pushed[0]) != string(cp.Note) {
		t.Fatal("the witness did not get the checkpoint")
	}
	e.append(t, 3)
	st, _, err := auditlog.Audit(ctx, e.src, e.signer.VerifierKey(), e.ca, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OKOlderCheckpoint", func(t *testing.T) {
		if err := auditlog.CrossCheck(ctx, e.src, e.signer.VerifierKey(), st, pushed); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrSplitView", func(t *testing.T) {
		other := signed(t, e.signer, 5, make([]byte, 32)) // the log's key, another tree of 5
		if err := auditlog.CrossCheck(ctx, e.src, e.signer.VerifierKey(), st, [][]byte{other}); evoucher.ReasonOf(err) != "split_view" {
			t.Fatalf("%v", err)
		}
		same := signed(t, e.signer, 8, make([]byte, 32))
		if err := auditlog.CrossCheck(ctx, e.src, e.signer.VerifierKey(), st, [][]byte{same}); evoucher.ReasonOf(err) != "split_view" {
			t.Fatalf("%v", err)
		}
	})
}

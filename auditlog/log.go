// Package auditlog owns the signed exchange log: every XML message the center accepts or
// emits, byte-exact as signed, is a leaf of an append-only Merkle tree (RFC 6962 hashing),
// appended in the same database transaction as the effect it records; checkpoints of the tree
// are signed in the signed-note format with an ECDSA P-256 key held in the HSM; inclusion and
// consistency proofs for any size come from stored subtree hashes. Entries hold what was
// exchanged, and codes only ever travel encrypted, so the log never holds a code in clear.
package auditlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/evoucher/evoucher"
)

// Entry is one logged message and what the log says of it.
type Entry struct {
	Index     uint64
	Type      string // the document type: CodeBatch, Shipment, …
	Sender    string
	Recipient string
	MessageID string
	Time      time.Time
	Data      []byte // the message, byte-exact
}

var hasher = rfc6962.DefaultHasher

var factory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash is the RFC 6962 hash of a logged message.
func LeafHash(data []byte) []byte { return hasher.HashLeaf(data) }

// Append adds entries to the log through q and returns the index of the first, known inside
// the caller's transaction (a shipment stores its document's). Writers that do not need it
// there use Enqueue, which takes no lock. q is the caller's transaction (a pgx.Tx), where the
// entries record its effects, or a pool or connection, where the append is a transaction of
// its own. It takes the log's advisory lock, which serialises appends and sequencings until
// the transaction ends: in a transaction, call it last, just before committing, so the lock
// is held briefly. Entry indexes are set. The transaction must be READ COMMITTED (pgx's and
// PostgreSQL's default).
//
// Leaf hashes are computed here, before the lock; then one statement (log_append, migrations
// 0012 and 0013) writes the messages, takes the lock, reads the tree's size from its leaves
// and inserts the leaves. Nothing is updated; the inner nodes are built later
// (log_build_nodes).
func Append(ctx context.Context, q Querier, entries ...*Entry) (uint64, error) {
	if len(entries) == 0 {
		return 0, errors.New("auditlog: nothing to append")
	}
	if len(entries) == 1 {
		e := entries[0]
		var idx int64
		if err := q.QueryRow(ctx, `SELECT log_append($1::bytea, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::bytea)`,
			LeafHash(e.Data), e.Type, e.Sender, e.Recipient, e.MessageID, e.Time.UTC(), e.Data).Scan(&idx); err != nil {
			return 0, fmt.Errorf("auditlog: append entries: %w", err)
		}
		e.Index = uint64(idx)
		return e.Index, nil
	}
	var first int64
	if err := q.QueryRow(ctx, `SELECT log_append($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[])`,
		columns(entries)...).Scan(&first); err != nil {
		return 0, fmt.Errorf("auditlog: append entries: %w", err)
	}
	for i, e := range entries {
		e.Index = uint64(first) + uint64(i)
	}
	return uint64(first), nil
}

// columns returns entries as the array arguments of log_append and Enqueue: leaf hashes,
// types, senders, recipients, MessageIds, times and messages.
func columns(entries []*Entry) []any {
	n := len(entries)
	var (
		leaves    = make([][]byte, n)
		types     = make([]string, n)
		senders   = make([]string, n)
		recipient = make([]string, n)
		messageID = make([]string, n)
		times     = make([]time.Time, n)
		data      = make([][]byte, n)
	)
	for i, e := range entries {
		leaves[i] = LeafHash(e.Data)
		types[i], senders[i], recipient[i], messageID[i] = e.Type, e.Sender, e.Recipient, e.MessageID
		times[i], data[i] = e.Time.UTC(), e.Data
	}
	return []any{leaves, types, senders, recipient, messageID, times, data}
}

// Log reads the exchange log and signs its checkpoints.
type Log struct {
	db     *pgxpool.Pool
	signer *Signer
	now    func() time.Time
}

// New returns a Log on db whose checkpoints signer signs (nil: a read-only log).
func New(db *pgxpool.Pool, signer *Signer, now func() time.Time) (*Log, error) {
	if db == nil {
		return nil, errors.New("auditlog: no database")
	}
	if now == nil {
		now = time.Now
	}
	return &Log{db: db, signer: signer, now: now}, nil
}

// Size returns the number of entries.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	var n int64
	err := l.db.QueryRow(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM log_leaves`).Scan(&n)
	return uint64(n), err
}

// hashes fetches the hashes of node ids (leaves from the entries, inner nodes from the stored
// subtrees).
func (l *Log) hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	return nodeHashes(ctx, l.db, ids)
}

// Root returns the tree's root hash at size (at most the current size).
func (l *Log) Root(ctx context.Context, size uint64) ([]byte, error) {
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	if err := l.checkSize(ctx, size); err != nil {
		return nil, err
	}
	hs, err := l.hashes(ctx, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	rng, err := factory.NewRange(0, size, hs)
	if err != nil {
		return nil, err
	}
	return rng.GetRootHash(nil)
}

func (l *Log) checkSize(ctx context.Context, size uint64) error {
	cur, err := l.Size(ctx)
	if err != nil {
		return err
	}
	if size > cur {
		return evoucher.Errorf(evoucher.KindNotFound, "beyond_log", "the log has %d entries, not %d", cur, size)
	}
	return nil
}

// InclusionProof proves entry index is in the tree of size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if err := l.checkSize(ctx, size); err != nil {
		return nil, err
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_range", "no inclusion proof of %d in %d: %v", index, size, err)
	}
	hs, err := l.hashes(ctx, nodes.IDs)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// ConsistencyProof proves the tree of size1 is a prefix of the tree of size2.
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	if err := l.checkSize(ctx, size2); err != nil {
		return nil, err
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_range", "no consistency proof from %d to %d: %v", size1, size2, err)
	}
	hs, err := l.hashes(ctx, nodes.IDs)
	if err != nil {
		return nil, err
	}
	return nodes.Rehash(hs, hasher.HashChildren)
}

// Entries returns entries [from, to).
func (l *Log) Entries(ctx context.Context, from, to uint64) ([]Entry, error) {
	rows, err := l.db.Query(ctx, `SELECT idx, type, sender, recipient, message_id, logged_at, data FROM log_entries
		WHERE idx >= $1 AND idx < $2 ORDER BY idx`, int64(from), int64(to))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		var idx int64
		err := r.Scan(&idx, &e.Type, &e.Sender, &e.Recipient, &e.MessageID, &e.Time, &e.Data)
		e.Index = uint64(idx)
		return e, err
	})
}

// Find returns the entry of a message id.
func (l *Log) Find(ctx context.Context, messageID string) (Entry, error) {
	var idx int64
	err := l.db.QueryRow(ctx, `SELECT idx FROM log_entries WHERE message_id = $1 ORDER BY idx LIMIT 1`, messageID).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_message", "no message %s in the log", messageID)
	}
	if err != nil {
		return Entry{}, err
	}
	es, err := l.Entries(ctx, uint64(idx), uint64(idx)+1)
	if err != nil || len(es) != 1 {
		return Entry{}, fmt.Errorf("auditlog: entry %d: %v", idx, err)
	}
	return es[0], nil
}

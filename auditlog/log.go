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

// Append adds entries to the log in the caller's transaction and returns the index of the
// first. It takes the log's row lock, which serialises appends until the transaction ends:
// call it last, just before committing, so the lock is held briefly. Entry indexes are set.
//
// The lock is held for two round trips, the read of the tree's edge and one statement that
// writes the entries, the new inner nodes and the new edge; leaf hashes are computed before
// the lock is taken.
func Append(ctx context.Context, tx pgx.Tx, entries ...*Entry) (uint64, error) {
	if len(entries) == 0 {
		return 0, errors.New("auditlog: nothing to append")
	}
	n := len(entries)
	var (
		idx       = make([]int64, n)
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
	var size int64
	var edge [][]byte
	// By the primary key (WHERE id), here and in the UPDATE: under concurrent appends the row's
	// dead versions spread over hundreds of pages, which a sequential scan would read each time.
	if err := tx.QueryRow(ctx, `SELECT size, edge FROM log_state WHERE id FOR UPDATE`).Scan(&size, &edge); err != nil {
		return 0, fmt.Errorf("auditlog: read state: %w", err)
	}
	rng, err := factory.NewRange(0, uint64(size), edge)
	if err != nil {
		return 0, fmt.Errorf("auditlog: stored edge does not fit size %d: %w", size, err)
	}
	// Appending one leaf completes one inner node on average.
	levels, nodeIdx, hashes := make([]int16, 0, n), make([]int64, 0, n), make([][]byte, 0, n)
	visit := func(id compact.NodeID, hash []byte) {
		if id.Level > 0 {
			levels, nodeIdx, hashes = append(levels, int16(id.Level)), append(nodeIdx, int64(id.Index)), append(hashes, hash)
		}
	}
	first := uint64(size)
	for i := range entries {
		idx[i] = size + int64(i)
		if err := rng.Append(leaves[i], visit); err != nil {
			return 0, err
		}
	}
	if _, err := tx.Exec(ctx, `WITH entries AS (
			INSERT INTO log_entries (idx, leaf_hash, type, sender, recipient, message_id, logged_at, data)
			SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::bytea[])
		), nodes AS (
			INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest($9::smallint[], $10::bigint[], $11::bytea[])
		)
		UPDATE log_state SET size = $12, edge = $13 WHERE id`,
		idx, leaves, types, senders, recipient, messageID, times, data, levels, nodeIdx, hashes, int64(rng.End()), rng.Hashes()); err != nil {
		return 0, fmt.Errorf("auditlog: append entries: %w", err)
	}
	for i, e := range entries {
		e.Index = first + uint64(i)
	}
	return first, nil
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
	err := l.db.QueryRow(ctx, `SELECT size FROM log_state`).Scan(&n)
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

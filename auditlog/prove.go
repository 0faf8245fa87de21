package auditlog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// Querier is what reads the tree: a pool, or the transaction that just appended.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// nodeHashes fetches the hashes of node ids through q, in one query: leaves from the entries,
// inner nodes from the stored subtrees. (ProveTx runs while the log's lock is held: one round
// trip, not one per node.) Appends store only leaves; when an inner node is not stored yet, it
// has the nodes completed since the last run computed and stored (log_build_nodes, migration
// 0013), and asks again.
func nodeHashes(ctx context.Context, q Querier, ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out, missing, err := storedHashes(ctx, q, ids)
	if err != nil || missing < 0 {
		return out, err
	}
	var built int64
	if err := q.QueryRow(ctx, `SELECT log_build_nodes()`).Scan(&built); err != nil {
		return nil, fmt.Errorf("auditlog: build nodes: %w", err)
	}
	out, missing, err = storedHashes(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	if missing >= 0 {
		return nil, fmt.Errorf("auditlog: node %d/%d: %w", ids[missing].Level, ids[missing].Index, pgx.ErrNoRows)
	}
	return out, nil
}

// storedHashes reads the hashes of node ids as stored; missing is the position of the first
// that is not, or -1.
func storedHashes(ctx context.Context, q Querier, ids []compact.NodeID) (out [][]byte, missing int, err error) {
	levels, idx := make([]int16, len(ids)), make([]int64, len(ids))
	for i, id := range ids {
		levels[i], idx[i] = int16(id.Level), int64(id.Index)
	}
	err = q.QueryRow(ctx, `SELECT array_agg(CASE WHEN x.level = 0
			THEN (SELECT leaf_hash FROM log_leaves WHERE idx = x.idx)
			ELSE (SELECT hash FROM log_nodes WHERE level = x.level AND idx = x.idx) END ORDER BY x.o)
		FROM unnest($1::smallint[], $2::bigint[]) WITH ORDINALITY AS x(level, idx, o)`, levels, idx).Scan(&out)
	if err != nil {
		return nil, 0, fmt.Errorf("auditlog: nodes: %w", err)
	}
	if len(out) != len(ids) {
		return nil, 0, fmt.Errorf("auditlog: %d nodes read, %d asked", len(out), len(ids))
	}
	for i, h := range out {
		if h == nil {
			return out, i, nil
		}
	}
	return out, -1, nil
}

// Proof is an entry's inclusion in the tree of a given size: what a receipt carries, so its
// holder can check later that every checkpoint the log signs is consistent with it.
type Proof struct {
	Index, Size uint64
	Root        []byte
	Hashes      [][]byte
}

// ProveTx returns the inclusion proof of entry index in the tree of size, reading through q: a
// pool, or the transaction that appended it, before it commits.
func ProveTx(ctx context.Context, q Querier, index, size uint64) (Proof, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return Proof{}, err
	}
	ids := compact.RangeNodes(0, size, nil)
	edge := len(ids)
	hs, err := nodeHashes(ctx, q, append(ids, nodes.IDs...))
	if err != nil {
		return Proof{}, err
	}
	rng, err := factory.NewRange(0, size, hs[:edge])
	if err != nil {
		return Proof{}, err
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return Proof{}, err
	}
	p, err := nodes.Rehash(hs[edge:], hasher.HashChildren)
	if err != nil {
		return Proof{}, err
	}
	return Proof{Index: index, Size: size, Root: root, Hashes: p}, nil
}

// Verify checks the proof for a message's bytes.
func (p Proof) Verify(data []byte) error {
	return proof.VerifyInclusion(hasher, p.Index, p.Size, LeafHash(data), p.Hashes, p.Root)
}

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

// nodeHashes fetches the hashes of node ids through q.
func nodeHashes(ctx context.Context, q Querier, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		var err error
		if id.Level == 0 {
			err = q.QueryRow(ctx, `SELECT leaf_hash FROM log_entries WHERE idx = $1`, int64(id.Index)).Scan(&out[i])
		} else {
			err = q.QueryRow(ctx, `SELECT hash FROM log_nodes WHERE level = $1 AND idx = $2`, int16(id.Level), int64(id.Index)).Scan(&out[i])
		}
		if err != nil {
			return nil, fmt.Errorf("auditlog: node %d/%d: %w", id.Level, id.Index, err)
		}
	}
	return out, nil
}

// Proof is an entry's inclusion in the tree of a given size: what a receipt carries, so its
// holder can check later that every checkpoint the log signs is consistent with it.
type Proof struct {
	Index, Size uint64
	Root        []byte
	Hashes      [][]byte
}

// ProveTx returns the inclusion proof of entry index in the tree of size, reading through q —
// inside the transaction that appended it, before it commits.
func ProveTx(ctx context.Context, q Querier, index, size uint64) (Proof, error) {
	hs, err := nodeHashes(ctx, q, compact.RangeNodes(0, size, nil))
	if err != nil {
		return Proof{}, err
	}
	rng, err := factory.NewRange(0, size, hs)
	if err != nil {
		return Proof{}, err
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return Proof{}, err
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return Proof{}, err
	}
	ph, err := nodeHashes(ctx, q, nodes.IDs)
	if err != nil {
		return Proof{}, err
	}
	p, err := nodes.Rehash(ph, hasher.HashChildren)
	if err != nil {
		return Proof{}, err
	}
	return Proof{Index: index, Size: size, Root: root, Hashes: p}, nil
}

// Verify checks the proof for a message's bytes.
func (p Proof) Verify(data []byte) error {
	return proof.VerifyInclusion(hasher, p.Index, p.Size, LeafHash(data), p.Hashes, p.Root)
}

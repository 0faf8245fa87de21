package auditlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/evoucher/evoucher"
)

// Witness is a place outside the platform's control where checkpoints are pushed, so that a
// copy exists the platform cannot take back.
type Witness struct {
	URL    string
	Client *http.Client
}

// Push POSTs a signed checkpoint (text/plain) to the witness; any 2xx is success.
func (w Witness) Push(ctx context.Context, note []byte) error {
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(note))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("witness %s answered HTTP %d", w.URL, resp.StatusCode)
	}
	return nil
}

// CrossCheck compares other checkpoints of the same log (from witnesses, other auditors or
// other mirrors) with the one an audit verified: each must verify with the log's key, and be
// either the same tree, or a tree the verified one is consistent with (proved by src). Two
// checkpoints of the same size with different roots, or trees that cannot be proved
// consistent, are a split view: the log shows different histories to different parties.
func CrossCheck(ctx context.Context, src Source, vkey string, verified AuditState, others [][]byte) error {
	v, err := NewVerifier(vkey)
	if err != nil {
		return err
	}
	for i, n := range others {
		size, root, err := OpenCheckpoint(n, v.Name(), v)
		if err != nil {
			return fmt.Errorf("checkpoint source %d: %w", i+1, err)
		}
		switch {
		case size == verified.Size:
			if !bytes.Equal(root, verified.Root) {
				return evoucher.Errorf(evoucher.KindConflict, "split_view", "checkpoint source %d has a tree of %d entries with another root than the log's: split view", i+1, size)
			}
		case size == 0:
		case size < verified.Size:
			p, err := src.Consistency(ctx, size, verified.Size)
			if err == nil {
				err = proof.VerifyConsistency(hasher, size, verified.Size, p, root, verified.Root)
			}
			if err != nil {
				return evoucher.Errorf(evoucher.KindConflict, "split_view", "checkpoint source %d (size %d) is not a prefix of the verified log (size %d): split view (%v)", i+1, size, verified.Size, err)
			}
		default:
			p, err := src.Consistency(ctx, verified.Size, size)
			if err == nil {
				err = proof.VerifyConsistency(hasher, verified.Size, size, p, verified.Root, root)
			}
			if err != nil {
				return evoucher.Errorf(evoucher.KindConflict, "split_view", "checkpoint source %d (size %d) does not extend the verified log (size %d): split view (%v)", i+1, size, verified.Size, err)
			}
		}
	}
	return nil
}

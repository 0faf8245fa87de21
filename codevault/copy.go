package codevault

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"sync"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

// codeSource feeds COPY: a goroutine reads the decrypted codes, checks them and seals each PIN
// under the part's DEK while the database copies the rows already sealed, so parsing and
// sealing overlap with the database's work.
type codeSource struct {
	rows   chan []any
	cur    []any
	mu     sync.Mutex
	err    error // set by the reader goroutine before it closes rows
	cancel context.CancelFunc
	done   chan struct{}
}

func newCodeSource(ctx context.Context, plaintext []byte, operatorID string, h message.BatchHeader, batchID int64,
	rules productRules, aead cipher.AEAD, now time.Time) *codeSource {
	ctx, cancel := context.WithCancel(ctx)
	s := &codeSource{rows: make(chan []any, 4096), cancel: cancel, done: make(chan struct{})}
	today := now.Truncate(24 * time.Hour)
	go func() {
		defer close(s.done)
		defer close(s.rows)
		var aad []byte
		err := message.ReadCodes(plaintext, operatorID, h, func(c message.Code) error {
			switch {
			case !rules.serial.MatchString(c.Serial):
				return evoucher.Errorf(evoucher.KindInvalid, "bad_code", "serial %q does not match the format of product %s", c.Serial, h.Product)
			case !rules.pin.Match(c.PIN):
				return evoucher.Errorf(evoucher.KindInvalid, "bad_code", "the PIN of serial %q does not match the format of product %s", c.Serial, h.Product)
			case c.Expiry.Before(today):
				return evoucher.Errorf(evoucher.KindInvalid, "expired_code", "serial %q expired on %s", c.Serial, c.Expiry.Format(time.DateOnly))
			}
			ct := make([]byte, nonceSize, nonceSize+len(c.PIN)+tagSize)
			if _, err := rand.Read(ct); err != nil {
				return err
			}
			aad = pinAAD(aad, c.Serial, batchID, h.Part)
			ct = aead.Seal(ct, ct, c.PIN, aad)
			select {
			case s.rows <- []any{operatorID, c.Serial, h.Product, batchID, h.Part, ct, c.Expiry}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}()
	return s
}

// Next implements pgx.CopyFromSource.
func (s *codeSource) Next() bool {
	r, ok := <-s.rows
	s.cur = r
	return ok
}

// Values implements pgx.CopyFromSource.
func (s *codeSource) Values() ([]any, error) { return s.cur, nil }

// Err implements pgx.CopyFromSource: COPY aborts when reading or checking the codes failed.
// pgx calls it between buffers too, so it must not wait for the reader.
func (s *codeSource) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// stop ends the reader goroutine and waits for it.
func (s *codeSource) stop() {
	s.cancel()
	for range s.rows {
	}
	<-s.done
}

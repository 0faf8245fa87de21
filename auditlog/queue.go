package auditlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Enqueue writes entries to the log's queue through q and returns their messages' ids, in
// order. q is the transaction of the effect the entries record (a pgx.Tx), or a pool, where
// the entries are a transaction of their own. Nothing is locked: the entries and the effect
// commit together, and a later sequencing (Sequencer.Sync, Log.Sign, or the sequencer of
// another server on the same database) gives them their indexes (migration 0015). Entry
// indexes are not set; IndexOf reads them once sequenced.
func Enqueue(ctx context.Context, q Querier, entries ...*Entry) ([]int64, error) {
	if len(entries) == 0 {
		return nil, errors.New("auditlog: nothing to append")
	}
	ids := make([]int64, len(entries))
	if len(entries) == 1 {
		e := entries[0]
		if err := q.QueryRow(ctx, `WITH m AS (
				INSERT INTO log_messages (type, sender, recipient, message_id, logged_at, data)
				VALUES ($2, $3, $4, $5, $6, $7) RETURNING id)
			INSERT INTO log_pending (message, leaf_hash) SELECT id, $1 FROM m RETURNING message`,
			LeafHash(e.Data), e.Type, e.Sender, e.Recipient, e.MessageID, e.Time.UTC(), e.Data).Scan(&ids[0]); err != nil {
			return nil, fmt.Errorf("auditlog: enqueue entries: %w", err)
		}
		return ids, nil
	}
	// The ids are drawn first, in order, so the queue keeps the entries' order.
	if err := q.QueryRow(ctx, `WITH ids AS (
			SELECT nextval(pg_get_serial_sequence('log_messages', 'id')) AS id, o FROM generate_series(1, $8::int) AS o),
		m AS (INSERT INTO log_messages (id, type, sender, recipient, message_id, logged_at, data)
			SELECT ids.id, u.t, u.s, u.r, u.m, u.a, u.d
			FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[]) WITH ORDINALITY AS u(t, s, r, m, a, d, o)
			JOIN ids USING (o) RETURNING id),
		p AS (INSERT INTO log_pending (message, leaf_hash)
			SELECT ids.id, u.l FROM unnest($1::bytea[]) WITH ORDINALITY AS u(l, o) JOIN ids USING (o))
		SELECT array_agg(id ORDER BY o) FROM ids`,
		append(columns(entries), len(entries))...).Scan(&ids); err != nil {
		return nil, fmt.Errorf("auditlog: enqueue entries: %w", err)
	}
	if len(ids) != len(entries) {
		return nil, fmt.Errorf("auditlog: %d entries enqueued, %d ids returned", len(entries), len(ids))
	}
	return ids, nil
}

// IndexOf returns the index of the entry of message id (from Enqueue), and false while it is
// not sequenced.
func IndexOf(ctx context.Context, q Querier, id int64) (uint64, bool, error) {
	var idx int64
	err := q.QueryRow(ctx, `SELECT idx FROM log_leaves WHERE message = $1`, id).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("auditlog: index of message %d: %w", id, err)
	}
	return uint64(idx), true, nil
}

// sequence runs one sequencing (log_sequence, migration 0015) as a transaction of its own and
// returns how many entries it appended.
func sequence(ctx context.Context, db *pgxpool.Pool) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT log_sequence()`).Scan(&n); err != nil {
		return 0, fmt.Errorf("auditlog: sequence: %w", err)
	}
	return n, nil
}

// A Sequencer gives queued entries their indexes, a batch at a time: the callers of Sync
// that arrive while a sequencing runs are all served by the next one, so under load the log's
// lock is taken once per batch of entries, not once per entry. Its zero value is not usable;
// it needs no closing (a sequencing runs only while somebody waits for one).
type Sequencer struct {
	db *pgxpool.Pool

	mu      sync.Mutex
	running bool   // a goroutine is running sequencings
	next    *round // the sequencing that the next run makes, nil when nobody waits for one
	entries int64  // entries sequenced by this Sequencer, for its Stats
	runs    int64
}

// round is one sequencing and the callers waiting for it.
type round struct {
	done chan struct{}
	err  error
}

// sequenceTimeout bounds one sequencing, whose callers may have gone.
const sequenceTimeout = 30 * time.Second

// NewSequencer returns a Sequencer of the log in db.
func NewSequencer(db *pgxpool.Pool) *Sequencer { return &Sequencer{db: db} }

// Sync returns once a sequencing that started after the call has committed: every entry
// enqueued by a transaction committed before the call then has its index.
func (s *Sequencer) Sync(ctx context.Context) error {
	s.mu.Lock()
	if s.next == nil {
		s.next = &round{done: make(chan struct{})}
	}
	r := s.next
	if !s.running {
		s.running = true
		go s.run()
	}
	s.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run makes sequencings while somebody waits for one.
func (s *Sequencer) run() {
	for {
		s.mu.Lock()
		r := s.next
		if r == nil {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.next = nil
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), sequenceTimeout)
		n, err := sequence(ctx, s.db)
		cancel()
		s.mu.Lock()
		s.entries += n
		s.runs++
		s.mu.Unlock()
		r.err = err
		close(r.done)
	}
}

// Run sequences the queue every interval until ctx ends, for the entries nobody waits for
// (a message whose receipt was not made, a caller that does not need its index), and vacuums
// the queue every vacuumEvery. It returns ctx's error, or the first failure.
//
// The queue is a table every sequencing empties: its dead rows, which a sequencing would
// otherwise read again, are cleared here rather than at autovacuum's pace (at most once a
// minute); a sequencing then reads a second's worth of pages at most.
func (s *Sequencer) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	vacuumed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		if time.Since(vacuumed) >= vacuumEvery {
			if _, err := s.db.Exec(ctx, `VACUUM log_pending`); err != nil && ctx.Err() == nil {
				return fmt.Errorf("auditlog: vacuum the queue: %w", err)
			}
			vacuumed = time.Now()
		}
	}
}

// vacuumEvery is how often Run vacuums the queue.
const vacuumEvery = time.Second

// Stats returns how many entries this Sequencer sequenced, and in how many sequencings.
func (s *Sequencer) Stats() (entries, runs int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries, s.runs
}

// Index returns the index of the entry of message id, once sequenced: it sequences first (a
// message just committed is not sequenced yet). The message's transaction must have
// committed.
func (s *Sequencer) Index(ctx context.Context, id int64) (uint64, error) {
	if err := s.Sync(ctx); err != nil {
		return 0, err
	}
	idx, ok, err := IndexOf(ctx, s.db, id)
	if err == nil && !ok {
		err = fmt.Errorf("auditlog: message %d is not in the log's queue", id)
	}
	return idx, err
}

package codevault

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// WebhookSecret is the key alarm notifications are signed with (HMAC-SHA256). It prints as
// [redacted].
type WebhookSecret []byte

func (WebhookSecret) String() string               { return "[redacted]" }
func (WebhookSecret) GoString() string             { return "[redacted]" }
func (WebhookSecret) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, "[redacted]") }
func (WebhookSecret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (WebhookSecret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Notification is the JSON body of an alarm webhook: the alarm as it was when it was raised,
// changed state or counted another occurrence.
type Notification struct {
	ID          int64     `json:"id"` // the alarm's
	Kind        string    `json:"kind"`
	Subject     string    `json:"subject"`
	Message     string    `json:"message"`
	State       string    `json:"state"`
	Occurrences int       `json:"occurrences"`
	FirstAt     time.Time `json:"first_at"`
	LastAt      time.Time `json:"last_at"`
}

// The headers of an alarm webhook request. Signature is "sha256=" and the hex HMAC-SHA256 of
// the body under the secret; Delivery is the delivery's id, the same on every retry, so a
// receiver can drop duplicates (delivery is at least once).
const (
	SignatureHeader = "X-Evoucher-Signature"
	DeliveryHeader  = "X-Evoucher-Delivery"
)

// NotifierConfig is what a Notifier needs. Zero durations and counts take their defaults.
type NotifierConfig struct {
	URL    string        // http or https
	Secret WebhookSecret // at least 16 bytes
	Logger *slog.Logger  // default slog.Default()
	// Client sends the requests (default: one that does not follow redirects). Each attempt
	// is bounded by Timeout (default 10 seconds).
	Client  *http.Client
	Timeout time.Duration
	// Poll is how often pending deliveries are looked for (default 5 seconds).
	Poll time.Duration
	// A failed attempt n is retried after Backoff·2ⁿ⁻¹ (default 10 seconds), at most
	// MaxBackoff (default 1 hour); after MaxAttempts (default 12, about 5 hours) the delivery
	// is given up and logged.
	Backoff, MaxBackoff time.Duration
	MaxAttempts         int
	// Keep is how long delivered and given-up deliveries are kept (default 30 days).
	Keep time.Duration
	Now  func() time.Time // default the vault's clock
}

// Notifier delivers alarm notifications from the outbox (table alarm_deliveries, which
// triggers on alarms fill in the same transaction as each change). Several notifiers may run
// against one database: each delivery is claimed by one of them at a time, and the
// deliveries of one alarm go out in order.
type Notifier struct {
	v   *Vault
	url string
	cfg NotifierConfig
	log *slog.Logger
}

// Notifier returns a Notifier posting the vault's alarm notifications to cfg.URL. It fails
// when the URL is not http(s) or the secret is shorter than 16 bytes.
func (v *Vault) Notifier(cfg NotifierConfig) (*Notifier, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("codevault: alarm webhook %q is not an http(s) URL", cfg.URL)
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("codevault: the alarm webhook secret must be at least 16 bytes")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Now == nil {
		cfg.Now = v.now
	}
	orDefault := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	orDefault(&cfg.Timeout, 10*time.Second)
	orDefault(&cfg.Poll, 5*time.Second)
	orDefault(&cfg.Backoff, 10*time.Second)
	orDefault(&cfg.MaxBackoff, time.Hour)
	orDefault(&cfg.Keep, 30*24*time.Hour)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 12
	}
	return &Notifier{v: v, url: u.String(), cfg: cfg, log: cfg.Logger.With("webhook", u.Redacted())}, nil
}

// Run delivers notifications until ctx ends, then returns nil. Database errors are logged and
// retried at the next poll.
func (n *Notifier) Run(ctx context.Context) error {
	var pruned time.Time
	for {
		if _, _, err := n.Deliver(ctx); err != nil && ctx.Err() == nil {
			n.log.ErrorContext(ctx, "alarm notifications: cannot read the outbox", "err", err)
		}
		if now := n.cfg.Now(); now.Sub(pruned) >= time.Hour {
			if err := n.prune(ctx, now); err != nil && ctx.Err() == nil {
				n.log.ErrorContext(ctx, "alarm notifications: cannot prune the outbox", "err", err)
			}
			pruned = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(n.cfg.Poll):
		}
	}
}

// claimBatch is how many deliveries one claim takes.
const claimBatch = 32

// Deliver makes one attempt at every delivery that is due, in order, and returns how many were
// delivered and how many failed (to be retried, or given up). A delivery whose alarm has an
// earlier one still pending waits for it.
func (n *Notifier) Deliver(ctx context.Context) (delivered, failed int, err error) {
	for {
		batch, err := n.claim(ctx)
		if err != nil || len(batch) == 0 {
			return delivered, failed, err
		}
		for i, d := range batch {
			sendErr := n.send(ctx, d)
			if sendErr != nil && ctx.Err() != nil {
				// Shutting down: what was claimed and not sent is due again at once, and the
				// interrupted attempt does not count.
				return delivered, failed, errors.Join(ctx.Err(), n.release(batch[i:]))
			}
			if err := n.record(ctx, d, sendErr); err != nil {
				return delivered, failed, err
			}
			if sendErr != nil {
				failed++
			} else {
				delivered++
			}
			if ctx.Err() != nil {
				return delivered, failed, errors.Join(ctx.Err(), n.release(batch[i+1:]))
			}
		}
	}
}

type delivery struct {
	id       int64
	attempts int
	body     Notification
}

// claim takes the deliveries due now, at most one per alarm and only the alarm's earliest
// pending one, counts the attempt and leases them for the time an attempt may take, so
// another notifier leaves them alone and a crashed one's are tried again when the lease ends.
func (n *Notifier) claim(ctx context.Context) ([]delivery, error) {
	now := n.cfg.Now().UTC()
	lease := now.Add(n.cfg.Timeout + time.Minute)
	rows, err := n.v.db.Query(ctx, `UPDATE alarm_deliveries d SET attempts = d.attempts + 1, next_attempt_at = $2
		WHERE d.id IN (
			SELECT p.id FROM alarm_deliveries p
			WHERE p.delivered_at IS NULL AND p.gave_up_at IS NULL AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= $1)
			  AND NOT EXISTS (SELECT 1 FROM alarm_deliveries e WHERE e.alarm_id = p.alarm_id AND e.id < p.id
			                  AND e.delivered_at IS NULL AND e.gave_up_at IS NULL)
			ORDER BY p.id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING d.id, d.attempts, d.alarm_id, d.kind, d.subject, d.message, d.state, d.occurrences, d.first_at, d.last_at`,
		now, lease, claimBatch)
	if err != nil {
		return nil, err
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (delivery, error) {
		var d delivery
		b := &d.body
		err := row.Scan(&d.id, &d.attempts, &b.ID, &b.Kind, &b.Subject, &b.Message, &b.State, &b.Occurrences, &b.FirstAt, &b.LastAt)
		b.FirstAt, b.LastAt = b.FirstAt.UTC(), b.LastAt.UTC()
		return d, err
	})
	// RETURNING gives no order.
	slices.SortFunc(ds, func(a, b delivery) int { return cmp.Compare(a.id, b.id) })
	return ds, err
}

// send posts one notification; any answer but 2xx, and any network error, is a failure.
func (n *Notifier) send(ctx context.Context, d delivery) error {
	body, err := json.Marshal(d.body)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, n.cfg.Secret)
	mac.Write(body)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "evoucher-alarms")
	req.Header.Set(DeliveryHeader, strconv.FormatInt(d.id, 10))
	req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// release gives back claimed deliveries that were not tried to the end.
func (n *Notifier) release(ds []delivery) error {
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := n.v.db.Exec(ctx, `UPDATE alarm_deliveries SET attempts = attempts - 1, next_attempt_at = NULL WHERE id = ANY ($1)`, ids)
	return err
}

// record stores the outcome of an attempt: delivered, retried after a backoff, or given up.
func (n *Notifier) record(ctx context.Context, d delivery, sendErr error) error {
	now := n.cfg.Now().UTC()
	// The outcome must be kept even when ctx ends during the attempt, or the delivery would
	// wait out its lease and be sent again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	log := n.log.With("delivery", d.id, "alarm", d.body.ID, "kind", d.body.Kind, "subject", d.body.Subject, "attempt", d.attempts)
	if sendErr == nil {
		_, err := n.v.db.Exec(ctx, `UPDATE alarm_deliveries SET delivered_at = $2, last_error = NULL WHERE id = $1`, d.id, now)
		log.InfoContext(ctx, "alarm notification delivered")
		return err
	}
	msg := sendErr.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	if d.attempts >= n.cfg.MaxAttempts {
		log.ErrorContext(ctx, "alarm notification given up", "err", msg)
		_, err := n.v.db.Exec(ctx, `UPDATE alarm_deliveries SET gave_up_at = $2, next_attempt_at = NULL, last_error = $3 WHERE id = $1`, d.id, now, msg)
		return err
	}
	next := now.Add(n.backoff(d.attempts))
	log.WarnContext(ctx, "alarm notification failed, will retry", "err", msg, "retry_at", next)
	_, err := n.v.db.Exec(ctx, `UPDATE alarm_deliveries SET next_attempt_at = $2, last_error = $3 WHERE id = $1`, d.id, next, msg)
	return err
}

// backoff is the wait after failed attempt n (1-based): Backoff doubled each time, capped.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.Backoff
	for i := 1; i < attempt && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.cfg.MaxBackoff)
}

// prune removes deliveries delivered or given up longer than Keep ago.
func (n *Notifier) prune(ctx context.Context, now time.Time) error {
	_, err := n.v.db.Exec(ctx, `DELETE FROM alarm_deliveries
		WHERE (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL) AND coalesce(delivered_at, gave_up_at) < $1`, now.Add(-n.cfg.Keep))
	return err
}

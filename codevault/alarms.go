package codevault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// The alarm kinds (DESIGN.md §5). The checker raises and resolves terminal_low_stock,
// expiring_stock and silent_terminal; vault_low_stock follows the vault's stock as batches
// arrive and codes leave; security and report_gap are raised by refusals and resolved by hand.
const (
	AlarmSecurity         = "security"
	AlarmVaultLowStock    = "vault_low_stock"
	AlarmTerminalLowStock = "terminal_low_stock"
	AlarmExpiringStock    = "expiring_stock"
	AlarmSilentTerminal   = "silent_terminal"
	AlarmReportGap        = "report_gap"
	AlarmCreditLimit      = "credit_limit"
)

// AlarmKinds lists every alarm kind.
func AlarmKinds() []string {
	return []string{AlarmSecurity, AlarmVaultLowStock, AlarmTerminalLowStock, AlarmExpiringStock,
		AlarmSilentTerminal, AlarmReportGap, AlarmCreditLimit}
}

// The alarm states: open → acknowledged → resolved (open → resolved too).
const (
	AlarmOpen         = "open"
	AlarmAcknowledged = "acknowledged"
	AlarmResolved     = "resolved"
)

// Alarm is something a manager should look at. There is at most one unresolved alarm per kind
// and subject; a repeat counts one more occurrence of it.
type Alarm struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Subject     string     `json:"subject"`
	Message     string     `json:"message"`
	State       string     `json:"state"`
	Occurrences int        `json:"occurrences"`
	FirstAt     time.Time  `json:"first_at"`
	LastAt      time.Time  `json:"last_at"`
	ResolvedAt  *time.Time `json:"resolved_at"`
}

// AlarmFilter selects alarms: State is open, acknowledged, resolved, or "" or "all" for any;
// Kind is one of AlarmKinds or "" for any; Limit defaults to 100 and is at most 1000.
type AlarmFilter struct {
	State, Kind string
	Limit       int
}

// AlarmPolicy holds the thresholds of the conditions CheckAlarms evaluates. Zero fields take
// their defaults.
type AlarmPolicy struct {
	// CoverDays: a terminal whose reported stock lasts fewer days than this at its sales rate
	// of the last 7 days is low (default 2), as is one below its minimum level.
	CoverDays float64
	// ExpiringWithin: codes in the vault or at terminals expiring within it raise
	// expiring_stock for their product (default 30 days).
	ExpiringWithin time.Duration
	// SilentAfter: an active terminal not heard from for this long, or never since it was
	// added this long ago, is silent (default 24 hours).
	SilentAfter time.Duration
}

func (p AlarmPolicy) withDefaults() AlarmPolicy {
	if p.CoverDays <= 0 {
		p.CoverDays = 2
	}
	if p.ExpiringWithin <= 0 {
		p.ExpiringWithin = 30 * 24 * time.Hour
	}
	if p.SilentAfter <= 0 {
		p.SilentAfter = 24 * time.Hour
	}
	return p
}

const alarmColumns = `id, kind, subject, message, state, occurrences, first_at, last_at, resolved_at`

func scanAlarm(row pgx.CollectableRow) (Alarm, error) {
	var a Alarm
	err := row.Scan(&a.ID, &a.Kind, &a.Subject, &a.Message, &a.State, &a.Occurrences, &a.FirstAt, &a.LastAt, &a.ResolvedAt)
	a.FirstAt, a.LastAt = a.FirstAt.UTC(), a.LastAt.UTC()
	if a.ResolvedAt != nil {
		t := a.ResolvedAt.UTC()
		a.ResolvedAt = &t
	}
	return a, err
}

// Alarms returns the alarms f selects, the most recent first. It returns invalid
// ("bad_alarm_state", "bad_alarm_kind") for an unknown state or kind.
func (v *Vault) Alarms(ctx context.Context, f AlarmFilter) ([]Alarm, error) {
	switch f.State {
	case "all":
		f.State = ""
	case "", AlarmOpen, AlarmAcknowledged, AlarmResolved:
	default:
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_alarm_state", "unknown alarm state %q: use open, acknowledged, resolved or all", f.State)
	}
	if f.Kind != "" && !slices.Contains(AlarmKinds(), f.Kind) {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_alarm_kind", "unknown alarm kind %q: use one of %s", f.Kind, strings.Join(AlarmKinds(), ", "))
	}
	switch {
	case f.Limit <= 0:
		f.Limit = 100
	case f.Limit > 1000:
		f.Limit = 1000
	}
	rows, err := v.db.Query(ctx, `SELECT `+alarmColumns+` FROM alarms
		WHERE ($1 = '' OR state = $1) AND ($2 = '' OR kind = $2) ORDER BY last_at DESC, id DESC LIMIT $3`, f.State, f.Kind, f.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanAlarm)
}

// Acknowledge marks an open alarm as seen: it stays unresolved, and a repeat still counts. It
// returns the alarm, not found ("unknown_alarm"), or conflict ("alarm_acknowledged",
// "alarm_resolved") when the alarm is not open.
func (v *Vault) Acknowledge(ctx context.Context, id int64) (Alarm, error) {
	return v.moveAlarm(ctx, id, AlarmAcknowledged)
}

// Resolve closes an open or acknowledged alarm; the next occurrence of the same kind and
// subject opens a new one (for the conditions CheckAlarms watches: at its next run, if the
// condition still holds). It returns the alarm, not found ("unknown_alarm"), or conflict
// ("alarm_resolved") when it was resolved already.
func (v *Vault) Resolve(ctx context.Context, id int64) (Alarm, error) {
	return v.moveAlarm(ctx, id, AlarmResolved)
}

func (v *Vault) moveAlarm(ctx context.Context, id int64, to string) (Alarm, error) {
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return Alarm{}, err
	}
	defer tx.Rollback(ctx)
	rows, _ := tx.Query(ctx, `SELECT `+alarmColumns+` FROM alarms WHERE id = $1 FOR UPDATE`, id)
	a, err := pgx.CollectExactlyOneRow(rows, scanAlarm)
	if errors.Is(err, pgx.ErrNoRows) {
		return Alarm{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_alarm", "there is no alarm %d: list them with `evoucher alarms list --state all`", id)
	}
	if err != nil {
		return Alarm{}, err
	}
	switch {
	case a.State == AlarmResolved:
		return Alarm{}, evoucher.Errorf(evoucher.KindConflict, "alarm_resolved", "alarm %d (%s %s) was resolved on %s already",
			id, a.Kind, a.Subject, a.ResolvedAt.Format(time.RFC3339))
	case to == AlarmAcknowledged && a.State == AlarmAcknowledged:
		return Alarm{}, evoucher.Errorf(evoucher.KindConflict, "alarm_acknowledged", "alarm %d (%s %s) is acknowledged already; resolve it once it is dealt with",
			id, a.Kind, a.Subject)
	}
	now := v.now().UTC()
	var resolvedAt *time.Time
	if to == AlarmResolved {
		resolvedAt = &now
	}
	rows, _ = tx.Query(ctx, `UPDATE alarms SET state = $2, resolved_at = $3 WHERE id = $1 RETURNING `+alarmColumns, id, to, resolvedAt)
	if a, err = pgx.CollectExactlyOneRow(rows, scanAlarm); err != nil {
		return Alarm{}, err
	}
	return a, tx.Commit(ctx)
}

// alarmCheckLock serialises alarm checkers (two servers, or a server and `evoucher alarms
// check`), so each sees the other's alarms and the counts they report are true.
const alarmCheckLock = 7_412_000_004 // 001 migrations, 002 EnsureCA, 003 revocation

// firing is a condition that holds now: the subject it holds for and what to tell about it.
type firing struct{ subject, message string }

// CheckAlarms evaluates the conditions of the vault's alarm policy now: it opens an alarm for
// each condition that holds and has none unresolved (an alarm that stays open is not counted
// again: one occurrence is one episode), and resolves those whose condition has cleared. It
// returns how many it raised and resolved; everything is one transaction.
func (v *Vault) CheckAlarms(ctx context.Context) (raised, resolved int, err error) {
	now := v.now().UTC()
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, alarmCheckLock); err != nil {
		return 0, 0, err
	}
	for _, c := range []struct {
		kind string
		find func(context.Context, pgx.Tx, time.Time) ([]firing, error)
	}{
		{AlarmTerminalLowStock, v.lowTerminalStock},
		{AlarmExpiringStock, v.expiringStock},
		{AlarmSilentTerminal, v.silentTerminals},
	} {
		fs, err := c.find(ctx, tx, now)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", c.kind, err)
		}
		r, s, err := settleAlarms(ctx, tx, c.kind, fs, now)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", c.kind, err)
		}
		raised, resolved = raised+r, resolved+s
	}
	return raised, resolved, tx.Commit(ctx)
}

// settleAlarms makes the unresolved alarms of kind exactly those of fs: it opens the missing
// ones, rewords those whose message changed, and resolves the rest.
func settleAlarms(ctx context.Context, tx pgx.Tx, kind string, fs []firing, now time.Time) (raised, resolved int, err error) {
	subjects, messages := make([]string, 0, len(fs)), make([]string, 0, len(fs))
	for _, f := range fs {
		subjects, messages = append(subjects, f.subject), append(messages, f.message)
	}
	if _, err := tx.Exec(ctx, `UPDATE alarms a SET message = f.message FROM unnest($2::text[], $3::text[]) AS f (subject, message)
		WHERE a.kind = $1 AND a.subject = f.subject AND a.state <> 'resolved' AND a.message <> f.message`,
		kind, subjects, messages); err != nil {
		return 0, 0, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO alarms (kind, subject, message, first_at, last_at)
		SELECT $1, f.subject, f.message, $4, $4 FROM unnest($2::text[], $3::text[]) AS f (subject, message)
		ON CONFLICT (kind, subject) WHERE state <> 'resolved' DO NOTHING`, kind, subjects, messages, now)
	if err != nil {
		return 0, 0, err
	}
	raised = int(tag.RowsAffected())
	tag, err = tx.Exec(ctx, `UPDATE alarms SET state = 'resolved', resolved_at = $3
		WHERE kind = $1 AND state <> 'resolved' AND NOT (subject = ANY ($2::text[]))`, kind, subjects, now)
	if err != nil {
		return 0, 0, err
	}
	return raised, int(tag.RowsAffected()), nil
}

// salesWindow is how far back a terminal's sales rate is measured.
const salesWindow = 7 * 24 * time.Hour

// lowTerminalStock finds the products whose stock an active terminal last reported is below
// its minimum level, or lasts fewer than CoverDays at its sales rate of the last 7 days.
// Before a terminal's first report there is nothing to judge (silent_terminal covers it).
func (v *Vault) lowTerminalStock(ctx context.Context, tx pgx.Tx, now time.Time) ([]firing, error) {
	rows, err := tx.Query(ctx, `SELECT tp.terminal_id, tp.operator_id, tp.product, tp.min_level, tp.reported_stock,
			(SELECT count(*) FROM sales s JOIN codes c ON c.id = s.code_id
			 WHERE s.terminal_id = tp.terminal_id AND s.sold_at > $1 AND s.sold_at <= $2
			   AND c.operator_id = tp.operator_id AND c.product = tp.product)
		FROM terminal_products tp JOIN terminals t ON t.id = tp.terminal_id
		WHERE t.status = 'active' AND tp.reported_stock IS NOT NULL
		ORDER BY 1, 2, 3`, now.Add(-salesWindow), now)
	if err != nil {
		return nil, err
	}
	var out []firing
	var terminal, operator, product string
	var minLevel, stock int
	var sold int64
	_, err = pgx.ForEachRow(rows, []any{&terminal, &operator, &product, &minLevel, &stock, &sold}, func() error {
		subject := terminal + "/" + operator + "/" + product
		perDay := float64(sold) / salesWindow.Hours() * 24
		switch {
		case stock < minLevel:
			out = append(out, firing{subject, fmt.Sprintf("terminal %s has %d of %s/%s left, below its minimum level %d: ship to it or check its levels",
				terminal, stock, operator, product, minLevel)})
		case perDay > 0 && float64(stock)/perDay < v.alarms.CoverDays:
			out = append(out, firing{subject, fmt.Sprintf("terminal %s has %d of %s/%s left, %.1f days of cover at %d sales in 7 days (below %g days): ship to it or raise its levels",
				terminal, stock, operator, product, float64(stock)/perDay, sold, v.alarms.CoverDays)})
		}
		return nil
	})
	return out, err
}

// expiringStock finds the products with codes in the vault or at terminals (shipped or
// delivered, not yet sold) that expire within ExpiringWithin, including any past their date
// and not yet marked expired.
func (v *Vault) expiringStock(ctx context.Context, tx pgx.Tx, now time.Time) ([]firing, error) {
	by := now.Add(v.alarms.ExpiringWithin)
	rows, err := tx.Query(ctx, `SELECT operator_id, product, count(*), count(*) FILTER (WHERE state = 'in_vault'), min(expires_on)
		FROM codes WHERE state IN ('in_vault', 'shipped', 'delivered') AND expires_on <= $1::date
		GROUP BY operator_id, product ORDER BY 1, 2`, by.Format(time.DateOnly))
	if err != nil {
		return nil, err
	}
	var out []firing
	var operator, product string
	var n, inVault int64
	var first time.Time
	_, err = pgx.ForEachRow(rows, []any{&operator, &product, &n, &inVault, &first}, func() error {
		out = append(out, firing{operator + "/" + product, fmt.Sprintf("%d codes of %s/%s expire by %s, the first on %s: %d in the vault, %d at terminals; ship or sell them first",
			n, operator, product, by.Format(time.DateOnly), first.Format(time.DateOnly), inVault, n-inVault)})
		return nil
	})
	return out, err
}

// silentTerminals finds the active terminals not heard from for SilentAfter, counting a
// terminal never heard from since it was added.
func (v *Vault) silentTerminals(ctx context.Context, tx pgx.Tx, now time.Time) ([]firing, error) {
	rows, err := tx.Query(ctx, `SELECT id, last_seen_at, created_at FROM terminals
		WHERE status = 'active' AND coalesce(last_seen_at, created_at) < $1 ORDER BY id`, now.Add(-v.alarms.SilentAfter))
	if err != nil {
		return nil, err
	}
	var out []firing
	var id string
	var seen *time.Time
	var created time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &seen, &created}, func() error {
		msg := fmt.Sprintf("terminal %s has never been heard from since it was added on %s: check that it is installed and online",
			id, created.UTC().Format(time.RFC3339))
		if seen != nil {
			msg = fmt.Sprintf("terminal %s has not been heard from since %s: check its connection", id, seen.UTC().Format(time.RFC3339))
		}
		out = append(out, firing{id, msg})
		return nil
	})
	return out, err
}

package codevault

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TerminalAlarm is an unresolved alarm of the center that concerns one terminal, as the
// terminal's sync answer carries it to the clerk's screen. It never holds a code: alarm
// messages name terminals, products, counts and dates only.
type TerminalAlarm struct {
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	State   string    `json:"state"` // open or acknowledged
	Since   time.Time `json:"since"` // when it was raised
}

// maxTerminalAlarms bounds the list a sync carries: the clerk's screen shows a few lines.
const maxTerminalAlarms = 20

// TerminalAlarms returns the open and acknowledged alarms that concern terminal, the most
// recent first: its silent_terminal and report_gap alarms (subject: the terminal), its
// terminal_low_stock alarms (subject: terminal/operator/product), its retailer's credit_limit
// alarm, and the expiring_stock alarms of products of which codes shipped to it expire within
// the policy's ExpiringWithin, reworded with this terminal's own count. Security alarms stay at
// the center. A terminal not recorded has none; the error is the database's.
func (v *Vault) TerminalAlarms(ctx context.Context, terminal string) ([]TerminalAlarm, error) {
	by := v.now().UTC().Add(v.alarms.ExpiringWithin)
	rows, err := v.db.Query(ctx, `
		SELECT a.kind, a.message, a.state, a.first_at, a.last_at, a.id
		FROM alarms a JOIN terminals t ON t.id = $1
		WHERE a.state <> 'resolved' AND (
			(a.kind IN ('silent_terminal', 'report_gap') AND a.subject = t.id)
			OR (a.kind = 'terminal_low_stock' AND split_part(a.subject, '/', 1) = t.id)
			OR (a.kind = 'credit_limit' AND a.subject = t.retailer_id))
		UNION ALL
		SELECT a.kind, format('%s codes of %s on this terminal expire by %s, the first on %s: sell them first',
				x.n, a.subject, $2::date, x.first), a.state, a.first_at, a.last_at, a.id
		FROM alarms a CROSS JOIN LATERAL (
			SELECT count(*) AS n, min(c.expires_on) AS first
			FROM shipments s JOIN codes c ON c.shipment_id = s.id
			WHERE s.terminal_id = $1 AND c.state IN ('shipped', 'delivered') AND c.expires_on <= $2::date
			  AND c.operator_id || '/' || c.product = a.subject) x
		WHERE a.kind = 'expiring_stock' AND a.state <> 'resolved' AND x.n > 0
		ORDER BY 5 DESC, 6 DESC LIMIT $3`, terminal, by.Format(time.DateOnly), maxTerminalAlarms)
	if err != nil {
		return nil, fmt.Errorf("alarms of terminal %s: %w", terminal, err)
	}
	out := []TerminalAlarm{} // an empty list, not null: the terminal tells "none" from "not said"
	var a TerminalAlarm
	var last time.Time
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&a.Kind, &a.Message, &a.State, &a.Since, &last, &id}, func() error {
		a.Since = a.Since.UTC()
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alarms of terminal %s: %w", terminal, err)
	}
	return out, nil
}

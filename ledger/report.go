package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

// resolveCreditAlarm resolves a retailer's open credit_limit alarm (the vault raises it when it
// refuses an order for credit) when the retailer's account can pay for stock again: what it may
// still order (balance − unsold consigned stock + limit) is above zero. It runs in the
// transaction that changed the account or the terms, after the change, and reports whether it
// resolved one.
func resolveCreditAlarm(ctx context.Context, tx pgx.Tx, retailer string, now time.Time) (bool, error) {
	var available int64
	err := tx.QueryRow(ctx, `SELECT coalesce(a.balance, 0) + t.credit_limit - coalesce((SELECT sum(st.face_value - st.commission)
		FROM shipment_terms st JOIN codes c ON c.shipment_id = st.shipment_id
		WHERE st.retailer_id = t.retailer_id AND st.settlement = 'on_sale' AND c.state IN ('shipped', 'delivered', 'quarantined')), 0)::bigint
		FROM retailer_terms t LEFT JOIN ledger_accounts a ON a.account = 'retailer:' || t.retailer_id AND a.currency = t.currency
		WHERE t.retailer_id = $1`, retailer).Scan(&available)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && available <= 0) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `UPDATE alarms SET state = 'resolved', resolved_at = $2
		WHERE kind = 'credit_limit' AND subject = $1 AND state <> 'resolved'`, retailer, now)
	return err == nil && tag.RowsAffected() > 0, err
}

// SalesTotal is the money of the codes sold in a period in one currency.
type SalesTotal struct {
	Currency  string `json:"currency"`
	Codes     int64  `json:"codes"`
	FaceValue int64  `json:"face_value"` // what end customers paid, minor units
	// Commission is what the retailers earned on them (codes shipped to retailers with money
	// terms; zero for the others).
	Commission int64 `json:"commission"`
}

// SalesTotals returns the codes sold in [from, to) per currency, of one retailer's terminals
// (retailer set), of one operator's products (operator set), or of the whole network.
func (l *Ledger) SalesTotals(ctx context.Context, from, to time.Time, retailer, operator string) ([]SalesTotal, error) {
	rows, err := l.db.Query(ctx, `SELECT p.currency, count(*), sum(p.face_value)::bigint, coalesce(sum(st.commission), 0)::bigint
		FROM sales s JOIN codes c ON c.id = s.code_id JOIN products p ON p.operator_id = c.operator_id AND p.code = c.product
		JOIN terminals t ON t.id = s.terminal_id LEFT JOIN shipment_terms st ON st.shipment_id = c.shipment_id
		WHERE s.sold_at >= $1 AND s.sold_at < $2 AND ($3 = '' OR t.retailer_id = $3) AND ($4 = '' OR c.operator_id = $4)
		GROUP BY p.currency ORDER BY p.currency`, from.UTC(), to.UTC(), retailer, operator)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (SalesTotal, error) {
		var x SalesTotal
		err := r.Scan(&x.Currency, &x.Codes, &x.FaceValue, &x.Commission)
		return x, err
	})
}

// Reconciliation is a statement's totals set against the ledger's entries on the party's
// account, per currency.
type Reconciliation struct {
	Currency string `json:"currency"`
	Account  string `json:"account"`
	// From the statement:
	Opening int64 `json:"opening"`
	Net     int64 `json:"net"`
	Closing int64 `json:"closing"`
	// From the ledger: the account's entries before the period and within it.
	LedgerOpening int64 `json:"ledger_opening"`
	LedgerNet     int64 `json:"ledger_net"`
	// LinesNet is the sum of the statement's lines in the currency.
	LinesNet int64 `json:"lines_net"`
}

// OK reports whether statement and ledger agree exactly.
func (r Reconciliation) OK() bool {
	return r.Opening == r.LedgerOpening && r.Net == r.LedgerNet && r.LinesNet == r.Net && r.Closing == r.Opening+r.Net
}

// Reconcile sets a statement's totals against the ledger as it stands: for each currency, the
// opening balance against the party account's entries before the period, the movements and
// the sum of the lines against its entries within the period, and the closing balance against
// both. It returns one Reconciliation per currency of the statement, and conflict
// ("statement_mismatch") naming the first currency that does not agree.
func (l *Ledger) Reconcile(ctx context.Context, s message.Statement) ([]Reconciliation, error) {
	account := RetailerAccount(s.Party)
	if s.PartyKind == message.PartyOperator {
		account = OperatorAccount(s.Party)
	}
	lines := map[string]int64{}
	for _, x := range s.Lines {
		lines[x.Currency] += x.Net
	}
	var out []Reconciliation
	var bad error
	for _, t := range s.Totals {
		r := Reconciliation{Currency: t.Currency, Account: account, Opening: t.Opening, Net: t.Net, Closing: t.Closing, LinesNet: lines[t.Currency]}
		err := l.db.QueryRow(ctx, `SELECT coalesce(sum(e.amount) FILTER (WHERE t.created_at < $3), 0)::bigint,
			coalesce(sum(e.amount) FILTER (WHERE t.created_at >= $3 AND t.created_at < $4), 0)::bigint
			FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.tx_id WHERE e.account = $1 AND e.currency = $2`,
			account, t.Currency, s.From, s.To).Scan(&r.LedgerOpening, &r.LedgerNet)
		if err != nil {
			return nil, err
		}
		if !r.OK() && bad == nil {
			bad = evoucher.Errorf(evoucher.KindConflict, "statement_mismatch",
				"statement %s does not reconcile in %s: opening %s against %s in the ledger, movements %s (lines %s) against %s, closing %s",
				s.StatementID, t.Currency, FormatMinor(r.Opening, t.Currency), FormatMinor(r.LedgerOpening, t.Currency),
				FormatMinor(r.Net, t.Currency), FormatMinor(r.LinesNet, t.Currency), FormatMinor(r.LedgerNet, t.Currency), FormatMinor(r.Closing, t.Currency))
		}
		out = append(out, r)
	}
	return out, bad
}

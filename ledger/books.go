package ledger

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// Top-up methods.
const (
	MethodBank = "bank"
	MethodCash = "cash"
)

// TopUp is money a retailer paid the platform, as a manager records it.
type TopUp struct {
	ID        int64     `json:"id"`
	Retailer  string    `json:"retailer"`
	Amount    int64     `json:"amount"` // minor units of the retailer's currency, > 0
	Currency  string    `json:"currency"`
	Method    string    `json:"method"`    // MethodBank or MethodCash
	Reference string    `json:"reference"` // the bank transfer's or the cash receipt's; unique
	By        string    `json:"by"`        // who recorded it
	At        time.Time `json:"at"`
	// AlarmResolved says the top-up resolved the retailer's open credit_limit alarm.
	AlarmResolved bool `json:"alarm_resolved,omitempty"`
}

// RecordTopUp credits a retailer's account with money it paid (Currency is the account's; Amount,
// Method and Reference are required) and debits platform:bank or platform:cash, in one
// transaction, and returns the top-up as recorded. It returns invalid for a bad amount, method
// or reference, not found ("no_terms") for a retailer without money terms, and conflict
// ("duplicate_reference") when the reference was recorded before: the same payment is never
// counted twice. When the top-up lets the retailer order again, its open credit_limit alarm is
// resolved in the same transaction.
func (l *Ledger) RecordTopUp(ctx context.Context, t TopUp) (TopUp, error) {
	t.Reference = strings.TrimSpace(t.Reference)
	switch {
	case t.Amount <= 0:
		return TopUp{}, invalid("bad_amount", "a top-up is a positive amount")
	case t.Method != MethodBank && t.Method != MethodCash:
		return TopUp{}, invalid("bad_method", "top-up method %q is neither bank nor cash", t.Method)
	case t.Reference == "" || len(t.Reference) > 128:
		return TopUp{}, invalid("bad_reference", "a top-up needs the reference of the bank transfer or cash receipt (at most 128 characters), so it cannot be entered twice")
	}
	tx, err := l.db.Begin(ctx)
	if err != nil {
		return TopUp{}, err
	}
	defer tx.Rollback(ctx)
	tm, ok, err := terms(ctx, tx, t.Retailer, true)
	if err != nil {
		return TopUp{}, err
	}
	if !ok {
		return TopUp{}, evoucher.Errorf(evoucher.KindNotFound, "no_terms", "retailer %s has no money account: set one first with `evoucher money account set %s --mode prepaid --currency EUR`", t.Retailer, t.Retailer)
	}
	if t.Currency != "" && t.Currency != tm.Currency {
		return TopUp{}, invalid("currency_mismatch", "retailer %s's account is in %s, not %s", t.Retailer, tm.Currency, t.Currency)
	}
	t.Currency = tm.Currency
	cash := AccountBank
	if t.Method == MethodCash {
		cash = AccountCash
	}
	if _, err := lockAccounts(ctx, tx, t.Currency, t.Retailer, cash); err != nil {
		return TopUp{}, err
	}
	t.At = l.now().UTC()
	t.ID, err = post(ctx, tx, posting{kind: "topup", ref: t.Reference, retailer: t.Retailer, currency: t.Currency, amount: t.Amount,
		method: t.Method, by: t.By, at: t.At, legs: []leg{{RetailerAccount(t.Retailer), t.Amount}, {cash, -t.Amount}}})
	if isUnique(err) {
		tx.Rollback(ctx)
		var prev TopUp
		if err := l.db.QueryRow(ctx, `SELECT retailer_id, amount, currency, created_at FROM ledger_transactions WHERE kind = 'topup' AND ref = $1`,
			t.Reference).Scan(&prev.Retailer, &prev.Amount, &prev.Currency, &prev.At); err != nil {
			return TopUp{}, evoucher.Errorf(evoucher.KindConflict, "duplicate_reference", "a top-up with reference %q was recorded already: it is not recorded twice", t.Reference)
		}
		return TopUp{}, evoucher.Errorf(evoucher.KindConflict, "duplicate_reference",
			"a top-up with reference %q was recorded already on %s (%s for %s): it is not recorded twice; check the reference",
			t.Reference, prev.At.Format(time.RFC3339), FormatAmount(prev.Amount, prev.Currency), prev.Retailer)
	}
	if err != nil {
		return TopUp{}, err
	}
	if t.AlarmResolved, err = resolveCreditAlarm(ctx, tx, t.Retailer, t.At); err != nil {
		return TopUp{}, err
	}
	return t, tx.Commit(ctx)
}

// TopUps returns a retailer's top-ups (every retailer's when retailer is ""), newest first, at
// most limit (default 100).
func (l *Ledger) TopUps(ctx context.Context, retailer string, limit int) ([]TopUp, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := l.db.Query(ctx, `SELECT id, retailer_id, amount, currency, method, ref, created_by, created_at FROM ledger_transactions
		WHERE kind = 'topup' AND ($1 = '' OR retailer_id = $1) ORDER BY id DESC LIMIT $2`, retailer, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TopUp, error) {
		var t TopUp
		err := r.Scan(&t.ID, &t.Retailer, &t.Amount, &t.Currency, &t.Method, &t.Reference, &t.By, &t.At)
		return t, err
	})
}

// Balance is an account's balance in one currency, with, for a retailer, its terms.
type Balance struct {
	Account  string `json:"account"`
	Currency string `json:"currency"`
	Balance  int64  `json:"balance"` // credit-positive: what the platform owes the party
	// Retailers with money terms only:
	Mode        string `json:"mode,omitempty"`
	Settlement  string `json:"settlement,omitempty"`
	CreditLimit int64  `json:"credit_limit"`
	Consigned   int64  `json:"consigned"` // unsold pay-on-sale stock, at its price to the retailer
	Available   int64  `json:"available"` // what it may still order: balance − consigned + limit
}

// Balances returns every account's balance, retailers with their terms and available credit,
// ordered by account.
func (l *Ledger) Balances(ctx context.Context) ([]Balance, error) {
	rows, err := l.db.Query(ctx, `SELECT a.account, a.currency, a.balance, coalesce(t.mode, ''), coalesce(t.settlement, ''),
		coalesce(t.credit_limit, 0), coalesce((SELECT sum(st.face_value - st.commission) FROM shipment_terms st
			JOIN codes c ON c.shipment_id = st.shipment_id WHERE st.retailer_id = t.retailer_id AND st.settlement = 'on_sale'
			AND c.state IN ('shipped', 'delivered', 'quarantined')), 0)::bigint
		FROM ledger_accounts a LEFT JOIN retailer_terms t ON a.account = 'retailer:' || t.retailer_id AND a.currency = t.currency
		ORDER BY a.account, a.currency`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := r.Scan(&b.Account, &b.Currency, &b.Balance, &b.Mode, &b.Settlement, &b.CreditLimit, &b.Consigned)
		if b.Mode != "" {
			b.Available = b.Balance - b.Consigned + b.CreditLimit
		}
		return b, err
	})
}

// Entry is one line of an account: a leg of a ledger transaction.
type Entry struct {
	ID        int64     `json:"id"`
	TxID      int64     `json:"tx_id"`
	Kind      string    `json:"kind"` // shipment, sale, return, topup
	Ref       string    `json:"ref"`  // shipment id or top-up reference
	Retailer  string    `json:"retailer"`
	Operator  string    `json:"operator,omitempty"`
	Product   string    `json:"product,omitempty"`
	Codes     int64     `json:"codes"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	At        time.Time `json:"at"`
	Balance   int64     `json:"balance"` // the account's balance after this entry
	CreatedBy string    `json:"created_by,omitempty"`
}

// AccountPage is a page of an account's entries, newest first.
type AccountPage struct {
	Account  string  `json:"account"`
	Currency string  `json:"currency"`
	Balance  int64   `json:"balance"`
	Entries  []Entry `json:"entries"`
	// Next is the Before of the next (older) page; 0 when this is the last.
	Next int64 `json:"next"`
}

// Account returns an account's balance in a currency and its entries, newest first: at most
// limit (default 50, at most 1000) entries with an id below before (0: from the newest). It
// returns not found for an account that has never moved.
func (l *Ledger) Account(ctx context.Context, account, currency string, before int64, limit int) (AccountPage, error) {
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	p := AccountPage{Account: account, Currency: currency}
	// One snapshot for the balance and the entries, so a posting committed between the reads
	// cannot make the balances after each entry wrong.
	tx, err := l.db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return p, err
	}
	defer tx.Rollback(ctx)
	err = tx.QueryRow(ctx, `SELECT balance FROM ledger_accounts WHERE account = $1 AND currency = $2`, account, currency).Scan(&p.Balance)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, evoucher.Errorf(evoucher.KindNotFound, "unknown_account", "no account %s in %s", account, currency)
	}
	if err != nil {
		return p, err
	}
	// The balance after each entry: the balance now, less every newer entry.
	var newer int64
	if before > 0 {
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0)::bigint FROM ledger_entries WHERE account = $1 AND currency = $2 AND id >= $3`,
			account, currency, before).Scan(&newer); err != nil {
			return p, err
		}
	}
	rows, err := tx.Query(ctx, `SELECT e.id, e.tx_id, t.kind, t.ref, t.retailer_id, coalesce(t.operator_id, ''), coalesce(t.product, ''),
		t.codes, e.amount, e.currency, t.created_at, t.created_by,
		$3::bigint - coalesce(sum(e.amount) OVER (ORDER BY e.id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint
		FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.tx_id
		WHERE e.account = $1 AND e.currency = $2 AND ($4::bigint = 0 OR e.id < $4) ORDER BY e.id DESC LIMIT $5`,
		account, currency, p.Balance-newer, before, limit+1)
	if err != nil {
		return p, err
	}
	p.Entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.ID, &e.TxID, &e.Kind, &e.Ref, &e.Retailer, &e.Operator, &e.Product, &e.Codes, &e.Amount, &e.Currency, &e.At, &e.CreatedBy, &e.Balance)
		return e, err
	})
	if err != nil {
		return p, err
	}
	if len(p.Entries) > limit {
		p.Entries = p.Entries[:limit]
		p.Next = p.Entries[limit-1].ID
	}
	return p, nil
}

// Check verifies the books as the database holds them: every account's balance equals the sum
// of its entries, and every currency's entries sum to zero. It returns an internal error naming
// the first discrepancy (which the database's triggers make impossible).
func (l *Ledger) Check(ctx context.Context) error {
	var account, currency string
	var balance, sum int64
	err := l.db.QueryRow(ctx, `SELECT a.account, a.currency, a.balance, coalesce(sum(e.amount), 0)::bigint FROM ledger_accounts a
		LEFT JOIN ledger_entries e ON e.account = a.account AND e.currency = a.currency
		GROUP BY a.account, a.currency, a.balance HAVING a.balance <> coalesce(sum(e.amount), 0) LIMIT 1`).Scan(&account, &currency, &balance, &sum)
	if err == nil {
		return evoucher.Errorf(evoucher.KindInternal, "books_broken", "account %s in %s has balance %d but its entries sum to %d", account, currency, balance, sum)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	err = l.db.QueryRow(ctx, `SELECT currency, sum(amount)::bigint FROM ledger_entries GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1`).Scan(&currency, &sum)
	if err == nil {
		return evoucher.Errorf(evoucher.KindInternal, "books_broken", "the %s entries sum to %d, not zero", currency, sum)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	return nil
}

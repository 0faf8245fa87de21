package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// Account modes.
const (
	ModePrepaid = "prepaid" // the retailer pays before it takes stock: a limit of zero
	ModeCredit  = "credit"  // the retailer may owe up to its credit limit
)

// Settlement modes.
const (
	SettleOnShipment = "on_shipment" // charged when a shipment is sent
	SettleOnSale     = "on_sale"     // consignment: charged when a sale is reported or authorised
)

// Terms are a retailer's money terms.
type Terms struct {
	Retailer    string    `json:"retailer"`
	Currency    string    `json:"currency"`
	Mode        string    `json:"mode"`         // ModePrepaid or ModeCredit
	CreditLimit int64     `json:"credit_limit"` // minor units; zero when prepaid
	Settlement  string    `json:"settlement"`   // SettleOnShipment or SettleOnSale
	UpdatedAt   time.Time `json:"updated_at"`
}

// SetTerms records or changes a retailer's money terms in one transaction. It returns invalid
// for a bad mode, settlement, currency or limit (a prepaid account has no limit), not found
// ("unknown_retailer") for an unknown retailer, and conflict ("currency_in_use") when the
// retailer's account has a balance, or the retailer unsold stock, in another currency. Terms that let the retailer order
// again (a raised limit) resolve its open credit_limit alarm.
func (l *Ledger) SetTerms(ctx context.Context, t Terms) error {
	switch {
	case t.Mode != ModePrepaid && t.Mode != ModeCredit:
		return invalid("bad_mode", "account mode %q is neither prepaid nor credit", t.Mode)
	case t.Settlement != SettleOnShipment && t.Settlement != SettleOnSale:
		return invalid("bad_settlement", "settlement %q is neither on_shipment nor on_sale", t.Settlement)
	case !currencyPattern.MatchString(t.Currency):
		return invalid("bad_currency", "currency %q is not an ISO 4217 code like EUR", t.Currency)
	case t.CreditLimit < 0:
		return invalid("bad_limit", "a credit limit cannot be negative")
	case t.Mode == ModePrepaid && t.CreditLimit != 0:
		return invalid("bad_limit", "a prepaid account has no credit limit: use --mode credit to give one")
	}
	tx, err := l.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM retailers WHERE id = $1)`, t.Retailer).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return evoucher.Errorf(evoucher.KindNotFound, "unknown_retailer", "no retailer %s: create it first with `evoucher retailer create`", t.Retailer)
	}
	var other string
	err = tx.QueryRow(ctx, `SELECT currency FROM ledger_accounts WHERE account = $1 AND currency <> $2 AND balance <> 0 LIMIT 1`,
		RetailerAccount(t.Retailer), t.Currency).Scan(&other)
	if err == nil {
		return evoucher.Errorf(evoucher.KindConflict, "currency_in_use", "retailer %s has a balance in %s: settle it before moving the account to %s", t.Retailer, other, t.Currency)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO retailer_terms (retailer_id, currency, mode, credit_limit, settlement, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (retailer_id) DO UPDATE SET currency = EXCLUDED.currency, mode = EXCLUDED.mode,
		credit_limit = EXCLUDED.credit_limit, settlement = EXCLUDED.settlement, updated_at = EXCLUDED.updated_at`,
		t.Retailer, t.Currency, t.Mode, t.CreditLimit, t.Settlement, l.now().UTC()); err != nil {
		return err
	}
	// Checked after the terms row is locked by the upsert, so a shipment being charged on the
	// old terms (which holds the row FOR SHARE) has committed and is counted. Unsold stock
	// priced in another currency would still move the account in that currency
	// (a consigned code charged when sold, a prepaid one credited back when returned), and the
	// credit check adds consigned stock up without regard to currency: the account keeps its
	// currency until that stock is sold or returned.
	err = tx.QueryRow(ctx, `SELECT st.currency FROM shipment_terms st JOIN codes c ON c.shipment_id = st.shipment_id
		WHERE st.retailer_id = $1 AND st.currency <> $2
		  AND (c.state IN ('shipped', 'delivered') OR (st.settlement = 'on_sale' AND c.state = 'quarantined')) LIMIT 1`,
		t.Retailer, t.Currency).Scan(&other)
	if err == nil {
		return evoucher.Errorf(evoucher.KindConflict, "currency_in_use", "retailer %s holds unsold stock priced in %s: sell or return it before moving the account to %s", t.Retailer, other, t.Currency)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	// The account exists from now on, so balances list the retailer before its first movement.
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_accounts (account, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		RetailerAccount(t.Retailer), t.Currency); err != nil {
		return err
	}
	if _, err := resolveCreditAlarm(ctx, tx, t.Retailer, l.now().UTC()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Terms returns a retailer's money terms. It returns not found ("no_terms") when it has none.
func (l *Ledger) Terms(ctx context.Context, retailer string) (Terms, error) {
	t, ok, err := terms(ctx, l.db, retailer, false)
	if err == nil && !ok {
		err = evoucher.Errorf(evoucher.KindNotFound, "no_terms", "retailer %s has no money account: set one with `evoucher money account set %s --mode prepaid --currency EUR`", retailer, retailer)
	}
	return t, err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func terms(ctx context.Context, q querier, retailer string, share bool) (Terms, bool, error) {
	sql := `SELECT retailer_id, currency, mode, credit_limit, settlement, updated_at FROM retailer_terms WHERE retailer_id = $1`
	if share {
		sql += ` FOR SHARE`
	}
	var t Terms
	err := q.QueryRow(ctx, sql, retailer).Scan(&t.Retailer, &t.Currency, &t.Mode, &t.CreditLimit, &t.Settlement, &t.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Terms{}, false, nil
	}
	return t, err == nil, err
}

// Any is the "every operator" or "every product" of a commission or margin rate.
const Any = "*"

// SetCommission sets the commission a retailer earns on an operator's product, in basis points
// of the face value (0–10000). Operator or product Any sets the default for every operator or
// every product of the operator (a rate for a product wins over its operator's, which wins over
// the retailer's default). It returns invalid for a bad rate or pair and not found for an
// unknown retailer, operator or product.
func (l *Ledger) SetCommission(ctx context.Context, retailer, operator, product string, bps int) error {
	op, prod, err := l.rateKey(ctx, operator, product)
	if err != nil {
		return err
	}
	if op == "" && prod != "" {
		return invalid("bad_rate", "a product's commission names its operator")
	}
	if bps < 0 || bps > 10000 {
		return invalid("bad_rate", "a commission of %d basis points is not between 0 and 10000", bps)
	}
	_, err = l.db.Exec(ctx, `INSERT INTO retailer_commissions (retailer_id, operator_id, product, bps, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (retailer_id, operator_id, product) DO UPDATE SET bps = EXCLUDED.bps, updated_at = EXCLUDED.updated_at`,
		retailer, op, prod, bps, l.now().UTC())
	if isForeignKey(err) {
		return evoucher.Errorf(evoucher.KindNotFound, "unknown_retailer", "no retailer %s", retailer)
	}
	return err
}

// SetMargin sets the platform's margin on an operator's product (product Any: every product of
// the operator without its own rate), in basis points of the face value: the operator is owed
// the face value less the margin. It returns invalid for a bad rate and not found for an
// unknown operator or product.
func (l *Ledger) SetMargin(ctx context.Context, operator, product string, bps int) error {
	if operator == Any {
		return invalid("bad_rate", "a margin names its operator")
	}
	op, prod, err := l.rateKey(ctx, operator, product)
	if err != nil {
		return err
	}
	if bps < 0 || bps > 10000 {
		return invalid("bad_rate", "a margin of %d basis points is not between 0 and 10000", bps)
	}
	_, err = l.db.Exec(ctx, `INSERT INTO operator_margins (operator_id, product, bps, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (operator_id, product) DO UPDATE SET bps = EXCLUDED.bps, updated_at = EXCLUDED.updated_at`,
		op, prod, bps, l.now().UTC())
	return err
}

// rateKey checks an operator and product (either may be Any) and returns them as stored.
func (l *Ledger) rateKey(ctx context.Context, operator, product string) (string, string, error) {
	if operator == Any {
		operator = ""
	}
	if product == Any {
		product = ""
	}
	if operator == "" {
		return "", product, nil
	}
	var n int
	err := l.db.QueryRow(ctx, `SELECT count(*) FROM operators o LEFT JOIN products p ON p.operator_id = o.id AND p.code = $2
		WHERE o.id = $1 AND ($2 = '' OR p.code IS NOT NULL)`, operator, product).Scan(&n)
	if err != nil {
		return "", "", err
	}
	if n == 0 {
		return "", "", evoucher.Errorf(evoucher.KindNotFound, "unknown_product", "no operator %s or no product %s of it", operator, product)
	}
	return operator, product, nil
}

// Rate is a commission or margin rate as set.
type Rate struct {
	Retailer string `json:"retailer,omitempty"` // commissions only
	Operator string `json:"operator"`           // Any: every operator
	Product  string `json:"product"`            // Any: every product
	BPS      int    `json:"bps"`
}

// Rates returns every commission (retailer set) and margin (retailer empty) rate.
func (l *Ledger) Rates(ctx context.Context) ([]Rate, error) {
	rows, err := l.db.Query(ctx, `SELECT retailer_id, operator_id, product, bps FROM retailer_commissions
		UNION ALL SELECT '', operator_id, product, bps FROM operator_margins ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Rate, error) {
		var x Rate
		err := r.Scan(&x.Retailer, &x.Operator, &x.Product, &x.BPS)
		if x.Operator == "" {
			x.Operator = Any
		}
		if x.Product == "" {
			x.Product = Any
		}
		return x, err
	})
}

// unitTerms are the per-code amounts of a product for a retailer, as rates say now.
func unitTerms(ctx context.Context, tx pgx.Tx, retailer, operator, product string, face int64) (commission, margin int64, err error) {
	var cbps, mbps int64
	err = tx.QueryRow(ctx, `SELECT
		coalesce((SELECT bps FROM retailer_commissions WHERE retailer_id = $1 AND (operator_id, product) IN (($2, $3), ($2, ''), ('', ''))
			ORDER BY operator_id = '', product = '' LIMIT 1), 0),
		coalesce((SELECT bps FROM operator_margins WHERE operator_id = $2 AND product IN ($3, '') ORDER BY product = '' LIMIT 1), 0)`,
		retailer, operator, product).Scan(&cbps, &mbps)
	return face * cbps / 10000, face * mbps / 10000, err
}

func isForeignKey(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "23503"
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// ChargeShipment prices a shipment just recorded in tx (the vault's transaction, whose
// shipments row holds its final count) for the terminal's retailer: it fixes the shipment's
// price terms, checks the retailer's credit under its account's row lock, and, when the retailer
// pays on shipment, posts the charge. A retailer without money terms is not charged. It returns
// conflict "credit_limit" when the shipment would take the retailer beyond its credit (the
// caller must roll back: nothing is then stored), invalid "currency_mismatch" when the product
// is not priced in the retailer's currency.
func (l *Ledger) ChargeShipment(ctx context.Context, tx pgx.Tx, shipmentID string) error {
	var retailer, operator, product, currency string
	var count, face int64
	err := tx.QueryRow(ctx, `SELECT t.retailer_id, s.operator_id, s.product, s.count, p.face_value, p.currency
		FROM shipments s JOIN terminals t ON t.id = s.terminal_id JOIN products p ON p.operator_id = s.operator_id AND p.code = s.product
		WHERE s.id = $1`, shipmentID).Scan(&retailer, &operator, &product, &count, &face, &currency)
	if err != nil {
		return fmt.Errorf("ledger: shipment %s: %w", shipmentID, err)
	}
	t, ok, err := terms(ctx, tx, retailer, true)
	if err != nil || !ok {
		return err
	}
	if t.Currency != currency {
		return invalid("currency_mismatch", "retailer %s settles in %s but %s of %s is priced in %s: it cannot take this product", retailer, t.Currency, product, operator, currency)
	}
	commission, margin, err := unitTerms(ctx, tx, retailer, operator, product, face)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO shipment_terms (shipment_id, retailer_id, settlement, currency, face_value, commission, margin)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, shipmentID, retailer, t.Settlement, currency, face, commission, margin); err != nil {
		return err
	}
	balance, err := lockAccounts(ctx, tx, currency, retailer, OperatorAccount(operator), AccountMargin)
	if err != nil {
		return err
	}
	// Consigned stock still at the retailer's terminals will be charged when sold: it uses
	// credit already. Read after the lock, so it includes every shipment committed before.
	var consigned int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(st.face_value - st.commission), 0)::bigint FROM shipment_terms st
		JOIN codes c ON c.shipment_id = st.shipment_id
		WHERE st.retailer_id = $1 AND st.settlement = 'on_sale' AND st.shipment_id <> $2 AND c.state IN ('shipped', 'delivered', 'quarantined')`,
		retailer, shipmentID).Scan(&consigned); err != nil {
		return err
	}
	price := count * (face - commission)
	available := balance - consigned + t.CreditLimit
	if price > available {
		what := "prepaid funds"
		if t.Mode == ModeCredit {
			what = "credit"
		}
		return evoucher.Errorf(evoucher.KindConflict, "credit_limit",
			"retailer %s cannot take %d × %s of %s for %s: only %s of %s is left (balance %s, consigned stock unsold %s, credit limit %s); record a top-up with `evoucher money topup %s AMOUNT --method bank --reference REF` or raise its credit limit, then order again",
			retailer, count, product, operator, FormatAmount(price, currency), FormatAmount(max(available, 0), currency), what,
			FormatAmount(balance, currency), FormatAmount(consigned, currency), FormatAmount(t.CreditLimit, currency), retailer)
	}
	if t.Settlement != SettleOnShipment {
		return nil
	}
	_, err = post(ctx, tx, posting{kind: "shipment", ref: shipmentID, retailer: retailer, operator: operator, product: product,
		currency: currency, codes: count, face: count * face, commission: count * commission, margin: count * margin, at: l.now().UTC(),
		legs: stockLegs(retailer, operator, count*face, count*commission, count*margin)})
	if isUnique(err) {
		return evoucher.Errorf(evoucher.KindConflict, "charged_twice", "shipment %s was charged already", shipmentID)
	}
	return err
}

// ChargeSales posts the sales of codes just marked sold in tx (the vault's transaction): each
// code of a pay-on-sale shipment is charged on the terms fixed when it was shipped, one ledger
// transaction per shipment. Codes of pay-on-shipment shipments were charged when shipped, and
// codes shipped to a retailer without money terms are not charged. The codes must be of one
// retailer (one terminal's report).
func (l *Ledger) ChargeSales(ctx context.Context, tx pgx.Tx, codeIDs []int64) error {
	if len(codeIDs) == 0 {
		return nil
	}
	// The sold codes are counted per shipment first, through the primary key (materialised, so
	// the plan cannot turn around): joined as "c.id = ANY($1)", the generic plan a pooled
	// connection switches to after five runs walked codes_shipment testing every shipped code
	// against the whole array (20 ms for a 900-sale report with 10,000 codes shipped, and
	// growing with the codes shipped).
	rows, err := tx.Query(ctx, `WITH sold AS MATERIALIZED (
			SELECT shipment_id, count(*) AS n FROM codes WHERE id = ANY($1) GROUP BY shipment_id)
		SELECT st.shipment_id, st.retailer_id, s.operator_id, s.product, st.currency, st.face_value, st.commission, st.margin, sold.n
		FROM sold JOIN shipment_terms st ON st.shipment_id = sold.shipment_id JOIN shipments s ON s.id = st.shipment_id
		WHERE st.settlement = 'on_sale'
		ORDER BY st.shipment_id`, codeIDs)
	if err != nil {
		return err
	}
	type group struct {
		shipment, retailer, operator, product, currency string
		face, commission, margin, n                     int64
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (group, error) {
		var g group
		err := r.Scan(&g.shipment, &g.retailer, &g.operator, &g.product, &g.currency, &g.face, &g.commission, &g.margin, &g.n)
		return g, err
	})
	if err != nil || len(groups) == 0 {
		return err
	}
	// Lock every account the postings touch at once, in the one order (see lockAccounts).
	byCurrency := map[string][]string{}
	for _, g := range groups {
		if g.retailer != groups[0].retailer {
			return errors.New("ledger: sales of two retailers in one call")
		}
		byCurrency[g.currency] = append(byCurrency[g.currency], OperatorAccount(g.operator), AccountMargin)
	}
	// Currencies in order too: two reports of one retailer locking its EUR and USD accounts in
	// map order could each hold what the other waits for.
	for _, cur := range slices.Sorted(maps.Keys(byCurrency)) {
		if _, err := lockAccounts(ctx, tx, cur, groups[0].retailer, byCurrency[cur]...); err != nil {
			return err
		}
	}
	now := l.now().UTC()
	for _, g := range groups {
		face, commission, margin := g.n*g.face, g.n*g.commission, g.n*g.margin
		if _, err := post(ctx, tx, posting{kind: "sale", ref: g.shipment, retailer: g.retailer, operator: g.operator, product: g.product,
			currency: g.currency, codes: g.n, face: face, commission: commission, margin: margin, at: now,
			legs: stockLegs(g.retailer, g.operator, face, commission, margin)}); err != nil {
			return err
		}
	}
	return nil
}

// CreditReturn credits back codes of a shipment returned to the vault in tx (the vault's
// transaction), when the shipment was charged at shipment: every leg of the charge is reversed
// for those codes, on the shipment's terms. Pay-on-sale stock costs nothing to return.
func (l *Ledger) CreditReturn(ctx context.Context, tx pgx.Tx, shipmentID string, codes int) error {
	if codes <= 0 {
		return nil
	}
	var retailer, operator, product, currency, settlement string
	var face, commission, margin int64
	err := tx.QueryRow(ctx, `SELECT st.retailer_id, s.operator_id, s.product, st.currency, st.settlement, st.face_value, st.commission, st.margin
		FROM shipment_terms st JOIN shipments s ON s.id = st.shipment_id WHERE st.shipment_id = $1`, shipmentID).
		Scan(&retailer, &operator, &product, &currency, &settlement, &face, &commission, &margin)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && settlement != SettleOnShipment) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := lockAccounts(ctx, tx, currency, retailer, OperatorAccount(operator), AccountMargin); err != nil {
		return err
	}
	n := -int64(codes)
	_, err = post(ctx, tx, posting{kind: "return", ref: shipmentID, retailer: retailer, operator: operator, product: product,
		currency: currency, codes: n, face: n * face, commission: n * commission, margin: n * margin, at: l.now().UTC(),
		legs: stockLegs(retailer, operator, n*face, n*commission, n*margin)})
	return err
}

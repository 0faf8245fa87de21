package codevault

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// Scope confines a view to one retailer's terminals or one operator's products; the zero Scope
// is the whole network.
type Scope struct{ Retailer, Operator string }

// ProductStock is the stock of one product: in the vault, at terminals (shipped or delivered,
// not sold), and how long it lasts at the sales rate of the last 7 days.
type ProductStock struct {
	Operator  string `json:"operator"`
	Product   string `json:"product"`
	Vault     int64  `json:"vault"` // zero in a retailer's scope: the vault is not its business
	Terminals int64  `json:"terminals"`
	SoldToday int64  `json:"sold_today"` // since midnight UTC
	Sold7Days int64  `json:"sold_7_days"`
	// DaysOfCover is (Vault + Terminals) / (Sold7Days / 7); negative when nothing sold.
	DaysOfCover float64 `json:"days_of_cover"`
}

// StockOverview returns the stock of every product in scope, by operator and product.
func (v *Vault) StockOverview(ctx context.Context, s Scope) ([]ProductStock, error) {
	now := v.now().UTC()
	midnight := now.Truncate(24 * time.Hour)
	rows, err := v.db.Query(ctx, `SELECT p.operator_id, p.code,
			CASE WHEN $1 = '' THEN (SELECT count(*) FROM codes c WHERE c.operator_id = p.operator_id AND c.product = p.code AND c.state = 'in_vault') ELSE 0 END,
			(SELECT count(*) FROM codes c JOIN shipments sh ON sh.id = c.shipment_id JOIN terminals t ON t.id = sh.terminal_id
			 WHERE c.operator_id = p.operator_id AND c.product = p.code AND c.state IN ('shipped', 'delivered') AND ($1 = '' OR t.retailer_id = $1)),
			(SELECT count(*) FROM sales s JOIN codes c ON c.id = s.code_id JOIN terminals t ON t.id = s.terminal_id
			 WHERE c.operator_id = p.operator_id AND c.product = p.code AND s.sold_at >= $3 AND s.sold_at <= $4 AND ($1 = '' OR t.retailer_id = $1)),
			(SELECT count(*) FROM sales s JOIN codes c ON c.id = s.code_id JOIN terminals t ON t.id = s.terminal_id
			 WHERE c.operator_id = p.operator_id AND c.product = p.code AND s.sold_at > $5 AND s.sold_at <= $4 AND ($1 = '' OR t.retailer_id = $1))
		FROM products p WHERE ($2 = '' OR p.operator_id = $2)
		  AND ($1 = '' OR EXISTS (SELECT 1 FROM terminal_products tp JOIN terminals t ON t.id = tp.terminal_id
		      WHERE tp.operator_id = p.operator_id AND tp.product = p.code AND t.retailer_id = $1))
		ORDER BY 1, 2`, s.Retailer, s.Operator, midnight, now, now.Add(-salesWindow))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ProductStock, error) {
		var ps ProductStock
		err := row.Scan(&ps.Operator, &ps.Product, &ps.Vault, &ps.Terminals, &ps.SoldToday, &ps.Sold7Days)
		ps.DaysOfCover = cover(ps.Vault+ps.Terminals, ps.Sold7Days)
		return ps, err
	})
}

func cover(stock, sold7 int64) float64 {
	if sold7 <= 0 {
		return -1
	}
	return float64(stock) / (float64(sold7) / 7)
}

// TerminalStock is one terminal's band and last reported stock of one product.
type TerminalStock struct {
	Terminal    string  `json:"terminal"`
	Retailer    string  `json:"retailer"`
	Operator    string  `json:"operator"`
	Product     string  `json:"product"`
	Min         int     `json:"min"`
	Max         int     `json:"max"`
	Reported    *int    `json:"reported"` // nil before the terminal's first report
	Sold7Days   int64   `json:"sold_7_days"`
	DaysOfCover float64 `json:"days_of_cover"` // negative when nothing sold or nothing reported
}

// TerminalStocks returns the levels and reported stock of every terminal in scope, by
// terminal, operator and product.
func (v *Vault) TerminalStocks(ctx context.Context, s Scope) ([]TerminalStock, error) {
	now := v.now().UTC()
	rows, err := v.db.Query(ctx, `SELECT tp.terminal_id, t.retailer_id, tp.operator_id, tp.product, tp.min_level, tp.max_level,
			tp.reported_stock,
			(SELECT count(*) FROM sales s JOIN codes c ON c.id = s.code_id WHERE s.terminal_id = tp.terminal_id
			 AND c.operator_id = tp.operator_id AND c.product = tp.product AND s.sold_at > $3 AND s.sold_at <= $4)
		FROM terminal_products tp JOIN terminals t ON t.id = tp.terminal_id
		WHERE ($1 = '' OR t.retailer_id = $1) AND ($2 = '' OR tp.operator_id = $2) AND t.status = 'active'
		ORDER BY 1, 3, 4`, s.Retailer, s.Operator, now.Add(-salesWindow), now)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (TerminalStock, error) {
		var ts TerminalStock
		err := row.Scan(&ts.Terminal, &ts.Retailer, &ts.Operator, &ts.Product, &ts.Min, &ts.Max, &ts.Reported, &ts.Sold7Days)
		ts.DaysOfCover = -1
		if ts.Reported != nil {
			ts.DaysOfCover = cover(int64(*ts.Reported), ts.Sold7Days)
		}
		return ts, err
	})
}

// DaySales is the number of codes of one product sold on one day (UTC).
type DaySales struct {
	Day      time.Time `json:"day"`
	Operator string    `json:"operator"`
	Product  string    `json:"product"`
	Sold     int64     `json:"sold"`
}

// SalesPerDay returns the sales in scope per day and product over the last days days, today
// included, oldest first; days without sales are absent.
func (v *Vault) SalesPerDay(ctx context.Context, s Scope, days int) ([]DaySales, error) {
	if days <= 0 || days > 366 {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_days", "days %d must be between 1 and 366", days)
	}
	from := v.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1-days)
	rows, err := v.db.Query(ctx, `SELECT date_trunc('day', s.sold_at AT TIME ZONE 'UTC'), c.operator_id, c.product, count(*)
		FROM sales s JOIN codes c ON c.id = s.code_id JOIN terminals t ON t.id = s.terminal_id
		WHERE s.sold_at >= $3 AND ($1 = '' OR t.retailer_id = $1) AND ($2 = '' OR c.operator_id = $2)
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, s.Retailer, s.Operator, from)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DaySales, error) {
		var d DaySales
		err := row.Scan(&d.Day, &d.Operator, &d.Product, &d.Sold)
		d.Day = time.Date(d.Day.Year(), d.Day.Month(), d.Day.Day(), 0, 0, 0, 0, time.UTC)
		return d, err
	})
}

// alarmInScope is the SQL condition (on alarms a) that confines alarms to a scope ($R retailer,
// $O operator): a retailer sees the terminal alarms of its terminals and its own credit_limit
// alarm (whose subject is the retailer), an operator the stock alarms of its products.
const alarmInScope = `(($R = '' AND $O = '')
	OR ($R <> '' AND a.kind IN ('terminal_low_stock', 'silent_terminal', 'report_gap')
	    AND split_part(a.subject, '/', 1) IN (SELECT id FROM terminals WHERE retailer_id = $R))
	OR ($R <> '' AND a.kind = 'credit_limit' AND a.subject = $R)
	OR ($O <> '' AND a.kind IN ('vault_low_stock', 'expiring_stock') AND split_part(a.subject, '/', 1) = $O))`

// ScopedAlarms returns the alarms f selects that scope may see, the most recent first. It
// returns the errors of Alarms.
func (v *Vault) ScopedAlarms(ctx context.Context, f AlarmFilter, s Scope) ([]Alarm, error) {
	if s == (Scope{}) {
		return v.Alarms(ctx, f)
	}
	// Validate f exactly as Alarms does, then apply the scope.
	if _, err := v.Alarms(ctx, AlarmFilter{State: f.State, Kind: f.Kind, Limit: 1}); err != nil {
		return nil, err
	}
	if f.State == "all" {
		f.State = ""
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := v.db.Query(ctx, `SELECT `+alarmColumns+` FROM alarms a
		WHERE ($1 = '' OR state = $1) AND ($2 = '' OR kind = $2) AND `+scopeArgs(alarmInScope, "$4", "$5")+`
		ORDER BY last_at DESC, id DESC LIMIT $3`, f.State, f.Kind, f.Limit, s.Retailer, s.Operator)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanAlarm)
}

// Alarm returns one alarm if scope may see it; not found ("unknown_alarm") otherwise.
func (v *Vault) Alarm(ctx context.Context, id int64, s Scope) (Alarm, error) {
	rows, err := v.db.Query(ctx, `SELECT `+alarmColumns+` FROM alarms a WHERE id = $1 AND `+scopeArgs(alarmInScope, "$2", "$3"),
		id, s.Retailer, s.Operator)
	if err != nil {
		return Alarm{}, err
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAlarm)
	if errors.Is(err, pgx.ErrNoRows) {
		return Alarm{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_alarm", "there is no alarm %d", id)
	}
	return a, err
}

func scopeArgs(cond, r, o string) string {
	out := []byte{}
	for i := 0; i < len(cond); i++ {
		if cond[i] == '$' && i+1 < len(cond) && (cond[i+1] == 'R' || cond[i+1] == 'O') {
			if cond[i+1] == 'R' {
				out = append(out, r...)
			} else {
				out = append(out, o...)
			}
			i++
			continue
		}
		out = append(out, cond[i])
	}
	return string(out)
}

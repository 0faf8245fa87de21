// Package operator owns the operators that supply codes, their products (face value,
// currency, refill instructions, serial and PIN formats, vault reorder settings) and the
// purchase orders the vault raises to them. It never sees a code.
package operator

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher"
)

// Operator is a telecom or transit company that supplies codes.
type Operator struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Product is one kind of code an operator supplies.
type Product struct {
	Operator       string `json:"operator"`
	Code           string `json:"code"`
	Name           string `json:"name"`
	FaceValue      int64  `json:"face_value"` // minor units
	Currency       string `json:"currency"`
	RefillTemplate string `json:"refill_template"` // how the customer uses the PIN, e.g. "Dial *123*{PIN}#"
	SerialPattern  string `json:"serial_pattern"`  // regular expression a serial must match in full
	PINPattern     string `json:"pin_pattern"`     // regular expression a PIN must match in full
	// The vault orders ReorderQuantity codes when its stock falls below ReorderLevel.
	ReorderLevel    int `json:"reorder_level"`
	ReorderQuantity int `json:"reorder_quantity"`
}

// Registry stores operators and products.
type Registry struct{ db *pgxpool.Pool }

// New returns a Registry on db.
func New(db *pgxpool.Pool) (*Registry, error) {
	if db == nil {
		return nil, errors.New("operator: no database")
	}
	return &Registry{db: db}, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func invalid(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, reason, format, args...)
}

// CreateOperator records an operator. It returns invalid for a malformed id and conflict when
// the id is taken.
func (r *Registry) CreateOperator(ctx context.Context, o Operator) error {
	if !idPattern.MatchString(o.ID) || strings.TrimSpace(o.Name) == "" {
		return invalid("bad_operator", "operator id %q must be 1 to 64 letters, digits, '.', '_' or '-', with a name", o.ID)
	}
	_, err := r.db.Exec(ctx, `INSERT INTO operators (id, name) VALUES ($1, $2)`, o.ID, o.Name)
	if isUnique(err) {
		return evoucher.Errorf(evoucher.KindConflict, "exists", "operator %s already exists", o.ID)
	}
	return err
}

// CheckProduct returns an invalid error naming the first field of p that is not acceptable.
func CheckProduct(p Product) error {
	switch {
	case !idPattern.MatchString(p.Code):
		return invalid("bad_product", "product code %q must be 1 to 64 letters, digits, '.', '_' or '-'", p.Code)
	case p.FaceValue <= 0:
		return invalid("bad_product", "face value must be positive (minor units)")
	case len(p.Currency) != 3 || strings.ToUpper(p.Currency) != p.Currency:
		return invalid("bad_product", "currency %q is not an ISO 4217 code", p.Currency)
	case !strings.Contains(p.RefillTemplate, "{PIN}"):
		return invalid("bad_product", "refill instructions %q must contain {PIN}", p.RefillTemplate)
	case p.ReorderLevel < 0 || p.ReorderQuantity < 0:
		return invalid("bad_product", "reorder level and quantity cannot be negative")
	}
	for _, pat := range []string{p.SerialPattern, p.PINPattern} {
		if _, err := regexp.Compile("^(?:" + pat + ")$"); err != nil || pat == "" {
			return invalid("bad_product", "pattern %q is not a regular expression", pat)
		}
	}
	return nil
}

// CreateProduct records a product. It returns invalid for a bad field, not found for an
// unknown operator and conflict when the product exists.
func (r *Registry) CreateProduct(ctx context.Context, p Product) error {
	if err := CheckProduct(p); err != nil {
		return err
	}
	if p.Name == "" {
		p.Name = p.Code
	}
	_, err := r.db.Exec(ctx, `INSERT INTO products (operator_id, code, name, face_value, currency, refill_template,
		serial_pattern, pin_pattern, reorder_level, reorder_quantity) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		p.Operator, p.Code, p.Name, p.FaceValue, p.Currency, p.RefillTemplate, p.SerialPattern, p.PINPattern, p.ReorderLevel, p.ReorderQuantity)
	var pe *pgconn.PgError
	switch {
	case isUnique(err):
		return evoucher.Errorf(evoucher.KindConflict, "exists", "product %s of operator %s already exists", p.Code, p.Operator)
	case errors.As(err, &pe) && pe.Code == "23503":
		return evoucher.Errorf(evoucher.KindNotFound, "unknown_operator", "no operator %s: create it first", p.Operator)
	}
	return err
}

// Product returns one product; not found when there is none.
func (r *Registry) Product(ctx context.Context, operatorID, code string) (Product, error) {
	p := Product{Operator: operatorID, Code: code}
	err := r.db.QueryRow(ctx, `SELECT name, face_value, currency, refill_template, serial_pattern, pin_pattern,
		reorder_level, reorder_quantity FROM products WHERE operator_id = $1 AND code = $2`, operatorID, code).
		Scan(&p.Name, &p.FaceValue, &p.Currency, &p.RefillTemplate, &p.SerialPattern, &p.PINPattern, &p.ReorderLevel, &p.ReorderQuantity)
	if errors.Is(err, pgx.ErrNoRows) {
		return Product{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_product", "operator %s has no product %s", operatorID, code)
	}
	return p, err
}

// Order is a purchase order the vault raised.
type Order struct {
	ID        string
	Operator  string
	Product   string
	Quantity  int
	State     string
	CreatedAt time.Time
	Document  []byte // the signed PurchaseOrder
}

// Orders returns an operator's purchase orders in state (all states when state is ""),
// oldest first.
func (r *Registry) Orders(ctx context.Context, operatorID, state string) ([]Order, error) {
	rows, err := r.db.Query(ctx, `SELECT id, operator_id, product, quantity, state, created_at, document
		FROM purchase_orders WHERE operator_id = $1 AND ($2 = '' OR state = $2) ORDER BY created_at, id`, operatorID, state)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Order, error) {
		var o Order
		err := row.Scan(&o.ID, &o.Operator, &o.Product, &o.Quantity, &o.State, &o.CreatedAt, &o.Document)
		return o, err
	})
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

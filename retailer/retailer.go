package retailer

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

// Status values of terminals and vendor cards.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
)

// Retailer is a shop or chain that sells codes through its terminals.
type Retailer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Terminal is a retailer's POS terminal.
type Terminal struct {
	ID       string `json:"id"`
	Retailer string `json:"retailer"`
	Name     string `json:"name"`
	Status   string `json:"status"` // StatusActive or StatusRevoked
	// OnlineMode means each sale is authorised by the center before the ticket is printed.
	OnlineMode bool       `json:"online_mode"`
	LastSeenAt *time.Time `json:"last_seen_at"` // nil until the terminal first talks to the center
}

// Vendor is a salesman's vendor card, without which a terminal sells nothing.
type Vendor struct {
	ID       string
	Retailer string
	Name     string
	Status   string // StatusActive or StatusRevoked
}

// Registry stores retailers, terminals, vendor cards and stock levels.
type Registry struct{ db *pgxpool.Pool }

// New returns a Registry on db; it fails when db is nil.
func New(db *pgxpool.Pool) (*Registry, error) {
	if db == nil {
		return nil, errors.New("retailer: no database")
	}
	return &Registry{db: db}, nil
}

// idPattern is the schema's CHECK on every id, repeated here to give a readable refusal.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func invalid(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, reason, format, args...)
}

func notFound(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindNotFound, reason, format, args...)
}

// checkParty refuses a malformed id, an empty name, or a status other than active for a new
// terminal or vendor ("" means active).
func checkParty(what, id, name, status string) error {
	reason := "bad_" + what
	switch {
	case !idPattern.MatchString(id):
		return invalid(reason, "%s id %q must be 1 to 64 letters, digits, '.', '_' or '-'", what, id)
	case strings.TrimSpace(name) == "":
		return invalid(reason, "%s %s needs a name", what, id)
	case status != "" && status != StatusActive:
		return invalid(reason, "a new %s is active, not %q", what, status)
	}
	return nil
}

// CreateRetailer records a retailer. It returns invalid ("bad_retailer") for a malformed id
// or an empty name and conflict ("exists") when the id is taken.
func (r *Registry) CreateRetailer(ctx context.Context, rt Retailer) error {
	if err := checkParty("retailer", rt.ID, rt.Name, ""); err != nil {
		return err
	}
	_, err := r.db.Exec(ctx, `INSERT INTO retailers (id, name) VALUES ($1, $2)`, rt.ID, rt.Name)
	if isUnique(err) {
		return evoucher.Errorf(evoucher.KindConflict, "exists", "retailer %s already exists", rt.ID)
	}
	return err
}

// AddTerminal records an active terminal of a retailer; its certificate is enrolled through
// pki with role terminal and the terminal id as entity. It returns invalid ("bad_terminal")
// for a malformed id, an empty name or a status other than active, not found
// ("unknown_retailer") for an unknown retailer and conflict ("exists") when the id is taken.
func (r *Registry) AddTerminal(ctx context.Context, t Terminal) error {
	if err := checkParty("terminal", t.ID, t.Name, t.Status); err != nil {
		return err
	}
	_, err := r.db.Exec(ctx, `INSERT INTO terminals (id, retailer_id, name, online_mode) VALUES ($1, $2, $3, $4)`,
		t.ID, t.Retailer, t.Name, t.OnlineMode)
	return insertErr(err, "terminal", t.ID, t.Retailer)
}

// AddVendor records an active vendor card of a retailer; its certificate is enrolled through
// pki with role vendor and the vendor id as entity. It returns invalid ("bad_vendor") for a
// malformed id, an empty name or a status other than active, not found ("unknown_retailer")
// for an unknown retailer and conflict ("exists") when the id is taken.
func (r *Registry) AddVendor(ctx context.Context, v Vendor) error {
	if err := checkParty("vendor", v.ID, v.Name, v.Status); err != nil {
		return err
	}
	_, err := r.db.Exec(ctx, `INSERT INTO vendors (id, retailer_id, name) VALUES ($1, $2, $3)`, v.ID, v.Retailer, v.Name)
	return insertErr(err, "vendor", v.ID, v.Retailer)
}

func insertErr(err error, what, id, retailerID string) error {
	var pe *pgconn.PgError
	switch {
	case isUnique(err):
		return evoucher.Errorf(evoucher.KindConflict, "exists", "%s %s already exists", what, id)
	case errors.As(err, &pe) && pe.Code == "23503":
		return unknownRetailer(retailerID)
	}
	return err
}

func unknownRetailer(id string) error {
	return notFound("unknown_retailer", "no retailer %q: create it first", id)
}

func unknownTerminal(id string) error {
	return notFound("unknown_terminal", "no terminal %q: add it to its retailer first", id)
}

// Retailer returns one retailer; not found ("unknown_retailer") when there is none.
func (r *Registry) Retailer(ctx context.Context, id string) (Retailer, error) {
	return getRetailer(ctx, r.db, id)
}

// Retailers returns every retailer, by id.
func (r *Registry) Retailers(ctx context.Context) ([]Retailer, error) {
	rows, err := r.db.Query(ctx, `SELECT id, name FROM retailers ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Retailer])
}

// RetailerOf returns the retailer a terminal belongs to; not found ("unknown_terminal") when
// the terminal is unknown.
func (r *Registry) RetailerOf(ctx context.Context, terminalID string) (Retailer, error) {
	var rt Retailer
	err := r.db.QueryRow(ctx, `SELECT r.id, r.name FROM terminals t JOIN retailers r ON r.id = t.retailer_id
		WHERE t.id = $1`, terminalID).Scan(&rt.ID, &rt.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return Retailer{}, unknownTerminal(terminalID)
	}
	return rt, err
}

// Terminal returns one terminal; not found ("unknown_terminal") when there is none.
func (r *Registry) Terminal(ctx context.Context, id string) (Terminal, error) {
	rows, err := r.db.Query(ctx, `SELECT `+terminalColumns+` FROM terminals WHERE id = $1`, id)
	if err != nil {
		return Terminal{}, err
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTerminal)
	if errors.Is(err, pgx.ErrNoRows) {
		return Terminal{}, unknownTerminal(id)
	}
	return t, err
}

// Terminals returns a retailer's terminals, by id; not found ("unknown_retailer") when the
// retailer is unknown.
func (r *Registry) Terminals(ctx context.Context, retailerID string) ([]Terminal, error) {
	tx, err := r.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := getRetailer(ctx, tx, retailerID); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT `+terminalColumns+` FROM terminals WHERE retailer_id = $1 ORDER BY id`, retailerID)
	if err != nil {
		return nil, err
	}
	ts, err := pgx.CollectRows(rows, scanTerminal)
	if err != nil {
		return nil, err
	}
	return ts, tx.Commit(ctx)
}

const terminalColumns = `id, retailer_id, name, status, online_mode, last_seen_at`

func scanTerminal(row pgx.CollectableRow) (Terminal, error) {
	var t Terminal
	err := row.Scan(&t.ID, &t.Retailer, &t.Name, &t.Status, &t.OnlineMode, &t.LastSeenAt)
	return t, err
}

// Vendor returns one vendor card; not found ("unknown_vendor") when there is none.
func (r *Registry) Vendor(ctx context.Context, id string) (Vendor, error) {
	var v Vendor
	err := r.db.QueryRow(ctx, `SELECT id, retailer_id, name, status FROM vendors WHERE id = $1`, id).
		Scan(&v.ID, &v.Retailer, &v.Name, &v.Status)
	if errors.Is(err, pgx.ErrNoRows) {
		return Vendor{}, notFound("unknown_vendor", "no vendor card %q: add it to its retailer first", id)
	}
	return v, err
}

// Vendors returns a retailer's vendor cards, by id; not found ("unknown_retailer") when the
// retailer is unknown.
func (r *Registry) Vendors(ctx context.Context, retailerID string) ([]Vendor, error) {
	tx, err := r.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := getRetailer(ctx, tx, retailerID); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT id, retailer_id, name, status FROM vendors WHERE retailer_id = $1 ORDER BY id`, retailerID)
	if err != nil {
		return nil, err
	}
	vs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Vendor])
	if err != nil {
		return nil, err
	}
	return vs, tx.Commit(ctx)
}

// SetOnlineMode switches a terminal between offline selling (codes shipped ahead, sales
// reported later) and online mode (each sale authorised by the center). It returns not found
// ("unknown_terminal") for an unknown terminal.
func (r *Registry) SetOnlineMode(ctx context.Context, terminalID string, on bool) error {
	tag, err := r.db.Exec(ctx, `UPDATE terminals SET online_mode = $2 WHERE id = $1`, terminalID, on)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return unknownTerminal(terminalID)
	}
	return nil
}

// querier is what a pool and a transaction share.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getRetailer(ctx context.Context, q querier, id string) (Retailer, error) {
	rt := Retailer{ID: id}
	err := q.QueryRow(ctx, `SELECT name FROM retailers WHERE id = $1`, id).Scan(&rt.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return Retailer{}, unknownRetailer(id)
	}
	return rt, err
}

func terminalExists(ctx context.Context, q querier, id string) error {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM terminals WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return unknownTerminal(id)
	}
	return err
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

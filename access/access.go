// Package access owns who may use the web dashboard: its users, their argon2id password
// hashes, roles and scopes (one retailer or one operator), login with lockout after repeated
// failures, and server-side sessions with idle and absolute expiry. It never stores a password
// or a session token in clear: only the argon2id hash and the token's SHA-256.
package access

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher"
)

// Meter receives login events; the Prometheus counters hang on it.
type Meter interface {
	// LoginFailed is called once per refused login, with why ("bad_credentials", "locked",
	// "disabled").
	LoginFailed(reason string)
	// LoggedIn is called once per successful login.
	LoggedIn(role string)
}

type nopMeter struct{}

func (nopMeter) LoginFailed(string) {}
func (nopMeter) LoggedIn(string)    {}

// Config is what a Service needs. Zero durations and counts take their defaults.
type Config struct {
	DB  *pgxpool.Pool
	Now func() time.Time
	// IdleTimeout ends a session not used for this long (default 30 minutes).
	IdleTimeout time.Duration
	// MaxAge ends a session this long after login, used or not (default 12 hours).
	MaxAge time.Duration
	// MaxFailures failed logins in a row lock the account for LockFor (defaults 5 and 15 minutes).
	MaxFailures int
	LockFor     time.Duration
	Argon2      Argon2Params // default DefaultArgon2
	Meter       Meter
}

// Service manages dashboard users and sessions.
type Service struct {
	db          *pgxpool.Pool
	now         func() time.Time
	idle, max   time.Duration
	maxFailures int
	lockFor     time.Duration
	argon       Argon2Params
	meter       Meter
	dummyHash   string // checked for unknown users, so timing does not tell which names exist
}

// New returns a Service; it fails without a database.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil {
		return nil, errors.New("access: no database")
	}
	s := &Service{db: cfg.DB, now: cfg.Now, idle: cfg.IdleTimeout, max: cfg.MaxAge, maxFailures: cfg.MaxFailures,
		lockFor: cfg.LockFor, argon: cfg.Argon2, meter: cfg.Meter}
	if s.now == nil {
		s.now = time.Now
	}
	if s.idle <= 0 {
		s.idle = 30 * time.Minute
	}
	if s.max <= 0 {
		s.max = 12 * time.Hour
	}
	if s.maxFailures <= 0 {
		s.maxFailures = 5
	}
	if s.lockFor <= 0 {
		s.lockFor = 15 * time.Minute
	}
	if s.argon.Memory == 0 {
		s.argon = DefaultArgon2
	}
	if s.meter == nil {
		s.meter = nopMeter{}
	}
	var err error
	if s.dummyHash, err = hashPassword(GeneratePassword(), s.argon); err != nil {
		return nil, err
	}
	return s, nil
}

// User is a dashboard user as listed.
type User struct {
	ID        int64
	Name      string
	Role      Role
	Retailer  string
	Operator  string
	Disabled  bool
	CreatedAt time.Time
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// AddUser records a user with a password. It returns invalid ("bad_user") for a malformed
// name, a role without its scope or a scope its role does not take, or a password shorter than
// 12 characters; not found ("unknown_retailer", "unknown_operator") for an unknown scope; and
// conflict ("exists") when the name is taken.
func (s *Service) AddUser(ctx context.Context, u User, pw Password) (User, error) {
	switch {
	case !namePattern.MatchString(u.Name):
		return User{}, invalid("bad_user", "user name %q must be 1 to 64 letters, digits, '.', '_', '@' or '-'", u.Name)
	case u.Role == RoleRetailerManager && (u.Retailer == "" || u.Operator != ""):
		return User{}, invalid("bad_user", "a retailer_manager needs --retailer (and no --operator)")
	case u.Role == RoleOperatorUser && (u.Operator == "" || u.Retailer != ""):
		return User{}, invalid("bad_user", "an operator_user needs --operator (and no --retailer)")
	case u.Role != RoleRetailerManager && u.Role != RoleOperatorUser && (u.Retailer != "" || u.Operator != ""):
		return User{}, invalid("bad_user", "role %s sees the whole network: drop --retailer and --operator", u.Role)
	case len(pw) < 12:
		return User{}, invalid("bad_user", "the password must have at least 12 characters")
	}
	if _, err := ParseRole(string(u.Role)); err != nil {
		return User{}, err
	}
	hash, err := hashPassword(pw, s.argon)
	if err != nil {
		return User{}, err
	}
	u.CreatedAt = s.now().UTC()
	err = s.db.QueryRow(ctx, `INSERT INTO dashboard_users (name, role, retailer_id, operator_id, password_hash, created_at)
		VALUES ($1, $2, nullif($3, ''), nullif($4, ''), $5, $6) RETURNING id`,
		u.Name, string(u.Role), u.Retailer, u.Operator, hash, u.CreatedAt).Scan(&u.ID)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "23505":
		return User{}, evoucher.Errorf(evoucher.KindConflict, "exists", "user %s already exists", u.Name)
	case errors.As(err, &pe) && pe.Code == "23503" && u.Retailer != "":
		return User{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_retailer", "no retailer %q: create it first", u.Retailer)
	case errors.As(err, &pe) && pe.Code == "23503":
		return User{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_operator", "no operator %q: create it first", u.Operator)
	case err != nil:
		return User{}, err
	}
	return u, nil
}

// Users returns every user, by name.
func (s *Service) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.Query(ctx, `SELECT id, name, role, coalesce(retailer_id, ''), coalesce(operator_id, ''),
		disabled_at IS NOT NULL, created_at FROM dashboard_users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) {
		var u User
		err := row.Scan(&u.ID, &u.Name, &u.Role, &u.Retailer, &u.Operator, &u.Disabled, &u.CreatedAt)
		return u, err
	})
}

// DisableUser stops a user from logging in and ends its sessions at once. It returns not found
// ("unknown_user").
func (s *Service) DisableUser(ctx context.Context, name string) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var id int64
	err = tx.QueryRow(ctx, `UPDATE dashboard_users SET disabled_at = coalesce(disabled_at, $2) WHERE name = $1 RETURNING id`,
		name, s.now().UTC()).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return evoucher.Errorf(evoucher.KindNotFound, "unknown_user", "no user %q: see `evoucher user list`", name)
	}
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM dashboard_sessions WHERE user_id = $1`, id); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func invalid(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, reason, format, args...)
}

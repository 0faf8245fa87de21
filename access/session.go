package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// Token is a session token, the value of the session cookie; it prints as [redacted].
type Token string

// String hides the token.
func (Token) String() string { return "[redacted]" }

// LogValue hides the token from slog.
func (Token) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Session is a logged-in user's session.
type Session struct {
	Token     Token
	Principal Principal
	ExpiresAt time.Time // absolute expiry
}

// CSRF returns the session's anti-forgery token: derived from the session token, which only
// the browser holding the HttpOnly cookie knows, so a page of another site cannot compute it.
func (s Session) CSRF() string { return CSRFOf(s.Token) }

// CSRFOf returns the anti-forgery token of a session token.
func CSRFOf(t Token) string {
	sum := sha256.Sum256([]byte("evoucher-csrf\x00" + string(t)))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CheckCSRF reports whether got is the anti-forgery token of session token t.
func CheckCSRF(t Token, got string) bool {
	return t != "" && subtle.ConstantTimeCompare([]byte(CSRFOf(t)), []byte(got)) == 1
}

func tokenHash(t Token) []byte {
	sum := sha256.Sum256([]byte(t))
	return sum[:]
}

var errBadLogin = evoucher.Errorf(evoucher.KindUnauthorized, "bad_credentials",
	"wrong user name or password, or the account is locked after too many failures in a row: wait a few minutes, or ask an admin")

// Login checks a user's password and opens a session. It returns unauthorized
// ("bad_credentials") for an unknown user, a wrong password, a disabled user, or an account
// locked after MaxFailures failures in a row — the same answer, so it tells nothing about
// which names exist; the meter tells the reasons apart.
func (s *Service) Login(ctx context.Context, name string, pw Password) (Session, error) {
	now := s.now().UTC()
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return Session{}, err
	}
	defer tx.Rollback(ctx)
	var p Principal
	var hash string
	var lockedUntil *time.Time
	var disabled bool
	err = tx.QueryRow(ctx, `SELECT id, name, role, coalesce(retailer_id, ''), coalesce(operator_id, ''), password_hash,
		locked_until, disabled_at IS NOT NULL FROM dashboard_users WHERE name = $1 FOR UPDATE`, name).
		Scan(&p.UserID, &p.Name, &p.Role, &p.Retailer, &p.Operator, &hash, &lockedUntil, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		checkPassword(pw, s.dummyHash)
		s.meter.LoginFailed("bad_credentials")
		return Session{}, errBadLogin
	}
	if err != nil {
		return Session{}, err
	}
	if lockedUntil != nil && now.Before(*lockedUntil) {
		// The same answer, after the same work, as for an unknown name: a distinct "locked"
		// answer would tell which names exist to whoever fails five logins per name.
		checkPassword(pw, hash)
		s.meter.LoginFailed("locked")
		return Session{}, errBadLogin
	}
	if !checkPassword(pw, hash) || disabled {
		reason := "bad_credentials"
		if disabled {
			reason = "disabled"
		}
		// Count the failure and lock at the threshold, committed even though the login fails.
		if _, err := tx.Exec(ctx, `UPDATE dashboard_users SET failed_logins = failed_logins + 1,
			locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3::timestamptz ELSE locked_until END WHERE id = $1`, p.UserID, s.maxFailures, now.Add(s.lockFor)); err != nil {
			return Session{}, err
		}
		if err := tx.Commit(ctx); err != nil {
			return Session{}, err
		}
		s.meter.LoginFailed(reason)
		return Session{}, errBadLogin
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Session{}, err
	}
	sess := Session{Token: Token(base64.RawURLEncoding.EncodeToString(raw)), Principal: p, ExpiresAt: now.Add(s.max)}
	if _, err := tx.Exec(ctx, `UPDATE dashboard_users SET failed_logins = 0, locked_until = NULL WHERE id = $1`, p.UserID); err != nil {
		return Session{}, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM dashboard_sessions WHERE expires_at < $1 OR last_seen_at < $2`, now, now.Add(-s.idle)); err != nil {
		return Session{}, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO dashboard_sessions (token_hash, user_id, created_at, last_seen_at, expires_at)
		VALUES ($1, $2, $3, $3, $4)`, tokenHash(sess.Token), p.UserID, now, sess.ExpiresAt); err != nil {
		return Session{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return Session{}, err
	}
	s.meter.LoggedIn(string(p.Role))
	return sess, nil
}

var errNoSession = evoucher.Errorf(evoucher.KindUnauthorized, "no_session", "not logged in, or the session expired: log in again")

// Session returns the live session of token t and counts this use against its idle expiry. It
// returns unauthorized ("no_session") for an unknown, idle, expired or ended session, or one
// whose user was disabled.
func (s *Service) Session(ctx context.Context, t Token) (Session, error) {
	if t == "" {
		return Session{}, errNoSession
	}
	now := s.now().UTC()
	sess := Session{Token: t}
	p := &sess.Principal
	err := s.db.QueryRow(ctx, `UPDATE dashboard_sessions s SET last_seen_at = $2
		FROM dashboard_users u
		WHERE s.token_hash = $1 AND u.id = s.user_id AND u.disabled_at IS NULL
		  AND s.expires_at > $2 AND s.last_seen_at > $3
		RETURNING u.id, u.name, u.role, coalesce(u.retailer_id, ''), coalesce(u.operator_id, ''), s.expires_at`,
		tokenHash(t), now, now.Add(-s.idle)).Scan(&p.UserID, &p.Name, &p.Role, &p.Retailer, &p.Operator, &sess.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, errNoSession
	}
	return sess, err
}

// Logout ends the session of token t; ending an unknown session is not an error.
func (s *Service) Logout(ctx context.Context, t Token) error {
	_, err := s.db.Exec(ctx, `DELETE FROM dashboard_sessions WHERE token_hash = $1`, tokenHash(t))
	return err
}

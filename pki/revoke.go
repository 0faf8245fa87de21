package pki

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// reasonCodes are the RFC 5280 CRLReason values a revocation may carry.
var reasonCodes = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
	"certificateHold":      6,
	"privilegeWithdrawn":   9,
}

// Revocation says which certificate was revoked, when and why.
type Revocation struct {
	Identity
	RevokedAt time.Time
	Reason    string
}

// Revoke revokes the certificate with that serial for reason (an RFC 5280 reason name such as
// keyCompromise) and publishes a new CRL in the same transaction. It returns not found for an
// unknown serial, conflict when it is already revoked, invalid for an unknown reason.
func (a *Authority) Revoke(ctx context.Context, serial, reason string) (Revocation, error) {
	if _, ok := reasonCodes[reason]; !ok {
		return Revocation{}, evoucher.Errorf(evoucher.KindInvalid, "bad_reason", "unknown revocation reason %q (use keyCompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn or unspecified)", reason)
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return Revocation{}, err
	}
	defer tx.Rollback(ctx)
	now := a.now().UTC().Truncate(time.Microsecond)
	var rv Revocation
	var revokedAt *time.Time
	var prevReason *string
	err = tx.QueryRow(ctx, `SELECT role, entity, not_after, revoked_at, revocation_reason FROM certificates
		WHERE serial = $1 FOR UPDATE`, serial).Scan(&rv.Role, &rv.Entity, &rv.NotAfter, &revokedAt, &prevReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return Revocation{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_certificate", "no certificate with serial %s: see `evoucher pki list`", serial)
	}
	if err != nil {
		return Revocation{}, err
	}
	if revokedAt != nil {
		return Revocation{}, evoucher.Errorf(evoucher.KindConflict, "already_revoked", "certificate %s was already revoked on %s (%s)", serial, revokedAt.UTC().Format(time.RFC3339), *prevReason)
	}
	if _, err := tx.Exec(ctx, `UPDATE certificates SET revoked_at = $2, revocation_reason = $3 WHERE serial = $1`,
		serial, now, reason); err != nil {
		return Revocation{}, err
	}
	rv.Serial, rv.RevokedAt, rv.Reason = serial, now, reason
	if a.onRev != nil {
		if err := a.onRev(ctx, tx, rv); err != nil {
			return Revocation{}, err
		}
	}
	if _, err := a.publishCRL(ctx, tx); err != nil {
		return Revocation{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return Revocation{}, err
	}
	a.meter.Revoked(rv.Role, reason)
	return rv, nil
}

// CRL returns the current CRL (DER), publishing a new one first when none exists or the
// current one has less than the refresh margin left to live.
func (a *Authority) CRL(ctx context.Context) ([]byte, error) {
	var der []byte
	var next time.Time
	err := a.db.QueryRow(ctx, `SELECT der, next_update FROM crls ORDER BY number DESC LIMIT 1`).Scan(&der, &next)
	if err == nil && next.Sub(a.now()) > a.crlRef {
		return der, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	der, err = a.publishCRL(ctx, tx)
	if err != nil {
		return nil, err
	}
	return der, tx.Commit(ctx)
}

// publishCRL signs and records a CRL listing every revoked certificate still within its
// validity. Publications are serialised, so CRL numbers strictly increase.
func (a *Authority) publishCRL(ctx context.Context, tx pgx.Tx) ([]byte, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7412000003)`); err != nil {
		return nil, err
	}
	now := a.now().UTC()
	var number int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(number), 0) + 1 FROM crls`).Scan(&number); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT serial, revoked_at, revocation_reason FROM certificates
		WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY revoked_at, serial`, now)
	if err != nil {
		return nil, err
	}
	var entries []x509.RevocationListEntry
	for rows.Next() {
		var serial, reason string
		var at time.Time
		if err := rows.Scan(&serial, &at, &reason); err != nil {
			rows.Close()
			return nil, err
		}
		n, ok := new(big.Int).SetString(serial, 16)
		if !ok {
			rows.Close()
			return nil, fmt.Errorf("bad serial %q in database", serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: at, ReasonCode: reasonCodes[reason]})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tmpl := &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                now,
		NextUpdate:                now.Add(a.crlTTL),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, a.ca, a.caKey)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO crls (number, this_update, next_update, der) VALUES ($1, $2, $3, $4)`,
		number, now, tmpl.NextUpdate, der); err != nil {
		return nil, err
	}
	return der, nil
}

package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// renewBefore is how long before expiry EnsureCertificate replaces a certificate.
const renewBefore = 30 * 24 * time.Hour

// EnsureCertificate returns the recorded, unrevoked certificate of role for entity whose key
// is key, issuing one when there is none or it expires within 30 days (created reports which).
// The center calls it at init for its own token keys. It returns the errors of Issue.
func (a *Authority) EnsureCertificate(ctx context.Context, key crypto.Signer, role Role, entity string, hosts []string) (*x509.Certificate, bool, error) {
	rows, err := a.db.Query(ctx, `SELECT der FROM certificates
		WHERE role = $1 AND entity = $2 AND revoked_at IS NULL AND not_after > $3
		ORDER BY not_after DESC`, string(role), entity, a.now().Add(renewBefore))
	if err != nil {
		return nil, false, err
	}
	ders, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, false, err
	}
	for _, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, false, fmt.Errorf("recorded %s certificate: %w", role, err)
		}
		if samePublicKey(cert.PublicKey, key.Public()) && sameHosts(cert, hosts) {
			return cert, false, nil
		}
	}
	csr, err := NewCSR(key, entity)
	if err != nil {
		return nil, false, fmt.Errorf("certificate request for %s: %w", role, err)
	}
	req, err := ParseCSR(csr)
	if err != nil {
		return nil, false, err
	}
	cert, err := a.Issue(ctx, IssueRequest{CSR: req, Role: role, Entity: entity, Hosts: hosts})
	return cert, err == nil, err
}

func sameHosts(cert *x509.Certificate, hosts []string) bool {
	have := map[string]bool{}
	for _, n := range cert.DNSNames {
		have[n] = true
	}
	for _, ip := range cert.IPAddresses {
		have[ip.String()] = true
	}
	if len(have) != len(hosts) {
		return false
	}
	for _, h := range hosts {
		if !have[h] {
			return false
		}
	}
	return true
}

// RegisterKey records that the center token holds key label for purpose (ca, center-sign,
// center-encrypt, center-tls, log, kek), once; created is false when it was already recorded.
// It fails when the label is recorded for another purpose.
func RegisterKey(ctx context.Context, db *pgxpool.Pool, label, purpose, algorithm string) (created bool, err error) {
	tag, err := db.Exec(ctx, `INSERT INTO center_keys (label, purpose, algorithm) VALUES ($1, $2, $3)
		ON CONFLICT (label) DO NOTHING`, label, purpose, algorithm)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var have string
	if err := db.QueryRow(ctx, `SELECT purpose FROM center_keys WHERE label = $1`, label).Scan(&have); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, fmt.Errorf("key %q: recorded and removed concurrently", label)
		}
		return false, err
	}
	if have != purpose {
		return false, fmt.Errorf("key %q is recorded for %s, not %s", label, have, purpose)
	}
	return false, nil
}

// Certificate is a recorded certificate as listed to administrators.
type Certificate struct {
	Serial           string
	Role             Role
	Entity           string
	Subject          string
	NotBefore        time.Time
	NotAfter         time.Time
	IssuedAt         time.Time
	RevokedAt        *time.Time
	RevocationReason string
}

// List returns the recorded certificates, newest first, optionally only those of one role
// (role "") or one entity (entity "").
func (a *Authority) List(ctx context.Context, role Role, entity string) ([]Certificate, error) {
	rows, err := a.db.Query(ctx, `SELECT serial, role, entity, subject, not_before, not_after, issued_at,
		revoked_at, coalesce(revocation_reason, '') FROM certificates
		WHERE ($1 = '' OR role = $1) AND ($2 = '' OR entity = $2) ORDER BY issued_at DESC, serial`, string(role), entity)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Certificate, error) {
		var c Certificate
		err := row.Scan(&c.Serial, &c.Role, &c.Entity, &c.Subject, &c.NotBefore, &c.NotAfter, &c.IssuedAt, &c.RevokedAt, &c.RevocationReason)
		return c, err
	})
}

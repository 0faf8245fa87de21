package pki

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// Identity is who a verified certificate speaks for.
type Identity struct {
	Role     Role
	Entity   string
	Serial   string
	NotAfter time.Time
}

// String names the identity for logs and messages: "terminal T-12".
func (id Identity) String() string { return string(id.Role) + " " + id.Entity }

// Verify checks that cert was issued by the platform CA, was valid at time at, is recorded,
// was not revoked at or before at, and has the given role; it returns the identity it carries.
// Every receiver calls it before trusting a certificate. Refusals are unauthorized errors (or
// forbidden for a valid certificate of another role) naming the reason and what to do; each
// is counted.
func (a *Authority) Verify(ctx context.Context, cert *x509.Certificate, role Role, at time.Time) (Identity, error) {
	id, err := a.Identify(ctx, cert, at)
	if err != nil {
		return Identity{}, err
	}
	if id.Role != role {
		return Identity{}, a.refuse("verify", evoucher.Errorf(evoucher.KindForbidden, "wrong_role",
			"certificate %s is for %s, but a %s certificate is required here", id.Serial, id, role))
	}
	return id, nil
}

// Identify does what Verify does except the role check, for endpoints that accept several
// roles and decide per route.
func (a *Authority) Identify(ctx context.Context, cert *x509.Certificate, at time.Time) (Identity, error) {
	id, err := a.identify(ctx, cert, at)
	if err != nil {
		if evoucher.KindOf(err) == evoucher.KindInternal {
			return Identity{}, err
		}
		return Identity{}, a.refuse("verify", err)
	}
	return id, nil
}

func unauthorized(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindUnauthorized, reason, format, args...)
}

func (a *Authority) identify(ctx context.Context, cert *x509.Certificate, at time.Time) (Identity, error) {
	if cert == nil {
		return Identity{}, unauthorized("no_certificate", "no client certificate: present a certificate issued by the evoucher CA")
	}
	serial := SerialOf(cert)
	if !bytes.Equal(cert.RawIssuer, a.ca.RawSubject) || cert.CheckSignatureFrom(a.ca) != nil {
		return Identity{}, unauthorized("foreign_ca", "certificate %s (%q) was not issued by the evoucher CA: enrol with this platform", serial, cert.Subject.CommonName)
	}
	role, entity, err := parseIdentityURIs(cert.URIs)
	if err != nil {
		return Identity{}, unauthorized("malformed_certificate", "certificate %s carries no valid evoucher identity: %v", serial, err)
	}
	id := Identity{Role: role, Entity: entity, Serial: serial, NotAfter: cert.NotAfter}
	if at.Before(cert.NotBefore) {
		return Identity{}, unauthorized("not_yet_valid", "certificate %s for %s is not valid before %s", serial, id, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if at.After(cert.NotAfter) {
		return Identity{}, unauthorized("expired", "certificate %s for %s expired on %s: enrol the %s again", serial, id, cert.NotAfter.UTC().Format(time.RFC3339), role)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: a.roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Identity{}, unauthorized("bad_chain", "certificate %s for %s does not chain to the evoucher CA: %v", serial, id, err)
	}
	var fp []byte
	var revokedAt *time.Time
	var reason *string
	err = a.db.QueryRow(ctx, `SELECT fingerprint, revoked_at, revocation_reason FROM certificates WHERE serial = $1`, serial).
		Scan(&fp, &revokedAt, &reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return Identity{}, unauthorized("unknown_certificate", "certificate %s for %s is not recorded by this platform: enrol the %s again", serial, id, role)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("look up certificate %s: %w", serial, err)
	}
	if sum := sha256.Sum256(cert.Raw); !bytes.Equal(fp, sum[:]) {
		return Identity{}, unauthorized("unknown_certificate", "certificate %s for %s differs from the one recorded under that serial", serial, id)
	}
	if revokedAt != nil && !revokedAt.After(at) {
		return Identity{}, unauthorized("revoked", "certificate for %s %s was revoked on %s (%s); enrol the %s again",
			role, entity, revokedAt.UTC().Format("2006-01-02 15:04:05Z"), *reason, role)
	}
	return id, nil
}

// CheckOffline checks, without the database, that cert chains to ca, was valid at time at and
// carries role; it returns the identity. Parties other than the center (operators, terminals,
// auditors) use it on the center's documents; revocation is theirs to check against the CRL.
func CheckOffline(cert, ca *x509.Certificate, role Role, at time.Time) (Identity, error) {
	if cert == nil || ca == nil {
		return Identity{}, unauthorized("no_certificate", "no certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Identity{}, unauthorized("bad_chain", "certificate %s does not chain to the platform CA at %s: %v", SerialOf(cert), at.UTC().Format(time.RFC3339), err)
	}
	r, entity, err := parseIdentityURIs(cert.URIs)
	if err != nil {
		return Identity{}, unauthorized("malformed_certificate", "certificate %s carries no valid evoucher identity: %v", SerialOf(cert), err)
	}
	if r != role {
		return Identity{}, evoucher.Errorf(evoucher.KindForbidden, "wrong_role", "certificate %s is for %s %s, not %s", SerialOf(cert), r, entity, role)
	}
	return Identity{Role: r, Entity: entity, Serial: SerialOf(cert), NotAfter: cert.NotAfter}, nil
}

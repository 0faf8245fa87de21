// Package pki owns the platform's public-key infrastructure: the CA (its key in the center's
// token), the certificate profile of every role, issuance from CSRs against one-time enrolment
// codes, revocation, CRLs, and the single Verify that every receiver calls before trusting a
// certificate. Certificates, codes, revocations and CRLs live in PostgreSQL. It never holds a
// private key of its own: the CA key is a crypto.Signer, usually a token key.
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/initca"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher"
)

// Meter receives the PKI's domain events; metrics and alarms hang on it.
type Meter interface {
	// Issued is called once per certificate issued.
	Issued(role Role)
	// Refused is called once per refused enrolment ("enrol") or verification ("verify"), with
	// the refusal's reason (for example "revoked", "code_used", "weak_key").
	Refused(op, reason string)
	// Revoked is called once per certificate revoked.
	Revoked(role Role, reason string)
}

type nopMeter struct{}

func (nopMeter) Issued(Role)            {}
func (nopMeter) Refused(string, string) {}
func (nopMeter) Revoked(Role, string)   {}

// Config is what an Authority needs.
type Config struct {
	DB    *pgxpool.Pool
	CA    *x509.Certificate // the platform CA certificate
	CAKey crypto.Signer     // its key, normally in the center token
	Now   func() time.Time  // defaults to time.Now
	Meter Meter             // defaults to one that records nothing
	// CRLValidity is how long a published CRL is valid (default 7 days); a new one is made on
	// every revocation and whenever less than CRLRefresh (default half the validity) remains.
	CRLValidity time.Duration
	CRLRefresh  time.Duration
	// CodeValidity is how long an enrolment code can be used (default 72 hours).
	CodeValidity time.Duration
	// OnRevoke runs inside the revocation's transaction, so what a revocation entails (a
	// terminal's stock quarantined) happens with it or not at all.
	OnRevoke func(ctx context.Context, tx pgx.Tx, r Revocation) error
}

// Authority issues, revokes and verifies the platform's certificates.
type Authority struct {
	db     *pgxpool.Pool
	ca     *x509.Certificate
	caKey  crypto.Signer
	signer *local.Signer
	roots  *x509.CertPool
	now    func() time.Time
	meter  Meter
	crlTTL time.Duration
	crlRef time.Duration
	codeTT time.Duration
	onRev  func(ctx context.Context, tx pgx.Tx, r Revocation) error
}

// New returns an Authority. It fails when the configuration is incomplete, when CA is not a CA
// certificate, or when CAKey is not the key of CA.
func New(cfg Config) (*Authority, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("pki: no database")
	case cfg.CA == nil || cfg.CAKey == nil:
		return nil, errors.New("pki: no CA certificate or key")
	case !cfg.CA.IsCA:
		return nil, errors.New("pki: the CA certificate is not a CA certificate")
	}
	if !samePublicKey(cfg.CA.PublicKey, cfg.CAKey.Public()) {
		return nil, errors.New("pki: the CA key does not match the CA certificate")
	}
	a := &Authority{db: cfg.DB, ca: cfg.CA, caKey: cfg.CAKey, now: cfg.Now, meter: cfg.Meter,
		crlTTL: cfg.CRLValidity, crlRef: cfg.CRLRefresh, codeTT: cfg.CodeValidity, onRev: cfg.OnRevoke}
	if a.now == nil {
		a.now = time.Now
	}
	if a.meter == nil {
		a.meter = nopMeter{}
	}
	if a.crlTTL <= 0 {
		a.crlTTL = 7 * 24 * time.Hour
	}
	if a.crlRef <= 0 || a.crlRef >= a.crlTTL {
		a.crlRef = a.crlTTL / 2
	}
	if a.codeTT <= 0 {
		a.codeTT = 72 * time.Hour
	}
	policy := &config.Signing{Profiles: map[string]*config.SigningProfile{}, Default: config.DefaultConfig()}
	for r, p := range profiles {
		policy.Profiles[string(r)] = p.signingProfile()
	}
	s, err := local.NewSigner(cfg.CAKey, cfg.CA, signer.DefaultSigAlgo(cfg.CAKey), policy)
	if err != nil {
		return nil, fmt.Errorf("pki: CA signer: %w", err)
	}
	a.signer = s
	a.roots = x509.NewCertPool()
	a.roots.AddCert(cfg.CA)
	return a, nil
}

// CA returns the platform CA certificate.
func (a *Authority) CA() *x509.Certificate { return a.ca }

// EnsureCA returns the active platform CA certificate recorded in the database, creating it
// with key when there is none (created reports which). It fails if the recorded CA was made
// with another key.
func EnsureCA(ctx context.Context, db *pgxpool.Pool, key crypto.Signer, keyLabel string) (ca *x509.Certificate, created bool, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7412000002)`); err != nil {
		return nil, false, err
	}
	var der []byte
	err = tx.QueryRow(ctx, `SELECT der FROM ca_certificates WHERE active`).Scan(&der)
	if err == nil {
		ca, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, false, fmt.Errorf("recorded CA certificate: %w", err)
		}
		if !samePublicKey(ca.PublicKey, key.Public()) {
			return nil, false, fmt.Errorf("the recorded CA certificate was made with another key than %q", keyLabel)
		}
		return ca, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, err
	}
	req := &csr.CertificateRequest{
		CN:    "evoucher platform CA",
		Names: []csr.Name{{O: "evoucher"}},
		CA:    &csr.CAConfig{Expiry: (10 * year).String(), PathLenZero: true},
	}
	certPEM, _, err := initca.NewFromSigner(req, key)
	if err != nil {
		return nil, false, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err = parseCertPEM(certPEM)
	if err != nil {
		return nil, false, err
	}
	fp := sha256.Sum256(ca.Raw)
	if _, err := tx.Exec(ctx, `INSERT INTO ca_certificates (fingerprint, der, key_label) VALUES ($1, $2, $3)`,
		fp[:], ca.Raw, keyLabel); err != nil {
		return nil, false, err
	}
	return ca, true, tx.Commit(ctx)
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ab, err1 := x509.MarshalPKIXPublicKey(a)
	bb, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// refuse counts a refusal and returns err unchanged.
func (a *Authority) refuse(op string, err error) error {
	reason := evoucher.ReasonOf(err)
	if reason == "" {
		reason = "other"
	}
	a.meter.Refused(op, reason)
	return err
}

// LoadCA returns the active platform CA certificate and the token label of its key. It returns
// not found when the platform has no CA yet (run init).
func LoadCA(ctx context.Context, db *pgxpool.Pool) (*x509.Certificate, string, error) {
	var der []byte
	var label string
	err := db.QueryRow(ctx, `SELECT der, key_label FROM ca_certificates WHERE active`).Scan(&der, &label)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", evoucher.Errorf(evoucher.KindNotFound, "no_ca", "the platform has no CA yet: run `evoucher init`")
	}
	if err != nil {
		return nil, "", err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, label, err
}

package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/signer"
	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// maxCSRBytes bounds what a hostile client can make us parse.
const maxCSRBytes = 16 << 10

// ParseCSR decodes a PEM or DER certificate request and checks its self-signature. It returns
// an invalid error naming what is wrong.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	if len(b) > maxCSRBytes {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "malformed_csr", "certificate request of %d bytes is larger than the %d accepted", len(b), maxCSRBytes)
	}
	der := b
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, evoucher.Errorf(evoucher.KindInvalid, "malformed_csr", "PEM block is a %q, not a CERTIFICATE REQUEST", block.Type)
		}
		der = block.Bytes
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "malformed_csr", "certificate request cannot be read: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "malformed_csr", "certificate request is not signed by its own key: %v", err)
	}
	return req, nil
}

// IssueRequest asks for a certificate without an enrolment code: for the center's own keys at
// init, or an administrator acting directly.
type IssueRequest struct {
	CSR    *x509.CertificateRequest
	Role   Role
	Entity string
	// Hosts are DNS names or IP addresses, for center-tls certificates only.
	Hosts []string
}

// Issue signs a certificate for req and records it. It returns an invalid error when the
// role, entity, hosts or key do not fit the role's profile.
func (a *Authority) Issue(ctx context.Context, req IssueRequest) (*x509.Certificate, error) {
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	cert, err := a.issue(ctx, tx, req, nil)
	if err != nil {
		return nil, a.refuse("issue", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	a.meter.Issued(req.Role)
	return cert, nil
}

func (a *Authority) issue(ctx context.Context, tx pgx.Tx, req IssueRequest, codeID *int64) (*x509.Certificate, error) {
	p, err := ProfileOf(req.Role)
	if err != nil {
		return nil, err
	}
	if err := CheckEntity(req.Entity); err != nil {
		return nil, err
	}
	if len(req.Hosts) > 0 && req.Role != RoleCenterTLS {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "bad_hosts", "host names go only in center-tls certificates, not %s", req.Role)
	}
	if req.CSR == nil {
		return nil, evoucher.Errorf(evoucher.KindInvalid, "malformed_csr", "no certificate request")
	}
	if err := p.checkKey(req.CSR.PublicKey); err != nil {
		return nil, err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})
	hosts := append([]string{identityURI(req.Role, req.Entity)}, req.Hosts...)
	certPEM, err := a.signer.Sign(signer.SignRequest{
		Request: string(csrPEM),
		Profile: string(req.Role),
		Hosts:   hosts,
		Subject: &signer.Subject{CN: req.Entity, Names: []csr.Name{{O: "evoucher", OU: string(req.Role)}}},
	})
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	fp := sha256.Sum256(cert.Raw)
	if _, err := tx.Exec(ctx, `INSERT INTO certificates
		(serial, role, entity, subject, fingerprint, der, not_before, not_after, issued_at, enrolment_code_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		SerialOf(cert), string(req.Role), req.Entity, cert.Subject.String(), fp[:], cert.Raw,
		cert.NotBefore, cert.NotAfter, a.now().UTC(), codeID); err != nil {
		return nil, fmt.Errorf("record certificate: %w", err)
	}
	return cert, nil
}

// SerialOf returns a certificate's serial number as the platform writes it: lower-case hex.
func SerialOf(cert *x509.Certificate) string { return cert.SerialNumber.Text(16) }

// Code is a one-time enrolment code. It prints as [redacted]; Reveal gives it once to whoever
// hands it to the enrolling party.
type Code string

// String hides the code.
func (Code) String() string { return "[redacted]" }

// GoString hides the code.
func (Code) GoString() string { return "[redacted]" }

// LogValue hides the code from slog.
func (Code) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Reveal returns the code itself.
func (c Code) Reveal() string { return string(c) }

// EnrolmentCode is an issued one-time code and what it allows.
type EnrolmentCode struct {
	Code      Code
	Role      Role
	Entity    string
	ExpiresAt time.Time
}

// IssueCode creates a one-time enrolment code for a certificate of role for entity. Only its
// SHA-256 is stored. It returns an invalid error for an unknown role or malformed entity.
func (a *Authority) IssueCode(ctx context.Context, role Role, entity string) (EnrolmentCode, error) {
	if _, err := ProfileOf(role); err != nil {
		return EnrolmentCode{}, err
	}
	if err := CheckEntity(entity); err != nil {
		return EnrolmentCode{}, err
	}
	raw := make([]byte, 20) // 160 bits: guessing is hopeless, so a plain hash at rest suffices
	if _, err := rand.Read(raw); err != nil {
		return EnrolmentCode{}, err
	}
	s := base32.StdEncoding.EncodeToString(raw)
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	code := Code(strings.Join(groups, "-"))
	now := a.now().UTC()
	exp := now.Add(a.codeTT)
	h := hashCode(string(code))
	if _, err := a.db.Exec(ctx, `INSERT INTO enrolment_codes (code_hash, role, entity, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, h[:], string(role), entity, now, exp); err != nil {
		return EnrolmentCode{}, err
	}
	return EnrolmentCode{Code: code, Role: role, Entity: entity, ExpiresAt: exp}, nil
}

func hashCode(code string) [32]byte {
	norm := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(strings.TrimSpace(code)))
	return sha256.Sum256([]byte(norm))
}

// Enrol issues a certificate for csr against a one-time code, in one transaction: the code is
// used up only if the certificate is issued. wantRole, when not empty, must be the code's role.
// It returns unauthorized for an unknown code, conflict for a used one, unauthorized for an
// expired one, forbidden for a role mismatch and invalid for a weak or malformed request;
// every refusal stores nothing and is counted.
func (a *Authority) Enrol(ctx context.Context, code string, csrBytes []byte, wantRole Role) (*x509.Certificate, error) {
	cert, role, err := a.enrol(ctx, code, csrBytes, wantRole)
	if err != nil {
		if evoucher.KindOf(err) == evoucher.KindInternal {
			return nil, err
		}
		return nil, a.refuse("enrol", err)
	}
	a.meter.Issued(role)
	return cert, nil
}

func (a *Authority) enrol(ctx context.Context, code string, csrBytes []byte, wantRole Role) (*x509.Certificate, Role, error) {
	req, err := ParseCSR(csrBytes)
	if err != nil {
		return nil, "", err
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback(ctx)
	h := hashCode(code)
	var (
		id        int64
		role      Role
		entity    string
		expiresAt time.Time
		usedAt    *time.Time
	)
	err = tx.QueryRow(ctx, `SELECT id, role, entity, expires_at, used_at FROM enrolment_codes
		WHERE code_hash = $1 FOR UPDATE`, h[:]).Scan(&id, &role, &entity, &expiresAt, &usedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", evoucher.Errorf(evoucher.KindUnauthorized, "unknown_code", "enrolment code is not known: check it, or ask for a new one")
	}
	if err != nil {
		return nil, "", err
	}
	now := a.now()
	switch {
	case usedAt != nil:
		return nil, "", evoucher.Errorf(evoucher.KindConflict, "code_used", "enrolment code was already used on %s: ask for a new one", usedAt.UTC().Format(time.RFC3339))
	case !now.Before(expiresAt):
		return nil, "", evoucher.Errorf(evoucher.KindUnauthorized, "code_expired", "enrolment code expired on %s: ask for a new one", expiresAt.UTC().Format(time.RFC3339))
	case wantRole != "" && wantRole != role:
		return nil, "", evoucher.Errorf(evoucher.KindForbidden, "wrong_role", "enrolment code is for a %s certificate, not %s", role, wantRole)
	}
	cert, err := a.issue(ctx, tx, IssueRequest{CSR: req, Role: role, Entity: entity}, &id)
	if err != nil {
		return nil, "", err
	}
	if _, err := tx.Exec(ctx, `UPDATE enrolment_codes SET used_at = $2, certificate_serial = $3 WHERE id = $1`,
		id, now.UTC(), SerialOf(cert)); err != nil {
		return nil, "", err
	}
	return cert, role, tx.Commit(ctx)
}

// NewCSR makes a DER certificate request signed by key, for the parties that enrol
// (terminals, vendor cards, operators, the center's own keys). The subject is informative only:
// the CA sets subject and names from the role and entity.
func NewCSR(key crypto.Signer, commonName string) ([]byte, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: commonName, Organization: []string{"evoucher"}}}
	return x509.CreateCertificateRequest(rand.Reader, tmpl, key)
}

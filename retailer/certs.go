package retailer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// validAt selects the certificates (alias c) valid at $2: within their validity and not
// revoked at or before that instant, as pki.Verify judges them.
const validAt = `c.not_before <= $2 AND c.not_after >= $2 AND (c.revoked_at IS NULL OR c.revoked_at > $2)`

// newestFirst orders a party's certificates so the latest issued comes first.
const newestFirst = `c.issued_at DESC, c.not_before DESC, c.serial DESC`

// TerminalCertificate returns the newest certificate of the terminal (role terminal, entity
// the terminal id) that is valid and unrevoked at at: the one a shipment's share is wrapped
// to. It returns not found ("unknown_terminal") for an unknown terminal and not found
// ("no_certificate") when the terminal has no such certificate.
func (r *Registry) TerminalCertificate(ctx context.Context, terminalID string, at time.Time) (*x509.Certificate, error) {
	tx, err := r.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if err := terminalExists(ctx, tx, terminalID); err != nil {
		return nil, err
	}
	var der []byte
	err = tx.QueryRow(ctx, `SELECT c.der FROM certificates c WHERE c.role = 'terminal' AND c.entity = $1 AND `+validAt+`
		ORDER BY `+newestFirst+` LIMIT 1`, terminalID, at).Scan(&der)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("no_certificate", "terminal %s has no valid certificate: enrol it", terminalID)
	}
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return parseDER(der, "terminal", terminalID)
}

// VendorCards returns, keyed by vendor id, the newest certificate valid and unrevoked at at
// of each active vendor card of the retailer: the cards a shipment's shares are wrapped to.
// Revoked vendors and vendors without such a certificate are left out, so the map may be
// empty. It returns not found ("unknown_retailer") for an unknown retailer.
func (r *Registry) VendorCards(ctx context.Context, retailerID string, at time.Time) (map[string]*x509.Certificate, error) {
	tx, err := r.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := getRetailer(ctx, tx, retailerID); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT ON (v.id) v.id, c.der
		FROM vendors v JOIN certificates c ON c.role = 'vendor' AND c.entity = v.id
		WHERE v.retailer_id = $1 AND v.status = 'active' AND `+validAt+`
		ORDER BY v.id, `+newestFirst, retailerID, at)
	if err != nil {
		return nil, err
	}
	cards := map[string]*x509.Certificate{}
	for rows.Next() {
		var id string
		var der []byte
		if err := rows.Scan(&id, &der); err != nil {
			rows.Close()
			return nil, err
		}
		cert, err := parseDER(der, "vendor", id)
		if err != nil {
			rows.Close()
			return nil, err
		}
		cards[id] = cert
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return cards, tx.Commit(ctx)
}

// parseDER parses a certificate pki recorded; a failure is a corrupt database, so it is an
// internal error.
func parseDER(der []byte, role, entity string) (*x509.Certificate, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("recorded %s certificate of %s: %w", role, entity, err)
	}
	return cert, nil
}

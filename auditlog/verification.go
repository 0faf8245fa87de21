package auditlog

import (
	"bytes"
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
)

// The outcomes of a verification.
const (
	VerificationOK     = "ok"
	VerificationFailed = "failed"
)

// VerificationReport is what an auditor's tool reports after verifying the log against the
// center: the checkpoint it verified (Root and Note are empty when the run failed before a
// checkpoint was verified), the entries it checked, the outcome and how long it took.
type VerificationReport struct {
	Size           uint64
	Root           []byte
	Note           []byte
	From           uint64 // the size verified before this run
	EntriesChecked uint64
	Outcome        string // VerificationOK or VerificationFailed
	Reason         string // the first bad entry's or checkpoint's, when failed
	Duration       time.Duration
}

// Verification is a verification report as the center recorded it: who made it (the client
// certificate's identity), when, and whether the reported root is the center's own tree at
// that size (nil when no root was reported).
type Verification struct {
	ID             int64
	ReporterRole   string
	Reporter       string
	ReporterSerial string
	ReportedAt     time.Time
	VerificationReport
	RootMatches *bool
	CenterRoot  []byte // the center's root at Size; nil when its log is smaller
}

// maxReason bounds a reported reason.
const maxReason = 4000

func (r VerificationReport) check() error {
	switch {
	case r.Outcome != VerificationOK && r.Outcome != VerificationFailed:
		return evoucher.Errorf(evoucher.KindInvalid, "bad_outcome", "outcome must be %q or %q, not %q", VerificationOK, VerificationFailed, r.Outcome)
	case r.Outcome == VerificationOK && (len(r.Root) != 32 || len(r.Note) == 0):
		return evoucher.Errorf(evoucher.KindInvalid, "no_checkpoint", "a verification that succeeded names the checkpoint it verified: its 32-byte root and signed note")
	case r.Root != nil && len(r.Root) != 32:
		return evoucher.Errorf(evoucher.KindInvalid, "bad_root", "a root hash has 32 bytes, not %d", len(r.Root))
	case r.Outcome == VerificationFailed && r.Reason == "":
		return evoucher.Errorf(evoucher.KindInvalid, "no_reason", "a failed verification says why")
	case len(r.Reason) > maxReason:
		return evoucher.Errorf(evoucher.KindInvalid, "reason_too_long", "the reason has %d bytes, at most %d", len(r.Reason), maxReason)
	case r.From > r.Size || r.EntriesChecked > r.Size:
		return evoucher.Errorf(evoucher.KindInvalid, "bad_range", "from %d and %d entries checked do not fit a checkpoint of size %d", r.From, r.EntriesChecked, r.Size)
	case r.Duration < 0:
		return evoucher.Errorf(evoucher.KindInvalid, "bad_duration", "a duration is not negative")
	}
	return nil
}

// RecordVerification stores an auditor's report, made by the client certificate by, after
// checking the reported root against the log's own tree at the reported size. A root that is
// not the center's, or a failed verification, raises a security alarm about the exchange log
// in the same statement (migration 0011). It returns invalid when the report is malformed.
func (l *Log) RecordVerification(ctx context.Context, by pki.Identity, r VerificationReport) (Verification, error) {
	if err := r.check(); err != nil {
		return Verification{}, err
	}
	v := Verification{ReporterRole: string(by.Role), Reporter: by.Entity, ReporterSerial: by.Serial, ReportedAt: l.now().UTC(), VerificationReport: r}
	if r.Root != nil {
		// The log is append-only, so its root at a size never changes: no transaction needed.
		size, err := l.Size(ctx)
		if err != nil {
			return Verification{}, err
		}
		if r.Size <= size {
			if v.CenterRoot, err = l.Root(ctx, r.Size); err != nil {
				return Verification{}, err
			}
		}
		match := bytes.Equal(v.CenterRoot, r.Root)
		v.RootMatches = &match
	}
	err := l.db.QueryRow(ctx, `INSERT INTO audit_verifications (reporter_role, reporter, reporter_serial, reported_at, size, root,
			checkpoint, from_size, entries_checked, outcome, reason, duration_ms, root_matches, center_root)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
		v.ReporterRole, v.Reporter, v.ReporterSerial, v.ReportedAt, int64(r.Size), r.Root, r.Note, int64(r.From),
		int64(r.EntriesChecked), r.Outcome, r.Reason, r.Duration.Milliseconds(), v.RootMatches, v.CenterRoot).Scan(&v.ID)
	if err != nil {
		return Verification{}, err
	}
	return v, nil
}

// Verifications returns the latest recorded verifications, newest first (limit defaults to 10,
// at most 100).
func (l *Log) Verifications(ctx context.Context, limit int) ([]Verification, error) {
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, 100)
	rows, err := l.db.Query(ctx, `SELECT id, reporter_role, reporter, reporter_serial, reported_at, size, root, checkpoint,
			from_size, entries_checked, outcome, reason, duration_ms, root_matches, center_root
		FROM audit_verifications ORDER BY reported_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Verification, error) {
		var v Verification
		var size, from, checked, ms int64
		err := row.Scan(&v.ID, &v.ReporterRole, &v.Reporter, &v.ReporterSerial, &v.ReportedAt, &size, &v.Root, &v.Note,
			&from, &checked, &v.Outcome, &v.Reason, &ms, &v.RootMatches, &v.CenterRoot)
		v.Size, v.From, v.EntriesChecked, v.Duration = uint64(size), uint64(from), uint64(checked), time.Duration(ms)*time.Millisecond
		return v, err
	})
}

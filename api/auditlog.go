package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
)

// AuditLog is what the HTTP layer reads of the exchange log (package auditlog).
type AuditLog interface {
	Latest(ctx context.Context) (auditlog.Checkpoint, error)
	Entries(ctx context.Context, from, to uint64) ([]auditlog.Entry, error)
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error)
	Find(ctx context.Context, messageID string) (auditlog.Entry, error)
	// RecordVerification stores an auditor's report of a verification, made by the identity.
	RecordVerification(ctx context.Context, by pki.Identity, r auditlog.VerificationReport) (auditlog.Verification, error)
}

// maxEntries bounds one page of entries.
const maxEntries = 1000

// LogEntry is an entry as the log API serves it; Data is the message, byte-exact, in base64.
type LogEntry struct {
	Index     uint64    `json:"index"`
	Type      string    `json:"type"`
	Sender    string    `json:"sender"`
	Recipient string    `json:"recipient"`
	MessageID string    `json:"message_id"`
	Time      time.Time `json:"time"`
	Data      []byte    `json:"data"`
}

func (s *Server) logCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := s.xlog.Latest(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(cp.Note)
}

func uintParam(r *http.Request, name string) (uint64, error) {
	v, err := strconv.ParseUint(r.URL.Query().Get(name), 10, 64)
	if err != nil {
		return 0, evoucher.Errorf(evoucher.KindInvalid, "bad_parameter", "parameter %s must be a non-negative integer", name)
	}
	return v, nil
}

func (s *Server) logEntries(w http.ResponseWriter, r *http.Request) {
	from, err1 := uintParam(r, "from")
	to, err2 := uintParam(r, "to")
	if err := firstErr(err1, err2); err != nil {
		s.writeError(w, r, err)
		return
	}
	if to > from+maxEntries {
		to = from + maxEntries
	}
	es, err := s.xlog.Entries(r.Context(), from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]LogEntry, len(es))
	for i, e := range es {
		out[i] = LogEntry{Index: e.Index, Type: e.Type, Sender: e.Sender, Recipient: e.Recipient, MessageID: e.MessageID, Time: e.Time, Data: e.Data}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) logInclusion(w http.ResponseWriter, r *http.Request) {
	var index uint64
	var err error
	if id := r.URL.Query().Get("message_id"); id != "" {
		e, ferr := s.xlog.Find(r.Context(), id)
		if ferr != nil {
			s.writeError(w, r, ferr)
			return
		}
		index = e.Index
	} else if index, err = uintParam(r, "index"); err != nil {
		s.writeError(w, r, err)
		return
	}
	size, err := uintParam(r, "size")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.xlog.InclusionProof(r.Context(), index, size)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"index": index, "size": size, "proof": encodeProof(p)})
}

func (s *Server) logConsistency(w http.ResponseWriter, r *http.Request) {
	from, err1 := uintParam(r, "from")
	to, err2 := uintParam(r, "to")
	if err := firstErr(err1, err2); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.xlog.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "proof": encodeProof(p)})
}

func encodeProof(p [][]byte) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// VerificationReport is the body of POST /v1/log/verifications: what `evoucher audit verify`
// reports after a run against the center. The reporter is the client certificate, never the
// body.
type VerificationReport struct {
	Size           uint64 `json:"size"`                 // the checkpoint's
	Root           string `json:"root,omitempty"`       // hex; empty when no checkpoint was verified
	Checkpoint     string `json:"checkpoint,omitempty"` // the signed note verified
	From           uint64 `json:"from"`                 // the size verified before this run
	EntriesChecked uint64 `json:"entries_checked"`
	Outcome        string `json:"outcome"`          // "ok" or "failed"
	Reason         string `json:"reason,omitempty"` // the first bad entry's or checkpoint's, when failed
	DurationMS     int64  `json:"duration_ms"`
}

// VerificationRecord is the answer of POST /v1/log/verifications: the report as recorded.
type VerificationRecord struct {
	ID           int64     `json:"id"`
	ReporterRole string    `json:"reporter_role"`
	Reporter     string    `json:"reporter"`
	ReportedAt   time.Time `json:"reported_at"`
	Size         uint64    `json:"size"`
	Outcome      string    `json:"outcome"`
	RootMatches  *bool     `json:"root_matches"` // null when no root was reported
}

func (s *Server) logVerification(w http.ResponseWriter, r *http.Request) {
	var req VerificationReport
	if err := decodeJSON(w, r, &req, 64<<10); err != nil {
		s.writeError(w, r, err)
		return
	}
	var root []byte
	if req.Root != "" {
		var err error
		if root, err = hex.DecodeString(req.Root); err != nil {
			s.writeError(w, r, evoucher.Errorf(evoucher.KindInvalid, "bad_root", "root must be a hex hash: %v", err))
			return
		}
	}
	id, _ := IdentityFrom(r.Context())
	v, err := s.xlog.RecordVerification(r.Context(), id, auditlog.VerificationReport{Size: req.Size, Root: root, Note: []byte(req.Checkpoint),
		From: req.From, EntriesChecked: req.EntriesChecked, Outcome: req.Outcome, Reason: req.Reason, Duration: time.Duration(req.DurationMS) * time.Millisecond})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v.RootMatches != nil && !*v.RootMatches {
		s.log.ErrorContext(r.Context(), "an auditor verified a root that is not the center's tree", "reporter", id.Entity, "role", id.Role,
			"serial", id.Serial, "size", v.Size, "root", req.Root)
	} else {
		s.log.InfoContext(r.Context(), "log verification reported", "reporter", id.Entity, "role", id.Role, "size", v.Size, "outcome", v.Outcome)
	}
	writeJSON(w, http.StatusCreated, VerificationRecord{ID: v.ID, ReporterRole: v.ReporterRole, Reporter: v.Reporter, ReportedAt: v.ReportedAt,
		Size: v.Size, Outcome: v.Outcome, RootMatches: v.RootMatches})
}

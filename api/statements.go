package api

import (
	"context"
	"net/http"
	"time"

	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/xml/message"
)

// Statements serves a party's signed settlement statements (package ledger).
type Statements interface {
	Statements(ctx context.Context, kind, party string, limit int) ([]ledger.Statement, error)
	StatementByID(ctx context.Context, id string) (ledger.Statement, error)
}

// StatementInfo is one statement as GET /v1/operator/statements lists it; Document is the
// signed Statement XML, which the operator verifies.
type StatementInfo struct {
	ID        string    `json:"id"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	MessageID string    `json:"message_id"`
	CreatedAt time.Time `json:"created_at"`
	Document  string    `json:"document"`
}

// operatorStatements lists the calling operator's statements, newest first (at most 100), each
// with its signed document: an operator sees only its own.
func (s *Server) operatorStatements(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	list, err := s.stmts.Statements(r.Context(), message.PartyOperator, id.Entity, 100)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]StatementInfo, 0, len(list))
	for _, st := range list {
		full, err := s.stmts.StatementByID(r.Context(), st.ID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out = append(out, StatementInfo{ID: st.ID, From: st.From, To: st.To, MessageID: st.MessageID, CreatedAt: st.CreatedAt, Document: string(full.Document)})
	}
	writeJSON(w, http.StatusOK, out)
}

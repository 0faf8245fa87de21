package api

import (
	"encoding/csv"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
)

// requireRole admits only authenticated clients of one of roles.
func requireRole(s *Server, roles ...pki.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := IdentityFrom(r.Context())
			if !ok || !slices.Contains(roles, id.Role) {
				s.metrics.PKI.Refused("authorize", "wrong_role")
				s.writeError(w, r, evoucher.Errorf(evoucher.KindForbidden, "wrong_role", "%s may not call %s %s", id, r.Method, r.URL.Path))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (s *Server) centerCert(w http.ResponseWriter, r *http.Request) {
	c, ok := s.certs[chi.URLParam(r, "name")]
	if !ok {
		s.writeError(w, r, evoucher.Errorf(evoucher.KindNotFound, "unknown_certificate", "no certificate %s.pem", chi.URLParam(r, "name")))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// exchange takes one signed XML document and answers with the signed response.
func (s *Server) exchange(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxMsg))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		s.writeError(w, r, evoucher.Errorf(evoucher.KindInvalid, "too_large", "document larger than %d bytes: send the lot in more parts", s.maxMsg))
		return
	}
	if err != nil {
		s.writeError(w, r, evoucher.Errorf(evoucher.KindInvalid, "malformed_request", "could not read the document: %v", err))
		return
	}
	resp, err := s.xchg.Receive(r.Context(), id, raw)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(resp)
}

// OrderInfo is one purchase order as GET /v1/operator/orders lists it; Document is the signed
// PurchaseOrder XML, which the operator verifies.
type OrderInfo struct {
	ID        string    `json:"id"`
	Product   string    `json:"product"`
	Quantity  int       `json:"quantity"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	Document  string    `json:"document"`
}

func (s *Server) operatorOrders(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "open"
	} else if state == "all" {
		state = ""
	}
	orders, err := s.orders.Orders(r.Context(), id.Entity, state)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]OrderInfo, 0, len(orders))
	for _, o := range orders {
		out = append(out, OrderInfo{ID: o.ID, Product: o.Product, Quantity: o.Quantity, State: o.State, CreatedAt: o.CreatedAt, Document: string(o.Document)})
	}
	writeJSON(w, http.StatusOK, out)
}

// terminalShipments answers a terminal's sync with the signed Shipments it has not yet
// acknowledged, the key shares of vendor cards enrolled since earlier shipments were sent, its
// selling mode and the center's unresolved alarms about it: {"shipments": [signed XML, …],
// "share_updates": [signed XML, …], "online_mode": bool, "alarms": [{kind, message, state, since}, …]}.
func (s *Server) terminalShipments(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	docs, err := s.terms.PendingShipments(r.Context(), id.Entity)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	shares, err := s.terms.ShareUpdates(r.Context(), id.Entity)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	online, err := s.terms.OnlineMode(r.Context(), id.Entity)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	alarms, err := s.terms.TerminalAlarms(r.Context(), id.Entity)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	strs := func(docs [][]byte) []string {
		out := make([]string, len(docs))
		for i, d := range docs {
			out[i] = string(d)
		}
		return out
	}
	writeJSON(w, http.StatusOK, map[string]any{"shipments": strs(docs), "share_updates": strs(shares), "online_mode": online, "alarms": alarms})
}

// quarantine lists quarantined serials for the operator to block: an operator sees only its
// own codes; managers and auditors see all, optionally of one terminal. ?format=csv gives CSV.
func (s *Server) quarantine(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	op := r.URL.Query().Get("operator")
	if id.Role == pki.RoleOperatorSign {
		op = id.Entity
	}
	codes, err := s.terms.Quarantined(r.Context(), op, r.URL.Query().Get("terminal"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="quarantined.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"operator", "product", "serial", "terminal", "expires"})
		for _, c := range codes {
			_ = cw.Write([]string{c.Operator, c.Product, c.Serial, c.Terminal, c.Expires.Format(time.DateOnly)})
		}
		cw.Flush()
		return
	}
	writeJSON(w, http.StatusOK, codes)
}

// AuthorizeRequest is a terminal in online mode asking to sell one code.
type AuthorizeRequest struct {
	Serial string    `json:"serial"`
	Ticket string    `json:"ticket"`
	Vendor string    `json:"vendor"`
	Time   time.Time `json:"time"`
}

// authorize records one sale before the terminal prints it.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	var req AuthorizeRequest
	if err := decodeJSON(w, r, &req, 4<<10); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Serial == "" || req.Ticket == "" || req.Vendor == "" {
		s.writeError(w, r, evoucher.Errorf(evoucher.KindInvalid, "malformed_request", "serial, ticket and vendor are required"))
		return
	}
	if req.Time.IsZero() {
		req.Time = s.now()
	}
	if err := s.terms.Authorize(r.Context(), id.Entity, message.Sale{Serial: req.Serial, Ticket: req.Ticket, Vendor: req.Vendor, Time: req.Time.UTC()}); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"authorized": true, "serial": req.Serial, "ticket": req.Ticket})
}

// Package api owns the center's HTTP surface (chi): TLS with client certificates checked by
// pki on every machine request, the authenticated identity in the request context, health,
// readiness and metrics endpoints, the public PKI files, enrolment, and the one mapping of
// error kinds to HTTP statuses. It never decides anything the domain packages own.
package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
)

// Authority is what the HTTP layer needs of the PKI.
type Authority interface {
	Identify(ctx context.Context, cert *x509.Certificate, at time.Time) (pki.Identity, error)
	Enrol(ctx context.Context, code string, csr []byte, role pki.Role) (*x509.Certificate, error)
	CRL(ctx context.Context) ([]byte, error)
	CA() *x509.Certificate
}

// Exchange takes the signed XML documents machines send (package codevault).
type Exchange interface {
	Receive(ctx context.Context, peer pki.Identity, raw []byte) ([]byte, error)
}

// Terminals serves what terminals fetch and what operators are told about lost stock
// (package codevault).
type Terminals interface {
	PendingShipments(ctx context.Context, terminalID string) ([][]byte, error)
	ShareUpdates(ctx context.Context, terminalID string) ([][]byte, error)
	Authorize(ctx context.Context, terminalID string, s message.Sale) error
	Quarantined(ctx context.Context, operatorID, terminalID string) ([]codevault.QuarantinedCode, error)
	// OnlineMode tells the terminal, at each sync, whether the center wants every sale
	// authorised online before its ticket prints.
	OnlineMode(ctx context.Context, terminalID string) (bool, error)
	// TerminalAlarms lists the center's unresolved alarms about the terminal, for its screen.
	TerminalAlarms(ctx context.Context, terminalID string) ([]codevault.TerminalAlarm, error)
}

// Orders lists an operator's purchase orders (package operator).
type Orders interface {
	Orders(ctx context.Context, operatorID, state string) ([]operator.Order, error)
}

// Check is one readiness probe: a name and a function that fails when the dependency is down.
type Check struct {
	Name string
	Fn   func(context.Context) error
}

// Config is what a Server needs.
type Config struct {
	Authority Authority
	Ready     []Check
	Logger    *slog.Logger
	Metrics   *Metrics
	Now       func() time.Time
	Exchange  Exchange
	Orders    Orders
	// Statements, when set, serves operators their signed settlement statements.
	Statements Statements
	Terminals  Terminals
	// CenterCerts are the center's public certificates served under /pki/NAME.pem, for
	// example "center-encrypt" (operators encrypt batches to it) and "center-sign".
	CenterCerts map[string]*x509.Certificate
	// MaxMessageBytes bounds a document sent to /v1/exchange (default 32 MiB).
	MaxMessageBytes int64
	// Log is the exchange log auditors read.
	Log AuditLog
	// Alarms, when set, serves /v1/alarms to managers and auditors (package codevault).
	Alarms Alarms
	// Dashboard, when set, mounts the web dashboard and its session JSON API (package
	// api/dashboard) next to the machine routes.
	Dashboard Routes
}

// Routes is a set of routes mounted on the server's router.
type Routes interface {
	Routes(r chi.Router)
}

// Server serves the center's HTTP API.
type Server struct {
	auth    Authority
	ready   []Check
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	router  chi.Router
	xchg    Exchange
	orders  Orders
	stmts   Statements
	terms   Terminals
	certs   map[string]*x509.Certificate
	maxMsg  int64
	xlog    AuditLog
}

// New returns a Server. It fails when the configuration lacks the authority, logger or metrics.
func New(cfg Config) (*Server, error) {
	if cfg.Authority == nil || cfg.Logger == nil || cfg.Metrics == nil {
		return nil, errors.New("api: authority, logger and metrics are required")
	}
	s := &Server{auth: cfg.Authority, ready: cfg.Ready, log: cfg.Logger, metrics: cfg.Metrics, now: cfg.Now,
		xchg: cfg.Exchange, orders: cfg.Orders, stmts: cfg.Statements, terms: cfg.Terminals, xlog: cfg.Log, certs: cfg.CenterCerts, maxMsg: cfg.MaxMessageBytes}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxMsg <= 0 {
		s.maxMsg = 32 << 20
	}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, s.observe)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", promhttp.HandlerFor(cfg.Metrics.registry, promhttp.HandlerOpts{}))
	r.Get("/pki/ca.pem", s.caPEM)
	r.Get("/pki/crl", s.crl)
	r.Get("/pki/{name}.pem", s.centerCert)
	r.Post("/v1/enrol", s.enrol)
	r.Group(func(r chi.Router) {
		r.Use(s.requireClient)
		r.Get("/v1/whoami", s.whoami)
		if s.xchg != nil {
			r.With(requireRole(s, pki.RoleOperatorSign, pki.RoleTerminal)).Post("/v1/exchange", s.exchange)
		}
		if s.orders != nil {
			r.With(requireRole(s, pki.RoleOperatorSign)).Get("/v1/operator/orders", s.operatorOrders)
		}
		if s.stmts != nil {
			r.With(requireRole(s, pki.RoleOperatorSign)).Get("/v1/operator/statements", s.operatorStatements)
		}
		if s.xlog != nil {
			// The exchange log, read-only, for auditors (and managers).
			r.Group(func(r chi.Router) {
				r.Use(requireRole(s, pki.RoleAuditor, pki.RoleManager))
				r.Get("/v1/log/checkpoint", s.logCheckpoint)
				r.Get("/v1/log/entries", s.logEntries)
				r.Get("/v1/log/proof/inclusion", s.logInclusion)
				r.Get("/v1/log/proof/consistency", s.logConsistency)
				// What the auditor's tool reports after verifying the log (who: the certificate).
				r.Post("/v1/log/verifications", s.logVerification)
			})
		}
		if s.terms != nil {
			r.With(requireRole(s, pki.RoleTerminal)).Get("/v1/terminal/shipments", s.terminalShipments)
			r.With(requireRole(s, pki.RoleTerminal)).Post("/v1/terminal/authorize", s.authorize)
			r.With(requireRole(s, pki.RoleOperatorSign, pki.RoleManager, pki.RoleAuditor)).Get("/v1/quarantine", s.quarantine)
		}
		// Alarms (api/alarms.go).
		if cfg.Alarms != nil {
			s.alarmRoutes(r, cfg.Alarms)
		}
	})
	if cfg.Dashboard != nil {
		cfg.Dashboard.Routes(r)
	}
	s.router = r
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.router }

// TLSConfig returns the server side TLS configuration: the server certificate, TLS 1.2 at
// least, and client certificates requested (not required at the handshake: the enrolment
// endpoint and health checks have none, and a refused certificate gets a clear error rather
// than a bare handshake alert). Every machine route then requires one checked by pki.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequestClientCert,
	}
}

type ctxKey struct{}

// IdentityFrom returns the authenticated client identity of a request, if any.
func IdentityFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(pki.Identity)
	return id, ok
}

// requireClient admits only requests with a client certificate that pki accepts now.
func (s *Server) requireClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cert *x509.Certificate
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cert = r.TLS.PeerCertificates[0]
		}
		id, err := s.auth.Identify(r.Context(), cert, s.now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status := map[string]string{}
	code := http.StatusOK
	for _, c := range s.ready {
		if err := c.Fn(ctx); err != nil {
			s.log.ErrorContext(ctx, "readiness check failed", "check", c.Name, "err", err)
			status[c.Name] = "unavailable"
			code = http.StatusServiceUnavailable
			continue
		}
		status[c.Name] = "ok"
	}
	writeJSON(w, code, status)
}

func (s *Server) caPEM(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: s.auth.CA().Raw})
}

func (s *Server) crl(w http.ResponseWriter, r *http.Request) {
	der, err := s.auth.CRL(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(der)
}

// EnrolRequest is the body of POST /v1/enrol.
type EnrolRequest struct {
	Code string `json:"code"`
	CSR  string `json:"csr"`            // PEM
	Role string `json:"role,omitempty"` // optional: the role the client expects
}

// EnrolResponse is the answer to a successful enrolment.
type EnrolResponse struct {
	Certificate string    `json:"certificate"` // PEM
	CA          string    `json:"ca"`          // PEM
	Role        string    `json:"role"`
	Entity      string    `json:"entity"`
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
}

func (s *Server) enrol(w http.ResponseWriter, r *http.Request) {
	var req EnrolRequest
	if err := decodeJSON(w, r, &req, 64<<10); err != nil {
		s.metrics.PKI.Refused("enrol", "malformed_request")
		s.writeError(w, r, err)
		return
	}
	var role pki.Role
	if req.Role != "" {
		var err error
		if role, err = pki.ParseRole(req.Role); err != nil {
			s.metrics.PKI.Refused("enrol", "unknown_role")
			s.writeError(w, r, err)
			return
		}
	}
	cert, err := s.auth.Enrol(r.Context(), req.Code, []byte(req.CSR), role)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := s.auth.Identify(r.Context(), cert, s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "certificate enrolled", "role", id.Role, "entity", id.Entity, "serial", id.Serial)
	writeJSON(w, http.StatusCreated, EnrolResponse{
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		CA:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.auth.CA().Raw})),
		Role:        string(id.Role), Entity: id.Entity, Serial: id.Serial, NotAfter: cert.NotAfter,
	})
}

// WhoAmI is the answer of GET /v1/whoami: the identity the server sees.
type WhoAmI struct {
	Role     string    `json:"role"`
	Entity   string    `json:"entity"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	id, _ := IdentityFrom(r.Context())
	writeJSON(w, http.StatusOK, WhoAmI{Role: string(id.Role), Entity: id.Entity, Serial: id.Serial, NotAfter: id.NotAfter})
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return evoucher.Errorf(evoucher.KindInvalid, "malformed_request", "request body is not the expected JSON: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

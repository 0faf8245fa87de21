// Package dashboard is the center's web dashboard and its session-authenticated JSON API:
// login with a password, server-side sessions in HttpOnly, Secure, SameSite=Strict cookies,
// an anti-forgery token on every state-changing request, and pages and JSON scoped by the
// user's role (package access). Pages are server-rendered with html/template, charts are
// server-side SVG, and alarms arrive live over server-sent events. It never shows a code's PIN:
// the domain packages it reads never return one. Error kinds become statuses through
// api.StatusOf, the one mapping.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/retailer"
)

// Access logs users in and finds their sessions (package access).
type Access interface {
	Login(ctx context.Context, name string, pw access.Password) (access.Session, error)
	Session(ctx context.Context, t access.Token) (access.Session, error)
	Logout(ctx context.Context, t access.Token) error
}

// Vault is what the dashboard reads of the code vault and the alarms it handles (package
// codevault).
type Vault interface {
	StockOverview(ctx context.Context, s codevault.Scope) ([]codevault.ProductStock, error)
	TerminalStocks(ctx context.Context, s codevault.Scope) ([]codevault.TerminalStock, error)
	SalesPerDay(ctx context.Context, s codevault.Scope, days int) ([]codevault.DaySales, error)
	ScopedAlarms(ctx context.Context, f codevault.AlarmFilter, s codevault.Scope) ([]codevault.Alarm, error)
	Alarm(ctx context.Context, id int64, s codevault.Scope) (codevault.Alarm, error)
	Acknowledge(ctx context.Context, id int64) (codevault.Alarm, error)
	Resolve(ctx context.Context, id int64) (codevault.Alarm, error)
	ListenAlarms(ctx context.Context, fn func(codevault.Alarm)) error
	Batches(ctx context.Context, f codevault.JournalFilter) ([]codevault.BatchEntry, error)
	Shipments(ctx context.Context, f codevault.JournalFilter) ([]codevault.ShipmentEntry, error)
	Sales(ctx context.Context, f codevault.JournalFilter) ([]codevault.SaleEntry, error)
	PurchaseOrders(ctx context.Context, f codevault.JournalFilter) ([]codevault.OrderEntry, error)
	Refusals(ctx context.Context, f codevault.JournalFilter) ([]codevault.RefusalEntry, error)
	Quarantined(ctx context.Context, operatorID, terminalID string) ([]codevault.QuarantinedCode, error)
}

// Shops is the retailer registry (package retailer).
type Shops interface {
	Retailers(ctx context.Context) ([]retailer.Retailer, error)
	Retailer(ctx context.Context, id string) (retailer.Retailer, error)
	CreateRetailer(ctx context.Context, rt retailer.Retailer) error
	Terminals(ctx context.Context, retailerID string) ([]retailer.Terminal, error)
	Terminal(ctx context.Context, id string) (retailer.Terminal, error)
	AddTerminal(ctx context.Context, t retailer.Terminal) error
	Vendors(ctx context.Context, retailerID string) ([]retailer.Vendor, error)
	Vendor(ctx context.Context, id string) (retailer.Vendor, error)
	AddVendor(ctx context.Context, v retailer.Vendor) error
	SetLevel(ctx context.Context, l retailer.Level) error
	Levels(ctx context.Context, terminalID string) ([]retailer.Level, error)
}

// Operators is the operator registry (package operator).
type Operators interface {
	Operators(ctx context.Context) ([]operator.Operator, error)
	Products(ctx context.Context, operatorID string) ([]operator.Product, error)
	CreateOperator(ctx context.Context, o operator.Operator) error
	CreateProduct(ctx context.Context, p operator.Product) error
}

// PKI issues enrolment codes, lists and revokes certificates (package pki).
type PKI interface {
	IssueCode(ctx context.Context, role pki.Role, entity string) (pki.EnrolmentCode, error)
	List(ctx context.Context, role pki.Role, entity string) ([]pki.Certificate, error)
	Revoke(ctx context.Context, serial, reason string) (pki.Revocation, error)
}

// AuditLog is the signed exchange log (package auditlog).
type AuditLog interface {
	Latest(ctx context.Context) (auditlog.Checkpoint, error)
	Size(ctx context.Context) (uint64, error)
	Verifications(ctx context.Context, limit int) ([]auditlog.Verification, error)
}

// Config is what a Dashboard needs; every field down to Logger is required.
type Config struct {
	Access    Access
	Vault     Vault
	Shops     Shops
	Operators Operators
	PKI       PKI
	Log       AuditLog
	Money     Money
	Logger    *slog.Logger
	Now       func() time.Time // default time.Now
	// LoginLimit bounds login attempts per client address; zero: DefaultLoginLimit.
	LoginLimit LoginLimit
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header names the client to
	// the login limiter; none by default, so the connection's address is the client's.
	TrustedProxies []netip.Prefix
	// Meter counts throttled logins (reason "throttled"); optional.
	Meter LoginMeter
}

// Dashboard serves the pages and the session JSON API.
type Dashboard struct {
	Config
	pages  map[string]*pageTemplate
	events *broker
	logins *loginLimiter
	done   chan struct{}
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns a Dashboard; it fails when a dependency is missing, the login limit is negative or
// a template does not parse.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Access == nil || cfg.Vault == nil || cfg.Shops == nil || cfg.Operators == nil || cfg.PKI == nil ||
		cfg.Log == nil || cfg.Money == nil || cfg.Logger == nil {
		return nil, errors.New("dashboard: access, vault, shops, operators, pki, log, money and logger are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Meter == nil {
		cfg.Meter = nopMeter{}
	}
	var err error
	if cfg.LoginLimit, err = cfg.LoginLimit.withDefaults(); err != nil {
		return nil, err
	}
	d := &Dashboard{Config: cfg, logins: newLoginLimiter(cfg.LoginLimit), done: make(chan struct{})}
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	d.events = newBroker(cfg.Vault, cfg.Logger)
	return d, nil
}

// Shutdown ends the live event streams, so that a server shutting down is not held open by
// them. Call it once (http.Server.RegisterOnShutdown).
func (d *Dashboard) Shutdown() { close(d.done) }

type principalKey struct{}

type sessionKey struct{}

// principal returns the logged-in user of a request behind d.authenticated.
func principal(r *http.Request) access.Principal {
	p, _ := r.Context().Value(principalKey{}).(access.Principal)
	return p
}

func sessionToken(r *http.Request) access.Token {
	t, _ := r.Context().Value(sessionKey{}).(access.Token)
	return t
}

func scopeOf(p access.Principal) codevault.Scope {
	return codevault.Scope{Retailer: p.Retailer, Operator: p.Operator}
}

// Cookie names: the __Host- prefix makes browsers insist on Secure, Path=/ and no Domain.
const (
	sessionCookie = "__Host-evoucher_session"
	loginCookie   = "__Host-evoucher_login"
)

// Routes mounts the dashboard on r: /login, /logout, /ui/…, /api/v1/…, /openapi.json and
// /static/….
func (d *Dashboard) Routes(r chi.Router) {
	r.Get("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	r.Get("/openapi.json", d.openAPI)
	r.Get("/static/*", http.FileServerFS(staticFS).ServeHTTP)
	r.Get("/login", d.loginPage)
	r.Post("/login", d.login)
	r.Group(func(r chi.Router) {
		r.Use(d.authenticated(false), d.csrf)
		r.Post("/logout", d.logout)
		d.pageRoutes(r)
	})
	r.Route("/api/v1", func(r chi.Router) {
		r.Use(d.authenticated(true), d.csrf)
		d.jsonRoutes(r)
	})
}

// authenticated admits requests with a live session. Others are sent to the login page
// (pages) or answered 401 (JSON).
func (d *Dashboard) authenticated(jsonAPI bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := r.Cookie(sessionCookie)
			var sess access.Session
			if err == nil {
				sess, err = d.Access.Session(r.Context(), access.Token(c.Value))
			}
			if err != nil {
				if !jsonAPI && r.Method == http.MethodGet {
					http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				if errors.Is(err, http.ErrNoCookie) {
					err = evoucher.Errorf(evoucher.KindUnauthorized, "no_session", "not logged in: log in at /login")
				}
				d.fail(w, r, jsonAPI, err)
				return
			}
			ctx := context.WithValue(r.Context(), principalKey{}, sess.Principal)
			ctx = context.WithValue(ctx, sessionKey{}, sess.Token)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// csrf refuses a state-changing request whose anti-forgery token (form field "csrf" or header
// X-CSRF-Token) is not the session's, or which comes from another origin.
func (d *Dashboard) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		got := r.Header.Get("X-CSRF-Token")
		if got == "" {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			got = r.PostFormValue("csrf")
		}
		if !access.CheckCSRF(sessionToken(r), got) || !sameOrigin(r) {
			d.fail(w, r, isJSON(r), evoucher.Errorf(evoucher.KindForbidden, "bad_csrf",
				"the form's anti-forgery token is missing or wrong: reload the page and try again"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin refuses a request whose Origin header (sent by browsers on POST) names another host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || o == "https://"+r.Host
}

func isJSON(r *http.Request) bool { return len(r.URL.Path) >= 5 && r.URL.Path[:5] == "/api/" }

// need admits only users holding perm.
func (d *Dashboard) need(perm access.Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := principal(r).Require(perm); err != nil {
				d.fail(w, r, isJSON(r), err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// fail answers an error: JSON for the API, an error page otherwise. Internal errors are logged
// in full and shown as "internal error".
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, jsonAPI bool, err error) {
	kind := evoucher.KindOf(err)
	if kind == evoucher.KindInternal {
		d.Logger.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		d.Logger.WarnContext(r.Context(), "dashboard request refused", "method", r.Method, "path", r.URL.Path,
			"user", principal(r).Name, "kind", string(kind), "reason", evoucher.ReasonOf(err), "err", err)
	}
	code := api.StatusOf(kind)
	if jsonAPI {
		writeJSON(w, code, api.ErrorBody{Error: evoucher.MessageOf(err), Reason: evoucher.ReasonOf(err)})
		return
	}
	d.render(w, r, code, "error", "Error", map[string]any{"Status": code, "Message": evoucher.MessageOf(err)})
}

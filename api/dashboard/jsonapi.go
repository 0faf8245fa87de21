package dashboard

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/retailer"
)

// apiRoute is one route of the session JSON API; the OpenAPI document is made from the same
// table, and a test checks it against the router.
type apiRoute struct {
	method, path, summary string
	perm                  access.Permission // "" for any logged-in user
	handler               http.HandlerFunc
}

func (d *Dashboard) apiRoutes() []apiRoute {
	rs := []apiRoute{
		{"GET", "/me", "the logged-in user, role, scope and anti-forgery token", "", d.meJSON},
		{"GET", "/overview", "stock per product (vault and terminals), days of cover, today's sales and their money, open alarms", "", d.overviewJSON},
		{"GET", "/terminal-stock", "each terminal's levels, reported stock and days of cover", access.SeeRetailers, d.terminalStockJSON},
		{"GET", "/alarms", "alarms (?state=open|acknowledged|resolved|all&kind=)", access.SeeAlarms, d.alarmsJSON},
		{"POST", "/alarms/{id}/acknowledge", "acknowledge an alarm (header X-CSRF-Token)", access.HandleAlarms, d.moveAlarmJSON(true)},
		{"POST", "/alarms/{id}/resolve", "resolve an alarm (header X-CSRF-Token)", access.HandleAlarms, d.moveAlarmJSON(false)},
		{"GET", "/retailers", "retailers the user may see", access.SeeRetailers, d.retailersJSON},
		{"GET", "/retailers/{id}/terminals", "a retailer's terminals", access.SeeRetailers, d.terminalsJSON},
		{"GET", "/operators", "operators the user may see", access.SeeOperators, d.operatorsJSON},
		{"GET", "/operators/{id}/products", "an operator's products", access.SeeOperators, d.productsJSON},
		{"GET", "/charts/sales", "sales per day and product over the last ?days= (default 14)", access.SeeRetailers, d.salesJSON},
		{"GET", "/audit", "the exchange log's size, latest signed checkpoint and the latest verifications auditors reported", access.SeeNetwork, d.auditJSON},
	}
	rs = append(rs, d.moneyAPIRoutes()...)
	for _, j := range journals() {
		rs = append(rs, apiRoute{"GET", "/" + j.name, j.title + " (filters: " + strings.Join(j.filters, ", ") + "; page, size)", j.perm, d.journalJSON(j)})
	}
	return rs
}

func (d *Dashboard) jsonRoutes(r chi.Router) {
	for _, a := range d.apiRoutes() {
		if a.perm == "" {
			r.Method(a.method, a.path, a.handler)
			continue
		}
		r.With(d.need(a.perm)).Method(a.method, a.path, a.handler)
	}
}

// Me is the answer of GET /api/v1/me.
type Me struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Retailer string `json:"retailer,omitempty"`
	Operator string `json:"operator,omitempty"`
	CSRF     string `json:"csrf"`
}

func (d *Dashboard) meJSON(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	writeJSON(w, http.StatusOK, Me{Name: p.Name, Role: string(p.Role), Retailer: p.Retailer, Operator: p.Operator, CSRF: access.CSRFOf(sessionToken(r))})
}

// Overview is the answer of GET /api/v1/overview.
type Overview struct {
	Stock      []codevault.ProductStock `json:"stock"`
	SalesToday []ledger.SalesTotal      `json:"sales_today"` // since midnight UTC, per currency
	Alarms     []codevault.Alarm        `json:"alarms"`      // open, in the user's scope
}

func (d *Dashboard) overviewJSON(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var o Overview
	var err error
	if o.Stock, err = d.Vault.StockOverview(r.Context(), scopeOf(p)); err == nil {
		o.SalesToday, err = d.salesToday(r.Context(), p)
	}
	if err == nil && p.Can(access.SeeAlarms) {
		o.Alarms, err = d.Vault.ScopedAlarms(r.Context(), codevault.AlarmFilter{State: codevault.AlarmOpen, Limit: 50}, scopeOf(p))
	}
	d.answer(w, r, o, err)
}

func (d *Dashboard) terminalStockJSON(w http.ResponseWriter, r *http.Request) {
	s, err := d.Vault.TerminalStocks(r.Context(), scopeOf(principal(r)))
	d.answer(w, r, s, err)
}

func (d *Dashboard) alarmsJSON(w http.ResponseWriter, r *http.Request) {
	as, err := d.Vault.ScopedAlarms(r.Context(), alarmFilter(r), scopeOf(principal(r)))
	d.answer(w, r, as, err)
}

func (d *Dashboard) moveAlarmJSON(ack bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := d.moveAlarm(r, ack)
		d.answer(w, r, a, err)
	}
}

func (d *Dashboard) retailersJSON(w http.ResponseWriter, r *http.Request) {
	rs, err := d.visibleRetailers(r.Context(), principal(r))
	d.answer(w, r, rs, err)
}

func (d *Dashboard) terminalsJSON(w http.ResponseWriter, r *http.Request) {
	rt, err := d.visibleRetailer(r.Context(), principal(r), chi.URLParam(r, "id"))
	var ts []retailer.Terminal
	if err == nil {
		ts, err = d.Shops.Terminals(r.Context(), rt.ID)
	}
	d.answer(w, r, ts, err)
}

func (d *Dashboard) operatorsJSON(w http.ResponseWriter, r *http.Request) {
	os, err := d.visibleOperators(r.Context(), principal(r))
	d.answer(w, r, os, err)
}

func (d *Dashboard) productsJSON(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !principal(r).SeesOperator(id) {
		d.fail(w, r, true, hidden("operator", id))
		return
	}
	ps, err := d.Operators.Products(r.Context(), id)
	d.answer(w, r, ps, err)
}

func (d *Dashboard) salesJSON(w http.ResponseWriter, r *http.Request) {
	days := 14
	if v := r.URL.Query().Get("days"); v != "" {
		days = -1
		if n, err := atoiSmall(v); err == nil {
			days = n
		}
	}
	ds, err := d.Vault.SalesPerDay(r.Context(), scopeOf(principal(r)), days)
	d.answer(w, r, ds, err)
}

// AuditInfo is the answer of GET /api/v1/audit.
type AuditInfo struct {
	Size           uint64             `json:"size"`
	CheckpointSize uint64             `json:"checkpoint_size"`
	Checkpoint     string             `json:"checkpoint,omitempty"`
	Verifications  []VerificationInfo `json:"verifications"` // the latest auditors reported, newest first
}

// VerificationInfo is one verification of the log an auditor's tool reported to the center.
type VerificationInfo struct {
	Reporter       string    `json:"reporter"` // the certificate's entity
	ReporterRole   string    `json:"reporter_role"`
	ReportedAt     time.Time `json:"reported_at"`
	Size           uint64    `json:"size"`
	Root           string    `json:"root,omitempty"` // hex
	EntriesChecked uint64    `json:"entries_checked"`
	Outcome        string    `json:"outcome"` // ok or failed
	Reason         string    `json:"reason,omitempty"`
	DurationMS     int64     `json:"duration_ms"`
	RootMatches    *bool     `json:"root_matches"` // the reported root is the center's tree at size; null: none reported
}

// RootState says, for the audit page, whether the reported root is the center's: "yes", "NO",
// or "" when none was reported.
func (v VerificationInfo) RootState() string {
	switch {
	case v.RootMatches == nil:
		return ""
	case *v.RootMatches:
		return "yes"
	}
	return "NO"
}

// auditInfo reads the log's size, its latest checkpoint (none yet is not an error) and the
// latest verifications.
func (d *Dashboard) auditInfo(ctx context.Context) (AuditInfo, error) {
	size, err := d.Log.Size(ctx)
	if err != nil {
		return AuditInfo{}, err
	}
	out := AuditInfo{Size: size, Verifications: []VerificationInfo{}}
	if cp, err := d.Log.Latest(ctx); err == nil {
		out.Checkpoint, out.CheckpointSize = string(cp.Note), cp.Size
	} else if evoucher.KindOf(err) == evoucher.KindInternal {
		return AuditInfo{}, err
	}
	vs, err := d.Log.Verifications(ctx, 10)
	if err != nil {
		return AuditInfo{}, err
	}
	for _, v := range vs {
		out.Verifications = append(out.Verifications, VerificationInfo{Reporter: v.Reporter, ReporterRole: v.ReporterRole,
			ReportedAt: v.ReportedAt, Size: v.Size, Root: hex.EncodeToString(v.Root), EntriesChecked: v.EntriesChecked,
			Outcome: v.Outcome, Reason: v.Reason, DurationMS: v.Duration.Milliseconds(), RootMatches: v.RootMatches})
	}
	return out, nil
}

func (d *Dashboard) auditJSON(w http.ResponseWriter, r *http.Request) {
	out, err := d.auditInfo(r.Context())
	d.answer(w, r, out, err)
}

func (d *Dashboard) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		d.fail(w, r, true, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func atoiSmall(s string) (int, error) {
	n := 0
	if len(s) == 0 || len(s) > 4 {
		return 0, errBadNumber
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errBadNumber
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

var errBadNumber = errors.New("not a small number")

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// openAPI serves the OpenAPI 3 document of the session JSON API.
func (d *Dashboard) openAPI(w http.ResponseWriter, r *http.Request) {
	paths := map[string]map[string]any{}
	for _, a := range d.apiRoutes() {
		p := "/api/v1" + a.path
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		op := map[string]any{
			"summary":  a.summary,
			"security": []map[string][]string{{"session": {}}},
			"responses": map[string]any{
				"200": map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{}}},
				"401": map[string]any{"description": "not logged in"},
				"403": map[string]any{"description": "the role may not; or a wrong anti-forgery token"},
			},
		}
		if perm := a.perm; perm != "" {
			op["x-permission"] = string(perm)
		}
		var params []map[string]any
		for _, m := range pathParam.FindAllStringSubmatch(a.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		paths[p][strings.ToLower(a.method)] = op
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"openapi": "3.0.3",
		"info": map[string]string{"title": "evoucher dashboard API", "version": "1",
			"description": "Every JSON field name is snake_case and stable: it does not follow the Go names behind it."},
		"paths": paths,
		"components": map[string]any{"securitySchemes": map[string]any{
			"session": map[string]string{"type": "apiKey", "in": "cookie", "name": sessionCookie},
		}},
	})
}

var _ = codevault.Scope{}

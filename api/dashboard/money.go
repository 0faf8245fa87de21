package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/xml/message"
)

// Money is what the dashboard reads and records of the books (package ledger).
type Money interface {
	Balances(ctx context.Context) ([]ledger.Balance, error)
	Account(ctx context.Context, account, currency string, before int64, limit int) (ledger.AccountPage, error)
	RecordTopUp(ctx context.Context, t ledger.TopUp) (ledger.TopUp, error)
	TopUps(ctx context.Context, retailer string, limit int) ([]ledger.TopUp, error)
	Terms(ctx context.Context, retailer string) (ledger.Terms, error)
	SetTerms(ctx context.Context, t ledger.Terms) error
	SetCommission(ctx context.Context, retailer, operator, product string, bps int) error
	SetMargin(ctx context.Context, operator, product string, bps int) error
	Rates(ctx context.Context) ([]ledger.Rate, error)
	SalesTotals(ctx context.Context, from, to time.Time, retailer, operator string) ([]ledger.SalesTotal, error)
	GenerateStatement(ctx context.Context, req ledger.StatementRequest) (ledger.Statement, error)
	Statements(ctx context.Context, kind, party string, limit int) ([]ledger.Statement, error)
	StatementByID(ctx context.Context, id string) (ledger.Statement, error)
	Reconcile(ctx context.Context, s message.Statement) ([]ledger.Reconciliation, error)
	Clearing(ctx context.Context, from, to time.Time) (ledger.Clearing, error)
}

// Money scoping: network roles see every account and statement; a retailer manager its
// retailer's account and statements; an operator user its operator's. The platform's accounts
// and the clearing are network views.

func seesAccount(p access.Principal, account string) bool {
	switch {
	case !p.Can(access.SeeMoney):
		return false
	case p.Can(access.SeeNetwork):
		return true
	case p.Retailer != "":
		return account == ledger.RetailerAccount(p.Retailer)
	case p.Operator != "":
		return account == ledger.OperatorAccount(p.Operator)
	}
	return false
}

func seesStatement(p access.Principal, kind, party string) bool {
	if kind == message.PartyRetailer {
		return seesAccount(p, ledger.RetailerAccount(party))
	}
	return seesAccount(p, ledger.OperatorAccount(party))
}

func (d *Dashboard) moneyRoutes(r chi.Router) {
	r.With(d.need(access.SeeMoney)).Get("/ui/money", d.moneyPage)
	r.With(d.need(access.SeeMoney)).Get("/ui/money/accounts/{account}", d.accountPage)
	r.With(d.need(access.ManageMoney)).Post("/ui/money/topups", d.topUpForm)
	r.With(d.need(access.ManageMoney)).Post("/ui/money/terms", d.termsForm)
	r.With(d.need(access.ManageMoney)).Post("/ui/money/commissions", d.commissionForm)
	r.With(d.need(access.ManageMoney)).Post("/ui/money/margins", d.marginForm)
	r.With(d.need(access.SeeMoney)).Get("/ui/money/statements", d.statementsPage)
	r.With(d.need(access.ManageMoney)).Post("/ui/money/statements", d.statementForm)
	r.With(d.need(access.SeeMoney)).Get("/ui/money/statements/{id}", d.statementPage)
	r.With(d.need(access.SeeNetwork)).Get("/ui/money/clearing", d.clearingPage)
}

func (d *Dashboard) moneyAPIRoutes() []apiRoute {
	return []apiRoute{
		{"GET", "/money/balances", "balances the user may see; retailers with mode, limit, unsold consignment and what they may still order", access.SeeMoney, d.balancesJSON},
		{"GET", "/money/accounts/{account}", "an account's entries, newest first (?currency=&before=&limit=)", access.SeeMoney, d.accountJSON},
		{"GET", "/money/topups", "top-ups (?retailer=)", access.SeeMoney, d.topUpsJSON},
		{"POST", "/money/topups", `record a top-up: {"retailer","amount" (minor units),"method" (bank|cash),"reference"}`, access.ManageMoney, d.topUpJSON},
		{"GET", "/money/terms/{retailer}", "a retailer's money terms", access.SeeMoney, d.termsJSON},
		{"POST", "/money/terms/{retailer}", `set a retailer's terms: {"currency","mode","credit_limit","settlement"}`, access.ManageMoney, d.setTermsJSON},
		{"GET", "/money/rates", "commission and margin rates", access.SeeNetwork, d.ratesJSON},
		{"POST", "/money/commissions", `set a commission: {"retailer","operator","product","bps"} ("*" for every)`, access.ManageMoney, d.commissionJSON},
		{"POST", "/money/margins", `set a margin: {"operator","product","bps"}`, access.ManageMoney, d.marginJSON},
		{"GET", "/money/sales", "codes sold and their money per currency (?from=&to=, default today)", access.SeeMoney, d.salesMoneyJSON},
		{"GET", "/money/statements", "statements the user may see (?kind=&party=)", access.SeeMoney, d.statementsJSON},
		{"POST", "/money/statements", `make a signed statement: {"party_kind","party","from","to"} (dates, RFC 3339 times or "now")`, access.ManageMoney, d.generateStatementJSON},
		{"GET", "/money/statements/{id}", "a statement, with its reconciliation to the ledger (?format=xml|csv|pdf downloads it)", access.SeeMoney, d.statementJSON},
		{"GET", "/money/clearing", "the clearing of a period (?from=&to=, default today)", access.SeeNetwork, d.clearingJSON},
	}
}

// visibleBalances are the balances the user may see.
func (d *Dashboard) visibleBalances(ctx context.Context, p access.Principal) ([]ledger.Balance, error) {
	all, err := d.Money.Balances(ctx)
	out := []ledger.Balance{}
	for _, b := range all {
		if seesAccount(p, b.Account) {
			out = append(out, b)
		}
	}
	return out, err
}

// account returns a page of an account the user may see; not found otherwise. Without a
// currency, the account's first.
func (d *Dashboard) account(r *http.Request) (ledger.AccountPage, error) {
	p, q := principal(r), r.URL.Query()
	account := chi.URLParam(r, "account")
	if !seesAccount(p, account) {
		return ledger.AccountPage{}, hidden("account", account)
	}
	cur := q.Get("currency")
	if cur == "" {
		bs, err := d.Money.Balances(r.Context())
		if err != nil {
			return ledger.AccountPage{}, err
		}
		for _, b := range bs {
			if b.Account == account {
				cur = b.Currency
				break
			}
		}
		if cur == "" {
			return ledger.AccountPage{}, hidden("account", account)
		}
	}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	return d.Money.Account(r.Context(), account, cur, before, limit)
}

// topUpsFor returns the top-ups the user may see: every retailer's for the network roles,
// its own for a retailer manager, none for an operator user.
func (d *Dashboard) topUpsFor(ctx context.Context, p access.Principal, retailerID string) ([]ledger.TopUp, error) {
	switch {
	case p.Can(access.SeeNetwork):
	case p.Retailer != "": // its own, whatever the filter asks for
		retailerID = p.Retailer
	default:
		return []ledger.TopUp{}, nil
	}
	return d.Money.TopUps(ctx, retailerID, 100)
}

// recordTopUp records a top-up by the logged-in user.
func (d *Dashboard) recordTopUp(r *http.Request, t ledger.TopUp) (ledger.TopUp, error) {
	t.By = "dashboard:" + principal(r).Name
	tu, err := d.Money.RecordTopUp(r.Context(), t)
	if err == nil {
		d.Logger.InfoContext(r.Context(), "top-up recorded", "retailer", tu.Retailer, "amount", tu.Amount, "currency", tu.Currency,
			"method", tu.Method, "reference", tu.Reference, "by", tu.By, "credit_alarm_resolved", tu.AlarmResolved)
	}
	return tu, err
}

// salesToday is the money of today's sales (since midnight UTC) in the user's scope.
func (d *Dashboard) salesToday(ctx context.Context, p access.Principal) ([]ledger.SalesTotal, error) {
	now := d.Now().UTC()
	return d.Money.SalesTotals(ctx, now.Truncate(24*time.Hour), now.Add(time.Second), p.Retailer, p.Operator)
}

// parseWhen reads a period bound: a date (UTC midnight), an RFC 3339 time, or "now"; empty is def.
func parseWhen(name, s string, now, def time.Time) (time.Time, error) {
	switch s {
	case "":
		return def, nil
	case "now":
		return now, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, evoucher.Errorf(evoucher.KindInvalid, "bad_time", "%s %q is not a date (2026-11-01), an RFC 3339 time or now", name, s)
}

// period reads ?from= and ?to= (default: today so far).
func (d *Dashboard) period(r *http.Request) (time.Time, time.Time, error) {
	now := d.Now().UTC()
	from, err := parseWhen("from", r.URL.Query().Get("from"), now, now.Truncate(24*time.Hour))
	if err != nil {
		return from, now, err
	}
	to, err := parseWhen("to", r.URL.Query().Get("to"), now, now)
	return from, to, err
}

// statement returns a statement the user may see; not found otherwise.
func (d *Dashboard) statement(r *http.Request) (ledger.Statement, error) {
	s, err := d.Money.StatementByID(r.Context(), chi.URLParam(r, "id"))
	if err == nil && !seesStatement(principal(r), s.PartyKind, s.Party) {
		return ledger.Statement{}, hidden("statement", chi.URLParam(r, "id"))
	}
	return s, err
}

// download writes a statement as its signed XML, CSV or PDF. It reports false for any other
// format (the caller shows the statement).
func download(w http.ResponseWriter, s ledger.Statement, format string) (bool, error) {
	types := map[string]string{"xml": "application/xml", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}
	ct, ok := types[format]
	if !ok {
		return false, nil
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", `attachment; filename="`+s.ID+`.`+format+`"`)
	w.Header().Set("Cache-Control", "no-store")
	switch format {
	case "csv":
		return true, ledger.WriteStatementCSV(w, s.Content)
	case "pdf":
		return true, ledger.WriteStatementPDF(w, s.Content)
	}
	_, err := w.Write(s.Document)
	return true, err
}

func (d *Dashboard) generate(r *http.Request, kind, party, from, to string) (ledger.Statement, error) {
	now := d.Now().UTC()
	f, err := parseWhen("from", from, now, now.Truncate(24*time.Hour))
	if err != nil {
		return ledger.Statement{}, err
	}
	t, err := parseWhen("to", to, now, now)
	if err != nil {
		return ledger.Statement{}, err
	}
	s, err := d.Money.GenerateStatement(r.Context(), ledger.StatementRequest{PartyKind: kind, Party: party, From: f, To: t})
	if err == nil {
		d.Logger.InfoContext(r.Context(), "statement made", "statement", s.ID, "party_kind", kind, "party", party, "by", "dashboard user "+principal(r).Name)
	}
	return s, err
}

// ---- JSON ----

// readJSON decodes a small JSON body into v, refusing unknown fields.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return evoucher.Errorf(evoucher.KindInvalid, "bad_json", "the request body is not the JSON this endpoint takes: %v", err)
	}
	return nil
}

func (d *Dashboard) balancesJSON(w http.ResponseWriter, r *http.Request) {
	bs, err := d.visibleBalances(r.Context(), principal(r))
	d.answer(w, r, bs, err)
}

func (d *Dashboard) accountJSON(w http.ResponseWriter, r *http.Request) {
	p, err := d.account(r)
	d.answer(w, r, p, err)
}

func (d *Dashboard) topUpsJSON(w http.ResponseWriter, r *http.Request) {
	ts, err := d.topUpsFor(r.Context(), principal(r), r.URL.Query().Get("retailer"))
	d.answer(w, r, ts, err)
}

func (d *Dashboard) topUpJSON(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Retailer  string `json:"retailer"`
		Amount    int64  `json:"amount"`
		Method    string `json:"method"`
		Reference string `json:"reference"`
	}
	err := readJSON(w, r, &in)
	var tu ledger.TopUp
	if err == nil {
		tu, err = d.recordTopUp(r, ledger.TopUp{Retailer: in.Retailer, Amount: in.Amount, Method: in.Method, Reference: in.Reference})
	}
	d.answer(w, r, tu, err)
}

func (d *Dashboard) termsJSON(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "retailer")
	if !seesAccount(principal(r), ledger.RetailerAccount(id)) {
		d.fail(w, r, true, hidden("retailer", id))
		return
	}
	t, err := d.Money.Terms(r.Context(), id)
	d.answer(w, r, t, err)
}

func (d *Dashboard) setTermsJSON(w http.ResponseWriter, r *http.Request) {
	t := ledger.Terms{Settlement: ledger.SettleOnShipment, Mode: ledger.ModePrepaid}
	err := readJSON(w, r, &t)
	t.Retailer = chi.URLParam(r, "retailer")
	if err == nil {
		err = d.Money.SetTerms(r.Context(), t)
	}
	if err == nil {
		t, err = d.Money.Terms(r.Context(), t.Retailer)
	}
	d.answer(w, r, t, err)
}

func (d *Dashboard) ratesJSON(w http.ResponseWriter, r *http.Request) {
	rs, err := d.Money.Rates(r.Context())
	d.answer(w, r, rs, err)
}

func (d *Dashboard) commissionJSON(w http.ResponseWriter, r *http.Request) {
	var x ledger.Rate
	err := readJSON(w, r, &x)
	if err == nil {
		err = d.Money.SetCommission(r.Context(), x.Retailer, x.Operator, x.Product, x.BPS)
	}
	d.answer(w, r, x, err)
}

func (d *Dashboard) marginJSON(w http.ResponseWriter, r *http.Request) {
	var x ledger.Rate
	err := readJSON(w, r, &x)
	if err == nil {
		err = d.Money.SetMargin(r.Context(), x.Operator, x.Product, x.BPS)
	}
	d.answer(w, r, x, err)
}

func (d *Dashboard) salesMoneyJSON(w http.ResponseWriter, r *http.Request) {
	from, to, err := d.period(r)
	var ts []ledger.SalesTotal
	if err == nil {
		p := principal(r)
		ts, err = d.Money.SalesTotals(r.Context(), from, to, p.Retailer, p.Operator)
	}
	d.answer(w, r, ts, err)
}

// visibleStatements lists the statements the user may see, filtered by ?kind= and ?party=.
func (d *Dashboard) visibleStatements(r *http.Request) ([]ledger.Statement, error) {
	p, q := principal(r), r.URL.Query()
	kind, party := q.Get("kind"), q.Get("party")
	switch {
	case p.Can(access.SeeNetwork):
	case p.Retailer != "":
		kind, party = message.PartyRetailer, p.Retailer
	case p.Operator != "":
		kind, party = message.PartyOperator, p.Operator
	default:
		return []ledger.Statement{}, nil
	}
	ss, err := d.Money.Statements(r.Context(), kind, party, 200)
	if ss == nil {
		ss = []ledger.Statement{}
	}
	return ss, err
}

func (d *Dashboard) statementsJSON(w http.ResponseWriter, r *http.Request) {
	ss, err := d.visibleStatements(r)
	d.answer(w, r, ss, err)
}

func (d *Dashboard) generateStatementJSON(w http.ResponseWriter, r *http.Request) {
	var in struct {
		PartyKind string `json:"party_kind"`
		Party     string `json:"party"`
		From      string `json:"from"`
		To        string `json:"to"`
	}
	err := readJSON(w, r, &in)
	var s ledger.Statement
	if err == nil {
		s, err = d.generate(r, in.PartyKind, in.Party, in.From, in.To)
	}
	d.answer(w, r, s, err)
}

// StatementView is the answer of GET /api/v1/money/statements/{id}.
type StatementView struct {
	ledger.Statement
	Content        message.Statement       `json:"content"`
	Reconciliation []ledger.Reconciliation `json:"reconciliation"`
	Reconciles     bool                    `json:"reconciles"`
}

func (d *Dashboard) statementView(r *http.Request, s ledger.Statement) (StatementView, error) {
	rec, err := d.Money.Reconcile(r.Context(), s.Content)
	if evoucher.KindOf(err) == evoucher.KindConflict {
		err = nil // shown as not reconciling
	}
	ok := err == nil
	for _, x := range rec {
		ok = ok && x.OK()
	}
	return StatementView{Statement: s, Content: s.Content, Reconciliation: rec, Reconciles: ok}, err
}

// viewStatement serves a statement as a ?format= download (done) or returns its view.
func (d *Dashboard) viewStatement(w http.ResponseWriter, r *http.Request) (v StatementView, done bool, err error) {
	s, err := d.statement(r)
	if err != nil {
		return v, false, err
	}
	if done, err = download(w, s, r.URL.Query().Get("format")); done {
		if err != nil {
			d.Logger.ErrorContext(r.Context(), "statement download failed", "statement", s.ID, "err", err)
		}
		return v, true, nil
	}
	if err != nil {
		return v, false, err
	}
	v, err = d.statementView(r, s)
	return v, false, err
}

func (d *Dashboard) statementJSON(w http.ResponseWriter, r *http.Request) {
	if v, done, err := d.viewStatement(w, r); !done {
		d.answer(w, r, v, err)
	}
}

func (d *Dashboard) clearingJSON(w http.ResponseWriter, r *http.Request) {
	from, to, err := d.period(r)
	var c ledger.Clearing
	if err == nil {
		c, err = d.Money.Clearing(r.Context(), from, to)
	}
	d.answer(w, r, c, err)
}

// ---- pages ----

func (d *Dashboard) moneyPage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	bs, err := d.visibleBalances(r.Context(), p)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	var retailers, operators, platform []ledger.Balance
	for _, b := range bs {
		switch {
		case strings.HasPrefix(b.Account, "retailer:"):
			retailers = append(retailers, b)
		case strings.HasPrefix(b.Account, "operator:"):
			operators = append(operators, b)
		default:
			platform = append(platform, b)
		}
	}
	tus, err := d.topUpsFor(r.Context(), p, "")
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	var rates []ledger.Rate
	if p.Can(access.SeeNetwork) {
		if rates, err = d.Money.Rates(r.Context()); err != nil {
			d.fail(w, r, false, err)
			return
		}
	}
	sales, err := d.salesToday(r.Context(), p)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "money", "Money", map[string]any{"Retailers": retailers, "Operators": operators, "Platform": platform,
		"TopUps": tus, "Rates": rates, "Sales": sales, "CanManage": p.Can(access.ManageMoney), "Network": p.Can(access.SeeNetwork)})
}

func (d *Dashboard) accountPage(w http.ResponseWriter, r *http.Request) {
	pg, err := d.account(r)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	next := ""
	if pg.Next != 0 {
		next = "?" + url.Values{"currency": {pg.Currency}, "before": {strconv.FormatInt(pg.Next, 10)}}.Encode()
	}
	d.render(w, r, http.StatusOK, "account", "Account "+pg.Account, map[string]any{"Page": pg, "Next": next})
}

func (d *Dashboard) topUpForm(w http.ResponseWriter, r *http.Request) {
	rt := r.PostFormValue("retailer")
	t, err := d.Money.Terms(r.Context(), rt)
	var tu ledger.TopUp
	if err == nil {
		var amount int64
		if amount, err = ledger.ParseAmount(strings.TrimSpace(r.PostFormValue("amount")), t.Currency); err == nil {
			tu, err = d.recordTopUp(r, ledger.TopUp{Retailer: rt, Amount: amount, Method: r.PostFormValue("method"), Reference: r.PostFormValue("reference")})
		}
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	msg := "top-up of " + ledger.FormatAmount(tu.Amount, tu.Currency) + " recorded for " + tu.Retailer + " (" + tu.Method + ", reference " + tu.Reference + ")"
	if tu.AlarmResolved {
		msg += "; its credit_limit alarm is resolved"
	}
	redirect(w, r, "/ui/money", msg)
}

func (d *Dashboard) termsForm(w http.ResponseWriter, r *http.Request) {
	t := ledger.Terms{Retailer: r.PostFormValue("retailer"), Currency: strings.ToUpper(strings.TrimSpace(r.PostFormValue("currency"))),
		Mode: r.PostFormValue("mode"), Settlement: r.PostFormValue("settlement")}
	var err error
	if lim := strings.TrimSpace(r.PostFormValue("credit_limit")); lim != "" {
		t.CreditLimit, err = ledger.ParseAmount(lim, t.Currency)
	}
	if err == nil {
		err = d.Money.SetTerms(r.Context(), t)
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/money", "retailer "+t.Retailer+": "+t.Mode+" account in "+t.Currency+", credit limit "+
		ledger.FormatAmount(t.CreditLimit, t.Currency)+", pays "+strings.ReplaceAll(t.Settlement, "_", " "))
}

func formBPS(r *http.Request) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("bps")))
	if err != nil {
		return 0, evoucher.Errorf(evoucher.KindInvalid, "bad_rate", "the rate %q is not a whole number of basis points (500 = 5%%)", r.PostFormValue("bps"))
	}
	return n, nil
}

func (d *Dashboard) commissionForm(w http.ResponseWriter, r *http.Request) {
	n, err := formBPS(r)
	rt, op, prod := r.PostFormValue("retailer"), r.PostFormValue("operator"), r.PostFormValue("product")
	if err == nil {
		err = d.Money.SetCommission(r.Context(), rt, op, prod, n)
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/money", "commission of "+rt+" on "+op+"/"+prod+" set to "+strconv.Itoa(n)+" bps")
}

func (d *Dashboard) marginForm(w http.ResponseWriter, r *http.Request) {
	n, err := formBPS(r)
	op, prod := r.PostFormValue("operator"), r.PostFormValue("product")
	if err == nil {
		err = d.Money.SetMargin(r.Context(), op, prod, n)
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/money", "margin on "+op+"/"+prod+" set to "+strconv.Itoa(n)+" bps")
}

func (d *Dashboard) statementsPage(w http.ResponseWriter, r *http.Request) {
	ss, err := d.visibleStatements(r)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	now := d.Now().UTC()
	d.render(w, r, http.StatusOK, "statements", "Statements", map[string]any{"Statements": ss, "CanManage": principal(r).Can(access.ManageMoney),
		"Today": now.Format("2006-01-02")})
}

func (d *Dashboard) statementForm(w http.ResponseWriter, r *http.Request) {
	s, err := d.generate(r, r.PostFormValue("party_kind"), r.PostFormValue("party"), r.PostFormValue("from"), r.PostFormValue("to"))
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	redirect(w, r, "/ui/money/statements/"+s.ID, "statement "+s.ID+" made, signed and logged")
}

func (d *Dashboard) statementPage(w http.ResponseWriter, r *http.Request) {
	v, done, err := d.viewStatement(w, r)
	switch {
	case done:
	case err != nil:
		d.fail(w, r, false, err)
	default:
		d.render(w, r, http.StatusOK, "statement", "Statement "+v.Statement.ID, v)
	}
}

func (d *Dashboard) clearingPage(w http.ResponseWriter, r *http.Request) {
	from, to, err := d.period(r)
	var c ledger.Clearing
	if err == nil {
		c, err = d.Money.Clearing(r.Context(), from, to)
	}
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "clearing", "Clearing", map[string]any{"Clearing": c,
		"From": c.From.Format(time.RFC3339), "To": c.To.Format(time.RFC3339)})
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// StatementRequest asks for the statement of one party for the period [From, To).
type StatementRequest struct {
	PartyKind string // message.PartyRetailer or message.PartyOperator
	Party     string
	From, To  time.Time
}

// Statement is a signed statement as made and stored.
type Statement struct {
	ID        string            `json:"id"`
	PartyKind string            `json:"party_kind"`
	Party     string            `json:"party"`
	From      time.Time         `json:"from"`
	To        time.Time         `json:"to"`
	MessageID string            `json:"message_id"`
	CreatedAt time.Time         `json:"created_at"`
	Document  []byte            `json:"-"` // the signed Statement, byte-exact
	Content   message.Statement `json:"-"` // what it says
}

// GenerateStatement makes the signed statement of a party's account for a closed period: its
// stock movements grouped by kind, counterpart and product, its top-ups one by one, and per
// currency the opening and closing balances; it stores it and appends it to the exchange log,
// in one transaction. The lines' net amounts are the party's ledger entries of the period,
// exactly. It returns invalid for a bad party kind or period (one ending in the future is still
// open), not found for an unknown party, and unavailable when the ledger has no signing key.
func (l *Ledger) GenerateStatement(ctx context.Context, req StatementRequest) (Statement, error) {
	now := l.now().UTC()
	switch {
	case l.signer == nil:
		return Statement{}, evoucher.Errorf(evoucher.KindUnavailable, "no_signer", "statements need the center-sign key: run this on the center")
	case req.PartyKind != message.PartyRetailer && req.PartyKind != message.PartyOperator:
		return Statement{}, invalid("bad_party", "a statement is for a retailer or an operator, not %q", req.PartyKind)
	case !req.To.After(req.From):
		return Statement{}, invalid("bad_period", "the period's end %s is not after its start %s", req.To.Format(time.RFC3339), req.From.Format(time.RFC3339))
	case req.To.After(now):
		return Statement{}, invalid("period_open", "the period ends %s, in the future: a statement is made for a closed period (use --to now or earlier)", req.To.Format(time.RFC3339))
	}
	from, to := req.From.UTC(), req.To.UTC()
	tx, err := l.db.Begin(ctx)
	if err != nil {
		return Statement{}, err
	}
	defer tx.Rollback(ctx)
	table, account := "retailers", RetailerAccount(req.Party)
	if req.PartyKind == message.PartyOperator {
		table, account = "operators", OperatorAccount(req.Party)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = $1)`, req.Party).Scan(&exists); err != nil {
		return Statement{}, err
	}
	if !exists {
		return Statement{}, evoucher.Errorf(evoucher.KindNotFound, "unknown_party", "no %s %s", req.PartyKind, req.Party)
	}
	lines, err := statementLines(ctx, tx, req.PartyKind, req.Party, account, from, to)
	if err != nil {
		return Statement{}, err
	}
	totals, err := statementTotals(ctx, tx, account, from, lines)
	if err != nil {
		return Statement{}, err
	}
	msgID := uuid.NewString()
	st := message.Statement{
		Envelope:    message.Envelope{Type: "Statement", ID: "st-" + msgID, MessageID: msgID, Sender: message.Center, Recipient: req.Party, Created: now},
		StatementID: "ST-" + from.Format("20060102") + "-" + to.Format("20060102") + "-" + msgID[:8],
		PartyKind:   req.PartyKind, Party: req.Party, From: from, To: to, Lines: lines, Totals: totals,
	}
	doc, err := dsig.SignBytes(message.BuildStatement(st), l.signer, l.signCrt)
	if err != nil {
		return Statement{}, fmt.Errorf("sign statement: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO statements (id, party_kind, party, period_from, period_to, message_id, document, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, st.StatementID, req.PartyKind, req.Party, from, to, msgID, doc, now); err != nil {
		return Statement{}, err
	}
	if _, err := auditlog.Append(ctx, tx, &auditlog.Entry{Type: "Statement", Sender: message.Center, Recipient: req.Party,
		MessageID: msgID, Time: now, Data: doc}); err != nil {
		return Statement{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return Statement{}, err
	}
	return Statement{ID: st.StatementID, PartyKind: req.PartyKind, Party: req.Party, From: from, To: to, MessageID: msgID,
		CreatedAt: now, Document: doc, Content: st}, nil
}

// statementLines reads a party's movements of the period. Net is the sum of the party's own
// entries in each group, so the lines are the ledger's, not a recomputation.
func statementLines(ctx context.Context, tx pgx.Tx, kind, party, account string, from, to time.Time) ([]message.StatementLine, error) {
	filter := `t.retailer_id = $1`
	if kind == message.PartyOperator {
		filter = `t.operator_id = $1`
	}
	rows, err := tx.Query(ctx, `SELECT t.kind, coalesce(t.operator_id, ''), t.retailer_id, coalesce(t.product, ''), coalesce(t.method, ''),
		CASE WHEN t.kind = 'topup' THEN t.ref ELSE '' END, t.currency,
		sum(t.codes)::bigint, sum(t.face_value)::bigint, sum(t.commission)::bigint, sum(t.margin)::bigint, coalesce(sum(e.amount), 0)::bigint
		FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.tx_id = t.id AND e.account = $2
		WHERE `+filter+` AND t.created_at >= $3 AND t.created_at < $4
		GROUP BY t.kind, t.operator_id, t.retailer_id, t.product, t.method, CASE WHEN t.kind = 'topup' THEN t.id END,
			CASE WHEN t.kind = 'topup' THEN t.ref ELSE '' END, t.currency
		ORDER BY t.currency, t.kind = 'topup', min(t.id)`, party, account, from, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (message.StatementLine, error) {
		var l message.StatementLine
		err := r.Scan(&l.Kind, &l.Operator, &l.Retailer, &l.Product, &l.Method, &l.Reference, &l.Currency,
			&l.Codes, &l.FaceValue, &l.Commission, &l.Margin, &l.Net)
		return l, err
	})
}

// statementTotals adds the lines up per currency between the account's opening balance (its
// entries before from) and its closing balance.
func statementTotals(ctx context.Context, tx pgx.Tx, account string, from time.Time, lines []message.StatementLine) ([]message.StatementTotal, error) {
	rows, err := tx.Query(ctx, `SELECT a.currency, coalesce((SELECT sum(e.amount) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.tx_id
		WHERE e.account = a.account AND e.currency = a.currency AND t.created_at < $2), 0)::bigint FROM ledger_accounts a WHERE a.account = $1`,
		account, from)
	if err != nil {
		return nil, err
	}
	byCur := map[string]*message.StatementTotal{}
	for rows.Next() {
		t := &message.StatementTotal{}
		if err := rows.Scan(&t.Currency, &t.Opening); err != nil {
			rows.Close()
			return nil, err
		}
		byCur[t.Currency] = t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, l := range lines {
		t := byCur[l.Currency]
		if t == nil {
			t = &message.StatementTotal{Currency: l.Currency}
			byCur[l.Currency] = t
		}
		t.Add(l)
	}
	out := make([]message.StatementTotal, 0, len(byCur))
	for _, t := range byCur {
		t.Closing = t.Opening + t.Net
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b message.StatementTotal) int { return cmpString(a.Currency, b.Currency) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Statements lists the statements made, of one party when party is given (of one kind when
// kind is given), newest first, at most limit (default 100).
func (l *Ledger) Statements(ctx context.Context, kind, party string, limit int) ([]Statement, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := l.db.Query(ctx, `SELECT id, party_kind, party, period_from, period_to, message_id::text, created_at FROM statements
		WHERE ($1 = '' OR party_kind = $1) AND ($2 = '' OR party = $2) ORDER BY created_at DESC, id LIMIT $3`, kind, party, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Statement, error) {
		var s Statement
		err := r.Scan(&s.ID, &s.PartyKind, &s.Party, &s.From, &s.To, &s.MessageID, &s.CreatedAt)
		s.From, s.To, s.CreatedAt = s.From.UTC(), s.To.UTC(), s.CreatedAt.UTC()
		return s, err
	})
}

// StatementByID returns a stored statement with its signed document and content. It returns
// not found for an unknown id.
func (l *Ledger) StatementByID(ctx context.Context, id string) (Statement, error) {
	var s Statement
	err := l.db.QueryRow(ctx, `SELECT id, party_kind, party, period_from, period_to, message_id::text, created_at, document FROM statements WHERE id = $1`, id).
		Scan(&s.ID, &s.PartyKind, &s.Party, &s.From, &s.To, &s.MessageID, &s.CreatedAt, &s.Document)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, evoucher.Errorf(evoucher.KindNotFound, "unknown_statement", "no statement %s", id)
	}
	if err != nil {
		return s, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(s.Document); err != nil {
		return s, err
	}
	s.Content, err = message.ReadStatement(doc.Root())
	return s, err
}

// ClearingLine is what one retailer took of one operator's product in the period (returns
// netted), and how the money splits.
type ClearingLine struct {
	Retailer   string `json:"retailer"`
	Operator   string `json:"operator"`
	Product    string `json:"product"`
	Currency   string `json:"currency"`
	Codes      int64  `json:"codes"`
	FaceValue  int64  `json:"face_value"`
	Commission int64  `json:"commission"`
	Margin     int64  `json:"margin"`
	// RetailerPays = FaceValue − Commission = OperatorGets + PlatformKeeps.
	RetailerPays  int64 `json:"retailer_pays"`
	OperatorGets  int64 `json:"operator_gets"`  // FaceValue − Margin
	PlatformKeeps int64 `json:"platform_keeps"` // Margin − Commission
}

// ClearingTotal sums a clearing per party (an operator, a retailer, or "platform") and currency.
type ClearingTotal struct {
	Party    string `json:"party"`
	Currency string `json:"currency"`
	Codes    int64  `json:"codes"`
	Amount   int64  `json:"amount"` // owed to an operator, charged to a retailer, kept by the platform
	TopUps   int64  `json:"top_ups,omitempty"`
}

// Clearing is the settlement of a period across the network.
type Clearing struct {
	From      time.Time       `json:"from"`
	To        time.Time       `json:"to"`
	Lines     []ClearingLine  `json:"lines"`
	Operators []ClearingTotal `json:"operators"` // what each operator is owed
	Retailers []ClearingTotal `json:"retailers"` // what each retailer was charged, and paid in
	Platform  []ClearingTotal `json:"platform"`  // what the platform keeps
}

// Clearing returns the clearing of the period [from, to): per retailer, operator and product
// the codes charged (net of returns), and how the retailers' money splits between the operators
// whose codes they took and the platform. It returns invalid for an empty period.
func (l *Ledger) Clearing(ctx context.Context, from, to time.Time) (Clearing, error) {
	c := Clearing{From: from.UTC(), To: to.UTC()}
	if !to.After(from) {
		return c, invalid("bad_period", "the period's end is not after its start")
	}
	rows, err := l.db.Query(ctx, `SELECT retailer_id, operator_id, product, currency, sum(codes)::bigint, sum(face_value)::bigint,
		sum(commission)::bigint, sum(margin)::bigint FROM ledger_transactions
		WHERE kind <> 'topup' AND created_at >= $1 AND created_at < $2
		GROUP BY currency, operator_id, retailer_id, product ORDER BY currency, operator_id, retailer_id, product`, c.From, c.To)
	if err != nil {
		return c, err
	}
	c.Lines, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ClearingLine, error) {
		var x ClearingLine
		err := r.Scan(&x.Retailer, &x.Operator, &x.Product, &x.Currency, &x.Codes, &x.FaceValue, &x.Commission, &x.Margin)
		x.RetailerPays, x.OperatorGets, x.PlatformKeeps = x.FaceValue-x.Commission, x.FaceValue-x.Margin, x.Margin-x.Commission
		return x, err
	})
	if err != nil {
		return c, err
	}
	ops, shops, plat := map[[2]string]*ClearingTotal{}, map[[2]string]*ClearingTotal{}, map[[2]string]*ClearingTotal{}
	add := func(m map[[2]string]*ClearingTotal, party, cur string) *ClearingTotal {
		k := [2]string{party, cur}
		if m[k] == nil {
			m[k] = &ClearingTotal{Party: party, Currency: cur}
		}
		return m[k]
	}
	for _, x := range c.Lines {
		o := add(ops, x.Operator, x.Currency)
		o.Codes, o.Amount = o.Codes+x.Codes, o.Amount+x.OperatorGets
		r := add(shops, x.Retailer, x.Currency)
		r.Codes, r.Amount = r.Codes+x.Codes, r.Amount+x.RetailerPays
		p := add(plat, "platform", x.Currency)
		p.Codes, p.Amount = p.Codes+x.Codes, p.Amount+x.PlatformKeeps
	}
	rows, err = l.db.Query(ctx, `SELECT retailer_id, currency, sum(amount)::bigint FROM ledger_transactions
		WHERE kind = 'topup' AND created_at >= $1 AND created_at < $2 GROUP BY 1, 2`, c.From, c.To)
	if err != nil {
		return c, err
	}
	for rows.Next() {
		var retailer, cur string
		var n int64
		if err := rows.Scan(&retailer, &cur, &n); err != nil {
			rows.Close()
			return c, err
		}
		add(shops, retailer, cur).TopUps = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, err
	}
	c.Operators, c.Retailers, c.Platform = sortedTotals(ops), sortedTotals(shops), sortedTotals(plat)
	return c, nil
}

func sortedTotals(m map[[2]string]*ClearingTotal) []ClearingTotal {
	out := make([]ClearingTotal, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b ClearingTotal) int {
		if c := cmpString(a.Currency, b.Currency); c != 0 {
			return c
		}
		return cmpString(a.Party, b.Party)
	})
	return out
}

// PartyKindOf says whether id is a retailer or an operator (message.PartyRetailer or
// message.PartyOperator). It returns not found when it is neither and invalid ("ambiguous_party")
// when it is both: name the kind then.
func (l *Ledger) PartyKindOf(ctx context.Context, id string) (string, error) {
	var shop, op bool
	if err := l.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM retailers WHERE id = $1), EXISTS (SELECT 1 FROM operators WHERE id = $1)`, id).Scan(&shop, &op); err != nil {
		return "", err
	}
	switch {
	case shop && op:
		return "", invalid("ambiguous_party", "%s is both a retailer and an operator: say which with --kind", id)
	case shop:
		return message.PartyRetailer, nil
	case op:
		return message.PartyOperator, nil
	}
	return "", evoucher.Errorf(evoucher.KindNotFound, "unknown_party", "%s is neither a retailer nor an operator", id)
}

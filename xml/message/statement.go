package message

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// The settlement document, center → operator or retailer:
//
//	Statement     center → party      StatementId, Party (Kind retailer|operator), Period (From,
//	                                  To: [From, To)), Lines: a line per movement, "kind operator
//	                                  retailer product method reference currency codes face
//	                                  commission margin net" (text fields path-escaped, "-" when
//	                                  empty; amounts in minor units; net is the movement of the
//	                                  party's account), and a Total per currency (Opening,
//	                                  Closing, Codes, FaceValue, Commission, Margin, TopUps, Net)
//
// Opening + Net = Closing, and the totals are the sums of the lines: ReadStatement refuses a
// statement whose arithmetic does not hold.

// Statement party kinds.
const (
	PartyRetailer = "retailer"
	PartyOperator = "operator"
)

// Statement is the settlement of one party's account for a period.
type Statement struct {
	Envelope
	StatementID string           `json:"statement_id"`
	PartyKind   string           `json:"party_kind"` // PartyRetailer or PartyOperator
	Party       string           `json:"party"`
	From        time.Time        `json:"from"`
	To          time.Time        `json:"to"`
	Lines       []StatementLine  `json:"lines"`
	Totals      []StatementTotal `json:"totals"` // one per currency, in currency order
}

// Add counts a line into its currency's total (a top-up's net into TopUps too); the line is
// in the total's currency.
func (t *StatementTotal) Add(l StatementLine) {
	t.Codes += l.Codes
	t.FaceValue += l.FaceValue
	t.Commission += l.Commission
	t.Margin += l.Margin
	t.Net += l.Net
	if l.Kind == "topup" {
		t.TopUps += l.Net
	}
}

// StatementLine is one movement of a statement: stock taken, sold or returned (grouped per
// kind, operator or retailer, and product) or one top-up.
type StatementLine struct {
	Kind      string `json:"kind"` // shipment, sale, return, topup
	Operator  string `json:"operator"`
	Retailer  string `json:"retailer"`
	Product   string `json:"product"`
	Method    string `json:"method"`    // top-ups: bank or cash
	Reference string `json:"reference"` // top-ups: the payment's reference
	Currency  string `json:"currency"`
	Codes     int64  `json:"codes"` // negative for a return
	FaceValue int64  `json:"face_value"`
	// Commission is the retailer's, Margin the platform's; Net moves the party's account
	// (credit-positive: a retailer's charge is negative, an operator's due positive).
	Commission int64 `json:"commission"`
	Margin     int64 `json:"margin"`
	Net        int64 `json:"net"`
}

// StatementTotal sums a statement's lines in one currency, between the account's balances at
// the start and the end of the period.
type StatementTotal struct {
	Currency   string `json:"currency"`
	Opening    int64  `json:"opening"`
	Closing    int64  `json:"closing"`
	Codes      int64  `json:"codes"`
	FaceValue  int64  `json:"face_value"`
	Commission int64  `json:"commission"`
	Margin     int64  `json:"margin"`
	TopUps     int64  `json:"top_ups"`
	Net        int64  `json:"net"`
}

// maxStatementLines bounds one statement.
const maxStatementLines = 1_000_000

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return url.PathEscape(s)
}

func undash(s string) (string, error) {
	if s == "-" {
		return "", nil
	}
	return url.PathUnescape(s)
}

// BuildStatement returns an unsigned Statement document.
func BuildStatement(s Statement) *etree.Document {
	doc, root := newRoot("Statement", s.Envelope)
	addText(root, "StatementId", s.StatementID)
	p := addText(root, "Party", s.Party)
	p.CreateAttr("Kind", s.PartyKind)
	per := root.CreateElement("Period")
	per.CreateAttr("From", s.From.UTC().Format(time.RFC3339Nano))
	per.CreateAttr("To", s.To.UTC().Format(time.RFC3339Nano))
	var b strings.Builder
	b.WriteByte('\n')
	for _, l := range s.Lines {
		for _, f := range []string{l.Kind, dash(l.Operator), dash(l.Retailer), dash(l.Product), dash(l.Method), dash(l.Reference), l.Currency} {
			b.WriteString(f)
			b.WriteByte(' ')
		}
		for i, n := range []int64{l.Codes, l.FaceValue, l.Commission, l.Margin, l.Net} {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatInt(n, 10))
		}
		b.WriteByte('\n')
	}
	addText(root, "Lines", b.String())
	for _, t := range s.Totals {
		el := root.CreateElement("Total")
		el.CreateAttr("Currency", t.Currency)
		for _, a := range []struct {
			k string
			v int64
		}{{"Opening", t.Opening}, {"Closing", t.Closing}, {"Codes", t.Codes}, {"FaceValue", t.FaceValue},
			{"Commission", t.Commission}, {"Margin", t.Margin}, {"TopUps", t.TopUps}, {"Net", t.Net}} {
			el.CreateAttr(a.k, strconv.FormatInt(a.v, 10))
		}
	}
	return doc
}

var statementKinds = map[string]bool{"shipment": true, "sale": true, "return": true, "topup": true}

// ReadStatement reads a verified Statement root element and checks its arithmetic. It returns
// invalid ("malformed") for anything out of shape and ("totals") when the totals do not add up.
func ReadStatement(root *etree.Element) (Statement, error) {
	env, err := readTyped(root, "Statement")
	if err != nil {
		return Statement{}, err
	}
	s := Statement{Envelope: env}
	var errs [3]error
	s.StatementID, errs[0] = childText(root, "StatementId")
	s.Party, errs[1] = childText(root, "Party")
	var per *etree.Element
	per, errs[2] = child(root, "Period")
	if err := first(errs[:]...); err != nil {
		return Statement{}, err
	}
	party, _ := child(root, "Party")
	s.PartyKind = party.SelectAttrValue("Kind", "")
	if (s.PartyKind != PartyRetailer && s.PartyKind != PartyOperator) || !partyPattern.MatchString(s.Party) || s.StatementID == "" {
		return Statement{}, invalid("malformed", "Statement party or id is not valid")
	}
	from, err1 := time.Parse(time.RFC3339Nano, per.SelectAttrValue("From", ""))
	to, err2 := time.Parse(time.RFC3339Nano, per.SelectAttrValue("To", ""))
	if err1 != nil || err2 != nil || !to.After(from) {
		return Statement{}, invalid("malformed", "Statement period is not a valid [From, To)")
	}
	s.From, s.To = from.UTC(), to.UTC()
	lines, err := childText(root, "Lines")
	if err != nil {
		return Statement{}, err
	}
	sums := map[string]*StatementTotal{}
	for _, line := range strings.Split(lines, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		l, err := readStatementLine(line)
		if err != nil {
			return Statement{}, err
		}
		if len(s.Lines) >= maxStatementLines {
			return Statement{}, invalid("too_large", "a statement holds at most %d lines", maxStatementLines)
		}
		s.Lines = append(s.Lines, l)
		t := sums[l.Currency]
		if t == nil {
			t = &StatementTotal{Currency: l.Currency}
			sums[l.Currency] = t
		}
		t.Add(l)
	}
	for _, el := range root.ChildElements() {
		if el.Tag != "Total" {
			continue
		}
		t := StatementTotal{Currency: el.SelectAttrValue("Currency", "")}
		var bad bool
		for _, a := range []struct {
			k string
			v *int64
		}{{"Opening", &t.Opening}, {"Closing", &t.Closing}, {"Codes", &t.Codes}, {"FaceValue", &t.FaceValue},
			{"Commission", &t.Commission}, {"Margin", &t.Margin}, {"TopUps", &t.TopUps}, {"Net", &t.Net}} {
			n, err := strconv.ParseInt(el.SelectAttrValue(a.k, ""), 10, 64)
			*a.v, bad = n, bad || err != nil
		}
		if bad || !currencyPattern(t.Currency) || len(s.Totals) > 300 {
			return Statement{}, invalid("malformed", "a Total is not valid")
		}
		if n := len(s.Totals); n > 0 && s.Totals[n-1].Currency >= t.Currency {
			return Statement{}, invalid("malformed", "Totals are not one per currency in currency order")
		}
		sum := sums[t.Currency]
		if sum == nil {
			sum = &StatementTotal{Currency: t.Currency}
		}
		delete(sums, t.Currency)
		if t.Opening+t.Net != t.Closing || sum.Codes != t.Codes || sum.FaceValue != t.FaceValue || sum.Commission != t.Commission ||
			sum.Margin != t.Margin || sum.TopUps != t.TopUps || sum.Net != t.Net {
			return Statement{}, invalid("totals", "the %s total of the statement does not add up", t.Currency)
		}
		s.Totals = append(s.Totals, t)
	}
	if len(sums) > 0 {
		return Statement{}, invalid("totals", "a currency of the statement's lines has no Total")
	}
	return s, nil
}

func currencyPattern(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func readStatementLine(line string) (StatementLine, error) {
	bad := invalid("malformed", "a statement line is not valid")
	f := strings.Fields(line)
	if len(f) != 12 || !statementKinds[f[0]] || !currencyPattern(f[6]) {
		return StatementLine{}, bad
	}
	l := StatementLine{Kind: f[0], Currency: f[6]}
	var err error
	for i, p := range []*string{&l.Operator, &l.Retailer, &l.Product, &l.Method, &l.Reference} {
		if *p, err = undash(f[1+i]); err != nil {
			return StatementLine{}, bad
		}
	}
	for i, p := range []*int64{&l.Codes, &l.FaceValue, &l.Commission, &l.Margin, &l.Net} {
		if *p, err = strconv.ParseInt(f[7+i], 10, 64); err != nil {
			return StatementLine{}, bad
		}
	}
	return l, nil
}

package ledger

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher"
)

// Config is what a Ledger needs.
type Config struct {
	DB *pgxpool.Pool
	// The center-sign key and certificate sign statements; both or neither (a ledger without
	// them refuses to make statements).
	Signer   crypto.Signer
	SignCert *x509.Certificate
	Now      func() time.Time
}

// Ledger keeps the books.
type Ledger struct {
	db      *pgxpool.Pool
	signer  crypto.Signer
	signCrt *x509.Certificate
	now     func() time.Time
}

// New returns a Ledger. It fails without a database, or with only one of signer and certificate.
func New(cfg Config) (*Ledger, error) {
	if cfg.DB == nil {
		return nil, errors.New("ledger: no database")
	}
	if (cfg.Signer == nil) != (cfg.SignCert == nil) {
		return nil, errors.New("ledger: a statement signer needs both the center-sign key and its certificate")
	}
	l := &Ledger{db: cfg.DB, signer: cfg.Signer, signCrt: cfg.SignCert, now: cfg.Now}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// The platform's accounts.
const (
	AccountMargin = "platform:margin"
	AccountBank   = "platform:bank"
	AccountCash   = "platform:cash"
)

// RetailerAccount is the account of a retailer.
func RetailerAccount(id string) string { return "retailer:" + id }

// OperatorAccount is the account of an operator (what the platform owes it).
func OperatorAccount(id string) string { return "operator:" + id }

var (
	idPattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

func invalid(reason, format string, args ...any) error {
	return evoucher.Errorf(evoucher.KindInvalid, reason, format, args...)
}

// leg is one entry of a posting.
type leg struct {
	account string
	amount  int64
}

// posting is one ledger transaction: what it is about and its legs.
type posting struct {
	kind, ref, retailer, operator, product, currency string
	codes                                            int64
	face, commission, margin, amount                 int64
	method, by                                       string
	at                                               time.Time
	legs                                             []leg
}

// stockLegs are the legs of codes taken (or, with negative values, given back) by a retailer.
func stockLegs(retailer, operator string, face, commission, margin int64) []leg {
	return []leg{
		{RetailerAccount(retailer), -(face - commission)},
		{OperatorAccount(operator), face - margin},
		{AccountMargin, margin - commission},
	}
}

// lockAccounts creates the accounts that do not exist yet and locks them: the retailer's
// first, then the others in name order. Every transaction touches at most one retailer, so this
// one order, kept everywhere, lets writers of the same accounts wait on each other but never
// deadlock.
func lockAccounts(ctx context.Context, tx pgx.Tx, currency, retailer string, others ...string) (int64, error) {
	accounts := append([]string{RetailerAccount(retailer)}, others...)
	slices.Sort(accounts[1:])
	accounts = slices.Compact(accounts)
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_accounts (account, currency) SELECT a, $2 FROM unnest($1::text[]) AS a
		ORDER BY a ON CONFLICT DO NOTHING`, accounts, currency); err != nil {
		return 0, err
	}
	var balance int64
	if err := tx.QueryRow(ctx, `SELECT balance FROM ledger_accounts WHERE account = $1 AND currency = $2 FOR UPDATE`,
		accounts[0], currency).Scan(&balance); err != nil {
		return 0, err
	}
	if len(accounts) > 1 {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM ledger_accounts WHERE account = ANY($1) AND currency = $2
			ORDER BY account FOR UPDATE`, accounts[1:], currency); err != nil {
			return 0, err
		}
	}
	return balance, nil
}

// post writes a ledger transaction and its non-zero legs in the caller's transaction, whose
// accounts lockAccounts has created and locked. It returns the transaction's id.
func post(ctx context.Context, tx pgx.Tx, p posting) (int64, error) {
	var method *string
	if p.method != "" {
		method = &p.method
	}
	var operator, product *string
	if p.operator != "" {
		operator, product = &p.operator, &p.product
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO ledger_transactions (kind, ref, retailer_id, operator_id, product, currency, codes,
		face_value, commission, margin, amount, method, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
		p.kind, p.ref, p.retailer, operator, product, p.currency, p.codes, p.face, p.commission, p.margin, p.amount,
		method, p.by, p.at).Scan(&id)
	if err != nil {
		return 0, err
	}
	var accounts []string
	var amounts []int64
	for _, l := range p.legs {
		if l.amount != 0 {
			accounts, amounts = append(accounts, l.account), append(amounts, l.amount)
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO ledger_entries (tx_id, account, currency, amount)
		SELECT $1, x.a, $2, x.v FROM unnest($3::text[], $4::bigint[]) WITH ORDINALITY AS x(a, v, n) ORDER BY x.n`,
		id, p.currency, accounts, amounts)
	return id, err
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// minorDigits is the number of decimals of a currency's minor unit (ISO 4217); 2 unless listed.
var minorDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
	"UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

func digits(currency string) int {
	if d, ok := minorDigits[currency]; ok {
		return d
	}
	return 2
}

// FormatAmount writes an amount of minor units in major units with its currency: "-12.34 EUR".
func FormatAmount(minor int64, currency string) string {
	return FormatMinor(minor, currency) + " " + currency
}

// FormatMinor writes an amount of minor units in major units, without the currency: "-12.34".
func FormatMinor(minor int64, currency string) string {
	d := digits(currency)
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-minor)
	}
	if d == 0 {
		return sign + strconv.FormatUint(u, 10)
	}
	p := uint64(1)
	for range d {
		p *= 10
	}
	return fmt.Sprintf("%s%d.%0*d", sign, u/p, d, u%p)
}

// ParseAmount reads an amount in major units ("500", "500.5", "500.50") of a currency as minor
// units. It returns invalid ("bad_amount") for anything else, more decimals than the currency
// has, or an amount that does not fit.
func ParseAmount(s, currency string) (int64, error) {
	d := digits(currency)
	bad := invalid("bad_amount", "amount %q is not a number of %s with at most %d decimals, like 500.00", s, currency, d)
	neg := strings.HasPrefix(s, "-")
	whole, frac, dot := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "" || (dot && frac == "") || len(frac) > d || strings.ContainsAny(whole+frac, "+-_ ") {
		return 0, bad
	}
	frac += strings.Repeat("0", d-len(frac))
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, bad
	}
	if neg {
		v = -v
	}
	return v, nil
}

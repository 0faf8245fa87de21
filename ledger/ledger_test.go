package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/retailer"
)

// MustLedger returns a ledger on a fresh database with retailers R-1 and R-2 (EUR, prepaid).
func MustLedger(tb testing.TB) (*ledger.Ledger, *pgxpool.Pool) {
	tb.Helper()
	ctx := context.Background()
	db := testdb.MustPool(tb)
	l, err := ledger.New(ledger.Config{DB: db})
	if err != nil {
		tb.Fatal(err)
	}
	shops, err := retailer.New(db)
	if err != nil {
		tb.Fatal(err)
	}
	for _, id := range []string{"R-1", "R-2"} {
		if err := shops.CreateRetailer(ctx, retailer.Retailer{ID: id, Name: id}); err != nil {
			tb.Fatal(err)
		}
		if err := l.SetTerms(ctx, ledger.Terms{Retailer: id, Currency: "EUR", Mode: ledger.ModePrepaid, Settlement: ledger.SettleOnShipment}); err != nil {
			tb.Fatal(err)
		}
	}
	return l, db
}

func wantReason(t *testing.T, err error, kind evoucher.Kind, reason string) {
	t.Helper()
	if evoucher.KindOf(err) != kind || evoucher.ReasonOf(err) != reason {
		t.Fatalf("got %v (%s/%s), want %s/%s", err, evoucher.KindOf(err), evoucher.ReasonOf(err), kind, reason)
	}
}

func balance(t *testing.T, db *pgxpool.Pool, account string) int64 {
	t.Helper()
	var b int64
	if err := db.QueryRow(context.Background(), `SELECT coalesce((SELECT balance FROM ledger_accounts WHERE account = $1 AND currency = 'EUR'), 0)`, account).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDatabaseKeepsTheBooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := MustLedger(t)
	if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-1", Amount: 10_000, Method: ledger.MethodBank, Reference: "TRX-1"}); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) error {
		tx, err := db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	t.Run("ErrUnbalanced", func(t *testing.T) {
		err := exec(`WITH t AS (INSERT INTO ledger_transactions (kind, ref, retailer_id, currency, amount, method, created_at)
			VALUES ('topup', 'FORGED', 'R-1', 'EUR', 500, 'cash', now()) RETURNING id)
			INSERT INTO ledger_entries (tx_id, account, currency, amount) SELECT id, 'retailer:R-1', 'EUR', 500 FROM t`)
		if err == nil {
			t.Fatal("the database took a one-legged transaction")
		}
		err = exec(`WITH t AS (INSERT INTO ledger_transactions (kind, ref, retailer_id, currency, amount, method, created_at)
			VALUES ('topup', 'FORGED', 'R-1', 'EUR', 500, 'cash', now()) RETURNING id)
			INSERT INTO ledger_entries (tx_id, account, currency, amount) SELECT id, a, 'EUR', v FROM t,
			(VALUES ('retailer:R-1', 500), ('platform:bank', -499)) AS x(a, v)`)
		if err == nil {
			t.Fatal("the database took entries summing to 1")
		}
	})
	t.Run("ErrNoEntries", func(t *testing.T) {
		if err := exec(`INSERT INTO ledger_transactions (kind, ref, retailer_id, currency, amount, method, created_at)
			VALUES ('topup', 'EMPTY', 'R-1', 'EUR', 500, 'cash', now())`); err == nil {
			t.Fatal("the database took a transaction without entries")
		}
	})
	t.Run("ErrBalanceEdited", func(t *testing.T) {
		if err := exec(`UPDATE ledger_accounts SET balance = balance + 1 WHERE account = 'retailer:R-1'`); err == nil {
			t.Fatal("a balance was changed without an entry")
		}
		if err := exec(`UPDATE ledger_entries SET amount = amount * 2`); err == nil {
			t.Fatal("an entry was changed")
		}
		if err := exec(`DELETE FROM ledger_entries`); err == nil {
			t.Fatal("entries were deleted")
		}
		if err := exec(`DELETE FROM ledger_transactions`); err == nil {
			t.Fatal("transactions were deleted")
		}
	})
	t.Run("BalancedSQLPosts", func(t *testing.T) {
		if err := exec(`WITH t AS (INSERT INTO ledger_transactions (kind, ref, retailer_id, currency, amount, method, created_at)
			VALUES ('topup', 'BY-SQL', 'R-1', 'EUR', 500, 'cash', now()) RETURNING id)
			INSERT INTO ledger_entries (tx_id, account, currency, amount) SELECT id, a, 'EUR', v FROM t,
			(VALUES ('retailer:R-1', 500), ('platform:bank', -500)) AS x(a, v)`); err != nil {
			t.Fatal(err)
		}
	})
	if got := balance(t, db, "retailer:R-1"); got != 10_500 {
		t.Fatalf("R-1 balance %d, want 10500", got)
	}
	if got := balance(t, db, ledger.AccountBank); got != -10_500 {
		t.Fatalf("bank balance %d, want -10500", got)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTopUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := MustLedger(t)
	t.Run("OK", func(t *testing.T) {
		tu, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-1", Amount: 25_000, Method: ledger.MethodBank, Reference: "SEPA 2026-11-30 0042", By: "manager:M-1"})
		if err != nil {
			t.Fatal(err)
		}
		if tu.Currency != "EUR" || tu.ID == 0 {
			t.Fatalf("%+v", tu)
		}
		if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-1", Amount: 500, Method: ledger.MethodCash, Reference: "RC-1"}); err != nil {
			t.Fatal(err)
		}
		if balance(t, db, "retailer:R-1") != 25_500 || balance(t, db, ledger.AccountBank) != -25_000 || balance(t, db, ledger.AccountCash) != -500 {
			t.Fatal("top-ups did not move the accounts")
		}
		tus, err := l.TopUps(ctx, "R-1", 10)
		if err != nil || len(tus) != 2 || tus[0].Reference != "RC-1" || tus[1].By != "manager:M-1" {
			t.Fatalf("%+v %v", tus, err)
		}
	})
	t.Run("ErrDuplicateReference", func(t *testing.T) {
		_, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-2", Amount: 25_000, Method: ledger.MethodBank, Reference: "SEPA 2026-11-30 0042"})
		wantReason(t, err, evoucher.KindConflict, "duplicate_reference")
		if balance(t, db, "retailer:R-2") != 0 {
			t.Fatal("a refused top-up moved money")
		}
	})
	t.Run("ErrBadInput", func(t *testing.T) {
		_, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-1", Amount: 0, Method: ledger.MethodBank, Reference: "X"})
		wantReason(t, err, evoucher.KindInvalid, "bad_amount")
		_, err = l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-1", Amount: 1, Method: "cheque", Reference: "X"})
		wantReason(t, err, evoucher.KindInvalid, "bad_method")
		_, err = l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-1", Amount: 1, Method: ledger.MethodBank})
		wantReason(t, err, evoucher.KindInvalid, "bad_reference")
		_, err = l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-9", Amount: 1, Method: ledger.MethodBank, Reference: "Y"})
		wantReason(t, err, evoucher.KindNotFound, "no_terms")
	})
	t.Run("AccountPages", func(t *testing.T) {
		for i := range 5 {
			if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-2", Amount: int64(100 * (i + 1)), Method: ledger.MethodCash, Reference: fmt.Sprintf("P-%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		p1, err := l.Account(ctx, "retailer:R-2", "EUR", 0, 2)
		if err != nil || len(p1.Entries) != 2 || p1.Balance != 1500 || p1.Entries[0].Balance != 1500 || p1.Entries[1].Balance != 1000 || p1.Next == 0 {
			t.Fatalf("page 1: %+v %v", p1, err)
		}
		p2, err := l.Account(ctx, "retailer:R-2", "EUR", p1.Next, 2)
		if err != nil || len(p2.Entries) != 2 || p2.Entries[0].Balance != 600 || p2.Entries[1].Balance != 300 {
			t.Fatalf("page 2: %+v %v", p2, err)
		}
		p3, err := l.Account(ctx, "retailer:R-2", "EUR", p2.Next, 2)
		if err != nil || len(p3.Entries) != 1 || p3.Entries[0].Balance != 100 || p3.Next != 0 {
			t.Fatalf("page 3: %+v %v", p3, err)
		}
	})
}

func TestSetTerms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := MustLedger(t)
	t.Run("OK", func(t *testing.T) {
		if err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-1", Currency: "EUR", Mode: ledger.ModeCredit, CreditLimit: 50_000, Settlement: ledger.SettleOnSale}); err != nil {
			t.Fatal(err)
		}
		tm, err := l.Terms(ctx, "R-1")
		if err != nil || tm.CreditLimit != 50_000 || tm.Settlement != ledger.SettleOnSale {
			t.Fatalf("%+v %v", tm, err)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		wantReason(t, l.SetTerms(ctx, ledger.Terms{Retailer: "R-1", Currency: "EUR", Mode: ledger.ModePrepaid, CreditLimit: 5, Settlement: ledger.SettleOnSale}), evoucher.KindInvalid, "bad_limit")
		wantReason(t, l.SetTerms(ctx, ledger.Terms{Retailer: "R-1", Currency: "eur", Mode: ledger.ModePrepaid, Settlement: ledger.SettleOnSale}), evoucher.KindInvalid, "bad_currency")
		wantReason(t, l.SetTerms(ctx, ledger.Terms{Retailer: "R-9", Currency: "EUR", Mode: ledger.ModePrepaid, Settlement: ledger.SettleOnSale}), evoucher.KindNotFound, "unknown_retailer")
	})
	t.Run("ErrCurrencyInUse", func(t *testing.T) {
		if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-2", Amount: 1, Method: ledger.MethodCash, Reference: "C-1"}); err != nil {
			t.Fatal(err)
		}
		wantReason(t, l.SetTerms(ctx, ledger.Terms{Retailer: "R-2", Currency: "USD", Mode: ledger.ModePrepaid, Settlement: ledger.SettleOnSale}), evoucher.KindConflict, "currency_in_use")
	})
}

// TestConcurrentTopUps: 50 writers on the same accounts keep every balance equal to the sum of
// its entries and the books at zero.
func TestConcurrentTopUps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := MustLedger(t)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := []string{"R-1", "R-2"}[i%2]
			m := []string{ledger.MethodBank, ledger.MethodCash}[i%3%2]
			if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: r, Amount: int64(100 + i), Method: m, Reference: fmt.Sprintf("T-%d", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	want := map[string]int64{}
	for i := range 50 {
		want[[]string{"R-1", "R-2"}[i%2]] += int64(100 + i)
	}
	for r, w := range want {
		if got := balance(t, db, "retailer:"+r); got != w {
			t.Fatalf("%s balance %d, want %d", r, got, w)
		}
	}
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAmounts(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, cur string
		want    int64
	}{{"500", "EUR", 50000}, {"500.5", "EUR", 50050}, {"0.07", "EUR", 7}, {"-12.34", "EUR", -1234}, {"1000", "JPY", 1000}, {"1.234", "KWD", 1234}} {
		got, err := ledger.ParseAmount(c.in, c.cur)
		if err != nil || got != c.want {
			t.Fatalf("ParseAmount(%q, %s) = %d, %v; want %d", c.in, c.cur, got, err, c.want)
		}
		if back, _ := ledger.ParseAmount(ledger.FormatMinor(got, c.cur), c.cur); back != got {
			t.Fatalf("FormatMinor(%d) = %q does not read back", got, ledger.FormatMinor(got, c.cur))
		}
	}
	for _, bad := range []string{"", "1.234", "1,00", "1e3", "+1", " 1", "1.", ".5x", "99999999999999999999"} {
		if _, err := ledger.ParseAmount(bad, "EUR"); evoucher.ReasonOf(err) != "bad_amount" {
			t.Fatalf("ParseAmount(%q) = %v", bad, err)
		}
	}
	if got := ledger.FormatAmount(-950, "EUR"); got != "-9.50 EUR" {
		t.Fatal(got)
	}
}

// FuzzParseAmount: an amount typed by a manager either reads back to itself or is refused as
// invalid.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"500", "500.50", "-1.5", "0.001", "x", "9223372036854775807"} {
		f.Add(s, "EUR")
	}
	f.Add("12", "JPY")
	f.Fuzz(func(t *testing.T, s, cur string) {
		v, err := ledger.ParseAmount(s, cur)
		if err != nil {
			if evoucher.KindOf(err) != evoucher.KindInvalid {
				t.Fatalf("refusal of another kind: %v", err)
			}
			return
		}
		if back, err := ledger.ParseAmount(ledger.FormatMinor(v, cur), cur); err != nil || back != v {
			t.Fatalf("%q → %d → %q → %d, %v", s, v, ledger.FormatMinor(v, cur), back, err)
		}
	})
}

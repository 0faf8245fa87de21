package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/xml/message"
)

// openCreditAlarm opens a credit_limit alarm about a retailer, as the vault does when it
// refuses an order for credit, and returns its id.
func openCreditAlarm(t *testing.T, db *pgxpool.Pool, retailer string) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRow(context.Background(), `INSERT INTO alarms (kind, subject, message, first_at, last_at)
		VALUES ('credit_limit', $1, 'refused', now(), now()) RETURNING id`, retailer).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func alarmState(t *testing.T, db *pgxpool.Pool, id int64) string {
	t.Helper()
	var s string
	if err := db.QueryRow(context.Background(), `SELECT state FROM alarms WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCreditAlarmResolves: a retailer's open credit_limit alarm resolves, in the same
// transaction, when a top-up or a raised limit lets it order again, and not before.
func TestCreditAlarmResolves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db := MustLedger(t)

	t.Run("TopUp", func(t *testing.T) {
		id := openCreditAlarm(t, db, "R-1")
		// Terms set again, still prepaid with nothing paid in: it still cannot order.
		if err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-1", Currency: "EUR", Mode: ledger.ModePrepaid, Settlement: ledger.SettleOnShipment}); err != nil {
			t.Fatal(err)
		}
		if s := alarmState(t, db, id); s != "open" {
			t.Fatalf("alarm %s after terms that change nothing", s)
		}
		other := openCreditAlarm(t, db, "R-2")
		tu, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-1", Amount: 5000, Method: ledger.MethodCash, Reference: "RC-1", By: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if s := alarmState(t, db, id); s != "resolved" || !tu.AlarmResolved {
			t.Fatalf("after the top-up: alarm %s, reported resolved %v", s, tu.AlarmResolved)
		}
		if s := alarmState(t, db, other); s != "open" {
			t.Fatalf("R-2's alarm is %s after R-1's top-up", s)
		}
		// A duplicate top-up is refused and resolves nothing.
		if _, err := l.RecordTopUp(ctx, ledger.TopUp{Retailer: "R-2", Amount: 5000, Method: ledger.MethodCash, Reference: "RC-1"}); err == nil {
			t.Fatal("a duplicate reference was recorded")
		}
		if s := alarmState(t, db, other); s != "open" {
			t.Fatalf("R-2's alarm is %s after a refused top-up", s)
		}
	})

	t.Run("RaisedLimit", func(t *testing.T) {
		var id int64
		if err := db.QueryRow(ctx, `SELECT id FROM alarms WHERE subject = 'R-2' AND state = 'open'`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := l.SetTerms(ctx, ledger.Terms{Retailer: "R-2", Currency: "EUR", Mode: ledger.ModeCredit, CreditLimit: 50_000, Settlement: ledger.SettleOnShipment}); err != nil {
			t.Fatal(err)
		}
		if s := alarmState(t, db, id); s != "resolved" {
			t.Fatalf("alarm %s after the limit was raised", s)
		}
	})

	t.Run("StatementReconciles", func(t *testing.T) {
		bs, err := l.Balances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, b := range bs {
			found = found || (b.Account == "retailer:R-2" && b.Available == 50_000 && b.Mode == ledger.ModeCredit)
		}
		if !found {
			t.Fatalf("R-2 (no movement yet) is not in the balances as a credit account: %+v", bs)
		}
		st := message.Statement{StatementID: "X", PartyKind: message.PartyRetailer, Party: "R-1", From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour),
			Lines:  []message.StatementLine{{Kind: "topup", Currency: "EUR", Net: 5000}},
			Totals: []message.StatementTotal{{Currency: "EUR", Opening: 0, Net: 5000, Closing: 5000}}}
		rec, err := l.Reconcile(ctx, st)
		if err != nil || len(rec) != 1 || !rec[0].OK() {
			t.Fatalf("reconcile: %+v %v", rec, err)
		}
		st.Totals[0].Net, st.Totals[0].Closing = 4999, 4999
		if _, err := l.Reconcile(ctx, st); err == nil {
			t.Fatal("a statement off by one minor unit reconciles")
		}
	})
}

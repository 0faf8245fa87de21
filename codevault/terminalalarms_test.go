package codevault_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/retailer"
)

// TestTerminalAlarms: a terminal's sync carries the unresolved alarms about it, its retailer's
// credit and the expiring codes it holds, and nothing of other terminals, resolved alarms or
// security matters.
func TestTerminalAlarms(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	setClock(f.clock, now)
	cs := f.stock(t, 130_000_000_000, 10)
	f.mustShop(t, "R-1", "T-1", "V-1")
	if _, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-1", Operator: "OP-A", Product: "P10", Quantity: 5}); err != nil {
		t.Fatal(err)
	}
	if err := f.shops.CreateRetailer(ctx, retailer.Retailer{ID: "R-2", Name: "R-2"}); err != nil {
		t.Fatal(err)
	}
	for _, tm := range []retailer.Terminal{{ID: "T-2", Retailer: "R-2", Name: "T-2"}, {ID: "T-10", Retailer: "R-2", Name: "T-10"}} {
		if err := f.shops.AddTerminal(ctx, tm); err != nil {
			t.Fatal(err)
		}
	}
	// The codes at T-1 expire in 10 days; those in the vault in a year.
	soon := now.AddDate(0, 0, 10).Format(time.DateOnly)
	f.exec(t, `UPDATE codes SET expires_on = $1 WHERE state = 'shipped'`, soon)
	alarm := func(kind, subject, state, msg string, age time.Duration) {
		t.Helper()
		at := now.Add(-age)
		var resolved *time.Time
		if state == codevault.AlarmResolved {
			resolved = &now
		}
		f.exec(t, `INSERT INTO alarms (kind, subject, message, state, first_at, last_at, resolved_at) VALUES ($1, $2, $3, $4, $5, $5, $6)`,
			kind, subject, msg, state, at, resolved)
	}
	alarm(codevault.AlarmTerminalLowStock, "T-1/OP-A/P10", codevault.AlarmOpen, "T-1 low on P10", 1*time.Minute)
	alarm(codevault.AlarmSilentTerminal, "T-1", codevault.AlarmAcknowledged, "T-1 silent", 2*time.Minute)
	alarm(codevault.AlarmCreditLimit, "R-1", codevault.AlarmOpen, "R-1 over its credit", 3*time.Minute)
	alarm(codevault.AlarmExpiringStock, "OP-A/P10", codevault.AlarmOpen, "vault-wide expiring wording", 4*time.Minute)
	// Not T-1's: resolved, another terminal (T-10 shares T-1's prefix), another retailer,
	// a product with no codes at T-1, and security.
	alarm(codevault.AlarmReportGap, "T-1", codevault.AlarmResolved, "T-1 old gap", 5*time.Minute)
	alarm(codevault.AlarmReportGap, "T-2", codevault.AlarmOpen, "T-2 gap", 6*time.Minute)
	alarm(codevault.AlarmTerminalLowStock, "T-10/OP-A/P10", codevault.AlarmOpen, "T-10 low", 7*time.Minute)
	alarm(codevault.AlarmCreditLimit, "R-2", codevault.AlarmOpen, "R-2 over its credit", 8*time.Minute)
	alarm(codevault.AlarmExpiringStock, "OP-B/P10", codevault.AlarmOpen, "OP-B expiring", 9*time.Minute)
	alarm(codevault.AlarmSecurity, "exchange:terminal:T-1", codevault.AlarmOpen, "refused a document from T-1", 10*time.Minute)

	t.Run("OK", func(t *testing.T) {
		got, err := f.vault.TerminalAlarms(ctx, "T-1")
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, a := range got {
			kinds = append(kinds, a.Kind+"/"+a.State)
		}
		want := "terminal_low_stock/open silent_terminal/acknowledged credit_limit/open expiring_stock/open"
		if strings.Join(kinds, " ") != want {
			t.Fatalf("T-1's alarms %q, want %q (most recent first): %+v", strings.Join(kinds, " "), want, got)
		}
		if got[0].Message != "T-1 low on P10" || !got[0].Since.Equal(now.Add(-time.Minute)) {
			t.Fatalf("first alarm %+v", got[0])
		}
		wantExp := "5 codes of OP-A/P10 on this terminal expire by " + now.AddDate(0, 0, 30).Format(time.DateOnly) + ", the first on " + soon
		if !strings.HasPrefix(got[3].Message, wantExp) {
			t.Fatalf("expiring alarm says %q, want it to start %q", got[3].Message, wantExp)
		}
		for _, a := range got {
			for _, c := range cs {
				if strings.Contains(a.Message, string(c.PIN)) {
					t.Fatalf("alarm %+v carries a PIN", a)
				}
			}
		}
	})
	t.Run("OtherTerminal", func(t *testing.T) {
		got, err := f.vault.TerminalAlarms(ctx, "T-2")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Message != "T-2 gap" || got[1].Message != "R-2 over its credit" {
			t.Fatalf("T-2's alarms %+v, want its report gap and R-2's credit", got)
		}
	})
	t.Run("UnknownTerminal", func(t *testing.T) {
		got, err := f.vault.TerminalAlarms(ctx, "T-404")
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("alarms of an unknown terminal: %+v, %v; want an empty list", got, err)
		}
	})
}

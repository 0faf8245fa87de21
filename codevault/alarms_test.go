package codevault_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/retailer"
)

func setClock(c *clock, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// mustCheck runs CheckAlarms and fails unless it raised and resolved as many as given.
func (f *fixture) mustCheck(t *testing.T, v *codevault.Vault, raised, resolved int) {
	t.Helper()
	r, s, err := v.CheckAlarms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r != raised || s != resolved {
		t.Fatalf("CheckAlarms raised %d and resolved %d, want %d and %d", r, s, raised, resolved)
	}
}

// latestAlarm returns the most recent alarm of kind about subject.
func (f *fixture) latestAlarm(t *testing.T, kind, subject string) codevault.Alarm {
	t.Helper()
	as, err := f.vault.Alarms(context.Background(), codevault.AlarmFilter{State: "all", Kind: kind, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Subject == subject {
			return a
		}
	}
	t.Fatalf("no %s alarm about %s", kind, subject)
	return codevault.Alarm{}
}

func (f *fixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := f.db.Exec(context.Background(), q, args...); err != nil {
		t.Fatal(err)
	}
}

func wantAlarm(t *testing.T, a codevault.Alarm, state string, occurrences int, msg ...string) {
	t.Helper()
	if a.State != state || a.Occurrences != occurrences || !contains(a.Message, msg...) {
		t.Fatalf("alarm %+v, want %s with %d occurrences saying %q", a, state, occurrences, msg)
	}
	if (state == codevault.AlarmResolved) != (a.ResolvedAt != nil) {
		t.Fatalf("alarm %s has resolved_at %v", a.State, a.ResolvedAt)
	}
}

func TestAlarmConditions(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	setClock(f.clock, now)
	f.stock(t, 120_000_000_000, 60)
	f.mustShop(t, "R-1", "T-1", "V-1")
	if err := f.shops.SetLevel(ctx, retailer.Level{Terminal: "T-1", Operator: "OP-A", Product: "P10", Min: 5, Max: 40}); err != nil {
		t.Fatal(err)
	}
	info, err := f.vault.Ship(ctx, codevault.ShipRequest{Terminal: "T-1", Operator: "OP-A", Product: "P10", Quantity: 40})
	if err != nil {
		t.Fatal(err)
	}
	const subject = "T-1/OP-A/P10"

	t.Run("NothingAtFirst", func(t *testing.T) {
		// T-1 has reported no stock yet, was added just now; the codes expire in a year.
		f.mustCheck(t, f.vault, 0, 0)
	})
	t.Run("TerminalBelowMinimum", func(t *testing.T) {
		f.exec(t, `UPDATE terminal_products SET reported_stock = 3, reported_at = $1 WHERE terminal_id = 'T-1'`, now)
		f.mustCheck(t, f.vault, 1, 0)
		a := f.latestAlarm(t, codevault.AlarmTerminalLowStock, subject)
		wantAlarm(t, a, codevault.AlarmOpen, 1, "T-1 has 3 of OP-A/P10 left, below its minimum level 5")
		if !a.FirstAt.Equal(now) || !a.LastAt.Equal(now) {
			t.Fatalf("alarm first and last at %s, %s, want %s", a.FirstAt, a.LastAt, now)
		}
		// The condition holding on is the same episode: not raised again, not counted again.
		f.mustCheck(t, f.vault, 0, 0)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmTerminalLowStock, subject), codevault.AlarmOpen, 1)
		if n := f.count(t, `SELECT count(*) FROM alarm_deliveries WHERE alarm_id = $1`, a.ID); n != 1 {
			t.Fatalf("%d notifications queued for one alarm raised once", n)
		}

		f.exec(t, `UPDATE terminal_products SET reported_stock = 30 WHERE terminal_id = 'T-1'`)
		f.mustCheck(t, f.vault, 0, 1)
		a = f.latestAlarm(t, codevault.AlarmTerminalLowStock, subject)
		wantAlarm(t, a, codevault.AlarmResolved, 1)
		if !a.ResolvedAt.Equal(now) {
			t.Fatalf("resolved at %s, want %s", a.ResolvedAt, now)
		}
	})
	t.Run("TerminalDaysOfCover", func(t *testing.T) {
		// 35 sales in the last 6 days: 5 a day.
		f.exec(t, `UPDATE codes SET state = 'sold', sold_at = $2 WHERE id IN (SELECT id FROM codes WHERE shipment_id = $1 ORDER BY id LIMIT 35)`, info.ID, now)
		f.exec(t, `INSERT INTO sales (code_id, terminal_id, vendor_id, ticket, sold_at)
			SELECT id, 'T-1', 'V-1', 'TK-' || id, $2::timestamptz - (id % 6) * interval '1 day' FROM codes WHERE shipment_id = $1 AND state = 'sold'`, info.ID, now)
		f.exec(t, `UPDATE terminal_products SET reported_stock = 12 WHERE terminal_id = 'T-1'`) // 2.4 days
		f.mustCheck(t, f.vault, 0, 0)
		f.exec(t, `UPDATE terminal_products SET reported_stock = 8 WHERE terminal_id = 'T-1'`) // 1.6 days
		f.mustCheck(t, f.vault, 1, 0)
		a := f.latestAlarm(t, codevault.AlarmTerminalLowStock, subject)
		wantAlarm(t, a, codevault.AlarmOpen, 1, "T-1 has 8 of OP-A/P10 left, 1.6 days of cover at 35 sales in 7 days")
		// The sales age out of the window: no rate, no shortage.
		f.exec(t, `UPDATE sales SET sold_at = sold_at - interval '8 days'`)
		f.mustCheck(t, f.vault, 0, 1)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmTerminalLowStock, subject), codevault.AlarmResolved, 1)
	})
	t.Run("ExpiringStock", func(t *testing.T) {
		soon := now.AddDate(0, 0, 10).Format(time.DateOnly)
		f.exec(t, `UPDATE codes SET expires_on = $1 WHERE id IN (SELECT id FROM codes WHERE state = 'in_vault' ORDER BY id LIMIT 3)`, soon)
		f.exec(t, `UPDATE codes SET expires_on = $1 WHERE state IN ('shipped', 'sold')`, soon) // 5 shipped, 35 sold
		f.exec(t, `UPDATE codes SET expires_on = $1 WHERE id = (SELECT max(id) FROM codes WHERE state = 'in_vault')`,
			now.AddDate(0, 0, 40).Format(time.DateOnly)) // beyond 30 days
		f.mustCheck(t, f.vault, 1, 0)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmExpiringStock, "OP-A/P10"), codevault.AlarmOpen, 1,
			"8 codes of OP-A/P10 expire by "+now.AddDate(0, 0, 30).Format(time.DateOnly), "the first on "+soon, "3 in the vault, 5 at terminals")
		if as, _ := f.vault.Alarms(ctx, codevault.AlarmFilter{Kind: codevault.AlarmExpiringStock}); len(as) != 1 {
			t.Fatalf("%d expiring_stock alarms, want one for OP-A/P10", len(as))
		}
		f.exec(t, `UPDATE codes SET expires_on = $1`, now.AddDate(1, 0, 0).Format(time.DateOnly))
		f.mustCheck(t, f.vault, 0, 1)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmExpiringStock, "OP-A/P10"), codevault.AlarmResolved, 1)
	})
	t.Run("SilentTerminal", func(t *testing.T) {
		if err := f.shops.AddTerminal(ctx, retailer.Terminal{ID: "T-2", Retailer: "R-1", Name: "T-2"}); err != nil {
			t.Fatal(err)
		}
		// T-2 is long silent too, but revoked: nobody expects to hear from it.
		f.exec(t, `UPDATE terminals SET status = 'revoked', created_at = $1 WHERE id = 'T-2'`, now.Add(-72*time.Hour))
		f.exec(t, `UPDATE terminals SET created_at = $1 WHERE id = 'T-1'`, now.Add(-23*time.Hour))
		f.mustCheck(t, f.vault, 0, 0)
		f.exec(t, `UPDATE terminals SET created_at = $1 WHERE id = 'T-1'`, now.Add(-25*time.Hour))
		f.mustCheck(t, f.vault, 1, 0)
		a := f.latestAlarm(t, codevault.AlarmSilentTerminal, "T-1")
		wantAlarm(t, a, codevault.AlarmOpen, 1, "T-1 has never been heard from since it was added on")

		seen := now.Add(-30 * time.Hour)
		f.exec(t, `UPDATE terminals SET last_seen_at = $1 WHERE id = 'T-1'`, seen)
		f.mustCheck(t, f.vault, 0, 0)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmSilentTerminal, "T-1"), codevault.AlarmOpen, 1,
			"T-1 has not been heard from since "+seen.Format(time.RFC3339))
		if n := f.count(t, `SELECT count(*) FROM alarm_deliveries WHERE alarm_id = $1`, a.ID); n != 1 {
			t.Fatalf("a new wording queued a notification: %d for the alarm", n)
		}

		f.exec(t, `UPDATE terminals SET last_seen_at = $1 WHERE id = 'T-1'`, now.Add(-2*time.Hour))
		f.mustCheck(t, f.vault, 0, 1)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmSilentTerminal, "T-1"), codevault.AlarmResolved, 1)

		// The policy is the vault's configuration.
		strict := must[*codevault.Vault](t)(codevault.New(codevault.Config{DB: f.db, Keys: f.tok,
			Decrypter: must[*pkcs11.RSAKey](t)(f.tok.FindRSAKey("center-encrypt")), EncryptCert: f.centerEnc.cert,
			Signer: f.centerSign.key, SignCert: f.centerSign.cert, PKI: f.ca, Now: f.clock.Now,
			Alarms: codevault.AlarmPolicy{SilentAfter: time.Hour}}))
		f.mustCheck(t, strict, 1, 0)
		f.mustCheck(t, f.vault, 0, 1)
	})
}

func TestAlarmTransitions(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	setClock(f.clock, now)
	if err := f.shops.CreateRetailer(ctx, retailer.Retailer{ID: "R-9", Name: "R-9"}); err != nil {
		t.Fatal(err)
	}
	if err := f.shops.AddTerminal(ctx, retailer.Terminal{ID: "T-9", Retailer: "R-9", Name: "T-9"}); err != nil {
		t.Fatal(err)
	}
	f.exec(t, `UPDATE terminals SET created_at = $1 WHERE id = 'T-9'`, now.Add(-48*time.Hour))
	f.mustCheck(t, f.vault, 1, 0)
	a := f.latestAlarm(t, codevault.AlarmSilentTerminal, "T-9")
	// A security alarm, raised by a refusal, is resolved by hand only.
	if _, err := f.vault.Receive(ctx, peer("OP-B"), []byte("<not-a-batch/>")); err == nil {
		t.Fatal("garbage accepted")
	}
	sec := f.latestAlarm(t, codevault.AlarmSecurity, "exchange:operator-sign OP-B")

	list := func(t *testing.T, fl codevault.AlarmFilter) map[int64]string {
		t.Helper()
		as, err := f.vault.Alarms(ctx, fl)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]string{}
		for _, a := range as {
			out[a.ID] = a.State
		}
		return out
	}
	wantErr := func(t *testing.T, err error, kind *evoucher.Error, reason string) {
		t.Helper()
		if !errors.Is(err, kind) || evoucher.ReasonOf(err) != reason {
			t.Fatalf("got %v (%s), want %s/%s", err, evoucher.ReasonOf(err), kind.Kind, reason)
		}
	}

	t.Run("List", func(t *testing.T) {
		if got := list(t, codevault.AlarmFilter{State: "open"}); got[a.ID] != "open" || got[sec.ID] != "open" || len(got) != 2 {
			t.Fatalf("open alarms %v", got)
		}
		if got := list(t, codevault.AlarmFilter{Kind: codevault.AlarmSilentTerminal}); len(got) != 1 || got[a.ID] == "" {
			t.Fatalf("silent_terminal alarms %v", got)
		}
		if got := list(t, codevault.AlarmFilter{State: "all", Limit: 1}); len(got) != 1 {
			t.Fatalf("limit 1 listed %v", got)
		}
	})
	t.Run("ErrBadFilter", func(t *testing.T) {
		_, err := f.vault.Alarms(ctx, codevault.AlarmFilter{State: "closed"})
		wantErr(t, err, evoucher.ErrInvalid, "bad_alarm_state")
		_, err = f.vault.Alarms(ctx, codevault.AlarmFilter{Kind: "fire"})
		wantErr(t, err, evoucher.ErrInvalid, "bad_alarm_kind")
	})
	t.Run("Acknowledge", func(t *testing.T) {
		setClock(f.clock, now.Add(time.Minute))
		got, err := f.vault.Acknowledge(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantAlarm(t, got, codevault.AlarmAcknowledged, 1)
		if s := list(t, codevault.AlarmFilter{State: "open"}); s[a.ID] != "" {
			t.Fatal("an acknowledged alarm is listed as open")
		}
		if s := list(t, codevault.AlarmFilter{State: "acknowledged"}); s[a.ID] != "acknowledged" {
			t.Fatal("the acknowledged alarm is not listed as such")
		}
		// Still silent: the alarm stays acknowledged, not raised anew.
		f.mustCheck(t, f.vault, 0, 0)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmSilentTerminal, "T-9"), codevault.AlarmAcknowledged, 1)
	})
	t.Run("ErrAcknowledgedAlready", func(t *testing.T) {
		_, err := f.vault.Acknowledge(ctx, a.ID)
		wantErr(t, err, evoucher.ErrConflict, "alarm_acknowledged")
	})
	t.Run("Resolve", func(t *testing.T) {
		setClock(f.clock, now.Add(2*time.Minute))
		got, err := f.vault.Resolve(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantAlarm(t, got, codevault.AlarmResolved, 1)
		if !got.ResolvedAt.Equal(now.Add(2 * time.Minute)) {
			t.Fatalf("resolved at %s", got.ResolvedAt)
		}
	})
	t.Run("ErrResolvedAlready", func(t *testing.T) {
		_, err := f.vault.Resolve(ctx, a.ID)
		wantErr(t, err, evoucher.ErrConflict, "alarm_resolved")
		_, err = f.vault.Acknowledge(ctx, a.ID)
		wantErr(t, err, evoucher.ErrConflict, "alarm_resolved")
		if !strings.Contains(err.Error(), "silent_terminal T-9") {
			t.Fatalf("message %q does not say which alarm", err)
		}
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		_, err := f.vault.Acknowledge(ctx, 1<<40)
		wantErr(t, err, evoucher.ErrNotFound, "unknown_alarm")
		_, err = f.vault.Resolve(ctx, 1<<40)
		wantErr(t, err, evoucher.ErrNotFound, "unknown_alarm")
	})
	t.Run("ReopensWhileConditionHolds", func(t *testing.T) {
		f.mustCheck(t, f.vault, 1, 0)
		b := f.latestAlarm(t, codevault.AlarmSilentTerminal, "T-9")
		if b.ID == a.ID {
			t.Fatal("the resolved alarm was reopened instead of a new one raised")
		}
		wantAlarm(t, b, codevault.AlarmOpen, 1)
		// open → resolved directly.
		got, err := f.vault.Resolve(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantAlarm(t, got, codevault.AlarmResolved, 1)
	})
	t.Run("SecurityStaysOpen", func(t *testing.T) {
		f.exec(t, `UPDATE terminals SET last_seen_at = $1 WHERE id = 'T-9'`, now)
		f.mustCheck(t, f.vault, 0, 0)
		wantAlarm(t, f.latestAlarm(t, codevault.AlarmSecurity, sec.Subject), codevault.AlarmOpen, 1)
	})
}

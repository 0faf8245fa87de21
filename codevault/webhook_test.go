package codevault_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/retailer"
)

// hook is a webhook receiver on 127.0.0.1 that fails the first failures requests.
type hook struct {
	srv      *httptest.Server
	mu       sync.Mutex
	failures int
	got      []hookRequest
}

type hookRequest struct {
	header http.Header
	body   []byte
}

func mustHook(t *testing.T, failures int) *hook {
	h := &hook{failures: failures}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.got = append(h.got, hookRequest{r.Header.Clone(), b})
		if len(h.got) <= h.failures {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.got...)
}

// mustNotification checks a request's signature with the secret and returns its body.
func mustNotification(t *testing.T, secret []byte, r hookRequest) codevault.Notification {
	t.Helper()
	mac := hmac.New(sha256.New, secret)
	mac.Write(r.body)
	if got, want := r.header.Get("X-Evoucher-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	var fields map[string]any
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "kind", "subject", "message", "state", "occurrences", "first_at", "last_at"} {
		if _, ok := fields[k]; !ok || len(fields) != 8 {
			t.Fatalf("notification %s: want exactly id, kind, subject, message, state, occurrences, first_at, last_at", r.body)
		}
	}
	var n codevault.Notification
	if err := json.Unmarshal(r.body, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) silent(t *testing.T, terminal string, now time.Time) codevault.Alarm {
	t.Helper()
	ctx := context.Background()
	if _, err := f.shops.Retailer(ctx, "R-1"); err != nil {
		if err := f.shops.CreateRetailer(ctx, retailer.Retailer{ID: "R-1", Name: "R-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.shops.AddTerminal(ctx, retailer.Terminal{ID: terminal, Retailer: "R-1", Name: terminal}); err != nil {
		t.Fatal(err)
	}
	f.exec(t, `UPDATE terminals SET created_at = $1 WHERE id = $2`, now.Add(-48*time.Hour), terminal)
	f.mustCheck(t, f.vault, 1, 0)
	return f.latestAlarm(t, codevault.AlarmSilentTerminal, terminal)
}

func TestNotifier(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	setClock(f.clock, now)
	secret := codevault.WebhookSecret("a webhook secret of some length")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("RetriedInOrderAndSigned", func(t *testing.T) {
		h := mustHook(t, 2)
		n, err := f.vault.Notifier(codevault.NotifierConfig{URL: h.srv.URL + "/alarms", Secret: secret, Logger: quiet, Backoff: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		a := f.silent(t, "T-1", now)
		deliver := func(t *testing.T, delivered, failed, requests int) {
			t.Helper()
			d, fl, err := n.Deliver(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d != delivered || fl != failed || len(h.requests()) != requests {
				t.Fatalf("delivered %d, failed %d, %d requests; want %d, %d, %d", d, fl, len(h.requests()), delivered, failed, requests)
			}
		}
		deliver(t, 0, 1, 1)
		var attempts int
		var next time.Time
		var lastErr string
		if err := f.db.QueryRow(ctx, `SELECT attempts, next_attempt_at, last_error FROM alarm_deliveries WHERE alarm_id = $1`, a.ID).
			Scan(&attempts, &next, &lastErr); err != nil {
			t.Fatal(err)
		}
		if attempts != 1 || !next.Equal(now.Add(time.Minute)) || !strings.Contains(lastErr, "503") {
			t.Fatalf("after a failure: %d attempts, next at %s, error %q", attempts, next, lastErr)
		}
		// A change while the first notification is pending goes out after it, never before.
		if _, err := f.vault.Acknowledge(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		deliver(t, 0, 0, 1)
		setClock(f.clock, now.Add(time.Minute))
		deliver(t, 0, 1, 2)
		setClock(f.clock, now.Add(2*time.Minute)) // not yet: the second wait is 2 minutes
		deliver(t, 0, 0, 2)
		setClock(f.clock, now.Add(3*time.Minute))
		deliver(t, 2, 0, 4)

		got := h.requests()
		first := got[0].header.Get("X-Evoucher-Delivery")
		for i, r := range got[:3] {
			if r.header.Get("X-Evoucher-Delivery") != first || !bytes.Equal(r.body, got[0].body) {
				t.Fatalf("retry %d is not the same delivery: %s %s", i, r.header.Get("X-Evoucher-Delivery"), r.body)
			}
			if nt := mustNotification(t, secret, r); nt.ID != a.ID || nt.Kind != "silent_terminal" || nt.Subject != "T-1" ||
				nt.State != "open" || nt.Occurrences != 1 || !nt.FirstAt.Equal(now) || !nt.LastAt.Equal(now) ||
				!strings.Contains(nt.Message, "T-1 has never been heard from") {
				t.Fatalf("notification %+v", nt)
			}
		}
		if got[3].header.Get("X-Evoucher-Delivery") == first {
			t.Fatal("the acknowledgement reused the delivery id of the raise")
		}
		if nt := mustNotification(t, secret, got[3]); nt.ID != a.ID || nt.State != "acknowledged" {
			t.Fatalf("second notification %+v", nt)
		}
		if n := f.count(t, `SELECT count(*) FROM alarm_deliveries WHERE alarm_id = $1 AND delivered_at IS NOT NULL AND last_error IS NULL`, a.ID); n != 2 {
			t.Fatalf("%d deliveries recorded as delivered, want 2", n)
		}
		deliver(t, 0, 0, 4)
	})

	t.Run("ErrForgedSignature", func(t *testing.T) {
		h := mustHook(t, 0)
		other, _ := f.vault.Notifier(codevault.NotifierConfig{URL: h.srv.URL, Secret: codevault.WebhookSecret("another secret, not ours"), Logger: quiet})
		f.silent(t, "T-5", now)
		if _, _, err := other.Deliver(ctx); err != nil {
			t.Fatal(err)
		}
		r := h.requests()[0]
		mac := hmac.New(sha256.New, secret)
		mac.Write(r.body)
		if hmac.Equal([]byte(r.header.Get("X-Evoucher-Signature")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
			t.Fatal("a notification signed with another secret verifies with ours")
		}
	})

	t.Run("CoalescedUntilSent", func(t *testing.T) {
		h := mustHook(t, 0)
		n, _ := f.vault.Notifier(codevault.NotifierConfig{URL: h.srv.URL, Secret: secret, Logger: quiet})
		a := f.silent(t, "T-2", now)
		if _, err := f.vault.Acknowledge(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.Resolve(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		f.exec(t, `UPDATE terminals SET last_seen_at = '2100-01-01' WHERE id = 'T-2'`) // or it would be raised again
		if d, _, err := n.Deliver(ctx); err != nil || d != 1 {
			t.Fatalf("delivered %d: %v", d, err)
		}
		if nt := mustNotification(t, secret, h.requests()[0]); nt.ID != a.ID || nt.State != "resolved" {
			t.Fatalf("notification %+v, want the latest state", nt)
		}
	})

	t.Run("GivenUp", func(t *testing.T) {
		h := mustHook(t, 1000)
		n, _ := f.vault.Notifier(codevault.NotifierConfig{URL: h.srv.URL, Secret: secret, Logger: quiet, Backoff: time.Second, MaxAttempts: 3})
		a := f.silent(t, "T-3", now.Add(3*time.Minute))
		for i := range 5 {
			setClock(f.clock, now.Add(3*time.Minute+time.Duration(i)*time.Hour))
			if _, _, err := n.Deliver(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if len(h.requests()) != 3 {
			t.Fatalf("%d attempts, want 3", len(h.requests()))
		}
		if f.count(t, `SELECT count(*) FROM alarm_deliveries WHERE alarm_id = $1 AND gave_up_at IS NOT NULL AND attempts = 3`, a.ID) != 1 {
			t.Fatal("the delivery is not recorded as given up after 3 attempts")
		}
	})

	t.Run("Run", func(t *testing.T) {
		h := mustHook(t, 0)
		n, _ := f.vault.Notifier(codevault.NotifierConfig{URL: h.srv.URL, Secret: secret, Logger: quiet, Poll: 10 * time.Millisecond})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.Run(rctx) }()
		a := f.silent(t, "T-4", now.Add(4*time.Hour))
		deadline := time.Now().Add(10 * time.Second)
		for len(h.requests()) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := h.requests(); len(got) != 1 || mustNotification(t, secret, got[0]).Subject != "T-4" {
			t.Fatalf("Run sent %d notifications", len(got))
		}
		if f.count(t, `SELECT count(*) FROM alarm_deliveries WHERE alarm_id = $1 AND delivered_at IS NOT NULL`, a.ID) != 1 {
			t.Fatal("the delivery is not recorded")
		}
	})

	t.Run("ErrConfig", func(t *testing.T) {
		for _, c := range []codevault.NotifierConfig{
			{URL: "ftp://127.0.0.1/x", Secret: secret},
			{URL: "http://", Secret: secret},
			{URL: "http://127.0.0.1/", Secret: codevault.WebhookSecret("short")},
		} {
			if _, err := f.vault.Notifier(c); err == nil {
				t.Fatalf("accepted %s", c.URL)
			}
		}
	})

	t.Run("SecretRedacted", func(t *testing.T) {
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", secret)
		for _, s := range []string{fmt.Sprint(secret), fmt.Sprintf("%v %s %x %#v %q", secret, secret, secret, secret, secret), logs.String()} {
			if strings.Contains(s, "webhook secret") || strings.Contains(s, hex.EncodeToString(secret)) || !strings.Contains(s, "[redacted]") {
				t.Fatalf("secret shown: %s", s)
			}
		}
	})
}

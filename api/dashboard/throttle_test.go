package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher/api/dashboard"
)

// fakeClock is the dashboard's clock in these tests: it moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func mustThrottledEnv(t *testing.T, limit dashboard.LoginLimit, proxies ...netip.Prefix) (*env, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	e := mustEnv(t, func(c *dashboard.Config) {
		c.Now, c.LoginLimit, c.TrustedProxies = clock.Now, limit, proxies
	})
	return e, clock
}

// loginFrom posts the login form as a client at remote ("ip:port") would, with the given
// X-Forwarded-For header if any, straight to the router so that the address is the test's.
func (e *env) loginFrom(t *testing.T, remote, name, pw string, xff ...string) *httptest.ResponseRecorder {
	t.Helper()
	form := url.Values{"csrf": {"tok"}, "name": {name}, "password": {pw}}
	req := httptest.NewRequest("POST", "https://127.0.0.1/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "__Host-evoucher_login", Value: "tok"})
	for _, h := range xff {
		req.Header.Add("X-Forwarded-For", h)
	}
	req.RemoteAddr = remote
	w := httptest.NewRecorder()
	e.router.ServeHTTP(w, req)
	return w
}

func (e *env) failedLogins(t *testing.T) map[string]int {
	t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT name, failed_logins FROM dashboard_users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		m[name] = n
	}
	return m
}

func wantStatus(t *testing.T, what string, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("%s: status %d, want %d", what, w.Code, status)
	}
}

// TestLoginThrottle sprays passwords over every account from one address with the default
// limit (10 a minute, a burst of 10): the 11th attempt is refused before its password is
// checked, while another address logs in, and the address may try again as time passes.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	e, clock := mustThrottledEnv(t, dashboard.LoginLimit{})
	names := []string{"admin", "auditor", "manager", "op-a", "rm-a"}
	const sprayer = "192.0.2.1"
	for i := range 10 {
		wantStatus(t, fmt.Sprintf("attempt %d", i+1), e.loginFrom(t, sprayer+":40000", names[i%5], "spray"), http.StatusUnauthorized)
	}
	failed := e.failedLogins(t)

	t.Run("ErrThrottled", func(t *testing.T) {
		// The right password, from another port of the same address: refused all the same.
		w := e.loginFrom(t, sprayer+":40001", "admin", password)
		wantStatus(t, "11th attempt", w, http.StatusTooManyRequests)
		if got := w.Header().Get("Retry-After"); got != "6" {
			t.Errorf("Retry-After %q, want 6 (one attempt back every 6 s)", got)
		}
		if body := w.Body.String(); !strings.Contains(body, "too many login attempts from your network address: wait 6 seconds") {
			t.Errorf("no clear message:\n%s", body)
		}
		for _, c := range w.Result().Cookies() {
			if c.Name == "__Host-evoucher_session" {
				t.Fatal("a throttled login got a session")
			}
		}
		// X-Forwarded-For is the client's own words when no proxy is trusted.
		wantStatus(t, "spoofed X-Forwarded-For", e.loginFrom(t, sprayer+":40002", "admin", password, "198.51.100.99"), http.StatusTooManyRequests)
		// The password was never checked: no failure counted, no session opened.
		if after := e.failedLogins(t); fmt.Sprint(after) != fmt.Sprint(failed) || after["admin"] != 2 {
			t.Fatalf("failed_logins changed by throttled attempts: %v, then %v", failed, after)
		}
		var sessions int
		if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM dashboard_sessions`).Scan(&sessions); err != nil || sessions != 0 {
			t.Fatalf("%d sessions: %v", sessions, err)
		}
		w = httptest.NewRecorder()
		e.router.ServeHTTP(w, httptest.NewRequest("GET", "https://127.0.0.1/metrics", nil))
		for _, want := range []string{`evoucher_dashboard_login_failures_total{reason="throttled"} 2`,
			`evoucher_dashboard_login_failures_total{reason="bad_credentials"} 10`} {
			if !strings.Contains(w.Body.String(), want) {
				t.Errorf("metrics lack %s:\n%s", want, grep(w.Body.String(), "evoucher_dashboard"))
			}
		}
	})

	t.Run("OtherAddress", func(t *testing.T) {
		wantStatus(t, "another address", e.loginFrom(t, "198.51.100.7:5000", "admin", password), http.StatusSeeOther)
	})

	t.Run("IPv6Per64", func(t *testing.T) {
		for i := range 10 {
			wantStatus(t, fmt.Sprintf("attempt %d", i+1), e.loginFrom(t, "[2001:db8::1]:443", "nobody", "spray"), http.StatusUnauthorized)
		}
		wantStatus(t, "same /64", e.loginFrom(t, "[2001:db8::ffff:1]:443", "nobody", "spray"), http.StatusTooManyRequests)
		wantStatus(t, "next /64", e.loginFrom(t, "[2001:db8:0:1::1]:443", "nobody", "spray"), http.StatusUnauthorized)
	})

	t.Run("OKAfterWait", func(t *testing.T) {
		clock.Advance(5 * time.Second)
		w := e.loginFrom(t, sprayer+":40003", "nobody", "spray")
		wantStatus(t, "after 5 s", w, http.StatusTooManyRequests)
		if got := w.Header().Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After %q after 5 s, want 1", got)
		}
		clock.Advance(time.Second)
		wantStatus(t, "after 6 s", e.loginFrom(t, sprayer+":40004", "nobody", "spray"), http.StatusUnauthorized)
		wantStatus(t, "2nd after 6 s", e.loginFrom(t, sprayer+":40005", "nobody", "spray"), http.StatusTooManyRequests)
		// A minute on, the whole burst is back; the right password logs in.
		clock.Advance(time.Minute)
		for i := range 9 {
			wantStatus(t, fmt.Sprintf("attempt %d", i+1), e.loginFrom(t, sprayer+":40006", "nobody", "spray"), http.StatusUnauthorized)
		}
		wantStatus(t, "10th, right password", e.loginFrom(t, sprayer+":40006", "manager", password), http.StatusSeeOther)
		wantStatus(t, "11th", e.loginFrom(t, sprayer+":40006", "manager", password), http.StatusTooManyRequests)
	})
}

// TestLoginThrottleProxy trusts a proxy's X-Forwarded-For, and only the part the proxy wrote.
func TestLoginThrottleProxy(t *testing.T) {
	t.Parallel()
	e, _ := mustThrottledEnv(t, dashboard.LoginLimit{PerMinute: 2}, netip.MustParsePrefix("10.0.0.0/8"))
	const proxy = "10.1.2.3:3000"
	for i := range 2 {
		wantStatus(t, fmt.Sprintf("attempt %d", i+1), e.loginFrom(t, proxy, "nobody", "x", "203.0.113.9"), http.StatusUnauthorized)
	}
	wantStatus(t, "3rd", e.loginFrom(t, proxy, "nobody", "x", "203.0.113.9"), http.StatusTooManyRequests)
	// A client's own X-Forwarded-For comes before what the proxy appends: ignored.
	wantStatus(t, "spoofed", e.loginFrom(t, proxy, "nobody", "x", "6.6.6.6, 203.0.113.9"), http.StatusTooManyRequests)
	wantStatus(t, "spoofed, two headers", e.loginFrom(t, proxy, "nobody", "x", "6.6.6.6", "203.0.113.9"), http.StatusTooManyRequests)
	// Another client behind the proxy, behind a second trusted hop too.
	wantStatus(t, "other client", e.loginFrom(t, proxy, "nobody", "x", "203.0.113.10"), http.StatusUnauthorized)
	wantStatus(t, "other client, two hops", e.loginFrom(t, proxy, "nobody", "x", "203.0.113.11, 10.9.9.9"), http.StatusUnauthorized)
}

// TestLoginThrottleBounded: the limiter remembers at most MaxClients addresses, forgetting the
// one nearest a full bucket first (never the busy sprayer), and every idle one once full.
func TestLoginThrottleBounded(t *testing.T) {
	t.Parallel()
	e, clock := mustThrottledEnv(t, dashboard.LoginLimit{PerMinute: 1, Burst: 3, MaxClients: 5})
	for range 3 {
		wantStatus(t, "sprayer", e.loginFrom(t, "192.0.2.1:1", "nobody", "x"), http.StatusUnauthorized)
	}
	for i := range 12 {
		clock.Advance(time.Second) // each newer than the last
		wantStatus(t, "passer-by", e.loginFrom(t, fmt.Sprintf("198.51.100.%d:1", i+1), "nobody", "x"), http.StatusUnauthorized)
		if n := dashboard.LoginClients(e.dash); n > 5 {
			t.Fatalf("%d clients remembered, bound 5", n)
		}
	}
	if n := dashboard.LoginClients(e.dash); n != 5 {
		t.Fatalf("%d clients remembered, want 5", n)
	}
	wantStatus(t, "sprayer still", e.loginFrom(t, "192.0.2.1:1", "nobody", "x"), http.StatusTooManyRequests)
	clock.Advance(4 * time.Minute) // every bucket full again
	wantStatus(t, "newcomer", e.loginFrom(t, "203.0.113.1:1", "nobody", "x"), http.StatusUnauthorized)
	if n := dashboard.LoginClients(e.dash); n != 1 {
		t.Fatalf("%d clients remembered after all went idle, want 1", n)
	}
}

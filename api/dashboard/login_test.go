package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	ctx := context.Background()

	var hash string
	if err := e.db.QueryRow(ctx, `SELECT password_hash FROM dashboard_users WHERE name = 'manager'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(hash, password) {
		t.Fatalf("password hash %q is not argon2id", hash)
	}

	t.Run("ErrWrongPassword", func(t *testing.T) {
		if status, c := e.login(t, "manager", "wrong password!"); status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", status)
		} else if _, st := e.get(t, c, "/api/v1/me"); st != http.StatusUnauthorized {
			t.Fatalf("session after a refused login: %d", st)
		}
		if status, _ := e.login(t, "nobody", "wrong password!"); status != http.StatusUnauthorized {
			t.Fatalf("unknown user: %d", status)
		}
		metrics, _ := e.get(t, e.client(), "/metrics")
		if !strings.Contains(metrics, `evoucher_dashboard_login_failures_total{reason="bad_credentials"} 2`) {
			t.Fatalf("failures not counted:\n%s", grep(metrics, "evoucher_dashboard"))
		}
	})

	t.Run("ErrLocked", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			if status, _ := e.login(t, "auditor", "not the password"); status != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i, status)
			}
		}
		// Locked now: even the right password is refused.
		if status, _ := e.login(t, "auditor", password); status != http.StatusUnauthorized {
			t.Fatalf("locked account logged in: %d", status)
		}
		var locked bool
		if err := e.db.QueryRow(ctx, `SELECT locked_until > now() FROM dashboard_users WHERE name = 'auditor'`).Scan(&locked); err != nil || !locked {
			t.Fatalf("not locked: %v", err)
		}
		metrics, _ := e.get(t, e.client(), "/metrics")
		if !strings.Contains(metrics, `evoucher_dashboard_login_failures_total{reason="locked"} 1`) {
			t.Fatalf("lock not counted:\n%s", grep(metrics, "evoucher_dashboard"))
		}
	})

	t.Run("OK", func(t *testing.T) {
		c := e.mustLogin(t, "manager")
		body, status := e.get(t, c, "/api/v1/me")
		if status != http.StatusOK || !strings.Contains(body, `"role":"manager"`) {
			t.Fatalf("me: %d %s", status, body)
		}
		u, _ := url.Parse(e.srv.URL)
		for _, ck := range c.Jar.Cookies(u) {
			if ck.Name == "__Host-evoucher_session" && strings.Contains(hash, ck.Value) {
				t.Fatal("cookie leaks")
			}
		}
		// Logout ends the session server-side.
		if resp := e.post(t, c, "/logout", url.Values{"csrf": {e.csrf(t, c)}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if _, status := e.get(t, c, "/api/v1/me"); status != http.StatusUnauthorized {
			t.Fatalf("after logout: %d", status)
		}
	})

	t.Run("ErrDisabled", func(t *testing.T) {
		c := e.mustLogin(t, "op-a")
		if err := e.users.DisableUser(ctx, "op-a"); err != nil {
			t.Fatal(err)
		}
		if _, status := e.get(t, c, "/api/v1/me"); status != http.StatusUnauthorized {
			t.Fatalf("disabled user's session: %d", status)
		}
		if status, _ := e.login(t, "op-a", password); status != http.StatusUnauthorized {
			t.Fatalf("disabled user logged in: %d", status)
		}
	})
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	e := mustEnv(t)
	c := e.mustLogin(t, "admin")
	before := e.fingerprint(t)
	for name, form := range map[string]url.Values{
		"ErrMissing": {"id": {"R-X"}, "name": {"X"}},
		"ErrWrong":   {"id": {"R-X"}, "name": {"X"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
	} {
		if resp := e.post(t, c, "/ui/retailers", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
	}
	// Another user's token is wrong too.
	other := e.csrf(t, e.mustLogin(t, "manager"))
	if resp := e.post(t, c, "/ui/retailers", url.Values{"id": {"R-X"}, "name": {"X"}, "csrf": {other}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("other session's token: %d", resp.StatusCode)
	}
	if after := e.fingerprint(t); after != before {
		t.Fatal("a refused POST changed the database")
	}
	// JSON: the header, or nothing.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/alarms/1/acknowledge", nil)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("JSON POST without token: %v %v", resp.StatusCode, err)
	}
	// With the right token the same form works, so the refusals above were the token's.
	if resp := e.post(t, c, "/ui/retailers", url.Values{"id": {"R-X"}, "name": {"X"}, "csrf": {e.csrf(t, c)}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("with token: %d", resp.StatusCode)
	}
	if _, err := e.shops.Retailer(context.Background(), "R-X"); err != nil {
		t.Fatal(err)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

package dashboard

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
)

// loginPage shows the login form with a fresh anti-forgery token in a short-lived cookie
// (double submit: there is no session yet to bind it to).
func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.showLogin(w, r, http.StatusOK, "")
}

func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	tok := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/", MaxAge: 600, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	d.render(w, r, status, "login", "Log in", map[string]any{"Token": tok, "Next": safeNext(r.FormValue("next")), "Error": msg})
}

// safeNext keeps a post-login redirect on this site.
func safeNext(s string) string {
	if !strings.HasPrefix(s, "/ui/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return "/ui/"
	}
	return s
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || r.PostFormValue("csrf") != c.Value || !sameOrigin(r) {
		d.fail(w, r, false, evoucher.Errorf(evoucher.KindForbidden, "bad_csrf", "the login form expired: reload the page and try again"))
		return
	}
	// Throttled before the password check: that hash is the cost the limit bounds.
	client := clientOf(r, d.TrustedProxies)
	if ok, retry := d.logins.allow(client, d.Now()); !ok {
		secs := int((retry + time.Second - 1) / time.Second)
		d.Meter.LoginFailed("throttled")
		d.Logger.WarnContext(r.Context(), "login throttled", "user", r.PostFormValue("name"),
			"client", client.String(), "retry_after_s", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		d.showLogin(w, r, http.StatusTooManyRequests,
			fmt.Sprintf("too many login attempts from your network address: wait %d seconds and try again", secs))
		return
	}
	sess, err := d.Access.Login(r.Context(), r.PostFormValue("name"), access.Password(r.PostFormValue("password")))
	if err != nil {
		if evoucher.KindOf(err) == evoucher.KindInternal {
			d.fail(w, r, false, err)
			return
		}
		d.Logger.WarnContext(r.Context(), "login refused", "user", r.PostFormValue("name"), "reason", evoucher.ReasonOf(err))
		d.showLogin(w, r, http.StatusUnauthorized, evoucher.MessageOf(err))
		return
	}
	d.Logger.InfoContext(r.Context(), "logged in", "user", sess.Principal.Name, "role", string(sess.Principal.Role))
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: string(sess.Token), Path: "/", Expires: sess.ExpiresAt,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if err := d.Access.Logout(r.Context(), sessionToken(r)); err != nil {
		d.fail(w, r, false, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Expires: time.Unix(0, 0), MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

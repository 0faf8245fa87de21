package dashboard

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/codevault"
)

// pageRoutes mounts the pages and their form actions (behind a session and the CSRF check).
func (d *Dashboard) pageRoutes(r chi.Router) {
	r.Get("/ui/", d.overview)
	r.Get("/ui/events", d.liveEvents)
	r.With(d.need(access.SeeAlarms)).Get("/ui/alarms", d.alarmsPage)
	r.With(d.need(access.HandleAlarms)).Post("/ui/alarms/{id}/acknowledge", d.moveAlarmForm(true))
	r.With(d.need(access.HandleAlarms)).Post("/ui/alarms/{id}/resolve", d.moveAlarmForm(false))
	for _, j := range journals() {
		r.With(d.need(j.perm)).Get("/ui/"+j.name, d.journalPage(j))
	}
	d.adminRoutes(r)
	d.moneyRoutes(r)
	r.With(d.need(access.SeeRetailers)).Get("/ui/charts", d.chartsPage)
	r.With(d.need(access.SeeRetailers)).Get("/ui/charts/sales.svg", d.salesChart)
	r.With(d.need(access.SeeRetailers)).Get("/ui/charts/cover.svg", d.coverChart)
	r.With(d.need(access.SeeNetwork)).Get("/ui/audit", d.auditPage)
}

// overview shows stock per product (vault and terminals), days of cover, today's sales (codes
// and money) and the open alarms (credit_limit ones included), which update live.
func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	stock, err := d.Vault.StockOverview(r.Context(), scopeOf(p))
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	var alarms []codevault.Alarm
	if p.Can(access.SeeAlarms) {
		if alarms, err = d.Vault.ScopedAlarms(r.Context(), codevault.AlarmFilter{State: codevault.AlarmOpen, Limit: 50}, scopeOf(p)); err != nil {
			d.fail(w, r, false, err)
			return
		}
	}
	var terms []codevault.TerminalStock
	if p.Can(access.SeeRetailers) {
		if terms, err = d.Vault.TerminalStocks(r.Context(), scopeOf(p)); err != nil {
			d.fail(w, r, false, err)
			return
		}
	}
	sales, err := d.salesToday(r.Context(), p)
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "overview", "Overview", map[string]any{"Stock": stock, "Alarms": alarms, "Terminals": terms,
		"Sales": sales, "ShowVault": p.Retailer == "", "CanHandle": p.Can(access.HandleAlarms)})
}

func alarmFilter(r *http.Request) codevault.AlarmFilter {
	q := r.URL.Query()
	f := codevault.AlarmFilter{State: q.Get("state"), Kind: q.Get("kind"), Limit: 200}
	if f.State == "" {
		f.State = codevault.AlarmOpen
	}
	return f
}

func (d *Dashboard) alarmsPage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	f := alarmFilter(r)
	as, err := d.Vault.ScopedAlarms(r.Context(), f, scopeOf(p))
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "alarms", "Alarms", map[string]any{"Alarms": as, "State": f.State, "Kind": f.Kind,
		"Kinds": codevault.AlarmKinds(), "CanHandle": p.Can(access.HandleAlarms)})
}

func alarmID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, evoucher.Errorf(evoucher.KindInvalid, "bad_alarm_id", "alarm id %q is not a positive number", chi.URLParam(r, "id"))
	}
	return id, nil
}

// moveAlarm acknowledges or resolves an alarm as the logged-in user.
func (d *Dashboard) moveAlarm(r *http.Request, ack bool) (codevault.Alarm, error) {
	id, err := alarmID(r)
	if err != nil {
		return codevault.Alarm{}, err
	}
	move, to := d.Vault.Resolve, "resolved"
	if ack {
		move, to = d.Vault.Acknowledge, "acknowledged"
	}
	a, err := move(r.Context(), id)
	if err == nil {
		d.Logger.InfoContext(r.Context(), "alarm "+to, "alarm", a.ID, "kind", a.Kind, "subject", a.Subject, "by", "dashboard user "+principal(r).Name)
	}
	return a, err
}

func (d *Dashboard) moveAlarmForm(ack bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := d.moveAlarm(r, ack)
		if err != nil {
			d.fail(w, r, false, err)
			return
		}
		redirect(w, r, "/ui/alarms", "alarm "+strconv.FormatInt(a.ID, 10)+" is "+a.State)
	}
}

func (d *Dashboard) auditPage(w http.ResponseWriter, r *http.Request) {
	info, err := d.auditInfo(r.Context())
	if err != nil {
		d.fail(w, r, false, err)
		return
	}
	d.render(w, r, http.StatusOK, "audit", "Audit log", info)
}

package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/pki"
)

// Alarms is the alarm register managers and auditors watch (package codevault).
type Alarms interface {
	Alarms(ctx context.Context, f codevault.AlarmFilter) ([]codevault.Alarm, error)
	Acknowledge(ctx context.Context, id int64) (codevault.Alarm, error)
	Resolve(ctx context.Context, id int64) (codevault.Alarm, error)
}

// AlarmInfo is one alarm as the API shows it.
type AlarmInfo struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Subject     string     `json:"subject"`
	Message     string     `json:"message"`
	State       string     `json:"state"`
	Occurrences int        `json:"occurrences"`
	FirstAt     time.Time  `json:"first_at"`
	LastAt      time.Time  `json:"last_at"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
}

func alarmInfo(a codevault.Alarm) AlarmInfo {
	return AlarmInfo{ID: a.ID, Kind: a.Kind, Subject: a.Subject, Message: a.Message, State: a.State,
		Occurrences: a.Occurrences, FirstAt: a.FirstAt, LastAt: a.LastAt, ResolvedAt: a.ResolvedAt}
}

// alarmRoutes serves the alarm register: managers and auditors list, managers acknowledge and
// resolve.
func (s *Server) alarmRoutes(r chi.Router, alarms Alarms) {
	r.With(requireRole(s, pki.RoleManager, pki.RoleAuditor)).Get("/v1/alarms", func(w http.ResponseWriter, r *http.Request) {
		s.listAlarms(w, r, alarms)
	})
	r.With(requireRole(s, pki.RoleManager)).Post("/v1/alarms/{id}/acknowledge", func(w http.ResponseWriter, r *http.Request) {
		s.moveAlarm(w, r, "acknowledged", alarms.Acknowledge)
	})
	r.With(requireRole(s, pki.RoleManager)).Post("/v1/alarms/{id}/resolve", func(w http.ResponseWriter, r *http.Request) {
		s.moveAlarm(w, r, "resolved", alarms.Resolve)
	})
}

// listAlarms answers GET /v1/alarms?state=open|acknowledged|resolved|all&kind=…&limit=…, the
// most recent first; state defaults to open.
func (s *Server) listAlarms(w http.ResponseWriter, r *http.Request, alarms Alarms) {
	q := r.URL.Query()
	f := codevault.AlarmFilter{State: q.Get("state"), Kind: q.Get("kind")}
	if f.State == "" {
		f.State = codevault.AlarmOpen
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			s.writeError(w, r, evoucher.Errorf(evoucher.KindInvalid, "bad_limit", "limit %q is not a positive number", l))
			return
		}
		f.Limit = n
	}
	as, err := alarms.Alarms(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]AlarmInfo, 0, len(as))
	for _, a := range as {
		out = append(out, alarmInfo(a))
	}
	writeJSON(w, http.StatusOK, out)
}

// moveAlarm answers POST /v1/alarms/{id}/acknowledge and /resolve with the alarm as it is now.
func (s *Server) moveAlarm(w http.ResponseWriter, r *http.Request, to string, move func(context.Context, int64) (codevault.Alarm, error)) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		s.writeError(w, r, evoucher.Errorf(evoucher.KindInvalid, "bad_alarm_id", "alarm id %q is not a positive number", chi.URLParam(r, "id")))
		return
	}
	a, err := move(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	who, _ := IdentityFrom(r.Context())
	s.log.InfoContext(r.Context(), "alarm "+to, "alarm", a.ID, "kind", a.Kind, "subject", a.Subject, "by", who.String())
	writeJSON(w, http.StatusOK, alarmInfo(a))
}

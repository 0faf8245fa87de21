package api

import "github.com/prometheus/client_golang/prometheus"

// AccessMeter implements access.Meter with Prometheus counters.
type AccessMeter struct {
	failed, ok *prometheus.CounterVec
}

func newAccessMeter(reg *prometheus.Registry) *AccessMeter {
	m := &AccessMeter{
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evoucher_dashboard_login_failures_total", Help: "Refused dashboard logins, by reason (bad_credentials, locked, disabled, throttled).",
		}, []string{"reason"}),
		ok: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evoucher_dashboard_logins_total", Help: "Dashboard logins, by role.",
		}, []string{"role"}),
	}
	reg.MustRegister(m.failed, m.ok)
	return m
}

// LoginFailed counts a refused login.
func (m *AccessMeter) LoginFailed(reason string) { m.failed.WithLabelValues(reason).Inc() }

// LoggedIn counts a login.
func (m *AccessMeter) LoggedIn(role string) { m.ok.WithLabelValues(role).Inc() }

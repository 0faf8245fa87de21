package api

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
)

// Metrics is the center's Prometheus registry and the meters that the domain packages report
// their events to.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	// PKI counts issuance, refusals and revocations; hand it to pki.Config.Meter.
	PKI *PKIMeter
	// Vault counts codes stored and messages refused; hand it to codevault.Config.Meter.
	Vault *VaultMeter
	// Access counts dashboard logins; hand it to access.Config.Meter.
	Access *AccessMeter
}

// NewMetrics returns a fresh registry with the process, Go and evoucher collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evoucher_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		PKI: &PKIMeter{
			issued: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "evoucher_pki_certificates_issued_total", Help: "Certificates issued, by role.",
			}, []string{"role"}),
			refused: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "evoucher_pki_refusals_total", Help: "Refused enrolments and certificate verifications, by operation and reason.",
			}, []string{"op", "reason"}),
			revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "evoucher_pki_revocations_total", Help: "Certificates revoked, by role and reason.",
			}, []string{"role", "reason"}),
		},
	}
	m.Vault = &VaultMeter{
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evoucher_vault_codes_received_total", Help: "Codes stored in the vault, by operator and product.",
		}, []string{"operator", "product"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "evoucher_exchange_refused_total", Help: "Exchange documents refused, by document type and reason.",
		}, []string{"type", "reason"}),
	}
	m.Vault.shipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "evoucher_codes_shipped_total", Help: "Codes shipped to terminals, by product.",
	}, []string{"product"})
	m.Vault.sold = prometheus.NewCounter(prometheus.CounterOpts{Name: "evoucher_sales_total", Help: "Sales recorded."})
	m.Access = newAccessMeter(reg)
	reg.MustRegister(m.requests, m.PKI.issued, m.PKI.refused, m.PKI.revoked, m.Vault.codes, m.Vault.refused, m.Vault.shipped, m.Vault.sold)
	return m
}

// LogSequencer publishes what s, the process's sequencer of the exchange log's queue, has
// done: entries given their place in the tree, and sequencings (their ratio is the batch).
func (m *Metrics) LogSequencer(s *auditlog.Sequencer) {
	m.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "evoucher_log_sequenced_entries_total", Help: "Exchange log entries sequenced into the tree by this process.",
		}, func() float64 { n, _ := s.Stats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "evoucher_log_sequencings_total", Help: "Sequencings of the exchange log's queue made by this process.",
		}, func() float64 { _, n := s.Stats(); return float64(n) }))
}

// PKIMeter implements pki.Meter with Prometheus counters.
type PKIMeter struct {
	issued, refused, revoked *prometheus.CounterVec
}

// Issued counts an issued certificate.
func (m *PKIMeter) Issued(role pki.Role) { m.issued.WithLabelValues(string(role)).Inc() }

// Refused counts a refused enrolment or verification.
func (m *PKIMeter) Refused(op, reason string) { m.refused.WithLabelValues(op, reason).Inc() }

// Revoked counts a revocation.
func (m *PKIMeter) Revoked(role pki.Role, reason string) {
	m.revoked.WithLabelValues(string(role), reason).Inc()
}

var _ pki.Meter = (*PKIMeter)(nil)

// observe counts every request by route pattern (never the raw path) and status.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(ww.Status())).Inc()
	})
}

// VaultMeter implements codevault.Meter with Prometheus counters.
type VaultMeter struct {
	codes, refused, shipped *prometheus.CounterVec
	sold                    prometheus.Counter
}

// Accepted counts codes stored.
func (m *VaultMeter) Accepted(operator, product string, codes int) {
	m.codes.WithLabelValues(operator, product).Add(float64(codes))
}

// Refused counts a refused document.
func (m *VaultMeter) Refused(docType, reason string) {
	m.refused.WithLabelValues(docType, reason).Inc()
}

// Shipped counts codes shipped to terminals.
func (m *VaultMeter) Shipped(terminal, product string, codes int) {
	m.shipped.WithLabelValues(product).Add(float64(codes))
}

// Sold counts sales recorded.
func (m *VaultMeter) Sold(terminal string) { m.sold.Inc() }

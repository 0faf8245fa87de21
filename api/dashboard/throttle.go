package dashboard

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// LoginLimit bounds login attempts per client address, before any password is hashed: the
// per-account lockout (package access) does not stop one client trying many names, and every
// attempt costs the server an argon2id hash. A zero field takes its default.
type LoginLimit struct {
	PerMinute  int // attempts per minute per address, once the burst is spent; default 10
	Burst      int // attempts an address may make at once; default PerMinute
	MaxClients int // addresses remembered at once; default 10000
}

// DefaultLoginLimit is the limit of a zero LoginLimit.
var DefaultLoginLimit = LoginLimit{PerMinute: 10, Burst: 10, MaxClients: 10000}

func (l LoginLimit) withDefaults() (LoginLimit, error) {
	if l.PerMinute < 0 || l.Burst < 0 || l.MaxClients < 0 {
		return l, errors.New("dashboard: login limit: attempts per minute, burst and clients must not be negative")
	}
	if l.PerMinute == 0 {
		l.PerMinute = DefaultLoginLimit.PerMinute
	}
	if l.Burst == 0 {
		l.Burst = l.PerMinute
	}
	if l.MaxClients == 0 {
		l.MaxClients = DefaultLoginLimit.MaxClients
	}
	return l, nil
}

// LoginMeter counts the logins the dashboard refuses itself, before package access sees them
// (reason "throttled"); api.AccessMeter is one.
type LoginMeter interface {
	LoginFailed(reason string)
}

type nopMeter struct{}

func (nopMeter) LoginFailed(string) {}

// loginLimiter is a token bucket per client, kept as its theoretical arrival time (GCRA): one
// time per client, exact in integer durations, and a client whose time has passed has a full
// bucket, the same as one never seen, so forgetting it loses nothing.
type loginLimiter struct {
	every   time.Duration // one attempt back per every
	slack   time.Duration // (burst-1) × every: how far ahead of now a client may run
	max     int
	mu      sync.Mutex
	clients map[netip.Prefix]time.Time
}

func newLoginLimiter(l LoginLimit) *loginLimiter {
	every := time.Minute / time.Duration(l.PerMinute)
	return &loginLimiter{every: every, slack: time.Duration(l.Burst-1) * every, max: l.MaxClients,
		clients: map[netip.Prefix]time.Time{}}
}

// allow takes one attempt of client at now, or says how long until it may try again.
func (l *loginLimiter) allow(client netip.Prefix, now time.Time) (ok bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, seen := l.clients[client]
	if !seen && len(l.clients) >= l.max {
		l.evict(now)
	}
	if tat.Before(now) {
		tat = now
	}
	if ahead := tat.Sub(now); ahead > l.slack {
		return false, ahead - l.slack
	}
	l.clients[client] = tat.Add(l.every)
	return true, 0
}

// evict forgets the clients whose bucket is full again and, if none is, the one nearest to
// full: the least to lose, and not what a busy client can bring about for itself.
func (l *loginLimiter) evict(now time.Time) {
	var oldest netip.Prefix
	var oldestTAT time.Time
	for c, tat := range l.clients {
		switch {
		case !tat.After(now):
			delete(l.clients, c)
		case oldestTAT.IsZero() || tat.Before(oldestTAT):
			oldest, oldestTAT = c, tat
		}
	}
	if len(l.clients) >= l.max {
		delete(l.clients, oldest)
	}
}

func (l *loginLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// clientOf returns the key the login limiter counts a request under: the connection's address
// (an IPv6 client under its /64, which one host commonly has whole). X-Forwarded-For is read
// only from a trusted proxy: from anyone else it is whatever the client chose to write. Its
// entries are read from the right, each appended by a proxy, up to the first not trusted.
func clientOf(r *http.Request, trusted []netip.Prefix) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Prefix{} // not a TCP peer: all such share one bucket
	}
	addr := ap.Addr().Unmap()
	if isTrusted(addr, trusted) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = hop.Unmap()
			if !isTrusted(addr, trusted) {
				break
			}
		}
	}
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.WithZone("").Prefix(bits)
	return p
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

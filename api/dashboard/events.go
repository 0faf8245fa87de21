package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/codevault"
)

// broker fans the alarm feed out to the open event streams. It listens (one database
// connection) only while at least one stream is open.
type broker struct {
	vault  Vault
	log    *slog.Logger
	mu     sync.Mutex
	subs   map[chan codevault.Alarm]struct{}
	cancel context.CancelFunc
}

func newBroker(v Vault, log *slog.Logger) *broker {
	return &broker{vault: v, log: log, subs: map[chan codevault.Alarm]struct{}{}}
}

func (b *broker) subscribe() chan codevault.Alarm {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan codevault.Alarm, 32)
	b.subs[ch] = struct{}{}
	if b.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		b.cancel = cancel
		go b.listen(ctx)
	}
	return ch
}

func (b *broker) unsubscribe(ch chan codevault.Alarm) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, ch)
	if len(b.subs) == 0 && b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
}

// listen follows the feed until ctx ends, reconnecting after a failure.
func (b *broker) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := b.vault.ListenAlarms(ctx, func(a codevault.Alarm) {
			b.mu.Lock()
			defer b.mu.Unlock()
			for ch := range b.subs {
				select {
				case ch <- a:
				default: // a stream that does not keep up misses an update; the page reloads on reconnect
				}
			}
		})
		if ctx.Err() != nil {
			return
		}
		b.log.WarnContext(ctx, "alarm feed interrupted; listening again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// liveAlarm is an alarm as the event stream sends it.
type liveAlarm struct {
	ID          int64  `json:"id"`
	Kind        string `json:"kind"`
	Subject     string `json:"subject"`
	Message     string `json:"message"`
	State       string `json:"state"`
	Occurrences int    `json:"occurrences"`
	LastAt      string `json:"last_at"`
}

// liveEvents serves GET /ui/events: server-sent events, one "alarm" event per alarm raised
// or changed that the user may see, and a comment every 15 seconds. The stream ends when the
// session does.
func (d *Dashboard) liveEvents(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if err := p.Require(access.SeeAlarms); err != nil {
		d.fail(w, r, false, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ch := d.events.subscribe()
	defer d.events.unsubscribe(ch)
	_, _ = fmt.Fprint(w, "retry: 2000\n: live\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.done:
			return
		case <-beat.C:
			if _, err := d.Access.Session(r.Context(), sessionToken(r)); err != nil {
				return
			}
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
		case a := <-ch:
			if p.Retailer != "" || p.Operator != "" {
				if _, err := d.Vault.Alarm(r.Context(), a.ID, scopeOf(p)); err != nil {
					continue
				}
			}
			b, _ := json.Marshal(liveAlarm{ID: a.ID, Kind: a.Kind, Subject: a.Subject, Message: a.Message, State: a.State,
				Occurrences: a.Occurrences, LastAt: a.LastAt.Format("2006-01-02 15:04:05")})
			_, _ = fmt.Fprintf(w, "event: alarm\ndata: %s\n\n", b)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

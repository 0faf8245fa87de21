package pos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/xml/message"
)

// Center is the terminal's HTTP client of the center, over mTLS with the terminal's token key:
// the exchange endpoint, pending shipments, online authorisation and the CRL.
type Center struct {
	URL    string       // https://host:port
	Client *http.Client // with the terminal's client certificate and the platform CA

	// mode is the terminal's selling mode as the center said at the last Pending: 0 not said,
	// 1 offline, 2 online.
	mode int
	// alarms is what the center's last answer to Pending said of its alarms about the
	// terminal; nil when it said nothing.
	alarms *[]CenterAlarm
}

// CenterAlarms returns the center's alarms about this terminal as its last answer to Pending
// carried them; ok is false when it carried none at all (a center that does not send them).
func (c *Center) CenterAlarms() (alarms []CenterAlarm, ok bool) {
	if c.alarms == nil {
		return nil, false
	}
	return *c.alarms, true
}

// OnlineMode returns the selling mode the center set for this terminal, as its last answer to
// Pending said it; ok is false when the center did not say (a center that does not send it).
func (c *Center) OnlineMode() (online, ok bool) { return c.mode == 2, c.mode != 0 }

// errorBody is the center's JSON error (api.ErrorBody).
type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// unreachable wraps a transport failure: the center did not answer at all.
func (c *Center) unreachable(err error) error {
	return evoucher.Errorf(evoucher.KindUnavailable, "center_unreachable",
		"the center at %s is unreachable (%w): check the network cable or mobile data, then try again", c.URL, err)
}

// IsUnreachable tells whether err means the center did not answer (as opposed to refusing).
func IsUnreachable(err error) bool {
	return evoucher.ReasonOf(err) == "center_unreachable"
}

func (c *Center) do(ctx context.Context, method, path, ctype string, body []byte, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) {
			return nil, 0, c.unreachable(err)
		}
		return nil, 0, c.unreachable(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, 0, c.unreachable(err)
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		_ = json.Unmarshal(b, &eb)
		if eb.Error == "" {
			eb.Error = string(bytes.TrimSpace(b))
		}
		kind := evoucher.KindInternal
		switch resp.StatusCode {
		case 400, 422:
			kind = evoucher.KindInvalid
		case 401:
			kind = evoucher.KindUnauthorized
		case 403:
			kind = evoucher.KindForbidden
		case 404:
			kind = evoucher.KindNotFound
		case 409:
			kind = evoucher.KindConflict
		case 502, 503, 504:
			return nil, resp.StatusCode, evoucher.Errorf(evoucher.KindUnavailable, "center_unreachable", "the center at %s is unavailable (HTTP %d: %s): try again later", c.URL, resp.StatusCode, eb.Error)
		}
		return nil, resp.StatusCode, evoucher.Errorf(kind, eb.Reason, "the center refused: %s", eb.Error)
	}
	return b, resp.StatusCode, nil
}

// Exchange posts a signed document and returns the center's signed answer.
func (c *Center) Exchange(ctx context.Context, doc []byte) ([]byte, error) {
	b, _, err := c.do(ctx, http.MethodPost, "/v1/exchange", "application/xml", doc, 64<<20)
	return b, err
}

// Pending fetches the shipments and key-share updates waiting for this terminal, and learns
// the terminal's selling mode and the center's alarms about it (OnlineMode, CenterAlarms).
func (c *Center) Pending(ctx context.Context) (shipments, shares [][]byte, err error) {
	b, _, err := c.do(ctx, http.MethodGet, "/v1/terminal/shipments", "", nil, 256<<20)
	if err != nil {
		return nil, nil, err
	}
	var p struct {
		Shipments    []string       `json:"shipments"`
		ShareUpdates []string       `json:"share_updates"`
		OnlineMode   *bool          `json:"online_mode"`
		Alarms       *[]CenterAlarm `json:"alarms"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, fmt.Errorf("the center's list of shipments: %w", err)
	}
	if p.OnlineMode != nil {
		c.mode = 1
		if *p.OnlineMode {
			c.mode = 2
		}
	}
	c.alarms = p.Alarms // absent or null: the center said nothing; [] : it has none
	for _, s := range p.Shipments {
		shipments = append(shipments, []byte(s))
	}
	for _, s := range p.ShareUpdates {
		shares = append(shares, []byte(s))
	}
	return shipments, shares, nil
}

// CRL fetches the platform's latest certificate revocation list (DER).
func (c *Center) CRL(ctx context.Context) ([]byte, error) {
	b, _, err := c.do(ctx, http.MethodGet, "/pki/crl", "", nil, 8<<20)
	return b, err
}

// Certificate fetches one of the center's public certificates (PEM), e.g. "center-encrypt".
func (c *Center) Certificate(ctx context.Context, name string) ([]byte, error) {
	b, _, err := c.do(ctx, http.MethodGet, "/pki/"+name+".pem", "", nil, 1<<20)
	return b, err
}

// Authorize asks the center to record one sale before its ticket is printed (online mode).
// It returns an unavailable error with reason "center_unreachable" when the center does not
// answer, and the center's refusal (reasons "sold_twice", "not_your_code", …) otherwise.
func (c *Center) Authorize(ctx context.Context, s message.Sale) error {
	body, _ := json.Marshal(map[string]any{"serial": s.Serial, "ticket": s.Ticket, "vendor": s.Vendor, "time": s.Time.UTC().Format(time.RFC3339Nano)})
	_, _, err := c.do(ctx, http.MethodPost, "/v1/terminal/authorize", "application/json", body, 1<<20)
	return err
}

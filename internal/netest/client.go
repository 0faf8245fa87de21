package netest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pos"
)

// Terminal is an enrolled terminal driven from this process: its pos identity (key in its
// token), the vendor cards of its retailer, and an HTTPS client that presents its certificate.
type Terminal struct {
	*pos.Terminal
	Retailer string
	Cards    []pos.Card
	client   *http.Client
}

// ErrNoAnswer is the error of a request that got no HTTP answer: connection refused or reset,
// the server killed mid-request. The server may or may not have acted on it.
var ErrNoAnswer = errors.New("no answer from the server")

func newTerminal(t *pos.Terminal, retailer string, ca *x509.Certificate) (*Terminal, error) {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cfg := &tls.Config{
		RootCAs:      roots,
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{t.Cert.Raw}, PrivateKey: t.Key, Leaf: t.Cert}},
	}
	// No retries hide a lost answer: net/http never resends a POST on its own.
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute, ForceAttemptHTTP2: false}
	return &Terminal{Terminal: t, Retailer: retailer, client: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}, nil
}

// Exchange posts a signed document to srv's /v1/exchange and returns the signed answer. A
// refusal comes back as an *evoucher.Error of the kind the HTTP status stands for, with the
// server's reason and message; no answer at all as an error wrapping ErrNoAnswer.
func (t *Terminal) Exchange(ctx context.Context, srv *Server, doc []byte) ([]byte, error) {
	return t.do(ctx, http.MethodPost, srv.URL+"/v1/exchange", doc)
}

// PendingShipments fetches, from srv, the signed shipments sent to the terminal and not yet
// acknowledged (GET /v1/terminal/shipments): the terminal's sync.
func (t *Terminal) PendingShipments(ctx context.Context, srv *Server) ([][]byte, error) {
	body, err := t.do(ctx, http.MethodGet, srv.URL+"/v1/terminal/shipments", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Shipments []string `json:"shipments"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("netest: shipments answer: %w", err)
	}
	docs := make([][]byte, len(out.Shipments))
	for i, s := range out.Shipments {
		docs[i] = []byte(s)
	}
	return docs, nil
}

// Connect makes one authenticated request (GET /v1/whoami), so that the TLS connection to srv
// is open before a measurement starts.
func (t *Terminal) Connect(ctx context.Context, srv *Server) error {
	_, err := t.do(ctx, http.MethodGet, srv.URL+"/v1/whoami", nil)
	return err
}

func (t *Terminal) do(ctx context.Context, method, url string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/xml")
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrNoAnswer, method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: reading the answer: %v", ErrNoAnswer, method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(b, &eb)
		if eb.Error == "" {
			eb.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		}
		return nil, evoucher.Errorf(kindOf(resp.StatusCode), eb.Reason, "%s (HTTP %d)", eb.Error, resp.StatusCode)
	}
	return b, nil
}

// kindOf reverses package api's mapping of error kinds to HTTP statuses.
func kindOf(status int) evoucher.Kind {
	switch status {
	case http.StatusBadRequest:
		return evoucher.KindInvalid
	case http.StatusUnauthorized:
		return evoucher.KindUnauthorized
	case http.StatusForbidden:
		return evoucher.KindForbidden
	case http.StatusNotFound:
		return evoucher.KindNotFound
	case http.StatusConflict:
		return evoucher.KindConflict
	case http.StatusServiceUnavailable:
		return evoucher.KindUnavailable
	}
	return evoucher.KindInternal
}

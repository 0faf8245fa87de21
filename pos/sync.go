package pos

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// Remote is what a sync needs of the center (Center over HTTP, or an in-process fake).
type Remote interface {
	Pending(ctx context.Context) (shipments, shares [][]byte, err error)
	Exchange(ctx context.Context, doc []byte) ([]byte, error)
	CRL(ctx context.Context) ([]byte, error)
	Certificate(ctx context.Context, name string) ([]byte, error)
}

// ModeSetter is a Remote that says which selling mode the center set for the terminal.
type ModeSetter interface {
	OnlineMode() (online, ok bool)
}

// SyncResult says what a sync did.
type SyncResult struct {
	ModeChanged  string    // "online" or "offline" when the center changed the terminal's mode
	CRLUpdated   time.Time // ThisUpdate of the CRL now held
	Revoked      int       // entries in it
	Received     []string  // shipments stored and acknowledged: "S-… 10 × ACME-10"
	Acked        int
	ShareUpdates int
	Refused      []string // documents refused, with why
	Sent         []string // queued documents the center took: "report 3: …"
	CenterAlarms int      // the center's unresolved alarms about this terminal, now kept for the screen
}

// Sync brings the terminal up to date with the center: the CRL (refused unless signed by the
// platform CA and not older than the one held), the center's encryption certificate, the
// shipments waiting (each verified, addressed to this terminal, not a replay, with a terminal
// share that opens; stored byte-exact, then acknowledged), key-share updates, and then sends
// the outgoing queue in order: sales reports (gap-free) and returns. Refused documents are
// listed in the result and kept as alarms for the clerk; an error stops the sync, and what was
// done stays done.
func (t *Till) Sync(ctx context.Context, r Remote) (SyncResult, error) {
	var res SyncResult
	// Sales go in the queue first, so they are signed and numbered even when the center
	// turns out to be unreachable.
	if _, _, err := t.QueueReport(false); err != nil {
		return res, err
	}
	if err := t.syncCRL(ctx, r, &res); err != nil {
		return res, err
	}
	if err := t.syncCenterCert(ctx, r); err != nil {
		return res, err
	}
	shipments, shares, err := r.Pending(ctx)
	if err != nil {
		return res, err
	}
	if m, ok := r.(ModeSetter); ok {
		if online, said := m.OnlineMode(); said {
			if err := t.setOnline(online, &res); err != nil {
				return res, err
			}
		}
	}
	if a, ok := r.(AlarmSource); ok {
		if list, said := a.CenterAlarms(); said {
			// The latest list replaces the one before: an alarm resolved at the center is gone.
			if err := t.setCenterAlarms(list); err != nil {
				return res, err
			}
			res.CenterAlarms = len(list)
		}
	}
	for _, raw := range shipments {
		if err := t.receive(ctx, r, raw, &res); err != nil {
			return res, err
		}
	}
	// Acknowledgements that did not reach the center last time.
	unacked, err := t.Store.Unacked()
	if err != nil {
		return res, err
	}
	for _, id := range unacked {
		raw, _, err := t.Store.ShipmentDocuments(id)
		if err != nil {
			return res, err
		}
		if err := t.ack(ctx, r, raw, &res); err != nil {
			return res, err
		}
	}
	for _, raw := range shares {
		t.shareUpdate(raw, &res)
	}
	if err := t.flush(ctx, r, &res); err != nil {
		return res, err
	}
	_ = t.Store.Put(keyLastSync, []byte(t.Term.now().UTC().Format(time.RFC3339)))
	t.alarm(res.Refused...)
	return res, nil
}

func (t *Till) syncCRL(ctx context.Context, r Remote, res *SyncResult) error {
	der, err := r.CRL(ctx)
	if err != nil {
		return err
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("the center's CRL does not parse: %w", err)
	}
	if err := list.CheckSignatureFrom(t.Term.CA); err != nil {
		return evoucher.Errorf(evoucher.KindUnauthorized, "bad_crl", "the CRL is not signed by the platform CA (%v): kept the previous one", err)
	}
	if old, _ := t.Store.Get(keyCRL); old != nil {
		if prev, err := x509.ParseRevocationList(old); err == nil && list.ThisUpdate.Before(prev.ThisUpdate) {
			return evoucher.Errorf(evoucher.KindConflict, "old_crl", "the CRL offered (%s) is older than the one held (%s): refused as a replay",
				list.ThisUpdate.UTC().Format(time.RFC3339), prev.ThisUpdate.UTC().Format(time.RFC3339))
		}
	}
	if err := t.Store.Put(keyCRL, der); err != nil {
		return err
	}
	_ = t.Store.Put(keyCRLAt, []byte(t.Term.now().UTC().Format(time.RFC3339)))
	res.CRLUpdated, res.Revoked = list.ThisUpdate, len(list.RevokedCertificateEntries)
	return nil
}

func (t *Till) syncCenterCert(ctx context.Context, r Remote) error {
	if have, _ := t.Store.Get(keyCenterEncrypt); have != nil {
		return nil
	}
	p, err := r.Certificate(ctx, "center-encrypt")
	if err != nil {
		return err
	}
	block, _ := pem.Decode(p)
	if block == nil {
		return fmt.Errorf("the center's encryption certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if _, err := pki.CheckOffline(cert, t.Term.CA, pki.RoleCenterEncrypt, t.Term.now()); err != nil {
		return fmt.Errorf("the center's encryption certificate: %w", err)
	}
	return t.Store.Put(keyCenterEncrypt, cert.Raw)
}

// receive verifies and stores one shipment, then acknowledges it. A refused shipment is
// listed in res and not acknowledged; the center keeps offering it and raises its own alarm.
func (t *Till) receive(ctx context.Context, r Remote, raw []byte, res *SyncResult) error {
	sh, err := t.Term.OpenShipment(raw)
	if err != nil {
		res.Refused = append(res.Refused, fmt.Sprintf("a shipment was refused: %v", err))
		return nil
	}
	if retailer, _ := t.Store.Retailer(); retailer != "" && sh.Retailer != retailer {
		res.Refused = append(res.Refused, fmt.Sprintf("shipment %s is for retailer %s, this terminal sells for %s: refused", sh.ShipmentID, sh.Retailer, retailer))
		return nil
	}
	// The terminal's share must open now; a broken one would only show at the first sale.
	ts, err := xenc.UnwrapKey(sh.TerminalShare, t.Term.Cert, t.Term.Key)
	if err != nil || len(ts) != 32 {
		clear(ts)
		res.Refused = append(res.Refused, fmt.Sprintf("shipment %s: its terminal key share does not open (%v): refused", sh.ShipmentID, err))
		return nil
	}
	clear(ts)
	if err := t.Store.AddShipment(sh, raw); err != nil {
		if evoucher.ReasonOf(err) != reasonReplayed {
			return err
		}
		// The same bytes again: the center did not get our acknowledgement; send it again.
		if stored, _, serr := t.Store.ShipmentDocuments(sh.ShipmentID); serr != nil || !bytes.Equal(stored, raw) {
			res.Refused = append(res.Refused, fmt.Sprintf("shipment %s: %v", sh.ShipmentID, err))
			return nil
		}
	} else {
		res.Received = append(res.Received, fmt.Sprintf("%s: %d × %s %s (%s)", sh.ShipmentID, len(sh.Codes), sh.Product.Operator, sh.Product.Code, Money(sh.Product.FaceValue, sh.Product.Currency)))
	}
	return t.ack(ctx, r, raw, res)
}

func (t *Till) ack(ctx context.Context, r Remote, raw []byte, res *SyncResult) error {
	sh, err := t.Term.OpenShipment(raw)
	if err != nil {
		return err
	}
	doc, err := t.Term.Ack(sh)
	if err != nil {
		return err
	}
	answer, err := r.Exchange(ctx, doc)
	if err != nil {
		return fmt.Errorf("acknowledging shipment %s: %w", sh.ShipmentID, err)
	}
	if _, err := t.Term.OpenReceiptFor(answer, doc); err != nil {
		return fmt.Errorf("the center's receipt for shipment %s: %w", sh.ShipmentID, err)
	}
	res.Acked++
	return t.Store.MarkAcked(sh.ShipmentID)
}

func (t *Till) shareUpdate(raw []byte, res *SyncResult) {
	id, err := ShareUpdateFor(raw)
	if err != nil {
		res.Refused = append(res.Refused, fmt.Sprintf("a key-share update was refused: %v", err))
		return
	}
	doc, _, err := t.Store.ShipmentDocuments(id)
	if err != nil {
		res.Refused = append(res.Refused, fmt.Sprintf("key shares for shipment %s: %v", id, err))
		return
	}
	sh, err := t.Term.OpenShipment(doc)
	if err != nil {
		res.Refused = append(res.Refused, fmt.Sprintf("key shares for shipment %s: %v", id, err))
		return
	}
	before := make([]string, 0, len(sh.VendorShares))
	for v := range sh.VendorShares {
		before = append(before, v)
	}
	if err := t.Term.ApplyShares(&sh, raw); err != nil {
		res.Refused = append(res.Refused, fmt.Sprintf("key shares for shipment %s were refused: %v", id, err))
		return
	}
	var added []string
	for v := range sh.VendorShares {
		if !slices.Contains(before, v) {
			added = append(added, v)
		}
	}
	env, _ := messageIDOf(raw)
	if err := t.Store.AddShareUpdate(id, env, added, raw); err != nil && evoucher.ReasonOf(err) != reasonReplayed {
		res.Refused = append(res.Refused, fmt.Sprintf("key shares for shipment %s: %v", id, err))
		return
	}
	res.ShareUpdates++
}

func messageIDOf(raw []byte) (string, error) {
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		return "", err
	}
	env, err := message.ReadEnvelope(doc.Root())
	return env.MessageID, err
}

// flush sends the outgoing queue in order and stops at the first document the center does not
// take, so reports stay in sequence.
func (t *Till) flush(ctx context.Context, r Remote, res *SyncResult) error {
	queue, err := t.Store.Outbox()
	if err != nil {
		return err
	}
	for _, o := range queue {
		answer, err := r.Exchange(ctx, o.Document)
		what := o.Kind
		if o.Kind == "report" {
			what = fmt.Sprintf("sales report %d", o.Seq)
		}
		if err != nil {
			if o.Kind == "report" && evoucher.ReasonOf(err) == "report_replayed" {
				// The center took this sequence number already: our receipt was lost.
				_ = t.Store.MarkSent(o.ID, "taken before: "+err.Error())
				continue
			}
			return fmt.Errorf("%s stays queued: %w", what, err)
		}
		rc, err := t.Term.OpenReceiptFor(answer, o.Document)
		if err != nil {
			return fmt.Errorf("%s stays queued: the center's receipt: %w", what, err)
		}
		detail := fmt.Sprintf("%s; exchange log entry %d, proof verified", rc.Detail, rc.LogIndex)
		if err := t.Store.MarkSent(o.ID, detail); err != nil {
			return err
		}
		res.Sent = append(res.Sent, what+": "+detail)
	}
	return nil
}

// Flush sends the outgoing queue (reports and returns) without fetching anything.
func (t *Till) Flush(ctx context.Context, r Remote) ([]string, error) {
	var res SyncResult
	err := t.flush(ctx, r, &res)
	return res.Sent, err
}

// alarm keeps the last alarm lines for the clerk's screen.
func (t *Till) alarm(lines ...string) {
	if len(lines) == 0 {
		return
	}
	var all []string
	if b, _ := t.Store.Get(keyAlarms); b != nil {
		_ = json.Unmarshal(b, &all)
	}
	stamp := t.Term.now().UTC().Format("01-02 15:04")
	for _, l := range lines {
		all = append(all, stamp+" "+l)
	}
	if len(all) > 20 {
		all = all[len(all)-20:]
	}
	b, _ := json.Marshal(all)
	_ = t.Store.Put(keyAlarms, b)
}

// Status is what the clerk's screen shows besides the stock.
type Status struct {
	LastSync   string
	CRLAt      string
	Queued     int // documents waiting for the center
	Unprinted  int
	Alarms     []string      // the terminal's own alarm lines (refused documents, cards)
	Center     []CenterAlarm // the center's alarms about this terminal, as of the last sync
	CardEvents map[string]int
}

// Status reads the terminal's state from the store.
func (t *Till) Status() (Status, error) {
	var st Status
	if b, _ := t.Store.Get(keyLastSync); b != nil {
		st.LastSync = string(b)
	}
	if b, _ := t.Store.Get(keyCRLAt); b != nil {
		st.CRLAt = string(b)
	}
	if b, _ := t.Store.Get(keyAlarms); b != nil {
		_ = json.Unmarshal(b, &st.Alarms)
	}
	var err error
	if st.Center, err = t.CenterAlarms(); err != nil {
		return st, err
	}
	q, err := t.Store.Outbox()
	if err != nil {
		return st, err
	}
	st.Queued = len(q)
	u, err := t.Store.Unprinted()
	if err != nil {
		return st, err
	}
	st.Unprinted = len(u)
	st.CardEvents, err = t.Store.CardEvents()
	return st, err
}

// Alarm records alarm lines for the clerk (a wrong PIN, a refused card).
func (t *Till) Alarm(lines ...string) { t.alarm(lines...) }

// Order sends a signed StockOrder for quantity codes of an operator's product; the center
// answers with the Shipment, which is verified, stored and acknowledged as a sync would. A
// shipment that does not verify is listed in the result's Refused (and kept as an alarm).
func (t *Till) Order(ctx context.Context, r Remote, operator, product string, quantity int) (SyncResult, error) {
	var res SyncResult
	if quantity <= 0 {
		return res, evoucher.Errorf(evoucher.KindInvalid, "bad_quantity", "order at least one code")
	}
	doc, err := t.Term.Order(operator, product, quantity)
	if err != nil {
		return res, err
	}
	answer, err := r.Exchange(ctx, doc)
	if err != nil {
		return res, fmt.Errorf("the order of %d × %s %s: %w", quantity, operator, product, err)
	}
	err = t.receive(ctx, r, answer, &res)
	t.alarm(res.Refused...)
	return res, err
}

// OnlineMode tells whether the center set this terminal to online mode (each sale authorised
// before its ticket prints), as the last sync learnt it; false before the center said so.
func (t *Till) OnlineMode() (bool, error) {
	b, err := t.Store.Get(keyOnlineMode)
	return string(b) == "online", err
}

func (t *Till) setOnline(online bool, res *SyncResult) error {
	was, err := t.OnlineMode()
	if err != nil {
		return err
	}
	mode := map[bool]string{true: "online", false: "offline"}[online]
	if was == online {
		if b, _ := t.Store.Get(keyOnlineMode); b != nil {
			return nil
		}
	} else {
		res.ModeChanged = mode
		t.alarm("the center switched this terminal to " + mode + " mode")
	}
	return t.Store.Put(keyOnlineMode, []byte(mode))
}

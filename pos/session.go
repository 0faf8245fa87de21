package pos

import (
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
	"github.com/evoucher/evoucher/xml/xenc"
)

// DefaultIdle is how long an activated card may stay unused before selling stops.
const DefaultIdle = 5 * time.Minute

// CardSession is an activated vendor card: inserted, unlocked with its PIN, its certificate
// checked against the latest CRL this terminal received.
//
// Opening a code needs the shipment key, the XOR of two shares that only the terminal's token
// and the card can unwrap (RSA-OAEP in the tokens, about 2.5 ms each with SoftHSM2). To sell
// at the speed of a till, the session unwraps both shares of a shipment once and keeps the
// combined key in memory for as long as the card stays activated: the key is zeroed when the
// card is removed (Close), when it stays idle longer than the idle timeout, and when the
// program exits (the caller closes the session). The key never reaches the disk. A terminal
// without the card, or a card without the terminal, still opens nothing: each share alone is
// random.
type CardSession struct {
	term   *Terminal
	store  *Store
	card   Card
	id     pki.Identity
	idle   time.Duration
	now    func() time.Time
	mu     sync.Mutex
	last   time.Time
	keys   map[string][]byte // shipment id → shipment key, zeroed on close
	closed string            // why the session ended, "" while active
	// recorded says the end was written to the store's card events.
	recorded bool
}

// ErrCardInactive is returned by a session whose card was removed or went idle.
var ErrCardInactive = errors.New("pos: the vendor card is not activated")

// Activate checks an unlocked vendor card and opens a selling session with it: the card's
// certificate must be a vendor certificate of the platform CA, valid now, not on the latest
// CRL the store holds, and of this terminal's retailer (a card the center shares stock with).
// Refusals are recorded as card events. It returns an unauthorized error (reason "revoked",
// "bad_chain", …) for a refused certificate, a forbidden error with reason "other_retailer"
// for a card of another shop, and an unavailable error with reason "no_crl" before the first
// sync.
func Activate(term *Terminal, store *Store, key KeyPair, cert *x509.Certificate, idle time.Duration) (*CardSession, error) {
	if idle <= 0 {
		idle = DefaultIdle
	}
	now := term.now
	crl, err := store.Get(keyCRL)
	if err != nil {
		return nil, err
	}
	refuse := func(card string, err error) (*CardSession, error) {
		_ = store.CardEvent(card, "refused", evoucher.MessageOf(err))
		return nil, err
	}
	if crl == nil {
		return refuse(cert.Subject.CommonName, evoucher.Errorf(evoucher.KindUnavailable, "no_crl", "no revocation list yet: run `evpos sync` once with the network before selling"))
	}
	id, err := term.CheckCard(cert, crl)
	if err != nil {
		return refuse(cert.Subject.CommonName, err)
	}
	ok, err := store.HasVendor(id.Entity)
	if err != nil {
		return nil, err
	}
	if !ok {
		retailer, _ := store.Retailer()
		return refuse(id.Entity, evoucher.Errorf(evoucher.KindForbidden, "other_retailer",
			"vendor card %s is not a card of retailer %s (no stock here is shared with it): use a card of this shop, or sync if it was enrolled today", id.Entity, retailer))
	}
	if err := store.CardEvent(id.Entity, "activated", ""); err != nil {
		return nil, err
	}
	return &CardSession{term: term, store: store, card: Card{Vendor: id.Entity, Key: key, Cert: cert}, id: id,
		idle: idle, now: now, last: now(), keys: map[string][]byte{}}, nil
}

// Vendor returns the card's vendor id.
func (c *CardSession) Vendor() string { return c.card.Vendor }

// Identity returns the card certificate's identity.
func (c *CardSession) Identity() pki.Identity { return c.id }

// Active tells whether the card can sell now, and why not.
func (c *CardSession) Active() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	return c.closed == "", c.closed
}

// Close ends the session (card removed, program exiting), zeroes the cached keys and records
// why the session ended. It may be called more than once.
func (c *CardSession) Close() {
	c.mu.Lock()
	c.endLocked("the card was removed")
	why, record := c.closed, !c.recorded
	c.recorded = true
	c.mu.Unlock()
	// Outside the lock: Open runs inside a store transaction, so the store is never called
	// while the lock is held.
	if record && c.store != nil {
		_ = c.store.CardEvent(c.card.Vendor, "removed", why)
	}
}

func (c *CardSession) endLocked(why string) {
	if c.closed != "" {
		return
	}
	for id, k := range c.keys {
		clear(k)
		delete(c.keys, id)
	}
	c.closed = why
}

func (c *CardSession) expireLocked() {
	if c.closed == "" && c.now().Sub(c.last) > c.idle {
		c.endLocked(fmt.Sprintf("the card was idle for more than %s", c.idle))
	}
}

// CachedKeys returns how many shipment keys the session holds (for tests and the screen).
func (c *CardSession) CachedKeys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

// Open decrypts one code. It returns ErrCardInactive (wrapped, saying why) once the card is
// removed or idle, a forbidden error with reason "no_share" when the shipment carries no
// share for this card, and an invalid error when the shares or the code do not open.
func (c *CardSession) Open(code ShelfCode) (message.PIN, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	if c.closed != "" {
		return nil, fmt.Errorf("%w: %s; insert the card and enter its PIN again", ErrCardInactive, c.closed)
	}
	c.last = c.now()
	key, ok := c.keys[code.ShipmentID]
	if !ok {
		var err error
		if key, err = c.shipmentKey(code.ShipmentID); err != nil {
			return nil, err
		}
		c.keys[code.ShipmentID] = key
	}
	return openSealed(key, code.Sealed, message.ShipmentAAD(code.ShipmentID, code.Serial))
}

// shipmentKey verifies the stored shipment and its share updates again (the local disk is not
// trusted more than the network) and combines the two unwrapped shares.
func (c *CardSession) shipmentKey(id string) ([]byte, error) {
	raw, updates, err := c.store.ShipmentDocuments(id)
	if err != nil {
		return nil, err
	}
	sh, err := c.term.OpenShipment(raw)
	if err != nil {
		return nil, fmt.Errorf("stored shipment %s no longer verifies: %w", id, err)
	}
	for _, u := range updates {
		if err := c.term.ApplyShares(&sh, u); err != nil {
			return nil, fmt.Errorf("stored key shares of %s: %w", id, err)
		}
	}
	vs, ok := sh.VendorShares[c.card.Vendor]
	if !ok {
		return nil, evoucher.Errorf(evoucher.KindForbidden, "no_share", "shipment %s carries no share for vendor card %s: sync first", id, c.card.Vendor)
	}
	ts, err := xenc.UnwrapKey(sh.TerminalShare, c.term.Cert, c.term.Key)
	if err != nil {
		return nil, brokenShare(id, "terminal", err)
	}
	defer clear(ts)
	cs, err := xenc.UnwrapKey(vs, c.card.Cert, c.card.Key)
	if err != nil {
		return nil, brokenShare(id, "vendor card", err)
	}
	defer clear(cs)
	if len(ts) != 32 || len(cs) != 32 {
		return nil, brokenShare(id, "a", errors.New("shares have the wrong length"))
	}
	key := make([]byte, 32)
	subtle.XORBytes(key, ts, cs)
	return key, nil
}

func brokenShare(id, which string, err error) error {
	return evoucher.Errorf(evoucher.KindInvalid, "broken_share",
		"the %s key share of shipment %s does not open (%v): its codes cannot be sold; sell other stock and tell the center", which, id, err)
}

// Package codevault owns the codes once the center has them: batches taken in from operators,
// every PIN kept AES-256-GCM encrypted under a per-part data key (DEK) that is stored only
// wrapped by the key-encryption key (KEK) in the HSM, stock levels, purchase orders when stock
// runs low, and KEK rotation. It never stores, logs or returns a code in clear text: a PIN is
// clear only in memory, between decrypting the operator's document and sealing it under the
// DEK, and those buffers are zeroed.
package codevault

import (
	"context"
	"crypto"
	"crypto/cipher"
	"crypto/x509"
	"errors"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
)

// Verifier checks a certificate against the platform PKI (pki.Authority).
type Verifier interface {
	Verify(ctx context.Context, cert *x509.Certificate, role pki.Role, at time.Time) (pki.Identity, error)
}

// KeyStore holds the KEKs: the center's token.
type KeyStore interface {
	AESKey(label string) (cipher.AEAD, bool, error)
	FindAESKey(label string) (cipher.AEAD, error)
	DeleteKey(label string) error
}

// Meter receives the vault's domain events; metrics and alarms hang on it.
type Meter interface {
	// Accepted is called once per CodeBatch part stored, with its code count.
	Accepted(operator, product string, codes int)
	// Refused is called once per refused message, with its type and the refusal's reason.
	Refused(docType, reason string)
	// Shipped is called once per shipment sent, with its code count.
	Shipped(terminal, product string, codes int)
	// Sold is called once per sale recorded.
	Sold(terminal string)
}

// Ledger keeps the money of stock movements (package ledger). Each method runs in the vault's
// transaction of the movement, so money and stock commit or roll back together.
type Ledger interface {
	// ChargeShipment prices a shipment just recorded in tx and charges its retailer when it
	// pays on shipment; conflict "credit_limit" refuses it.
	ChargeShipment(ctx context.Context, tx pgx.Tx, shipmentID string) error
	// ChargeSales charges the codes just sold in tx that were shipped on consignment.
	ChargeSales(ctx context.Context, tx pgx.Tx, codeIDs []int64) error
	// CreditReturn credits back codes of a shipment just returned to the vault in tx.
	CreditReturn(ctx context.Context, tx pgx.Tx, shipmentID string, codes int) error
}

type nopMeter struct{}

func (nopMeter) Accepted(string, string, int) {}
func (nopMeter) Refused(string, string)       {}
func (nopMeter) Shipped(string, string, int)  {}
func (nopMeter) Sold(string)                  {}

// Config is what a Vault needs.
type Config struct {
	DB   *pgxpool.Pool
	Keys KeyStore
	// The center-encrypt key and certificate: batches are encrypted to them.
	Decrypter   crypto.Decrypter
	EncryptCert *x509.Certificate
	// The center-sign key and certificate: receipts and purchase orders are signed with them.
	Signer   crypto.Signer
	SignCert *x509.Certificate
	PKI      Verifier
	// Parties knows terminals, their retailers and vendor cards; needed to ship.
	Parties Parties
	Now     func() time.Time
	Meter   Meter
	// A message must have been created at most MaxAge ago (default 1 hour) and at most MaxSkew
	// in the future (default 5 minutes).
	MaxAge, MaxSkew time.Duration
	Limits          message.Limits // default message.DefaultLimits
	// Alarms holds the thresholds CheckAlarms applies; zero fields take their defaults.
	Alarms AlarmPolicy
	// Ledger charges retailers for stock; nil: no money is kept.
	Ledger Ledger
	// Shipping is how many shipments this process builds at once (default: the larger of 4
	// and the CPUs). Orders beyond it wait before their transaction opens: every reservation
	// walks past the codes that shipments still in flight hold locked, so more at once only
	// makes each slower (see shipSlot).
	Shipping int
	// Sequencer sequences the exchange log's queue (nil: one of its own on DB).
	Sequencer *auditlog.Sequencer
}

// Vault is the code vault.
type Vault struct {
	db      *pgxpool.Pool
	keys    KeyStore
	dec     crypto.Decrypter
	encCert *x509.Certificate
	signer  crypto.Signer
	sigCert *x509.Certificate
	pki     Verifier
	parties Parties
	now     func() time.Time
	meter   Meter
	maxAge  time.Duration
	maxSkew time.Duration
	limits  message.Limits
	alarms  AlarmPolicy
	ledger  Ledger
	// shipping holds one token per shipment being built (Config.Shipping).
	shipping chan struct{}
	// seq sequences the log's queue: a receipt is made once its message has its index.
	seq *auditlog.Sequencer
}

// New returns a Vault. It fails when a dependency is missing.
func New(cfg Config) (*Vault, error) {
	if cfg.DB == nil || cfg.Keys == nil || cfg.Decrypter == nil || cfg.EncryptCert == nil ||
		cfg.Signer == nil || cfg.SignCert == nil || cfg.PKI == nil {
		return nil, errors.New("codevault: database, key store, center keys and certificates, and PKI are required")
	}
	v := &Vault{db: cfg.DB, keys: cfg.Keys, dec: cfg.Decrypter, encCert: cfg.EncryptCert, signer: cfg.Signer,
		sigCert: cfg.SignCert, pki: cfg.PKI, parties: cfg.Parties, now: cfg.Now, meter: cfg.Meter, maxAge: cfg.MaxAge, maxSkew: cfg.MaxSkew, limits: cfg.Limits, ledger: cfg.Ledger}
	v.alarms = cfg.Alarms.withDefaults()
	if cfg.Shipping < 0 {
		return nil, errors.New("codevault: Shipping cannot be negative")
	}
	if cfg.Shipping == 0 {
		cfg.Shipping = max(4, runtime.GOMAXPROCS(0))
	}
	v.shipping = make(chan struct{}, cfg.Shipping)
	v.seq = cfg.Sequencer
	if v.seq == nil {
		v.seq = auditlog.NewSequencer(cfg.DB)
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.meter == nil {
		v.meter = nopMeter{}
	}
	if v.maxAge <= 0 {
		v.maxAge = time.Hour
	}
	if v.maxSkew <= 0 {
		v.maxSkew = 5 * time.Minute
	}
	if v.limits.MaxBytes == 0 {
		v.limits = message.DefaultLimits
	}
	return v, nil
}

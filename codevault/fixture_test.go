package codevault_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/retailer"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

type party struct {
	key  crypto.Signer
	cert *x509.Certificate
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

// meter counts the vault's events.
type meter struct {
	mu       sync.Mutex
	refused  map[string]int
	accepted int
}

func (m *meter) Accepted(_, _ string, n int) { m.mu.Lock(); defer m.mu.Unlock(); m.accepted += n }
func (m *meter) Refused(typ, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refused[typ+"/"+reason]++
}
func (m *meter) Shipped(string, string, int) {}
func (m *meter) Sold(string)                 {}
func (m *meter) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.refused {
		n += v
	}
	return n
}

type fixture struct {
	db         *pgxpool.Pool
	tok        *pkcs11.Token
	ca         *pki.Authority
	vault      *codevault.Vault
	clock      *clock
	meter      *meter
	centerEnc  party
	centerSign party
	opA, opB   party // operator-sign of OP-A and OP-B
	terminal   party
	shops      *retailer.Registry
	hsmDown    *atomic.Bool // the center-sign key refuses to sign while set
}

// flakySigner is a token key that fails while down is set, as an HSM that stopped answering.
type flakySigner struct {
	crypto.Signer
	down *atomic.Bool
}

func (s flakySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.down.Load() {
		return nil, errors.New("the HSM does not answer")
	}
	return s.Signer.Sign(r, digest, opts)
}

// parties adapts the retailer registry to what the vault asks.
type parties struct{ *retailer.Registry }

func (p parties) RetailerOf(ctx context.Context, terminal string) (id, name string, err error) {
	r, err := p.Registry.RetailerOf(ctx, terminal)
	return r.ID, r.Name, err
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// mustFixture builds a center (CA, center keys, KEK in a SoftHSM2 token), two operators with
// their products and signing certificates, and a vault.
func mustFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{db: testdb.MustPool(t), tok: testhsm.MustToken(t), clock: &clock{}, meter: &meter{refused: map[string]int{}}, hsmDown: &atomic.Bool{}}
	caKey, _, err := f.tok.RSAKey("ca", 3072)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _, err := pki.EnsureCA(ctx, f.db, caKey, "ca")
	if err != nil {
		t.Fatal(err)
	}
	f.ca = must[*pki.Authority](t)(pki.New(pki.Config{DB: f.db, CA: caCert, CAKey: caKey, OnRevoke: codevault.OnRevoke}))
	if _, _, err := codevault.EnsureKEK(ctx, f.db, f.tok); err != nil {
		t.Fatal(err)
	}
	f.centerEnc = f.mustParty(t, "center-encrypt", 3072, pki.RoleCenterEncrypt, "center")
	f.centerSign = f.mustParty(t, "center-sign", 3072, pki.RoleCenterSign, "center")
	f.opA = f.mustParty(t, "op-a", 2048, pki.RoleOperatorSign, "OP-A")
	f.opB = f.mustParty(t, "op-b", 2048, pki.RoleOperatorSign, "OP-B")
	f.terminal = f.mustParty(t, "terminal", 2048, pki.RoleTerminal, "OP-A")
	reg := must[*operator.Registry](t)(operator.New(f.db))
	for _, op := range []string{"OP-A", "OP-B"} {
		if err := reg.CreateOperator(ctx, operator.Operator{ID: op, Name: op + " Telecom"}); err != nil {
			t.Fatal(err)
		}
		if err := reg.CreateProduct(ctx, operator.Product{Operator: op, Code: "P10", FaceValue: 1000, Currency: "EUR",
			RefillTemplate: "Dial *123*{PIN}#", SerialPattern: `[0-9]{12}`, PINPattern: `[0-9]{14}`,
			ReorderLevel: 50, ReorderQuantity: 500}); err != nil {
			t.Fatal(err)
		}
	}
	encKey := must[*pkcs11.RSAKey](t)(f.tok.FindRSAKey("center-encrypt"))
	f.shops = must[*retailer.Registry](t)(retailer.New(f.db))
	f.vault = must[*codevault.Vault](t)(codevault.New(codevault.Config{DB: f.db, Keys: f.tok, Decrypter: encKey,
		EncryptCert: f.centerEnc.cert, Signer: flakySigner{f.centerSign.key, f.hsmDown}, SignCert: f.centerSign.cert, PKI: f.ca, Now: f.clock.Now, Meter: f.meter,
		Parties: parties{f.shops}}))
	return f
}

func (f *fixture) mustParty(t *testing.T, label string, bits int, role pki.Role, entity string) party {
	t.Helper()
	key, _, err := f.tok.RSAKey(label, bits)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, entity)
	if err != nil {
		t.Fatal(err)
	}
	req, err := pki.ParseCSR(csr)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.ca.Issue(context.Background(), pki.IssueRequest{CSR: req, Role: role, Entity: entity})
	if err != nil {
		t.Fatal(err)
	}
	return party{key: key, cert: cert}
}

// codes makes n codes with serials from first on, and PINs derived from them.
func codes(first, n int) []message.Code {
	out := make([]message.Code, n)
	for i := range out {
		s := first + i
		out[i] = message.Code{Serial: fmt.Sprintf("%012d", s), PIN: message.PIN(fmt.Sprintf("%014d", 31_000_000_000_000+s*7919%1_000_000_007)),
			Expiry: time.Now().AddDate(1, 0, 0).Truncate(24 * time.Hour)}
	}
	return out
}

// seal seals codes for operator op as batch id with the fixture's keys.
func (f *fixture) seal(t *testing.T, op string, signer party, batch string, cs []message.Code, partSize int) [][]byte {
	t.Helper()
	docs, err := operator.Seal(operator.SealRequest{Operator: op, BatchID: batch, Product: "P10", FaceValue: 1000, Currency: "EUR",
		Codes: cs, PartSize: partSize, Signer: signer.key, Cert: signer.cert, CenterCert: f.centerEnc.cert, Now: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func peer(entity string) pki.Identity {
	return pki.Identity{Role: pki.RoleOperatorSign, Entity: entity}
}

// parseDoc parses a document without limits, for tests that rewrite it.
func parseDoc(t *testing.T, raw []byte) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc
}

// resign removes the signature of raw, applies mutate to the root and signs again with p.
func resign(t *testing.T, raw []byte, p party, mutate func(root *etree.Element)) []byte {
	t.Helper()
	doc := parseDoc(t, raw)
	root := doc.Root()
	for _, c := range root.ChildElements() {
		if c.Tag == "Signature" {
			root.RemoveChild(c)
		}
	}
	mutate(root)
	signed, err := dsig.Sign(root, p.key, p.cert)
	if err != nil {
		t.Fatal(err)
	}
	out := etree.NewDocument()
	out.SetRoot(signed)
	b, err := out.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// find returns the first descendant element with that local name.
func find(el *etree.Element, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
		if d := find(c, tag); d != nil {
			return d
		}
	}
	return nil
}

// counts is the state a refused message must leave unchanged.
func (f *fixture) counts(t *testing.T) string {
	t.Helper()
	var s string
	err := f.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM codes)::text || ',' ||
		(SELECT count(*) FROM batches)::text || ',' || (SELECT count(*) FROM batch_parts)::text || ',' ||
		(SELECT count(*) FROM messages)::text || ',' || (SELECT count(*) FROM purchase_orders)::text || ',' ||
		(SELECT size FROM log_state)::text || ',' ||
		(SELECT coalesce(string_agg(state, ',' ORDER BY state), '') FROM (SELECT state, count(*) FROM codes GROUP BY state) s)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func xmlAttr(el *etree.Element, key, value string) { el.CreateAttr(key, value) }

func replaceText(el *etree.Element, tag, text string) {
	if c := find(el, tag); c != nil {
		c.SetText(text)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

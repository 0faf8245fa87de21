package retailer_test

import (
	"context"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/retailer"
)

func wantRefusal(t *testing.T, err error, kind evoucher.Kind, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %s refusal (%s)", kind, reason)
	}
	if evoucher.KindOf(err) != kind || evoucher.ReasonOf(err) != reason {
		t.Fatalf("got %s/%s (%v), want %s/%s", evoucher.KindOf(err), evoucher.ReasonOf(err), err, kind, reason)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mustRegistry returns a registry on a fresh database holding retailer R-1.
func mustRegistry(t *testing.T) (*retailer.Registry, *pgxpool.Pool) {
	t.Helper()
	db := testdb.MustPool(t)
	reg, err := retailer.New(db)
	must(t, err)
	must(t, reg.CreateRetailer(context.Background(), retailer.Retailer{ID: "R-1", Name: "Corner Shop"}))
	return reg, db
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := retailer.New(nil); err == nil {
		t.Fatal("New(nil) accepted")
	}
}

func TestCreateRetailer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg, _ := mustRegistry(t)
	t.Run("OK", func(t *testing.T) {
		must(t, reg.CreateRetailer(ctx, retailer.Retailer{ID: "R-2", Name: "Kiosk"}))
		got, err := reg.Retailer(ctx, "R-2")
		must(t, err)
		if got != (retailer.Retailer{ID: "R-2", Name: "Kiosk"}) {
			t.Fatalf("Retailer = %+v", got)
		}
		all, err := reg.Retailers(ctx)
		must(t, err)
		if len(all) != 2 || all[0].ID != "R-1" || all[1].ID != "R-2" {
			t.Fatalf("Retailers = %+v", all)
		}
	})
	t.Run("ErrExists", func(t *testing.T) {
		wantRefusal(t, reg.CreateRetailer(ctx, retailer.Retailer{ID: "R-1", Name: "Again"}), evoucher.KindConflict, "exists")
		got, err := reg.Retailer(ctx, "R-1")
		must(t, err)
		if got.Name != "Corner Shop" {
			t.Fatalf("duplicate overwrote the name: %q", got.Name)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		for _, r := range []retailer.Retailer{{ID: "", Name: "x"}, {ID: "R 3", Name: "x"}, {ID: "-R", Name: "x"}, {ID: "R-3", Name: " "}} {
			wantRefusal(t, reg.CreateRetailer(ctx, r), evoucher.KindInvalid, "bad_retailer")
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := reg.Retailer(ctx, "R-404")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_retailer")
		_, err = reg.Terminals(ctx, "R-404")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_retailer")
		_, err = reg.Vendors(ctx, "R-404")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_retailer")
	})
}

func TestTerminalsAndVendors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg, _ := mustRegistry(t)
	must(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T-2", Retailer: "R-1", Name: "back till", OnlineMode: true}))
	must(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T-1", Retailer: "R-1", Name: "front till"}))
	must(t, reg.AddVendor(ctx, retailer.Vendor{ID: "V-1", Retailer: "R-1", Name: "Alice"}))

	t.Run("OK", func(t *testing.T) {
		got, err := reg.Terminal(ctx, "T-2")
		must(t, err)
		if got.Retailer != "R-1" || got.Name != "back till" || got.Status != retailer.StatusActive || !got.OnlineMode || got.LastSeenAt != nil {
			t.Fatalf("Terminal = %+v", got)
		}
		ts, err := reg.Terminals(ctx, "R-1")
		must(t, err)
		if len(ts) != 2 || ts[0].ID != "T-1" || ts[0].OnlineMode || ts[1].ID != "T-2" {
			t.Fatalf("Terminals = %+v", ts)
		}
		v, err := reg.Vendor(ctx, "V-1")
		must(t, err)
		if v != (retailer.Vendor{ID: "V-1", Retailer: "R-1", Name: "Alice", Status: retailer.StatusActive}) {
			t.Fatalf("Vendor = %+v", v)
		}
		vs, err := reg.Vendors(ctx, "R-1")
		must(t, err)
		if len(vs) != 1 || vs[0] != v {
			t.Fatalf("Vendors = %+v", vs)
		}
		rt, err := reg.RetailerOf(ctx, "T-1")
		must(t, err)
		if rt != (retailer.Retailer{ID: "R-1", Name: "Corner Shop"}) {
			t.Fatalf("RetailerOf = %+v", rt)
		}
	})
	t.Run("SetOnlineMode", func(t *testing.T) {
		must(t, reg.SetOnlineMode(ctx, "T-1", true))
		got, err := reg.Terminal(ctx, "T-1")
		must(t, err)
		if !got.OnlineMode {
			t.Fatal("online mode not set")
		}
		must(t, reg.SetOnlineMode(ctx, "T-1", false))
		if got, _ := reg.Terminal(ctx, "T-1"); got.OnlineMode {
			t.Fatal("online mode not cleared")
		}
		wantRefusal(t, reg.SetOnlineMode(ctx, "T-404", true), evoucher.KindNotFound, "unknown_terminal")
	})
	t.Run("ErrUnknownRetailer", func(t *testing.T) {
		wantRefusal(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T-9", Retailer: "R-404", Name: "x"}), evoucher.KindNotFound, "unknown_retailer")
		wantRefusal(t, reg.AddVendor(ctx, retailer.Vendor{ID: "V-9", Retailer: "R-404", Name: "x"}), evoucher.KindNotFound, "unknown_retailer")
		_, err := reg.Terminal(ctx, "T-9")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_terminal")
	})
	t.Run("ErrExists", func(t *testing.T) {
		wantRefusal(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T-1", Retailer: "R-1", Name: "x"}), evoucher.KindConflict, "exists")
		wantRefusal(t, reg.AddVendor(ctx, retailer.Vendor{ID: "V-1", Retailer: "R-1", Name: "x"}), evoucher.KindConflict, "exists")
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		wantRefusal(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T/1", Retailer: "R-1", Name: "x"}), evoucher.KindInvalid, "bad_terminal")
		wantRefusal(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T-3", Retailer: "R-1", Name: ""}), evoucher.KindInvalid, "bad_terminal")
		wantRefusal(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T-3", Retailer: "R-1", Name: "x", Status: retailer.StatusRevoked}), evoucher.KindInvalid, "bad_terminal")
		wantRefusal(t, reg.AddVendor(ctx, retailer.Vendor{ID: "", Retailer: "R-1", Name: "x"}), evoucher.KindInvalid, "bad_vendor")
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := reg.Vendor(ctx, "V-404")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_vendor")
		_, err = reg.RetailerOf(ctx, "T-404")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_terminal")
	})
}

func TestSetLevel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg, db := mustRegistry(t)
	ops, err := operator.New(db)
	must(t, err)
	must(t, ops.CreateOperator(ctx, operator.Operator{ID: "OP-ACME", Name: "ACME Telecom"}))
	for _, code := range []string{"ACME-10", "ACME-20"} {
		must(t, ops.CreateProduct(ctx, operator.Product{Operator: "OP-ACME", Code: code, FaceValue: 1000, Currency: "EUR",
			RefillTemplate: "Dial *123*{PIN}#", SerialPattern: `[0-9]{12}`, PINPattern: `[0-9]{14}`}))
	}
	must(t, reg.AddTerminal(ctx, retailer.Terminal{ID: "T-1", Retailer: "R-1", Name: "front till"}))

	t.Run("OK", func(t *testing.T) {
		must(t, reg.SetLevel(ctx, retailer.Level{Terminal: "T-1", Operator: "OP-ACME", Product: "ACME-20", Min: 5, Max: 20}))
		must(t, reg.SetLevel(ctx, retailer.Level{Terminal: "T-1", Operator: "OP-ACME", Product: "ACME-10", Min: 10, Max: 50, AutoReorder: true}))
		// The terminal's report must survive a change of levels.
		if _, err := db.Exec(ctx, `UPDATE terminal_products SET reported_stock = 7, reported_at = now()
			WHERE terminal_id = 'T-1' AND product = 'ACME-10'`); err != nil {
			t.Fatal(err)
		}
		must(t, reg.SetLevel(ctx, retailer.Level{Terminal: "T-1", Operator: "OP-ACME", Product: "ACME-10", Min: 0, Max: 30, AutoReorder: false}))
		ls, err := reg.Levels(ctx, "T-1")
		must(t, err)
		if len(ls) != 2 {
			t.Fatalf("Levels = %+v", ls)
		}
		l := ls[0]
		if l.Terminal != "T-1" || l.Operator != "OP-ACME" || l.Product != "ACME-10" || l.Min != 0 || l.Max != 30 || l.AutoReorder {
			t.Fatalf("upsert gave %+v", l)
		}
		if l.ReportedStock == nil || *l.ReportedStock != 7 || l.ReportedAt == nil {
			t.Fatalf("upsert lost the reported stock: %+v", l)
		}
		if ls[1].Product != "ACME-20" || ls[1].Min != 5 || ls[1].Max != 20 || ls[1].ReportedStock != nil {
			t.Fatalf("second level = %+v", ls[1])
		}
	})
	t.Run("ErrBadLevel", func(t *testing.T) {
		for _, mm := range [][2]int{{20, 10}, {-1, 10}, {0, 0}} {
			err := reg.SetLevel(ctx, retailer.Level{Terminal: "T-1", Operator: "OP-ACME", Product: "ACME-20", Min: mm[0], Max: mm[1]})
			wantRefusal(t, err, evoucher.KindInvalid, "bad_level")
		}
		ls, err := reg.Levels(ctx, "T-1")
		must(t, err)
		if ls[1].Min != 5 || ls[1].Max != 20 {
			t.Fatalf("a refused level changed the row: %+v", ls[1])
		}
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		err := reg.SetLevel(ctx, retailer.Level{Terminal: "T-1", Operator: "OP-ACME", Product: "ACME-99", Min: 1, Max: 2})
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_product")
		err = reg.SetLevel(ctx, retailer.Level{Terminal: "T-1", Operator: "OP-NONE", Product: "ACME-10", Min: 1, Max: 2})
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_product")
		err = reg.SetLevel(ctx, retailer.Level{Terminal: "T-404", Operator: "OP-ACME", Product: "ACME-10", Min: 1, Max: 2})
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_terminal")
		_, err = reg.Levels(ctx, "T-404")
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_terminal")
		var n int
		must(t, db.QueryRow(ctx, `SELECT count(*) FROM terminal_products`).Scan(&n))
		if n != 2 {
			t.Fatalf("%d level rows, want 2", n)
		}
	})
}

// clock is a settable clock, so certificates are issued in a known order.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type certEnv struct {
	reg   *retailer.Registry
	db    *pgxpool.Pool
	ca    *pki.Authority
	tok   *pkcs11.Token
	clock *clock
}

// mustCertEnv sets up retailer R-1 and a CA whose key is in a fresh token.
func mustCertEnv(t *testing.T) *certEnv {
	t.Helper()
	ctx := context.Background()
	reg, db := mustRegistry(t)
	tok := testhsm.MustToken(t)
	caKey, _, err := tok.RSAKey("ca", 3072)
	must(t, err)
	caCert, _, err := pki.EnsureCA(ctx, db, caKey, "ca")
	must(t, err)
	c := &clock{t: time.Now().UTC()}
	a, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey, Now: c.Now})
	must(t, err)
	return &certEnv{reg: reg, db: db, ca: a, tok: tok, clock: c}
}

// issue certifies a token key (one per label) for role and entity, one minute after the last.
func (e *certEnv) issue(t *testing.T, label string, role pki.Role, entity string) *x509.Certificate {
	t.Helper()
	key, _, err := e.tok.RSAKey(label, 2048)
	must(t, err)
	der, err := pki.NewCSR(key, entity)
	must(t, err)
	csr, err := pki.ParseCSR(der)
	must(t, err)
	e.clock.Add(time.Minute)
	cert, err := e.ca.Issue(context.Background(), pki.IssueRequest{CSR: csr, Role: role, Entity: entity})
	must(t, err)
	return cert
}

func sameCert(a, b *x509.Certificate) bool { return a != nil && b != nil && a.Equal(b) }

func TestTerminalCertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := mustCertEnv(t)
	must(t, e.reg.AddTerminal(ctx, retailer.Terminal{ID: "T-1", Retailer: "R-1", Name: "front till"}))
	must(t, e.reg.AddVendor(ctx, retailer.Vendor{ID: "T-2", Retailer: "R-1", Name: "a vendor named like a terminal"}))

	t.Run("ErrNoCertificate", func(t *testing.T) {
		_, err := e.reg.TerminalCertificate(ctx, "T-1", time.Now())
		wantRefusal(t, err, evoucher.KindNotFound, "no_certificate")
		if want := "terminal T-1 has no valid certificate: enrol it"; err.Error() != want {
			t.Fatalf("message %q, want %q", err.Error(), want)
		}
	})
	old := e.issue(t, "t1-old", pki.RoleTerminal, "T-1")
	cur := e.issue(t, "t1-new", pki.RoleTerminal, "T-1")
	e.issue(t, "t2-vendor", pki.RoleVendor, "T-2") // another role: never a terminal's
	now := e.clock.Now()

	t.Run("OK", func(t *testing.T) {
		got, err := e.reg.TerminalCertificate(ctx, "T-1", now)
		must(t, err)
		if !sameCert(got, cur) {
			t.Fatalf("got certificate %s, want the newest %s", pki.SerialOf(got), pki.SerialOf(cur))
		}
	})
	t.Run("ErrUnknownTerminal", func(t *testing.T) {
		_, err := e.reg.TerminalCertificate(ctx, "T-2", now)
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_terminal")
	})
	t.Run("Revoked", func(t *testing.T) {
		_, err := e.ca.Revoke(ctx, pki.SerialOf(cur), "keyCompromise")
		must(t, err)
		got, err := e.reg.TerminalCertificate(ctx, "T-1", e.clock.Now().Add(time.Second))
		must(t, err)
		if !sameCert(got, old) {
			t.Fatalf("got %s, want the older unrevoked %s", pki.SerialOf(got), pki.SerialOf(old))
		}
		// Before its revocation, the newer certificate was still the terminal's.
		got, err = e.reg.TerminalCertificate(ctx, "T-1", now.Add(-time.Second))
		must(t, err)
		if !sameCert(got, cur) {
			t.Fatalf("before the revocation got %s, want %s", pki.SerialOf(got), pki.SerialOf(cur))
		}
		_, err = e.ca.Revoke(ctx, pki.SerialOf(old), "superseded")
		must(t, err)
		_, err = e.reg.TerminalCertificate(ctx, "T-1", e.clock.Now().Add(time.Second))
		wantRefusal(t, err, evoucher.KindNotFound, "no_certificate")
	})
}

func TestVendorCards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := mustCertEnv(t)
	must(t, e.reg.CreateRetailer(ctx, retailer.Retailer{ID: "R-2", Name: "Other Shop"}))
	for _, v := range []retailer.Vendor{
		{ID: "V-1", Retailer: "R-1", Name: "Alice"},   // two cards: the newest counts
		{ID: "V-2", Retailer: "R-1", Name: "Bob"},     // card revoked below
		{ID: "V-3", Retailer: "R-1", Name: "Carol"},   // vendor revoked
		{ID: "V-4", Retailer: "R-1", Name: "Dave"},    // never enrolled
		{ID: "V-5", Retailer: "R-2", Name: "Eve"},     // another retailer
		{ID: "V-6", Retailer: "R-1", Name: "Mallory"}, // only a terminal certificate
	} {
		must(t, e.reg.AddVendor(ctx, v))
	}
	v1old := e.issue(t, "v1-old", pki.RoleVendor, "V-1")
	v1 := e.issue(t, "v1-new", pki.RoleVendor, "V-1")
	v2 := e.issue(t, "v2", pki.RoleVendor, "V-2")
	e.issue(t, "v3", pki.RoleVendor, "V-3")
	v5 := e.issue(t, "v5", pki.RoleVendor, "V-5")
	e.issue(t, "v6", pki.RoleTerminal, "V-6")
	if _, err := e.reg.VendorCards(ctx, "R-404", e.clock.Now()); err == nil {
		t.Fatal("cards of an unknown retailer")
	} else {
		wantRefusal(t, err, evoucher.KindNotFound, "unknown_retailer")
	}
	// The registry has no call to revoke a vendor yet; the status column is what counts.
	if _, err := e.db.Exec(ctx, `UPDATE vendors SET status = 'revoked' WHERE id = 'V-3'`); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		cards, err := e.reg.VendorCards(ctx, "R-1", e.clock.Now())
		must(t, err)
		if len(cards) != 2 || !sameCert(cards["V-1"], v1) || !sameCert(cards["V-2"], v2) {
			t.Fatalf("cards = %v, want V-1 (newest) and V-2", serials(cards))
		}
		other, err := e.reg.VendorCards(ctx, "R-2", e.clock.Now())
		must(t, err)
		if len(other) != 1 || !sameCert(other["V-5"], v5) {
			t.Fatalf("R-2 cards = %v", serials(other))
		}
	})
	t.Run("RevokedCard", func(t *testing.T) {
		_, err := e.ca.Revoke(ctx, pki.SerialOf(v2), "keyCompromise")
		must(t, err)
		_, err = e.ca.Revoke(ctx, pki.SerialOf(v1), "superseded")
		must(t, err)
		cards, err := e.reg.VendorCards(ctx, "R-1", e.clock.Now().Add(time.Second))
		must(t, err)
		if len(cards) != 1 || !sameCert(cards["V-1"], v1old) {
			t.Fatalf("cards = %v, want only V-1's older card", serials(cards))
		}
	})
	t.Run("Expired", func(t *testing.T) {
		cards, err := e.reg.VendorCards(ctx, "R-1", v1old.NotAfter.Add(time.Second))
		must(t, err)
		if len(cards) != 0 {
			t.Fatalf("expired cards returned: %v", serials(cards))
		}
		// At its last valid instant it still counts.
		cards, err = e.reg.VendorCards(ctx, "R-1", v1old.NotAfter)
		must(t, err)
		if len(cards) != 1 {
			t.Fatalf("cards at NotAfter = %v", serials(cards))
		}
	})
}

func serials(cards map[string]*x509.Certificate) map[string]string {
	out := map[string]string{}
	for id, c := range cards {
		out[id] = pki.SerialOf(c)
	}
	return out
}

package codevault_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

func TestIngest(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	cs := codes(100_000_000_000, 120)
	docs := f.seal(t, "OP-A", f.opA, "B-1", cs, 50)
	if len(docs) != 3 {
		t.Fatalf("%d parts, want 3", len(docs))
	}
	var receipts [][]byte
	for i, d := range docs {
		r, err := f.vault.Receive(ctx, peer("OP-A"), d)
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		receipts = append(receipts, r)
		rc := readReceipt(t, f, r)
		// The batch is in the exchange log, byte-exact, at the index its receipt names, and the
		// receipt after it.
		var logged []byte
		if err := f.db.QueryRow(context.Background(), `SELECT data FROM log_entries WHERE idx = $1`, int64(rc.LogIndex)).Scan(&logged); err != nil || !bytes.Equal(logged, d) {
			t.Fatalf("part %d is not in the log at %d: %v", i+1, rc.LogIndex, err)
		}
		if err := f.db.QueryRow(context.Background(), `SELECT data FROM log_entries WHERE message_id = $1 AND idx > $2`, rc.MessageID, int64(rc.LogIndex)).Scan(&logged); err != nil || !bytes.Equal(logged, r) {
			t.Fatalf("the receipt of part %d is not in the log: %v", i+1, err)
		}
		// Its inclusion proof verifies for the batch's bytes, against the tree it names.
		lp := auditlog.Proof{Index: rc.LogIndex, Size: rc.LogProof.Size, Root: rc.LogProof.Root, Hashes: rc.LogProof.Hashes}
		if err := lp.Verify(d); err != nil || lp.Size != rc.LogIndex+1 {
			t.Fatalf("the receipt's log proof: %v", err)
		}
		if err := lp.Verify(docs[(i+1)%len(docs)]); err == nil {
			t.Fatal("the receipt's log proof verifies for another document")
		}
		want := 50
		if i == 2 {
			want = 20
		}
		if rc.Status != message.StatusAccepted || rc.Accepted != want || rc.Part != i+1 || rc.Parts != 3 || rc.BatchDigest != sha256.Sum256(d) || rc.Recipient != "OP-A" {
			t.Fatalf("receipt of part %d: %+v", i+1, rc)
		}
	}
	if *update {
		writeExample(t, "CodeBatch.xml", docs[2])
		writeExample(t, "BatchReceipt.xml", receipts[2])
	}
	if n := f.count(t, `SELECT count(*) FROM codes WHERE operator_id = 'OP-A' AND state = 'in_vault'`); n != 120 {
		t.Fatalf("%d codes in the vault, want 120", n)
	}

	t.Run("PINsSealed", func(t *testing.T) {
		for _, c := range []message.Code{cs[0], cs[77], cs[119]} {
			pin, err := f.vault.RevealForTest(ctx, "OP-A", c.Serial)
			if err != nil || string(pin) != string(c.PIN) {
				t.Fatalf("serial %s does not decrypt to its PIN: %v", c.Serial, err)
			}
		}
		// A ciphertext moved to another row does not open there.
		if _, err := f.db.Exec(ctx, `UPDATE codes SET pin_ct = (SELECT pin_ct FROM codes WHERE serial = $1) WHERE serial = $2`, cs[1].Serial, cs[2].Serial); err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.RevealForTest(ctx, "OP-A", cs[2].Serial); err == nil {
			t.Fatal("a PIN ciphertext moved to another serial still decrypts")
		}
		if n := f.count(t, `SELECT count(*) FROM codes WHERE position(convert_to($1, 'UTF8') in pin_ct) > 0`, string(cs[5].PIN)); n != 0 {
			t.Fatal("a PIN is stored in clear")
		}
	})
	t.Run("SameBytesSameReceipt", func(t *testing.T) {
		before := f.counts(t)
		r, err := f.vault.Receive(ctx, peer("OP-A"), docs[0])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r, receipts[0]) {
			t.Fatal("a repeated part got another receipt")
		}
		if f.counts(t) != before {
			t.Fatal("a repeated part changed the vault")
		}
	})
	t.Run("ErrSameBytesFromAnotherParty", func(t *testing.T) {
		before := f.counts(t)
		r, err := f.vault.Receive(ctx, peer("OP-B"), docs[0])
		if err == nil || r != nil || evoucher.ReasonOf(err) != "sender_mismatch" {
			t.Fatalf("another operator replaying A's part got %d bytes, %v", len(r), err)
		}
		if f.counts(t) != before {
			t.Fatal("the replay changed the vault")
		}
	})
	t.Run("ResealedDuplicate", func(t *testing.T) {
		before := f.counts(t)
		again := f.seal(t, "OP-A", f.opA, "B-1", cs, 50)
		r, err := f.vault.Receive(ctx, peer("OP-A"), again[1])
		if err != nil {
			t.Fatal(err)
		}
		rc := readReceipt(t, f, r)
		if rc.Status != message.StatusDuplicate || rc.Accepted != 0 || rc.Duplicate != 50 {
			t.Fatalf("re-sealed part: %+v", rc)
		}
		if f.count(t, `SELECT count(*) FROM codes`) != 120 || f.count(t, `SELECT count(*) FROM batch_parts`) != 3 {
			t.Fatalf("a re-sealed part added codes: %s -> %s", before, f.counts(t))
		}
	})
	t.Run("PurchaseOrder", func(t *testing.T) {
		// 120 codes is above the reorder level 50: no order yet. Sell… there is no selling yet, so
		// a second operator's small batch goes below its level.
		if n := f.count(t, `SELECT count(*) FROM purchase_orders WHERE operator_id = 'OP-A'`); n != 0 {
			t.Fatalf("%d purchase orders for a stocked product", n)
		}
		small := f.seal(t, "OP-B", f.opB, "B-9", codes(200_000_000_000, 10), 50)
		if _, err := f.vault.Receive(ctx, peer("OP-B"), small[0]); err != nil {
			t.Fatal(err)
		}
		var id string
		var doc []byte
		if err := f.db.QueryRow(ctx, `SELECT id, document FROM purchase_orders WHERE operator_id = 'OP-B' AND state = 'open' AND quantity = 500`).Scan(&id, &doc); err != nil {
			t.Fatalf("no open purchase order after stock fell below the level: %v", err)
		}
		po := readPO(t, f, doc)
		if *update {
			writeExample(t, "PurchaseOrder.xml", doc)
		}
		if po.OrderID != id || po.Product != "P10" || po.Recipient != "OP-B" {
			t.Fatalf("purchase order %+v", po)
		}
		if f.count(t, `SELECT count(*) FROM alarms WHERE kind = 'vault_low_stock' AND subject = 'OP-B/P10' AND state = 'open'`) != 1 {
			t.Fatal("no low-stock alarm")
		}
		// The operator answers the order: it is fulfilled, and the alarm clears.
		docs, err := sealPO(f, id, codes(200_000_001_000, 60))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if _, err := f.vault.Receive(ctx, peer("OP-B"), d); err != nil {
				t.Fatal(err)
			}
		}
		if f.count(t, `SELECT count(*) FROM purchase_orders WHERE id = $1 AND state = 'fulfilled'`, id) != 1 {
			t.Fatal("the purchase order answered by a batch is not fulfilled")
		}
		if f.count(t, `SELECT count(*) FROM alarms WHERE kind = 'vault_low_stock' AND subject = 'OP-B/P10' AND state = 'resolved'`) != 1 {
			t.Fatal("the low-stock alarm did not clear when stock rose above the level")
		}
	})
}

func TestRotateKEK(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	cs := codes(300_000_000_000, 30)
	for _, d := range f.seal(t, "OP-A", f.opA, "B-R", cs, 10) {
		if _, err := f.vault.Receive(ctx, peer("OP-A"), d); err != nil {
			t.Fatal(err)
		}
	}
	var codesBefore, dekBefore string
	q := `SELECT string_agg(md5(pin_ct), ',' ORDER BY id) FROM codes`
	if err := f.db.QueryRow(ctx, q).Scan(&codesBefore); err != nil {
		t.Fatal(err)
	}
	if err := f.db.QueryRow(ctx, `SELECT string_agg(md5(dek_wrapped), ',' ORDER BY part) FROM batch_parts`).Scan(&dekBefore); err != nil {
		t.Fatal(err)
	}
	r, err := f.vault.RotateKEK(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Old != "kek-1" || r.New != "kek-2" || r.Rewrapped != 3 {
		t.Fatalf("rotation %+v", r)
	}
	var codesAfter, dekAfter string
	_ = f.db.QueryRow(ctx, q).Scan(&codesAfter)
	_ = f.db.QueryRow(ctx, `SELECT string_agg(md5(dek_wrapped), ',' ORDER BY part) FROM batch_parts`).Scan(&dekAfter)
	if codesAfter != codesBefore {
		t.Fatal("KEK rotation touched code rows")
	}
	if dekAfter == dekBefore || f.count(t, `SELECT count(*) FROM batch_parts WHERE kek_label = 'kek-2'`) != 3 {
		t.Fatal("DEKs not re-wrapped under the new KEK")
	}
	if _, err := f.tok.FindAESKey("kek-1"); err == nil {
		t.Fatal("the old KEK is still in the token")
	}
	if f.count(t, `SELECT count(*) FROM center_keys WHERE label = 'kek-1' AND retired_at IS NOT NULL`) != 1 {
		t.Fatal("the old KEK is not recorded as retired")
	}
	for _, c := range cs {
		pin, err := f.vault.RevealForTest(ctx, "OP-A", c.Serial)
		if err != nil || string(pin) != string(c.PIN) {
			t.Fatalf("after rotation serial %s does not decrypt: %v", c.Serial, err)
		}
	}
	// New parts go under the new KEK.
	for _, d := range f.seal(t, "OP-A", f.opA, "B-R2", codes(300_000_001_000, 5), 10) {
		if _, err := f.vault.Receive(ctx, peer("OP-A"), d); err != nil {
			t.Fatal(err)
		}
	}
	if f.count(t, `SELECT count(*) FROM batch_parts WHERE kek_label = 'kek-2'`) != 4 {
		t.Fatal("a part stored after rotation is not under the new KEK")
	}
}

// TestNoClearPINs runs batches through the vault, then searches a pg_dump of the whole
// database for every PIN.
func TestNoClearPINs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Fatal("pg_dump is needed: apt-get install postgresql-client")
	}
	f := mustFixture(t)
	ctx := context.Background()
	cs := codes(500_000_000_000, 200)
	for _, d := range f.seal(t, "OP-A", f.opA, "B-D", cs, 100) {
		if _, err := f.vault.Receive(ctx, peer("OP-A"), d); err != nil {
			t.Fatal(err)
		}
	}
	var url string
	if err := f.db.QueryRow(ctx, `SELECT current_database()`).Scan(&url); err != nil {
		t.Fatal(err)
	}
	dump, err := exec.Command("pg_dump", "--dbname", dbURL(t, url)).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(dump, []byte(cs[0].Serial)) {
		t.Fatal("the dump does not hold the serials: it is not the vault's database")
	}
	for _, c := range cs {
		if bytes.Contains(dump, c.PIN) {
			t.Fatalf("the PIN of serial %s is in clear in the database dump", c.Serial)
		}
	}
}

// dbURL is DATABASE_URL with the database replaced.
func dbURL(t *testing.T, name string) string {
	t.Helper()
	u := testdb.AdminURL(t)
	i := strings.Index(u, "://")
	rest := u[i+3:]
	slash := strings.Index(rest, "/")
	q := ""
	if j := strings.Index(rest, "?"); j >= 0 {
		q = rest[j:]
		if slash < 0 || slash > j {
			slash = j
		}
	}
	if slash < 0 {
		return u + "/" + name
	}
	return u[:i+3] + rest[:slash] + "/" + name + q
}

func readReceipt(t *testing.T, f *fixture, raw []byte) message.BatchReceipt {
	t.Helper()
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	signed, cert, err := dsig.Verify(doc, func(*x509.Certificate) error { return nil })
	if err != nil {
		t.Fatalf("receipt signature: %v", err)
	}
	if !cert.Equal(f.centerSign.cert) {
		t.Fatal("receipt not signed by center-sign")
	}
	r, err := message.ReadBatchReceipt(signed)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readPO(t *testing.T, f *fixture, raw []byte) message.PurchaseOrder {
	t.Helper()
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	signed, cert, err := dsig.Verify(doc, func(*x509.Certificate) error { return nil })
	if err != nil || !cert.Equal(f.centerSign.cert) {
		t.Fatalf("purchase order signature: %v", err)
	}
	po, err := message.ReadPurchaseOrder(signed)
	if err != nil {
		t.Fatal(err)
	}
	return po
}

func sealPO(f *fixture, po string, cs []message.Code) ([][]byte, error) {
	return sealWith(f, "OP-B", f.opB, "B-PO", po, cs)
}

// writeExample refreshes the documented examples of package message.
func writeExample(t *testing.T, name string, b []byte) {
	t.Helper()
	dir := filepath.Join("..", "xml", "message", "testdata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReceiptSignedAfterCommit: a part is recorded, then its receipt cannot be signed (it is
// signed after the commit, migration 0014). The part stays stored with no receipt logged; the
// operator's retry gets the receipt, logged once, and stores nothing again.
func TestReceiptSignedAfterCommit(t *testing.T) {
	t.Parallel()
	f := mustFixture(t)
	ctx := context.Background()
	more := codes(100_000_100_000, 60) // above the reorder level: no purchase order to sign
	part := f.seal(t, "OP-A", f.opA, "B-HSM", more, 60)[0]
	inVault := `SELECT count(*) FROM codes WHERE state = 'in_vault'`
	stored := f.count(t, inVault)
	f.hsmDown.Store(true)
	_, err := f.vault.Receive(ctx, peer("OP-A"), part)
	f.hsmDown.Store(false)
	if err == nil {
		t.Fatal("answered without a signature")
	}
	if n := f.count(t, inVault); n != stored+60 {
		t.Fatalf("%d codes in the vault, want %d: the part was not recorded", n, stored+60)
	}
	if f.count(t, `SELECT count(*) FROM log_entries WHERE type = 'BatchReceipt' AND position(convert_to('B-HSM', 'UTF8') in data) > 0`) != 0 {
		t.Fatal("a receipt was logged without being signed")
	}
	r, err := f.vault.Receive(ctx, peer("OP-A"), part)
	if err != nil {
		t.Fatal(err)
	}
	rc := readReceipt(t, f, r)
	if rc.Status != message.StatusAccepted || rc.Accepted != 60 || rc.BatchID != "B-HSM" {
		t.Fatalf("receipt on retry: %+v", rc)
	}
	if f.count(t, inVault) != stored+60 {
		t.Fatal("the retry stored the part again")
	}
	if f.count(t, `SELECT count(*) FROM log_entries WHERE message_id = $1 AND data = $2`, rc.MessageID, r) != 1 {
		t.Fatal("the receipt is not in the log once")
	}
	var logged []byte
	if err := f.db.QueryRow(ctx, `SELECT data FROM log_entries WHERE idx = $1`, int64(rc.LogIndex)).Scan(&logged); err != nil || !bytes.Equal(logged, part) {
		t.Fatalf("the receipt does not name the part's entry: %v", err)
	}
	before := f.counts(t)
	again, err := f.vault.Receive(ctx, peer("OP-A"), part)
	if err != nil || !bytes.Equal(again, r) {
		t.Fatalf("a second retry got another answer: %v", err)
	}
	if f.counts(t) != before {
		t.Fatal("the second retry changed the vault or the log")
	}
}

package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
)

// TestExchange drives /v1/exchange and /v1/operator/orders with the real vault behind them.
func TestExchange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.MustPool(t)
	tok := testhsm.MustToken(t)
	caKey, _, _ := tok.RSAKey("ca", 3072)
	caCert, _, err := pki.EnsureCA(ctx, db, caKey, "ca")
	if err != nil {
		t.Fatal(err)
	}
	metrics := api.NewMetrics()
	a, _ := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey, Meter: metrics.PKI})
	issue := func(label string, bits int, role pki.Role, entity string) (*tls.Certificate, *x509.Certificate) {
		t.Helper()
		key, _, err := tok.RSAKey(label, bits)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := a.Issue(ctx, pki.IssueRequest{CSR: mustCSR(t, key), Role: role, Entity: entity})
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, cert
	}
	encTLS, encCert := issue("center-encrypt", 3072, pki.RoleCenterEncrypt, "center")
	signTLS, signCert := issue("center-sign", 3072, pki.RoleCenterSign, "center")
	opTLS, opCert := issue("op", 2048, pki.RoleOperatorSign, "OP-A")
	termTLS, _ := issue("term", 2048, pki.RoleTerminal, "T-1")
	audTLS, _ := issue("auditor", 2048, pki.RoleAuditor, "AUD-1")
	logKey, _, _ := tok.ECDSAKey("log")
	logSigner, _ := auditlog.NewSigner("evoucher.test/log", logKey)
	xlog, _ := auditlog.New(db, logSigner, nil)
	if _, _, err := codevault.EnsureKEK(ctx, db, tok); err != nil {
		t.Fatal(err)
	}
	reg, _ := operator.New(db)
	if err := reg.CreateOperator(ctx, operator.Operator{ID: "OP-A", Name: "A"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.CreateProduct(ctx, operator.Product{Operator: "OP-A", Code: "P10", FaceValue: 1000, Currency: "EUR",
		RefillTemplate: "*{PIN}#", SerialPattern: "[0-9]+", PINPattern: "[0-9]+", ReorderLevel: 100, ReorderQuantity: 1000}); err != nil {
		t.Fatal(err)
	}
	seq := auditlog.NewSequencer(db)
	metrics.LogSequencer(seq)
	vault, err := codevault.New(codevault.Config{DB: db, Keys: tok, Decrypter: encTLS.PrivateKey.(codevaultDecrypter),
		EncryptCert: encCert, Signer: signTLS.PrivateKey.(codevaultSigner), SignCert: signCert, PKI: a, Meter: metrics.Vault, Sequencer: seq})
	if err != nil {
		t.Fatal(err)
	}
	tlsKey, _, _ := tok.ECDSAKey("tls")
	tlsCert, _, err := a.EnsureCertificate(ctx, tlsKey, pki.RoleCenterTLS, "center", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	books, err := ledger.New(ledger.Config{DB: db, Signer: signTLS.PrivateKey.(codevaultSigner), SignCert: signCert})
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Authority: a, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: metrics,
		Exchange: vault, Orders: reg, Statements: books, Log: xlog, CenterCerts: map[string]*x509.Certificate{"center-encrypt": encCert}, MaxMessageBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = api.TLSConfig(tls.Certificate{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey})
	hs.StartTLS()
	defer hs.Close()
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	client := func(c *tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if c != nil {
			cfg.Certificates = []tls.Certificate{*c}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: time.Minute}
	}
	post := func(c *tls.Certificate, body []byte) (int, []byte) {
		t.Helper()
		resp, err := client(c).Post(hs.URL+"/v1/exchange", "application/xml", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	docs, err := operator.Seal(operator.SealRequest{Operator: "OP-A", BatchID: "B-1", Product: "P10", FaceValue: 1000, Currency: "EUR",
		Codes:  []message.Code{{Serial: "1001", PIN: message.PIN("99887766"), Expiry: time.Now().AddDate(1, 0, 0)}},
		Signer: opTLS.PrivateKey.(codevaultSigner), Cert: opCert, CenterCert: encCert, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ErrTerminalSendsOperatorsBatch", func(t *testing.T) {
		status, body := post(termTLS, docs[0])
		if status != http.StatusForbidden || !strings.Contains(string(body), "sender_mismatch") {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("ErrNoCertificate", func(t *testing.T) {
		if status, _ := post(nil, docs[0]); status != http.StatusUnauthorized {
			t.Fatalf("%d", status)
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		status, body := post(opTLS, bytes.Repeat([]byte("x"), 2<<20))
		if status != http.StatusBadRequest || !strings.Contains(string(body), "too_large") {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("OK", func(t *testing.T) {
		status, body := post(opTLS, docs[0])
		if status != http.StatusOK || !bytes.Contains(body, []byte("<Status>accepted</Status>")) || bytes.Contains(body, []byte("99887766")) {
			t.Fatalf("%d %s", status, body)
		}
		// The batch and its receipt were sequenced by the vault's sequencer, in two sequencings
		// (the receipt is made once the batch has its index).
		resp, err := client(nil).Get(hs.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m, _ := io.ReadAll(resp.Body)
		for _, want := range []string{"evoucher_log_sequenced_entries_total 2", "evoucher_log_sequencings_total 2"} {
			if !bytes.Contains(m, []byte(want+"\n")) {
				t.Fatalf("metrics lack %s", want)
			}
		}
	})
	t.Run("Orders", func(t *testing.T) {
		resp, err := client(opTLS).Get(hs.URL + "/v1/operator/orders")
		if err != nil {
			t.Fatal(err)
		}
		var orders []api.OrderInfo
		_ = json.NewDecoder(resp.Body).Decode(&orders)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(orders) != 1 || orders[0].Quantity != 1000 || !strings.Contains(orders[0].Document, "<PurchaseOrder") {
			t.Fatalf("%d %+v", resp.StatusCode, orders)
		}
		resp, err = client(termTLS).Get(hs.URL + "/v1/operator/orders")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a terminal read an operator's orders: %d", resp.StatusCode)
		}
	})
	t.Run("Statements", func(t *testing.T) {
		end := time.Now().Add(-time.Second)
		made, err := books.GenerateStatement(ctx, ledger.StatementRequest{PartyKind: message.PartyOperator, Party: "OP-A", From: end.Add(-24 * time.Hour), To: end})
		if err != nil {
			t.Fatal(err)
		}
		get := func(c *tls.Certificate) (int, []api.StatementInfo) {
			t.Helper()
			resp, err := client(c).Get(hs.URL + "/v1/operator/statements")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var list []api.StatementInfo
			_ = json.NewDecoder(resp.Body).Decode(&list)
			return resp.StatusCode, list
		}
		status, list := get(opTLS)
		if status != http.StatusOK || len(list) != 1 || list[0].ID != made.ID || list[0].Document != string(made.Document) {
			t.Fatalf("OP-A's statements: %d %+v", status, list)
		}
		opB, _ := issue("op-b", 2048, pki.RoleOperatorSign, "OP-B")
		if status, list := get(opB); status != http.StatusOK || len(list) != 0 {
			t.Fatalf("OP-B sees %d statements (status %d), want none of OP-A's", len(list), status)
		}
		if status, _ := get(termTLS); status != http.StatusForbidden {
			t.Fatalf("a terminal read an operator's statements: %d", status)
		}
	})
	t.Run("ExchangeLog", func(t *testing.T) {
		if _, err := xlog.Sign(ctx); err != nil {
			t.Fatal(err)
		}
		resp, err := client(audTLS).Get(hs.URL + "/v1/log/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		note, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		v, _ := auditlog.NewVerifier(logSigner.VerifierKey())
		size, _, err := auditlog.OpenCheckpoint(note, "evoucher.test/log", v)
		if resp.StatusCode != http.StatusOK || err != nil || size < 2 {
			t.Fatalf("checkpoint: %d size %d %v", resp.StatusCode, size, err)
		}
		resp, err = client(audTLS).Get(hs.URL + "/v1/log/entries?from=0&to=2")
		if err != nil {
			t.Fatal(err)
		}
		var es []api.LogEntry
		_ = json.NewDecoder(resp.Body).Decode(&es)
		resp.Body.Close()
		if len(es) != 2 || !bytes.Equal(es[0].Data, docs[0]) && !bytes.Equal(es[1].Data, docs[0]) {
			t.Fatalf("entries: %d", len(es))
		}
		for _, c := range []*tls.Certificate{termTLS, opTLS} {
			resp, err := client(c).Get(hs.URL + "/v1/log/entries?from=0&to=2")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s read the log: %d", c.Leaf.Subject.CommonName, resp.StatusCode)
			}
		}
	})
	t.Run("Verifications", func(t *testing.T) {
		cp, err := xlog.Sign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		report := func(c *tls.Certificate, body string) (int, api.VerificationRecord, string) {
			t.Helper()
			resp, err := client(c).Post(hs.URL+"/v1/log/verifications", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var rec api.VerificationRecord
			_ = json.Unmarshal(b, &rec)
			return resp.StatusCode, rec, string(b)
		}
		body := func(size uint64, root []byte) string {
			b, _ := json.Marshal(api.VerificationReport{Size: size, Root: hex.EncodeToString(root), Checkpoint: string(cp.Note),
				EntriesChecked: size, Outcome: "ok", DurationMS: 42})
			return string(b)
		}
		count := func() (n int) {
			t.Helper()
			if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_verifications`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		securityAlarms := func() (n int) {
			t.Helper()
			if err := db.QueryRow(ctx, `SELECT count(*) FROM alarms WHERE kind = 'security' AND subject = 'exchange_log' AND state = 'open'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		t.Run("OK", func(t *testing.T) {
			status, rec, raw := report(audTLS, body(cp.Size, cp.Root))
			if status != http.StatusCreated || rec.Reporter != "AUD-1" || rec.ReporterRole != "auditor" || rec.RootMatches == nil || !*rec.RootMatches {
				t.Fatalf("%d %s", status, raw)
			}
			var who, serial, outcome string
			var size, ms int64
			var matches bool
			if err := db.QueryRow(ctx, `SELECT reporter, reporter_serial, size, outcome, duration_ms, root_matches FROM audit_verifications WHERE id = $1`, rec.ID).
				Scan(&who, &serial, &size, &outcome, &ms, &matches); err != nil {
				t.Fatal(err)
			}
			if who != "AUD-1" || serial != pki.SerialOf(audTLS.Leaf) || uint64(size) != cp.Size || outcome != "ok" || ms != 42 || !matches {
				t.Fatalf("row: %s %s %d %s %d %v", who, serial, size, outcome, ms, matches)
			}
			if n := securityAlarms(); n != 0 {
				t.Fatalf("%d security alarms after a matching verification", n)
			}
		})
		t.Run("ErrReporterInBody", func(t *testing.T) {
			before := count()
			b := strings.Replace(body(cp.Size, cp.Root), "{", `{"reporter":"OP-A",`, 1)
			if status, _, raw := report(audTLS, b); status != http.StatusBadRequest || count() != before {
				t.Fatalf("%d %s", status, raw)
			}
		})
		t.Run("ErrTerminalOrOperator", func(t *testing.T) {
			before := count()
			for _, c := range []*tls.Certificate{termTLS, opTLS} {
				if status, _, raw := report(c, body(cp.Size, cp.Root)); status != http.StatusForbidden {
					t.Fatalf("%s reported a verification: %d %s", c.Leaf.Subject.CommonName, status, raw)
				}
			}
			if status, _, _ := report(nil, body(cp.Size, cp.Root)); status != http.StatusUnauthorized {
				t.Fatalf("no certificate: %d", status)
			}
			if n := count(); n != before {
				t.Fatalf("%d rows after refused reports, want %d", n, before)
			}
		})
		t.Run("RootMismatch", func(t *testing.T) {
			forged := bytes.Repeat([]byte{0xab}, 32)
			status, rec, raw := report(audTLS, body(cp.Size, forged))
			if status != http.StatusCreated || rec.RootMatches == nil || *rec.RootMatches {
				t.Fatalf("%d %s", status, raw)
			}
			var msg string
			if err := db.QueryRow(ctx, `SELECT message FROM alarms WHERE kind = 'security' AND subject = 'exchange_log' AND state = 'open'`).Scan(&msg); err != nil {
				t.Fatalf("no security alarm after a root mismatch: %v", err)
			}
			if !strings.Contains(msg, "AUD-1") || !strings.Contains(msg, "not the center's tree") {
				t.Fatalf("alarm message: %s", msg)
			}
			// A size beyond the center's log is no tree of the center's either.
			status, rec, raw = report(audTLS, body(cp.Size+100, cp.Root))
			if status != http.StatusCreated || rec.RootMatches == nil || *rec.RootMatches {
				t.Fatalf("beyond the log: %d %s", status, raw)
			}
			var occ int
			_ = db.QueryRow(ctx, `SELECT occurrences FROM alarms WHERE kind = 'security' AND subject = 'exchange_log' AND state = 'open'`).Scan(&occ)
			if occ != 2 {
				t.Fatalf("alarm occurrences %d, want 2", occ)
			}
		})
		t.Run("ErrAppendOnly", func(t *testing.T) {
			if _, err := db.Exec(ctx, `UPDATE audit_verifications SET root_matches = true`); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("update: %v", err)
			}
			if _, err := db.Exec(ctx, `DELETE FROM audit_verifications`); err == nil {
				t.Fatal("delete allowed")
			}
		})
	})
	t.Run("NoPINInLogs", func(t *testing.T) {
		if logs.Len() == 0 || bytes.Contains(logs.Bytes(), []byte("99887766")) {
			t.Fatalf("server log (%d bytes) is empty or holds the PIN", logs.Len())
		}
	})
	t.Run("CenterCert", func(t *testing.T) {
		resp, err := client(nil).Get(hs.URL + "/pki/center-encrypt.pem")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
			t.Fatalf("%d", resp.StatusCode)
		}
		resp, _ = client(nil).Get(hs.URL + "/pki/ca-key.pem")
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown certificate name: %d", resp.StatusCode)
		}
	})
}

type codevaultDecrypter = interface {
	codevaultSigner
	Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error)
}

type codevaultSigner = crypto.Signer

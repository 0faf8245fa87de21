package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/internal/testdb"
	"github.com/evoucher/evoucher/migrations"
	"github.com/evoucher/evoucher/pki"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestInitTwice runs init from nothing, then again: the second run changes nothing and says so.
// One per test process: libsofthsm2 reads SOFTHSM2_CONF once, and init points it at its dir.
func TestInitTwice(t *testing.T) {
	url := testdb.MustEmptyURL(t)
	dir := filepath.Join(t.TempDir(), "center")
	t.Setenv("EVOUCHER_HSM_PIN", "")
	first, err := run(t, "init", "--dir", dir, "--database-url", url)
	if err != nil {
		t.Fatalf("first init: %v\n%s", err, first)
	}
	if !strings.Contains(first, "evoucher is initialised") || strings.Contains(first, "exists ") {
		t.Fatalf("first init output:\n%s", first)
	}
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	state := func() string {
		var s string
		err := db.QueryRow(context.Background(), `SELECT
			(SELECT string_agg(serial || role, ',' ORDER BY serial) FROM certificates) || '|' ||
			(SELECT string_agg(label || purpose, ',' ORDER BY label) FROM center_keys) || '|' ||
			(SELECT count(*) FROM crls)::text || '|' || (SELECT count(*) FROM ca_certificates)::text || '|' ||
			(SELECT count(*) FROM schema_migrations)::text`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := state()
	all, _ := migrations.All()
	if !strings.Contains(before, "center-signcenter-sign") || !strings.Contains(before, "kek-1kek") || !strings.HasSuffix(before, fmt.Sprintf("|1|1|%d", len(all))) {
		t.Fatalf("state after init: %s", before)
	}
	files := map[string][]byte{}
	for _, f := range []string{"ca.pem", "center-sign.pem", "center-encrypt.pem", "center-tls.pem", "config.json", "hsm.pin"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("init did not write %s: %v", f, err)
		}
		files[f] = b
	}
	if fi, _ := os.Stat(filepath.Join(dir, "hsm.pin")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("hsm.pin mode %v, want 0600", fi.Mode().Perm())
	}

	second, err := run(t, "init", "--dir", dir, "--database-url", url)
	if err != nil {
		t.Fatalf("second init: %v\n%s", err, second)
	}
	if !strings.Contains(second, "nothing changed") || strings.Contains(second, "created ") {
		t.Fatalf("second init output:\n%s", second)
	}
	if after := state(); after != before {
		t.Fatalf("second init changed the database:\n%s\n%s", before, after)
	}
	for f, b := range files {
		if now, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Equal(now, b) {
			t.Fatalf("second init changed %s", f)
		}
	}

	out, err := run(t, "migrate", "--dir", dir, "--database-url", url)
	if err != nil || !strings.Contains(out, "schema is current") {
		t.Fatalf("migrate after init: %v %s", err, out)
	}
	// The settings file now supplies the database URL (the environment would win over it).
	t.Setenv("DATABASE_URL", "")
	out, err = run(t, "pki", "issue-code", "--dir", dir, "--role", "vendor", "--entity", "V-1")
	if err != nil || !strings.Contains(out, "enrolment code for vendor V-1") {
		t.Fatalf("issue-code from config.json settings: %v %s", err, out)
	}
	out, err = run(t, "pki", "issue-code", "--dir", dir, "--role", "root", "--entity", "V-1")
	if err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Fatalf("issue-code for an unknown role: %v %s", err, out)
	}

	t.Run("ServerStopsGracefully", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			root := newRoot()
			root.SetArgs([]string{"server", "--dir", dir, "--database-url", url, "--listen", addr, "--log-level", "error"})
			done <- root.ExecuteContext(ctx)
		}()
		ca, err := readCertPEM(filepath.Join(dir, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		var ready bool
		for range 100 {
			if resp, err := hc.Get("https://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !ready {
			cancel()
			t.Fatalf("server not ready: %v", <-done)
		}
		t.Run("AuditVerifyReports", func(t *testing.T) {
			auditVerifyReports(t, dir, "https://"+addr, hc, db)
		})
		cancel() // what SIGTERM does through signal.NotifyContext
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("server stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("server did not stop")
		}
		if _, err := hc.Get("https://" + addr + "/healthz"); err == nil {
			t.Fatal("server still answers after shutdown")
		}
	})
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	if _, err := writeConfig(dir, map[string]string{"hsm-token": "from-file", "log-level": "warn", "database-url": "postgres://file"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVOUCHER_LOG_LEVEL", "error")
	t.Setenv("DATABASE_URL", "")
	t.Setenv("EVOUCHER_DATABASE_URL", "")
	os.Unsetenv("EVOUCHER_DATABASE_URL")
	root := newRoot()
	root.AddCommand(&cobra.Command{Use: "probe", RunE: func(cmd *cobra.Command, args []string) error {
		for _, f := range []string{"hsm-token", "log-level", "database-url"} {
			cmd.Printf("%s=%s\n", f, cmd.Flag(f).Value)
		}
		return nil
	}})
	root.SetArgs([]string{"probe", "--dir", dir, "--hsm-token", "from-flag"})
	var out bytes.Buffer
	root.SetOut(&out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"hsm-token=from-flag", "log-level=error", "database-url=postgres://file"} {
		if !strings.Contains(got, want) {
			t.Fatalf("settings %q lack %q", got, want)
		}
	}
}

// auditVerifyReports enrols an auditor with a PEM key, runs audit verify against the server and
// checks the center recorded the run under the certificate's identity; --no-report records
// nothing.
func auditVerifyReports(t *testing.T, dir, server string, hc *http.Client, db *pgxpool.Pool) {
	ctx := context.Background()
	out, err := run(t, "pki", "issue-code", "--dir", dir, "--role", "auditor", "--entity", "AUD-1")
	if err != nil {
		t.Fatalf("issue-code: %v %s", err, out)
	}
	f := strings.Fields(out)
	code := f[len(f)-1]
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "AUD-1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(api.EnrolRequest{Code: code, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})), Role: "auditor"})
	resp, err := hc.Post(server+"/v1/enrol", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var er api.EnrolResponse
	if err := decodeAnswer(resp, http.StatusCreated, &er); err != nil {
		t.Fatalf("enrol: %v", err)
	}
	resp.Body.Close()
	work := t.TempDir()
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(work, "auditor.pem"), filepath.Join(work, "auditor-key.pem")
	if err := os.WriteFile(certFile, []byte(er.Certificate), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		if err := db.QueryRow(ctx, `SELECT count(*) FROM audit_verifications`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	args := []string{"audit", "verify", "--dir", dir, "--server", server, "--log-key", filepath.Join(dir, "log.vkey"),
		"--cert", certFile, "--key-pem", keyFile, "--state", filepath.Join(work, "state")}
	// The server signs its first checkpoint as it starts; wait for it.
	for i := 0; ; i++ {
		out, err = run(t, append(args, "--no-report")...)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "the log verifies") {
		t.Fatalf("audit verify --no-report: %v %s", err, out)
	}
	if n := count(); n != 0 {
		t.Fatalf("--no-report recorded %d verifications", n)
	}
	if out, err = run(t, args...); err != nil || strings.Contains(out, "warning") {
		t.Fatalf("audit verify: %v %s", err, out)
	}
	var who, role, serial, outcome string
	var matches bool
	if err := db.QueryRow(ctx, `SELECT reporter, reporter_role, reporter_serial, outcome, root_matches FROM audit_verifications`).
		Scan(&who, &role, &serial, &outcome, &matches); err != nil {
		t.Fatalf("no verification recorded: %v", err)
	}
	if who != "AUD-1" || role != "auditor" || serial != er.Serial || outcome != "ok" || !matches {
		t.Fatalf("recorded %s %s %s %s %v", who, role, serial, outcome, matches)
	}
}

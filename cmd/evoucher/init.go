package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/migrations"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

func newInitCmd(g *globals) *cobra.Command {
	var hosts string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "create the center from nothing: token, keys, CA, center certificates, schema",
		Long: `init creates, in order and only what is missing: the config directory, the development
SoftHSM2 token (unless --hsm-module names a real HSM), the CA key and certificate, the
center-sign and center-encrypt RSA-3072 keys and certificates, the TLS key and certificate,
the AES key-encryption key, and the database schema. Every key is created non-extractable in
the token. Running it again changes nothing and says so.`,
		Example: `  evoucher init --dir ./evoucher-data --database-url postgres://localhost/evoucher
  EVOUCHER_HSM_PIN=… evoucher init --hsm-module /usr/lib/vendor/libhsm.so --hsm-token center`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd, g, splitList(hosts))
		},
	}
	cmd.Flags().StringVar(&hosts, "hosts", "localhost,127.0.0.1", "names and addresses in the server's TLS certificate")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// step prints what one init step did and remembers whether anything changed.
type steps struct {
	out     *cobra.Command
	changed bool
}

func (s *steps) done(created bool, what string) {
	if created {
		s.changed = true
		s.out.Printf("  created  %s\n", what)
	} else {
		s.out.Printf("  exists   %s\n", what)
	}
}

func runInit(cmd *cobra.Command, g *globals, hosts []string) error {
	ctx := cmd.Context()
	st := &steps{out: cmd}
	cmd.Printf("evoucher init in %s\n", g.dir)
	_, err := os.Stat(g.dir)
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return err
	}
	st.done(errors.Is(err, fs.ErrNotExist), "config directory "+g.dir)

	if g.hsmModule == "" {
		conf, err := pkcs11.SoftHSMDir(filepath.Join(g.dir, "softhsm"))
		if err != nil {
			return err
		}
		if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
			return err
		}
		pin, created, err := ensureSecretFile(g.pinFile())
		if err != nil {
			return err
		}
		st.done(created, "token PIN file "+g.pinFile())
		so, _, err := ensureSecretFile(filepath.Join(g.dir, "hsm.so-pin"))
		if err != nil {
			return err
		}
		err = pkcs11.InitSoftHSMToken(conf, g.hsmToken, pkcs11.PIN(so), pkcs11.PIN(pin))
		if err != nil && !errors.Is(err, pkcs11.ErrTokenExists) {
			return err
		}
		st.done(err == nil, fmt.Sprintf("SoftHSM2 token %q (development; use --hsm-module for a real HSM)", g.hsmToken))
	}
	tok, err := g.openToken()
	if err != nil {
		return err
	}
	defer tok.Close()
	caKey, created, err := tok.RSAKey("ca", 3072)
	if err != nil {
		return err
	}
	st.done(created, "CA key (RSA-3072, non-extractable)")
	signKey, created, err := tok.RSAKey("center-sign", 3072)
	if err != nil {
		return err
	}
	st.done(created, "center-sign key (RSA-3072)")
	encKey, created, err := tok.RSAKey("center-encrypt", 3072)
	if err != nil {
		return err
	}
	st.done(created, "center-encrypt key (RSA-3072)")
	tlsKey, created, err := tok.ECDSAKey("center-tls")
	if err != nil {
		return err
	}
	st.done(created, "TLS key (ECDSA P-256)")
	logKey, created, err := tok.ECDSAKey("log")
	if err != nil {
		return err
	}
	st.done(created, "exchange log checkpoint key (ECDSA P-256)")

	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := migrations.Up(ctx, db)
	if err != nil {
		return err
	}
	st.done(len(applied) > 0, fmt.Sprintf("database schema (%d migrations applied)", len(applied)))
	for _, k := range []struct{ label, purpose, alg string }{
		{"ca", "ca", "RSA-3072"}, {"center-sign", "center-sign", "RSA-3072"}, {"center-encrypt", "center-encrypt", "RSA-3072"},
		{"center-tls", "center-tls", "ECDSA-P256"}, {"log", "log", "ECDSA-P256"},
	} {
		if _, err := pki.RegisterKey(ctx, db, k.label, k.purpose, k.alg); err != nil {
			return err
		}
	}

	kek, created, err := codevault.EnsureKEK(ctx, db, tok)
	if err != nil {
		return err
	}
	st.done(created, "vault key-encryption key "+kek+" (AES-256)")

	caCert, created, err := pki.EnsureCA(ctx, db, caKey, "ca")
	if err != nil {
		return err
	}
	st.done(created, "platform CA certificate")
	if _, err := writeIfChanged(filepath.Join(g.dir, "ca.pem"), pemCert(caCert.Raw), 0o644); err != nil {
		return err
	}
	a, err := pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey})
	if err != nil {
		return err
	}
	for _, c := range []struct {
		key   crypto.Signer
		role  pki.Role
		file  string
		hosts []string
	}{
		{signKey, pki.RoleCenterSign, "center-sign.pem", nil},
		{encKey, pki.RoleCenterEncrypt, "center-encrypt.pem", nil},
		{tlsKey, pki.RoleCenterTLS, "center-tls.pem", hosts},
		{logKey, pki.RoleLog, "log.pem", nil},
	} {
		cert, created, err := a.EnsureCertificate(ctx, c.key, c.role, "center", c.hosts)
		if err != nil {
			return err
		}
		what := fmt.Sprintf("%s certificate (serial %s)", c.role, pki.SerialOf(cert))
		if c.hosts != nil {
			what += " for " + strings.Join(c.hosts, ", ")
		}
		st.done(created, what)
		if _, err := writeIfChanged(filepath.Join(g.dir, c.file), pemCert(cert.Raw), 0o644); err != nil {
			return err
		}
	}
	if _, err := a.CRL(ctx); err != nil {
		return err
	}
	ls, err := auditlog.NewSigner(g.logOrigin, logKey)
	if err != nil {
		return err
	}
	changed, err := writeIfChanged(filepath.Join(g.dir, "log.vkey"), []byte(ls.VerifierKey()+"\n"), 0o644)
	if err != nil {
		return err
	}
	st.done(changed, "exchange log verifier key "+filepath.Join(g.dir, "log.vkey")+" (give it to auditors)")
	settings := map[string]string{"hsm-token": g.hsmToken, "log-origin": g.logOrigin}
	if g.hsmModule != "" {
		settings["hsm-module"] = g.hsmModule
	}
	if cmd.Flags().Changed("database-url") {
		settings["database-url"] = g.databaseURL
	}
	changed, err = writeConfig(g.dir, settings)
	if err != nil {
		return err
	}
	st.done(changed, "settings "+filepath.Join(g.dir, configFile))
	if !st.changed {
		cmd.Println("nothing changed: evoucher was already initialised here")
	} else {
		cmd.Println("evoucher is initialised")
	}
	return nil
}

// ensureSecretFile returns the secret in path, creating it (random, mode 0600) if missing.
func ensureSecretFile(path string) (string, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	s := hex.EncodeToString(raw)
	return s, true, os.WriteFile(path, []byte(s+"\n"), 0o600)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return false, nil
	}
	return true, os.WriteFile(path, data, mode)
}

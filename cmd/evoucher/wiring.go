package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/codevault"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/retailer"
)

// softhsmConf is the development token directory's SoftHSM2 configuration.
func (g *globals) softhsmConf() string { return filepath.Join(g.dir, "softhsm", "softhsm2.conf") }

func (g *globals) pinFile() string {
	if g.hsmPINFile != "" {
		return g.hsmPINFile
	}
	return filepath.Join(g.dir, "hsm.pin")
}

// tokenConfig resolves the token settings. With no module given it is the development
// SoftHSM2 token under the config directory, and SOFTHSM2_CONF is pointed there before the
// module is loaded (SoftHSM2 reads it once, at initialisation).
func (g *globals) tokenConfig() (pkcs11.Config, error) {
	cfg := pkcs11.Config{Module: g.hsmModule, TokenLabel: g.hsmToken}
	if cfg.Module == "" {
		m, err := pkcs11.FindSoftHSMModule()
		if err != nil {
			return cfg, err
		}
		cfg.Module = m
		if err := os.Setenv("SOFTHSM2_CONF", g.softhsmConf()); err != nil {
			return cfg, err
		}
	}
	pin := g.hsmPIN
	if pin == "" {
		b, err := os.ReadFile(g.pinFile())
		if err != nil {
			return cfg, fmt.Errorf("no token PIN: set EVOUCHER_HSM_PIN or --hsm-pin-file (%w)", err)
		}
		pin = strings.TrimSpace(string(b))
	}
	cfg.PIN = pkcs11.PIN(pin)
	return cfg, nil
}

func (g *globals) openToken() (*pkcs11.Token, error) {
	cfg, err := g.tokenConfig()
	if err != nil {
		return nil, err
	}
	return pkcs11.Open(cfg)
}

func (g *globals) openDB(ctx context.Context) (*pgxpool.Pool, error) {
	if g.databaseURL == "" {
		return nil, errors.New("no database: set --database-url, EVOUCHER_DATABASE_URL or DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(g.databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if !strings.Contains(g.databaseURL, "pool_max_conns") {
		cfg.MaxConns = 32 // pgx's default of max(4, cores) is too small for a server
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	return pool, nil
}

// center is the server side wiring: database, center token and the PKI authority.
type center struct {
	db      *pgxpool.Pool
	tok     *pkcs11.Token
	ca      *pki.Authority
	metrics *api.Metrics
	vault   *codevault.Vault
	ops     *operator.Registry
	shops   *retailer.Registry
	xlog    *auditlog.Log
	seq     *auditlog.Sequencer // the exchange log's queue, sequenced by this process
	money   *ledger.Ledger
	certs   map[string]*x509.Certificate // the center's own: center-sign, center-encrypt
}

func (g *globals) openCenter(ctx context.Context) (*center, error) {
	db, err := g.openDB(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := g.openToken()
	if err != nil {
		db.Close()
		return nil, err
	}
	c := &center{db: db, tok: tok, metrics: api.NewMetrics()}
	caCert, label, err := pki.LoadCA(ctx, db)
	if err != nil {
		c.close()
		return nil, err
	}
	caKey, err := tok.FindRSAKey(label)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("CA key %q in token %q: %w", label, g.hsmToken, err)
	}
	c.ca, err = pki.New(pki.Config{DB: db, CA: caCert, CAKey: caKey, Meter: c.metrics.PKI, OnRevoke: codevault.OnRevoke})
	if err != nil {
		c.close()
		return nil, err
	}
	if err := c.openVault(g); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *center) openVault(g *globals) error {
	c.certs = map[string]*x509.Certificate{}
	for _, name := range []string{"center-sign", "center-encrypt"} {
		cert, err := readCertPEM(filepath.Join(g.dir, name+".pem"))
		if err != nil {
			return fmt.Errorf("%s certificate (run `evoucher init`): %w", name, err)
		}
		c.certs[name] = cert
	}
	sign, err := c.tok.FindRSAKey("center-sign")
	if err != nil {
		return fmt.Errorf("center-sign key: %w", err)
	}
	enc, err := c.tok.FindRSAKey("center-encrypt")
	if err != nil {
		return fmt.Errorf("center-encrypt key: %w", err)
	}
	if c.shops, err = retailer.New(c.db); err != nil {
		return err
	}
	if c.money, err = ledger.New(ledger.Config{DB: c.db, Signer: sign, SignCert: c.certs["center-sign"]}); err != nil {
		return err
	}
	c.seq = auditlog.NewSequencer(c.db)
	c.metrics.LogSequencer(c.seq)
	c.vault, err = codevault.New(codevault.Config{DB: c.db, Keys: c.tok, Decrypter: enc, EncryptCert: c.certs["center-encrypt"],
		Signer: sign, SignCert: c.certs["center-sign"], PKI: c.ca, Meter: c.metrics.Vault, Parties: parties{c.shops}, Ledger: c.money,
		Sequencer: c.seq})
	if err != nil {
		return err
	}
	if c.ops, err = operator.New(c.db); err != nil {
		return err
	}
	logKey, err := c.tok.FindECDSAKey("log")
	if err != nil {
		return fmt.Errorf("exchange log key (run `evoucher init`): %w", err)
	}
	signer, err := auditlog.NewSigner(g.logOrigin, logKey)
	if err != nil {
		return err
	}
	c.xlog, err = auditlog.New(c.db, signer, nil)
	return err
}

func (c *center) close() {
	if c.tok != nil {
		_ = c.tok.Close()
	}
	c.db.Close()
}

func readCertPEM(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs[0], nil
}

// parties adapts the retailer registry to what the vault asks of it.
type parties struct{ *retailer.Registry }

func (p parties) RetailerOf(ctx context.Context, terminal string) (id, name string, err error) {
	r, err := p.Registry.RetailerOf(ctx, terminal)
	return r.ID, r.Name, err
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/pos"
)

// configFile holds the terminal's settings inside --dir; keys are flag names.
const configFile = "config.json"

// globals are the terminal's settings.
type globals struct {
	dir         string
	server      string
	caFile      string
	certFile    string
	token       string
	keyLabel    string
	module      string
	softhsmConf string
	terminal    string
	printer     string
	width       int
	online      bool
	idle        time.Duration
	lines       bool
}

func (g *globals) addFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	def := os.Getenv("EVPOS_DIR")
	if def == "" {
		def = "evpos-data"
	}
	pf.StringVar(&g.dir, "dir", def, "the terminal's directory: config.json, the local store pos.db, certificates (EVPOS_DIR)")
	pf.StringVar(&g.server, "server", "", "URL of the center")
	pf.StringVar(&g.caFile, "ca", "", "the platform CA certificate (default <dir>/ca.pem)")
	pf.StringVar(&g.certFile, "cert", "", "the terminal's certificate (default <dir>/terminal.pem)")
	pf.StringVar(&g.token, "token", "", "label of the terminal's token")
	pf.StringVar(&g.keyLabel, "key-label", "terminal", "label of the terminal's key in its token")
	pf.StringVar(&g.module, "module", "", "PKCS#11 module; empty: SoftHSM2")
	pf.StringVar(&g.softhsmConf, "softhsm-conf", "", "SoftHSM2 configuration (SOFTHSM2_CONF) when the module is SoftHSM2")
	pf.StringVar(&g.terminal, "terminal", "", "the terminal's id (set by enrol from its certificate)")
	pf.StringVar(&g.printer, "printer", "stdout", "stdout, text:FILE, escpos:HOST:PORT (port-9100 thermal printer) or pdf:DIR")
	pf.IntVar(&g.width, "width", 40, "columns of the ticket and the screen (32 for 58 mm paper, 42 for 80 mm)")
	pf.BoolVar(&g.online, "online", false, "force online mode (the center authorises each sale before its ticket prints); normally the center sets it, learnt at sync")
	pf.DurationVar(&g.idle, "idle", pos.DefaultIdle, "an activated card stops selling after this long unused")
	pf.BoolVar(&g.lines, "lines", false, "the interactive screen in line mode (one command a line) even on a terminal")
}

// load fills every flag not given from <dir>/config.json.
func (g *globals) load(cmd *cobra.Command) error {
	path := filepath.Join(cmd.Flag("dir").Value.String(), configFile)
	file := map[string]string{}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	var first error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || first != nil {
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := f.Value.Set(v); err != nil {
				first = fmt.Errorf("%s: %s: %w", path, f.Name, err)
			}
		}
	})
	if first != nil {
		return first
	}
	if g.caFile == "" {
		g.caFile = filepath.Join(g.dir, "ca.pem")
	}
	if g.certFile == "" {
		g.certFile = filepath.Join(g.dir, "terminal.pem")
	}
	return nil
}

// save merges settings into config.json.
func (g *globals) save(settings map[string]string) error {
	path := filepath.Join(g.dir, configFile)
	cur := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &cur)
	}
	for k, v := range settings {
		cur[k] = v
	}
	b, _ := json.MarshalIndent(cur, "", "  ")
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// tokenConfig is the PKCS#11 configuration of a token with pin.
func (g *globals) tokenConfig(label string, pin string) (pkcs11.Config, error) {
	cfg := pkcs11.Config{Module: g.module, TokenLabel: label, PIN: pkcs11.PIN(pin)}
	if cfg.Module == "" {
		m, err := pkcs11.FindSoftHSMModule()
		if err != nil {
			return cfg, err
		}
		cfg.Module = m
		if g.softhsmConf != "" {
			// libsofthsm2 reads it once, when the first token opens.
			if err := os.Setenv("SOFTHSM2_CONF", g.softhsmConf); err != nil {
				return cfg, err
			}
		}
	}
	if label == "" {
		return cfg, errors.New("no token label: give --token (enrol saves it)")
	}
	if pin == "" {
		return cfg, fmt.Errorf("no PIN for token %q: set it in the environment", label)
	}
	return cfg, nil
}

func tokenPIN() string {
	if p := os.Getenv("EVPOS_TOKEN_PIN"); p != "" {
		return p
	}
	return os.Getenv("EVOUCHER_HSM_PIN")
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// httpClient trusts the platform CA and, with cert, presents the terminal's certificate.
func (g *globals) httpClient(cert *tls.Certificate) (*http.Client, error) {
	ca, err := readCert(g.caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate to trust: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// newPrinter makes the printer named by --printer.
func (g *globals) newPrinter(cmd *cobra.Command) (pos.Printer, error) {
	kind, arg, _ := strings.Cut(g.printer, ":")
	switch kind {
	case "stdout", "":
		return &pos.TextPrinter{W: cmd.OutOrStdout(), Width: g.width}, nil
	case "text":
		return &pos.TextPrinter{Path: arg, Width: g.width}, nil
	case "escpos":
		return &pos.ESCPOSPrinter{Addr: arg, Width: g.width}, nil
	case "pdf":
		return &pos.PDFPrinter{Dir: arg}, nil
	}
	return nil, fmt.Errorf("--printer %q: use stdout, text:FILE, escpos:HOST:PORT or pdf:DIR", g.printer)
}

// Package netest runs a whole evoucher network as real processes, for tests and benchmarks:
// a fresh PostgreSQL database, `evoucher init` in a temporary directory, any number of
// `evoucher server` processes on that one database, an operator with stock, retailers with
// terminals and vendor cards, all set up through the CLI as an administrator would, and
// in-process terminals (package pos, keys in SoftHSM2 tokens) that talk HTTPS with client
// certificates to the servers. It checks the vault's invariants in the database.
//
// It is for tests and cmd/evbench only. It starts servers on the loopback interface only, and
// stops only the processes it started. Like package testhsm it holds one piece of process
// state: libsofthsm2 reads SOFTHSM2_CONF once per process, so the terminal and vendor-card
// tokens of every Network of a process live in the one token directory given to UseTokenDir.
package netest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/pki/pkcs11"
)

// Config is what New needs.
type Config struct {
	// AdminURL names a PostgreSQL server (DATABASE_URL) on which the network's own database
	// is created, and dropped by Close.
	AdminURL string
	// Bin is the evoucher binary.
	Bin string
	// Dir is a directory for the center's configuration, logs and sealed batches; it is
	// created if missing and left in place (use a temporary directory).
	Dir string
	// ServerPoolConns, when positive, is the PostgreSQL pool size of each server process
	// (pgx's pool_max_conns); zero leaves the server's default.
	ServerPoolConns int
	// Logf, when set, receives progress lines.
	Logf func(format string, args ...any)
}

// Network is one center (one database, one center token) and the processes and parties
// set up on it.
type Network struct {
	cfg    Config
	id     string            // short random id, in database and token names
	Center string            // the center's config directory (evoucher --dir)
	DBURL  string            // the network's database
	DB     *pgxpool.Pool     // a pool on it, for checks
	CA     *x509.Certificate // the platform CA

	dbName string
	work   string
	env    []string // the environment of every evoucher process

	mu        sync.Mutex
	servers   []*Server
	nServers  int
	operators map[string]*operatorParty
	products  map[[2]string]bool
	tokens    map[string]*pkcs11.Token // open terminal and vendor-card tokens by label
	nTokens   int
	shared    *sharedKeys
}

// tokenDir is the process's directory of terminal and vendor-card tokens (see UseTokenDir).
var tokenDir struct {
	sync.Mutex
	parent string // the --dir given to `evoucher pki enrol`: it holds softhsm/softhsm2.conf
	conf   string
}

// UseTokenDir makes dir the process's SoftHSM2 directory for terminal and vendor-card tokens:
// it writes dir/softhsm/softhsm2.conf and points SOFTHSM2_CONF at it. Call it before any token
// is opened in the process; calling it again with the same dir changes nothing, with another
// dir is an error (libsofthsm2 reads its configuration once per process).
func UseTokenDir(dir string) error {
	tokenDir.Lock()
	defer tokenDir.Unlock()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if tokenDir.parent != "" {
		if tokenDir.parent != abs {
			return fmt.Errorf("netest: the token directory of this process is %s already, not %s", tokenDir.parent, abs)
		}
		return nil
	}
	conf, err := pkcs11.SoftHSMDir(filepath.Join(abs, "softhsm"))
	if err != nil {
		return err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	tokenDir.parent, tokenDir.conf = abs, conf
	return nil
}

func tokenDirs() (parent, conf string, err error) {
	tokenDir.Lock()
	defer tokenDir.Unlock()
	if tokenDir.parent == "" {
		return "", "", errors.New("netest: no token directory: call UseTokenDir first")
	}
	return tokenDir.parent, tokenDir.conf, nil
}

// New creates the network's database and runs `evoucher init` for it. Close undoes both.
func New(ctx context.Context, cfg Config) (*Network, error) {
	if cfg.AdminURL == "" || cfg.Bin == "" || cfg.Dir == "" {
		return nil, errors.New("netest: AdminURL, Bin and Dir are required")
	}
	if _, _, err := tokenDirs(); err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(cfg.Bin)
	if err != nil {
		return nil, err
	}
	cfg.Bin = bin
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	n := &Network{cfg: cfg, id: randHex(3), operators: map[string]*operatorParty{}, products: map[[2]string]bool{},
		tokens: map[string]*pkcs11.Token{}}
	n.work, err = filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	n.Center = filepath.Join(n.work, "center")
	if err := os.MkdirAll(n.work, 0o700); err != nil {
		return nil, err
	}
	n.dbName = "evnet_" + n.id + randHex(3)
	if n.DBURL, err = withDatabase(cfg.AdminURL, n.dbName, 0); err != nil {
		return nil, err
	}
	if err := adminExec(ctx, cfg.AdminURL, "CREATE DATABASE "+n.dbName); err != nil {
		return nil, fmt.Errorf("netest: create database: %w", err)
	}
	serverURL, _ := withDatabase(cfg.AdminURL, n.dbName, cfg.ServerPoolConns)
	n.env = append(cleanEnv(), "EVOUCHER_DATABASE_URL="+serverURL)
	if _, err := n.CLI(ctx, nil, "init"); err != nil {
		_ = n.Close()
		return nil, err
	}
	if n.DB, err = pgxpool.New(ctx, n.DBURL); err != nil {
		_ = n.Close()
		return nil, err
	}
	if n.CA, err = readCert(filepath.Join(n.Center, "ca.pem")); err != nil {
		_ = n.Close()
		return nil, err
	}
	cfg.Logf("netest: center initialised in %s, database %s", n.Center, n.dbName)
	return n, nil
}

// Close stops every server still running (SIGTERM, then SIGKILL after 20 s), closes the
// tokens and the pool, and drops the database. It returns the first error.
func (n *Network) Close() error {
	n.mu.Lock()
	servers, tokens := n.servers, n.tokens
	n.servers, n.tokens = nil, map[string]*pkcs11.Token{}
	n.mu.Unlock()
	var errs []error
	for _, s := range servers {
		if s.Running() {
			errs = append(errs, s.Stop(20*time.Second))
		}
	}
	for _, t := range tokens {
		errs = append(errs, t.Close())
	}
	if n.DB != nil {
		n.DB.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs = append(errs, adminExec(ctx, n.cfg.AdminURL, "DROP DATABASE IF EXISTS "+n.dbName+" WITH (FORCE)"))
	return errors.Join(errs...)
}

// CLI runs `evoucher ARGS… --dir <center>` with extra environment and returns its output.
func (n *Network) CLI(ctx context.Context, env []string, args ...string) (string, error) {
	return n.cliIn(ctx, n.Center, env, args...)
}

// cliIn runs the CLI with --dir dir. SoftHSM2's file store is not safe for several processes
// opening tokens of one directory at the same moment: a login rewrites the token's file, and
// another process reading it then fails to open its token (CKR_GENERAL_ERROR,
// CKR_USER_PIN_NOT_INITIALIZED, or the token missing from the slot list). Such a command did
// nothing yet, so it is run again, a few times at most.
func (n *Network) cliIn(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, n.cfg.Bin, append(args, "--dir", dir)...)
		cmd.Env = append(append([]string{}, n.env...), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		if err == nil {
			return string(out), nil
		}
		if attempt < 8 && ctx.Err() == nil && tokenOpenFlake(string(out)) {
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
			continue
		}
		return string(out), fmt.Errorf("evoucher %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// tokenOpenFlake recognises a failure to open a token that another process's access caused.
func tokenOpenFlake(out string) bool {
	if !strings.Contains(out, "pkcs11: ") {
		return false
	}
	for _, s := range []string{"CKR_GENERAL_ERROR", "CKR_USER_PIN_NOT_INITIALIZED", "CKR_TOKEN_NOT_RECOGNIZED", "token not found"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// cleanEnv is the test process's environment without the settings evoucher would pick up.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "EVOUCHER_") || strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func adminExec(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns admin with its database replaced by name and, when poolConns is
// positive, pgx's pool_max_conns set.
func withDatabase(admin, name string, poolConns int) (string, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("netest: admin URL: %w", err)
	}
	u.Path = "/" + name
	if poolConns > 0 {
		q := u.Query()
		q.Set("pool_max_conns", strconv.Itoa(poolConns))
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("netest: %s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

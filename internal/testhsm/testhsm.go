// Package testhsm gives each test its own freshly created SoftHSM2 token, so tests and
// parallel subtests never share keys. It is for tests only.
//
// libsofthsm2 reads SOFTHSM2_CONF once per process (see package pki/pkcs11), so all tokens of
// a test process live in one token directory: a directory named evoucher-testhsm-* under
// os.TempDir(), made on first use, with SOFTHSM2_CONF set to its configuration with os.Setenv
// before the first token is created. Go offers no hook at process exit to a package without
// TestMain, so the directory of a run is left behind; a later run removes such directories
// once they are a day old.
package testhsm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evoucher/evoucher/pki/pkcs11"
)

// dirPrefix names the token directories of test processes, in os.TempDir().
const dirPrefix = "evoucher-testhsm-"

// process is the token directory shared by the tests of this process. It is process state by
// necessity: libsofthsm2 itself reads its configuration once per process.
var process struct {
	once   sync.Once
	module string
	conf   string
	err    error
	n      atomic.Uint64 // tokens created, for unique labels
}

// setup makes the process's token directory and points SOFTHSM2_CONF at it, once.
func setup() (module, conf string, err error) {
	process.once.Do(func() {
		if process.module, process.err = pkcs11.FindSoftHSMModule(); process.err != nil {
			return
		}
		removeStale()
		dir, err := os.MkdirTemp("", dirPrefix+"*")
		if err != nil {
			process.err = err
			return
		}
		if process.conf, process.err = pkcs11.SoftHSMDir(dir); process.err != nil {
			return
		}
		process.err = os.Setenv("SOFTHSM2_CONF", process.conf)
	})
	return process.module, process.conf, process.err
}

// removeStale removes token directories of test runs that ended more than a day ago. Failures
// are ignored: they only leave litter.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > 24*time.Hour {
			_ = os.RemoveAll(d)
		}
	}
}

// MustConfig creates a token for this test, with a unique label and random PINs, and returns
// the Config that opens it, without opening it. It fails the test, saying how to install
// SoftHSM2, when SoftHSM2 is missing.
func MustConfig(tb testing.TB) pkcs11.Config {
	tb.Helper()
	module, conf, err := setup()
	if err != nil {
		tb.Fatalf("testhsm: %v", err)
	}
	cfg := pkcs11.Config{
		Module:     module,
		TokenLabel: label(tb.Name(), process.n.Add(1)),
		PIN:        pkcs11.PIN(randomHex(8)),
	}
	if err := pkcs11.InitSoftHSMToken(conf, cfg.TokenLabel, pkcs11.PIN(randomHex(8)), cfg.PIN); err != nil {
		tb.Fatalf("testhsm: create token: %v", err)
	}
	return cfg
}

// MustToken creates a token for this test, as MustConfig does, and opens it; the token is
// closed when the test ends. It is safe for parallel tests.
func MustToken(tb testing.TB) *pkcs11.Token {
	tb.Helper()
	cfg := MustConfig(tb)
	tok, err := pkcs11.Open(cfg)
	if err != nil {
		tb.Fatalf("testhsm: open token %q: %v", cfg.TokenLabel, err)
	}
	tb.Cleanup(func() {
		if err := tok.Close(); err != nil {
			tb.Errorf("testhsm: close token %q: %v", cfg.TokenLabel, err)
		}
	})
	return tok
}

// label makes a token label of at most 32 bytes from the test name and a counter, so a
// token found in the directory can be traced to its test.
func label(name string, n uint64) string {
	suffix := fmt.Sprintf("-%d", n)
	name = strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '_'
		}
		return r
	}, name)
	if max := 32 - len(suffix); len(name) > max {
		name = name[len(name)-max:]
	}
	return name + suffix
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package testhsm_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

func TestMustToken(t *testing.T) {
	t.Parallel()
	t.Run("OpenAndAnswering", func(t *testing.T) {
		t.Parallel()
		tok := testhsm.MustToken(t)
		if err := tok.Ping(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(tok.Label(), "OpenAndAnswering") {
			t.Errorf("label %q does not name the test", tok.Label())
		}
	})
	t.Run("SharedDirUnderTemp", func(t *testing.T) {
		t.Parallel()
		testhsm.MustConfig(t)
		conf := os.Getenv("SOFTHSM2_CONF")
		dir := filepath.Dir(conf)
		if filepath.Base(conf) != "softhsm2.conf" || filepath.Dir(dir) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(dir), "evoucher-testhsm-") {
			t.Fatalf("SOFTHSM2_CONF = %q, want <TMPDIR>/evoucher-testhsm-*/softhsm2.conf", conf)
		}
		if entries, err := os.ReadDir(filepath.Join(dir, "tokens")); err != nil || len(entries) == 0 {
			t.Fatalf("token directory: %d entries, %v", len(entries), err)
		}
	})
}

func TestMustConfig(t *testing.T) {
	t.Parallel()
	const n = 16
	labels := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			// Parallel callers with the same, overlong name still get distinct labels.
			t.Run(strings.Repeat("a-very-long-subtest-name-", 3), func(t *testing.T) {
				cfg := testhsm.MustConfig(t)
				tok, err := pkcs11.Open(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer tok.Close()
				labels <- cfg.TokenLabel
			})
		})
	}
	wg.Wait()
	close(labels)
	seen := map[string]bool{}
	for l := range labels {
		if len(l) > 32 || seen[l] {
			t.Errorf("label %q: %d bytes, seen before: %v", l, len(l), seen[l])
		}
		seen[l] = true
	}
	if len(seen) != n {
		t.Errorf("%d tokens opened, want %d", len(seen), n)
	}
}

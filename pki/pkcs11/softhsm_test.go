package pkcs11_test

import (
	"crypto/ecdsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evoucher/evoucher/internal/testhsm"
	"github.com/evoucher/evoucher/pki/pkcs11"
)

func TestFindSoftHSMModule(t *testing.T) {
	t.Parallel()
	path, err := pkcs11.FindSoftHSMModule()
	if err != nil {
		t.Fatalf("%v (the tests need SoftHSM2)", err)
	}
	if !strings.HasSuffix(path, "libsofthsm2.so") {
		t.Errorf("path = %q", path)
	}
}

func TestSoftHSMDir(t *testing.T) {
	t.Parallel()
	t.Run("OKIdempotent", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "hsm")
		conf, err := pkcs11.SoftHSMDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if conf != filepath.Join(dir, "softhsm2.conf") {
			t.Errorf("conf = %q", conf)
		}
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"directories.tokendir = " + filepath.Join(dir, "tokens"), "objectstore.backend = file", "log.level = ERROR"} {
			if !strings.Contains(string(b), line+"\n") {
				t.Errorf("configuration lacks %q:\n%s", line, b)
			}
		}
		fi, err := os.Stat(filepath.Join(dir, "tokens"))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("tokens dir: %v, %v", fi, err)
		}
		again, err := pkcs11.SoftHSMDir(dir)
		if err != nil || again != conf {
			t.Fatalf("second call: %q, %v", again, err)
		}
		b2, _ := os.ReadFile(conf)
		entries, _ := os.ReadDir(dir)
		if string(b2) != string(b) || len(entries) != 2 {
			t.Fatalf("second call changed the directory: %d entries", len(entries))
		}
	})
	t.Run("ErrInvalidEmpty", func(t *testing.T) {
		t.Parallel()
		if _, err := pkcs11.SoftHSMDir(""); !errors.Is(err, pkcs11.ErrInvalid) {
			t.Errorf("err = %v, want ErrInvalid", err)
		}
	})
}

func TestInitSoftHSMToken(t *testing.T) {
	t.Parallel()
	cfg := testhsm.MustConfig(t) // sets SOFTHSM2_CONF for the process
	conf := os.Getenv("SOFTHSM2_CONF")

	t.Run("ErrTokenExists", func(t *testing.T) {
		t.Parallel()
		err := pkcs11.InitSoftHSMToken(conf, cfg.TokenLabel, "so-pin-2", "other-pin")
		if !errors.Is(err, pkcs11.ErrTokenExists) {
			t.Fatalf("err = %v, want ErrTokenExists", err)
		}
		// Nothing changed: the old PIN still opens the token.
		tok, err := pkcs11.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = tok.Close()
	})
	t.Run("ErrInvalidOtherConf", func(t *testing.T) {
		t.Parallel()
		other, err := pkcs11.SoftHSMDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		err = pkcs11.InitSoftHSMToken(other, "elsewhere", "so-pin-1", "user-pin")
		if !errors.Is(err, pkcs11.ErrInvalid) || !strings.Contains(err.Error(), "SOFTHSM2_CONF") {
			t.Fatalf("err = %v, want ErrInvalid naming SOFTHSM2_CONF", err)
		}
	})
	t.Run("ErrInvalidArguments", func(t *testing.T) {
		t.Parallel()
		for name, err := range map[string]error{
			"EmptyLabel": pkcs11.InitSoftHSMToken(conf, "", "so-pin-1", "user-pin"),
			"ShortSOPIN": pkcs11.InitSoftHSMToken(conf, "x1", "123", "user-pin"),
			"ShortPIN":   pkcs11.InitSoftHSMToken(conf, "x2", "so-pin-1", "123"),
			"EmptyConf":  pkcs11.InitSoftHSMToken("", "x3", "so-pin-1", "user-pin"),
		} {
			if !errors.Is(err, pkcs11.ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
	})
	t.Run("VisibleWhileAnotherTokenOpen", func(t *testing.T) {
		t.Parallel()
		// An open token keeps the module initialised; a token created now must still be
		// found by Open (softhsm2-util's would not be).
		open := testhsm.MustToken(t)
		fresh := testhsm.MustConfig(t)
		tok, err := pkcs11.Open(fresh)
		if err != nil {
			t.Fatalf("Open of a token created while %q was open: %v", open.Label(), err)
		}
		defer tok.Close()
		if err := tok.Ping(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrTokenNotFoundForSofthsm2UtilTokenWhileOpen", func(t *testing.T) {
		t.Parallel()
		// The finding the package documentation describes: libsofthsm2 does not list a token
		// that another process created after this process initialised the module.
		util, err := exec.LookPath("softhsm2-util")
		if err != nil {
			t.Fatalf("softhsm2-util: %v (apt-get install softhsm2)", err)
		}
		open := testhsm.MustToken(t) // keeps the module initialised
		label := "util-" + open.Label()[max(0, len(open.Label())-27):]
		// softhsm2-util scans the shared token directory; a token that a parallel test is
		// creating in-process at that moment can make it fail ("Could not get info about the
		// token"), so a failed run is retried a few times.
		var out []byte
		for attempt := 0; ; attempt++ {
			cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", "so-pin-1", "--pin", "user-pin")
			cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
			if out, err = cmd.CombinedOutput(); err == nil {
				break
			}
			if attempt == 4 {
				t.Fatalf("softhsm2-util: %v\n%s", err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		ext := cfg
		ext.TokenLabel, ext.PIN = label, "user-pin"
		tok, err := pkcs11.Open(ext)
		if err == nil {
			_ = tok.Close()
		}
		if !errors.Is(err, pkcs11.ErrTokenNotFound) {
			t.Fatalf("Open of a token made by softhsm2-util: err = %v, want ErrTokenNotFound (has libsofthsm2 changed?)", err)
		}
	})
	t.Run("KeysPersistAcrossOpen", func(t *testing.T) {
		t.Parallel()
		cfg := testhsm.MustConfig(t)
		tok, err := pkcs11.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		k, _, err := tok.ECDSAKey("log")
		if err != nil {
			t.Fatal(err)
		}
		if err := tok.Close(); err != nil {
			t.Fatal(err)
		}
		tok, err = pkcs11.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tok.Close()
		k2, created, err := tok.ECDSAKey("log")
		if err != nil || created || !k2.Public().(*ecdsa.PublicKey).Equal(k.Public()) {
			t.Fatalf("after reopening: created=%v err=%v, want the same key", created, err)
		}
	})
}

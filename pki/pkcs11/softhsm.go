package pkcs11

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	p11 "github.com/miekg/pkcs11"
)

// softHSMInstall is what to do when SoftHSM2 is missing.
const softHSMInstall = "install it with `apt-get install softhsm2`"

// FindSoftHSMModule returns the path of libsofthsm2.so in the places Debian and a source build
// install it. It returns an error saying how to install SoftHSM2 when none exists.
func FindSoftHSMModule() (string, error) {
	paths := []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("pkcs11: SoftHSM2 module not found in %s: %s", strings.Join(paths, ", "), softHSMInstall)
}

// SoftHSMDir prepares dir for SoftHSM2: it creates dir and dir/tokens (mode 0700) and writes
// dir/softhsm2.conf (token directory dir/tokens, file object store, log level ERROR). It
// returns the absolute path of the configuration, for SOFTHSM2_CONF and InitSoftHSMToken.
// Calling it again changes nothing. It returns ErrInvalid for an empty dir or one whose path
// SoftHSM cannot read from its configuration, and the file system's error otherwise.
func SoftHSMDir(dir string) (confPath string, err error) {
	if dir == "" {
		return "", fmt.Errorf("%w: SoftHSM directory is empty", ErrInvalid)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("pkcs11: SoftHSM directory: %w", err)
	}
	if strings.ContainsAny(dir, "\n\r#") {
		return "", fmt.Errorf("%w: SoftHSM directory %q contains a newline or #", ErrInvalid, dir)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("pkcs11: SoftHSM directory: %w", err)
	}
	conf := fmt.Sprintf("# Written by evoucher (pki/pkcs11.SoftHSMDir).\n"+
		"directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	confPath = filepath.Join(dir, "softhsm2.conf")
	if old, err := os.ReadFile(confPath); err == nil && string(old) == conf {
		return confPath, nil
	}
	// Write then rename, so a process reading the configuration never sees half of it.
	tmp, err := os.CreateTemp(dir, ".softhsm2.conf-*")
	if err != nil {
		return "", fmt.Errorf("pkcs11: write SoftHSM configuration: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(conf); err != nil {
		tmp.Close()
		return "", fmt.Errorf("pkcs11: write SoftHSM configuration: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("pkcs11: write SoftHSM configuration: %w", err)
	}
	if err := os.Rename(tmp.Name(), confPath); err != nil {
		return "", fmt.Errorf("pkcs11: write SoftHSM configuration: %w", err)
	}
	return confPath, nil
}

// InitSoftHSMToken creates a SoftHSM2 token labelled label, with the given SO PIN and user
// PIN, in the token directory of the configuration confPath.
//
// It works in-process, on the same module that Open uses (C_InitToken on the free slot, then
// C_InitPIN), because libsofthsm2 lists only the tokens that existed when this process
// initialised it, plus those it created itself: a token made by softhsm2-util now would be
// invisible to Open until every Token is closed. libsofthsm2 takes its configuration from
// SOFTHSM2_CONF when first initialised, so that variable must name confPath before the first
// Open of the process; InitSoftHSMToken checks it, and this check is the only reason it reads
// the environment.
//
// It returns ErrInvalid for a bad label or PIN (4 to 255 bytes), or when SOFTHSM2_CONF does
// not name confPath; ErrTokenExists, changing nothing, when a token with that label exists;
// an error saying how to install SoftHSM2 when it is missing; and the module's error otherwise.
func InitSoftHSMToken(confPath, label string, soPIN, pin PIN) error {
	if err := checkLabel("token", label); err != nil {
		return err
	}
	for what, p := range map[string]PIN{"SO PIN": soPIN, "user PIN": pin} {
		if len(p) < 4 || len(p) > 255 {
			return fmt.Errorf("%w: SoftHSM %s must be 4 to 255 bytes, got %d", ErrInvalid, what, len(p))
		}
	}
	if err := checkSoftHSMConf(confPath); err != nil {
		return err
	}
	module, err := FindSoftHSMModule()
	if err != nil {
		return err
	}
	if module, err = filepath.EvalSymlinks(module); err != nil {
		return fmt.Errorf("pkcs11: SoftHSM2 module: %w", err)
	}

	moduleMu.Lock()
	defer moduleMu.Unlock()
	ctx := p11.New(module)
	if ctx == nil {
		return fmt.Errorf("pkcs11: load SoftHSM2 module %s failed", module)
	}
	defer ctx.Destroy()
	switch err := ctx.Initialize(); {
	case err == nil:
		// No Token is open, so nobody else holds the module: finalise it when done, so that
		// the next Open initialises it afresh, as crypto11 expects.
		defer func() { _ = ctx.Finalize() }()
	case ckr(err) == p11.CKR_CRYPTOKI_ALREADY_INITIALIZED:
		// An open Token holds the module; moduleMu keeps it from finalising under us.
	default:
		return fmt.Errorf("pkcs11: initialise SoftHSM2 module %s: %w", module, err)
	}
	slot, err := freeSlot(ctx, label)
	if err != nil {
		return err
	}
	if err := ctx.InitToken(slot, string(soPIN), label); err != nil {
		return fmt.Errorf("pkcs11: initialise SoftHSM2 token %q: %w", label, err)
	}
	sh, err := ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("pkcs11: open session on new token %q: %w", label, err)
	}
	defer func() { _ = ctx.CloseSession(sh) }()
	if err := ctx.Login(sh, p11.CKU_SO, string(soPIN)); err != nil {
		return fmt.Errorf("pkcs11: log in as SO to new token %q: %w", label, err)
	}
	defer func() { _ = ctx.Logout(sh) }()
	if err := ctx.InitPIN(sh, string(pin)); err != nil {
		return fmt.Errorf("pkcs11: set user PIN of new token %q: %w", label, err)
	}
	return nil
}

// checkSoftHSMConf checks that confPath exists and is the configuration libsofthsm2 reads in
// this process.
func checkSoftHSMConf(confPath string) error {
	if confPath == "" {
		return fmt.Errorf("%w: SoftHSM configuration path is empty", ErrInvalid)
	}
	want, err := os.Stat(confPath)
	if err != nil {
		return fmt.Errorf("%w: SoftHSM configuration: %w (create it with SoftHSMDir)", ErrInvalid, err)
	}
	env := os.Getenv("SOFTHSM2_CONF")
	if got, err := os.Stat(env); env == "" || err != nil || !os.SameFile(got, want) {
		return fmt.Errorf("%w: SOFTHSM2_CONF is %q, not %s: libsofthsm2 reads SOFTHSM2_CONF once per process, so set it to %s before the first Open", ErrInvalid, env, confPath, confPath)
	}
	return nil
}

// freeSlot returns the slot of SoftHSM's free (uninitialised) token, after checking that no
// token is labelled label.
func freeSlot(ctx *p11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("pkcs11: list SoftHSM2 slots: %w", err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return 0, fmt.Errorf("pkcs11: read token info of slot %d: %w", s, err)
		}
		switch {
		case ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0:
			if !found {
				free, found = s, true
			}
		case ti.Label == label:
			return 0, fmt.Errorf("%w: SoftHSM2 token %q (serial %s) exists; use it or choose another label", ErrTokenExists, label, ti.SerialNumber)
		}
	}
	if !found {
		return 0, errors.New("pkcs11: SoftHSM2 offers no free slot for a new token")
	}
	return free, nil
}

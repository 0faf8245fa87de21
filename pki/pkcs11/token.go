package pkcs11

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"
)

// DefaultMaxSessions is the size of the session pool when Config.MaxSessions is 0.
const DefaultMaxSessions = 32

// maxLabelLen is the size of CK_TOKEN_INFO.label; object labels get the same limit so that a
// key label always fits wherever a token label does.
const maxLabelLen = 32

// moduleMu serialises loading and unloading PKCS#11 modules in this process: crypto11's
// Configure (C_Initialize for the first Token) and Close (C_Finalize for the last), and
// InitSoftHSMToken, which may initialise the module itself. A module is process-global C
// state, so this lock is process-global too; without it InitSoftHSMToken could finalise the
// module under a Token that is opening. It also guards logins.
var moduleMu sync.Mutex

// logins mirrors PKCS#11's login state, which is per process and token: for each token that
// an open Token logged in to, the SHA-256 of the PIN that worked and the number of open
// Tokens. A second Open of the token cannot log in again (crypto11 accepts
// CKR_USER_ALREADY_LOGGED_IN whatever the PIN), so Open checks its PIN against this instead.
var logins map[loginKey]*login

type loginKey struct{ module, label string }

type login struct {
	pin  [sha256.Size]byte
	open int
}

// Config selects a token and logs in to it.
type Config struct {
	// Module is the path of the PKCS#11 module (.so).
	Module string
	// TokenLabel is the label of the token (at most 32 bytes).
	TokenLabel string
	// PIN is the user PIN.
	PIN PIN
	// MaxSessions bounds the session pool; 0 means DefaultMaxSessions, 1 is invalid because
	// one session is held to keep the login alive.
	MaxSessions int
}

// validate checks c and returns the module path with symbolic links resolved.
func (c Config) validate() (module string, err error) {
	if c.Module == "" {
		return "", fmt.Errorf("%w: Config.Module is empty: give the path of the PKCS#11 module (.so)", ErrInvalid)
	}
	module, err = filepath.EvalSymlinks(c.Module)
	if err != nil {
		return "", fmt.Errorf("%w: PKCS#11 module %s: %w", ErrInvalid, c.Module, err)
	}
	if fi, err := os.Stat(module); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: PKCS#11 module %s is not a regular file", ErrInvalid, c.Module)
	}
	if err := checkLabel("token", c.TokenLabel); err != nil {
		return "", err
	}
	if c.PIN == "" {
		return "", fmt.Errorf("%w: Config.PIN is empty: give the user PIN of token %q", ErrInvalid, c.TokenLabel)
	}
	if c.MaxSessions < 0 || c.MaxSessions == 1 {
		return "", fmt.Errorf("%w: Config.MaxSessions is %d: use 0 (default %d) or at least 2", ErrInvalid, c.MaxSessions, DefaultMaxSessions)
	}
	return module, nil
}

// checkLabel refuses labels that PKCS#11 cannot store or find back: empty, longer than 32
// bytes, or with trailing blanks (token labels are blank-padded).
func checkLabel(what, label string) error {
	switch {
	case label == "":
		return fmt.Errorf("%w: %s label is empty", ErrInvalid, what)
	case len(label) > maxLabelLen:
		return fmt.Errorf("%w: %s label %q is %d bytes, at most %d are allowed", ErrInvalid, what, label, len(label), maxLabelLen)
	case strings.TrimRight(label, " ") != label:
		return fmt.Errorf("%w: %s label %q ends with a blank", ErrInvalid, what, label)
	}
	return nil
}

// Token is an open, logged-in PKCS#11 token. Its methods are safe for concurrent use; crypto11
// gives each operation its own session from a pool.
type Token struct {
	label string
	login loginKey
	ctx   *crypto11.Context
	// raw is a second handle on the same, already initialised module, for what crypto11 does
	// not offer: listing every object with a label, reading security attributes, destroying
	// objects. It shares crypto11's login, which PKCS#11 keeps per application and token.
	raw  *p11.Ctx
	slot uint

	// mu serialises find-or-create and delete of keys, and guards raw and closed: raw is
	// unloaded by Close.
	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Open loads cfg.Module, finds the token labelled cfg.TokenLabel and logs in with cfg.PIN.
// It returns ErrInvalid for an incomplete Config or a missing module file, ErrTokenNotFound
// when no token has that label, ErrPINIncorrect or ErrPINLocked when the token refuses the PIN
// (ErrPINIncorrect also when this process has the token open under another PIN: see the
// package documentation), and the module's error otherwise.
func Open(cfg Config) (*Token, error) {
	module, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	maxSessions := cfg.MaxSessions
	if maxSessions == 0 {
		maxSessions = DefaultMaxSessions
	}

	moduleMu.Lock()
	defer moduleMu.Unlock()
	key, pin := loginKey{module, cfg.TokenLabel}, sha256.Sum256([]byte(cfg.PIN))
	if l := logins[key]; l != nil && subtle.ConstantTimeCompare(l.pin[:], pin[:]) != 1 {
		return nil, fmt.Errorf("%w: token %q refused the PIN (it is open in this process with another PIN)", ErrPINIncorrect, cfg.TokenLabel)
	}
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path:        module,
		TokenLabel:  cfg.TokenLabel,
		Pin:         string(cfg.PIN),
		MaxSessions: maxSessions,
		GCMIVLength: gcmNonceSize,
	})
	if err != nil {
		return nil, openError(cfg, module, err)
	}
	t := &Token{label: cfg.TokenLabel, ctx: ctx, login: key}
	if t.raw = p11.New(module); t.raw == nil {
		_ = ctx.Close()
		return nil, fmt.Errorf("pkcs11: load module %s a second time failed", module)
	}
	if t.slot, err = findSlot(t.raw, cfg.TokenLabel); err != nil {
		t.raw.Destroy()
		_ = ctx.Close()
		return nil, fmt.Errorf("pkcs11: open token %q: %w", cfg.TokenLabel, err)
	}
	if logins == nil {
		logins = make(map[loginKey]*login)
	}
	if logins[key] == nil {
		logins[key] = &login{pin: pin}
	}
	logins[key].open++
	return t, nil
}

// openError turns crypto11's errors from Configure into this package's sentinels.
func openError(cfg Config, module string, err error) error {
	switch ckr(err) {
	case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_LEN_RANGE:
		return fmt.Errorf("%w: token %q refused the PIN: %w", ErrPINIncorrect, cfg.TokenLabel, err)
	case p11.CKR_PIN_LOCKED:
		return fmt.Errorf("%w: token %q: the PIN is locked after too many wrong attempts; unlock it with the SO PIN", ErrPINLocked, cfg.TokenLabel)
	}
	// crypto11 v1.6 reports a missing token with an unexported error; its text is all we have.
	if strings.Contains(err.Error(), "could not find PKCS#11 token") {
		return fmt.Errorf("%w: no token labelled %q in module %s (SoftHSM2 lists only tokens that existed when this process loaded it or that were made with InitSoftHSMToken)", ErrTokenNotFound, cfg.TokenLabel, module)
	}
	return fmt.Errorf("pkcs11: open token %q in module %s: %w", cfg.TokenLabel, module, err)
}

// findSlot returns the slot of the first token labelled label, as crypto11 does.
func findSlot(ctx *p11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("list slots: %w", err)
	}
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return 0, fmt.Errorf("read token info of slot %d: %w", s, err)
		}
		if ti.Label == label {
			return s, nil
		}
	}
	return 0, ErrTokenNotFound
}

// Close logs out and releases the token; the module is finalised when the last Token of the
// process closes. Keys obtained from t stop working. Close waits for operations in progress,
// may be called more than once, and returns crypto11's error from the first call.
func (t *Token) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.raw.Destroy()
		t.mu.Unlock()

		moduleMu.Lock()
		defer moduleMu.Unlock()
		if l := logins[t.login]; l != nil {
			if l.open--; l.open == 0 {
				delete(logins, t.login)
			}
		}
		t.closeErr = t.ctx.Close()
	})
	return t.closeErr
}

// Label returns the token's label.
func (t *Token) Label() string { return t.label }

// Ping reads 8 random bytes from the token, a cheap proof that it answers, for readiness
// probes. It returns the module's error when it does not.
func (t *Token) Ping() error {
	r, err := t.ctx.NewRandomReader()
	if err == nil {
		var b [8]byte
		_, err = io.ReadFull(r, b[:])
	}
	if err != nil {
		return fmt.Errorf("pkcs11: token %q does not answer: %w", t.label, err)
	}
	return nil
}

package netest

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/pos"
)

// Stock is a lot of codes an operator seals and uploads.
type Stock struct {
	Operator string // created with its token and signing certificate on first use
	Product  string // created on first use: face value 10.00 EUR, 12-digit serials, 14-digit PINs
	Batch    string // unique per operator
	Codes    int
	// FirstSerial is the first serial (default 100000000000); serials are consecutive.
	FirstSerial int64
	// PartSize is the number of codes per signed part (default 50,000).
	PartSize int
	// Expiry of every code (default two years from now).
	Expiry time.Time
}

// operatorParty is an operator whose signing key and certificate exist.
type operatorParty struct {
	token, pin, cert string
}

// Upload creates the operator and product if they are new (token, enrolment, product, all
// through the CLI), writes the codes to a CSV, seals them (`evoucher operator seal`) and
// uploads them to srv (`evoucher operator upload`). It returns the PINs by serial, for
// checking what terminals decrypt.
func (n *Network) Upload(ctx context.Context, srv *Server, s Stock) (map[string]string, error) {
	if s.FirstSerial == 0 {
		s.FirstSerial = 100_000_000_000
	}
	if s.PartSize == 0 {
		s.PartSize = 50_000
	}
	if s.Expiry.IsZero() {
		s.Expiry = time.Now().AddDate(2, 0, 0)
	}
	op, err := n.operator(ctx, srv, s.Operator)
	if err != nil {
		return nil, err
	}
	if err := n.product(ctx, s.Operator, s.Product); err != nil {
		return nil, err
	}
	dir := filepath.Join(n.work, "lots", s.Operator, s.Batch)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	csvPath := filepath.Join(dir, "codes.csv")
	pins, err := writeCodes(csvPath, s)
	if err != nil {
		return nil, err
	}
	env := []string{"EVOUCHER_HSM_PIN=" + op.pin}
	t0 := time.Now()
	if _, err := n.CLI(ctx, env, "operator", "seal", "--hsm-token", op.token, "--key-label", "sign", "--cert", op.cert,
		"--operator", s.Operator, "--batch", s.Batch, "--product", s.Product, "--face-value", "1000", "--currency", "EUR",
		"--part-size", strconv.Itoa(s.PartSize), "--csv", csvPath, "--center-cert", filepath.Join(n.Center, "center-encrypt.pem"),
		"--out", filepath.Join(dir, "parts")); err != nil {
		return nil, err
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "parts", "*.xml"))
	if _, err := n.CLI(ctx, env, append([]string{"operator", "upload", "--server", srv.URL, "--hsm-token", op.token,
		"--key-label", "sign", "--cert", op.cert, "--receipts", filepath.Join(dir, "receipts")}, parts...)...); err != nil {
		return nil, err
	}
	n.cfg.Logf("netest: %d codes of %s/%s sealed and uploaded in %s", s.Codes, s.Operator, s.Product, time.Since(t0).Round(time.Millisecond))
	return pins, nil
}

// operator creates the operator, its token in the center's SoftHSM2 directory (softhsm2-util;
// only the CLI uses it) and its enrolled signing certificate, once.
func (n *Network) operator(ctx context.Context, srv *Server, id string) (*operatorParty, error) {
	n.mu.Lock()
	op := n.operators[id]
	n.mu.Unlock()
	if op != nil {
		return op, nil
	}
	if _, err := n.CLI(ctx, nil, "operator", "create", id, "--name", id+" Telecom"); err != nil {
		return nil, err
	}
	op = &operatorParty{token: "op-" + strings.ToLower(id), pin: randHex(8), cert: filepath.Join(n.work, id+"-sign.pem")}
	if len(op.token) > 32 {
		op.token = op.token[:32]
	}
	tok := exec.CommandContext(ctx, "softhsm2-util", "--init-token", "--free", "--label", op.token, "--so-pin", randHex(8), "--pin", op.pin)
	tok.Env = append(cleanEnv(), "SOFTHSM2_CONF="+filepath.Join(n.Center, "softhsm", "softhsm2.conf"))
	if out, err := tok.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token %s: %v\n%s", op.token, err, out)
	}
	code, err := n.issueCode(ctx, "operator-sign", id)
	if err != nil {
		return nil, err
	}
	if _, err := n.CLI(ctx, []string{"EVOUCHER_HSM_PIN=" + op.pin}, "pki", "enrol", "--server", srv.URL, "--hsm-token", op.token,
		"--role", "operator-sign", "--key-label", "sign", "--code", code, "--out", op.cert); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.operators[id] = op
	n.mu.Unlock()
	return op, nil
}

func (n *Network) product(ctx context.Context, operator, code string) error {
	n.mu.Lock()
	done := n.products[[2]string{operator, code}]
	n.mu.Unlock()
	if done {
		return nil
	}
	if _, err := n.CLI(ctx, nil, "operator", "add-product", "--operator", operator, "--code", code, "--face-value", "1000",
		"--currency", "EUR", "--refill", "Dial *123*{PIN}#", "--serial-pattern", "[0-9]{12}", "--pin-pattern", "[0-9]{14}"); err != nil {
		return err
	}
	n.mu.Lock()
	n.products[[2]string{operator, code}] = true
	n.mu.Unlock()
	return nil
}

// issueCode runs `evoucher pki issue-code` and returns the code.
func (n *Network) issueCode(ctx context.Context, role, entity string) (string, error) {
	out, err := n.CLI(ctx, nil, "pki", "issue-code", "--role", role, "--entity", entity)
	if err != nil {
		return "", err
	}
	f := strings.Fields(strings.TrimSpace(out))
	if len(f) == 0 {
		return "", fmt.Errorf("netest: issue-code printed nothing")
	}
	return f[len(f)-1], nil
}

// writeCodes writes s's codes as serial,pin,expiry and returns the PINs by serial.
func writeCodes(path string, s Stock) (map[string]string, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	pins := make(map[string]string, s.Codes)
	buf := make([]byte, 14)
	exp := s.Expiry.Format(time.DateOnly)
	for i := range s.Codes {
		if _, err := rand.Read(buf); err != nil {
			f.Close()
			return nil, err
		}
		for j := range buf {
			buf[j] = '0' + buf[j]%10
		}
		serial := fmt.Sprintf("%012d", s.FirstSerial+int64(i))
		pins[serial] = string(buf)
		fmt.Fprintf(w, "%s,%s,%s\n", serial, buf, exp)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return pins, f.Close()
}

// Shop is a retailer with its terminals and vendor cards.
type Shop struct {
	Retailer  string
	Terminals []string
	Vendors   []string
	// KeyPerParty gives every terminal and vendor card a token and RSA key of its own, as in
	// the field. Without it, to keep set-up fast (SoftHSM2 needs about 0.3 s per RSA-2048 key),
	// all terminals of the network share one token and one key, and all vendor cards another
	// key in that token: each still has its own certificate, for its own id, enrolled with
	// its own one-time code, so the center sees distinct parties.
	KeyPerParty bool
}

// sharedKeys is the one token all terminals and vendor cards share without KeyPerParty.
type sharedKeys struct {
	token, pin string
	made       map[string]bool // key labels created in it
}

// party is a terminal or vendor card to enrol.
type party struct {
	role, id, token, pin, keyLabel, certPath string
}

// Parallel is how many CLI processes set-up runs at once.
const Parallel = 4

// AddShop records the retailer, its terminals and vendor cards through the CLI
// (`evoucher retailer create/add-terminal/add-vendor`), enrols each of them with a one-time
// code (`evoucher pki issue-code`, then `evoucher pki enrol` against its token in the
// process's token directory, via srv), opens the tokens in this process and returns the
// terminals, each holding every vendor card of the retailer. Calls must not overlap.
func (n *Network) AddShop(ctx context.Context, srv *Server, s Shop) ([]*Terminal, error) {
	parent, conf, err := tokenDirs()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, err := n.CLI(ctx, nil, "retailer", "create", s.Retailer, "--name", s.Retailer+" Stores"); err != nil {
		return nil, err
	}
	var cmds [][]string
	for _, id := range s.Terminals {
		cmds = append(cmds, []string{"retailer", "add-terminal", "--retailer", s.Retailer, "--id", id, "--name", "till " + id})
	}
	for _, id := range s.Vendors {
		cmds = append(cmds, []string{"retailer", "add-vendor", "--retailer", s.Retailer, "--id", id, "--name", "salesman " + id})
	}
	if err := parallel(ctx, len(cmds), func(i int) error {
		_, err := n.CLI(ctx, nil, cmds[i]...)
		return err
	}); err != nil {
		return nil, err
	}

	// The tokens: created in this process (pkcs11.InitSoftHSMToken), so that this process
	// sees them whether or not it has libsofthsm2 loaded already.
	var parties []party
	var first []int // parties that create a shared key: enrolled before the others
	newToken := func() (label, pin string, err error) {
		n.mu.Lock()
		n.nTokens++
		label = fmt.Sprintf("net-%s-%d", n.id, n.nTokens)
		n.mu.Unlock()
		pin = randHex(8)
		return label, pin, pkcs11.InitSoftHSMToken(conf, label, pkcs11.PIN(randHex(8)), pkcs11.PIN(pin))
	}
	if !s.KeyPerParty && n.shared == nil {
		label, pin, err := newToken()
		if err != nil {
			return nil, err
		}
		n.shared = &sharedKeys{token: label, pin: pin, made: map[string]bool{}}
	}
	creating := map[string]bool{}
	add := func(role, id string) error {
		p := party{role: role, id: id, keyLabel: role, certPath: filepath.Join(n.work, "parties", role+"-"+id+".pem")}
		if s.KeyPerParty {
			var err error
			p.token, p.pin, err = newToken()
			if err != nil {
				return err
			}
		} else {
			p.token, p.pin = n.shared.token, n.shared.pin
			// The first enrolment of a role creates its shared key; the others find it.
			if !n.shared.made[role] && !creating[role] {
				creating[role] = true
				first = append(first, len(parties))
			}
		}
		parties = append(parties, p)
		return nil
	}
	for _, id := range s.Terminals {
		if err := add("terminal", id); err != nil {
			return nil, err
		}
	}
	for _, id := range s.Vendors {
		if err := add("vendor", id); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(n.work, "parties"), 0o700); err != nil {
		return nil, err
	}
	enrol := func(p party) error {
		code, err := n.issueCode(ctx, p.role, p.id)
		if err != nil {
			return err
		}
		_, err = n.cliIn(ctx, parent, []string{"EVOUCHER_HSM_PIN=" + p.pin}, "pki", "enrol", "--server", srv.URL,
			"--ca", filepath.Join(n.Center, "ca.pem"), "--hsm-token", p.token, "--key-label", p.keyLabel,
			"--role", p.role, "--code", code, "--out", p.certPath)
		return err
	}
	isFirst := map[int]bool{}
	for _, i := range first {
		isFirst[i] = true
		if err := enrol(parties[i]); err != nil {
			return nil, err
		}
		n.shared.made[parties[i].role] = true
	}
	if err := parallel(ctx, len(parties), func(i int) error {
		if isFirst[i] {
			return nil
		}
		return enrol(parties[i])
	}); err != nil {
		return nil, err
	}

	// This process's view: keys from the tokens, certificates from the enrolment.
	cards := make([]pos.Card, 0, len(s.Vendors))
	var terms []*Terminal
	for _, p := range parties {
		key, err := n.key(p)
		if err != nil {
			return nil, err
		}
		cert, err := readCert(p.certPath)
		if err != nil {
			return nil, err
		}
		if p.role == "vendor" {
			cards = append(cards, pos.Card{Vendor: p.id, Key: key, Cert: cert})
			continue
		}
		t, err := newTerminal(&pos.Terminal{ID: p.id, Key: key, Cert: cert, CA: n.CA}, s.Retailer, n.CA)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
	for _, t := range terms {
		t.Cards = cards
	}
	n.cfg.Logf("netest: retailer %s with %d terminals and %d vendor cards enrolled in %s", s.Retailer, len(s.Terminals), len(s.Vendors),
		time.Since(t0).Round(time.Millisecond))
	return terms, nil
}

// key opens p's token in this process (once per token) and finds p's key.
func (n *Network) key(p party) (*pkcs11.RSAKey, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	tok := n.tokens[p.token]
	if tok == nil {
		module, err := pkcs11.FindSoftHSMModule()
		if err != nil {
			return nil, err
		}
		if tok, err = pkcs11.Open(pkcs11.Config{Module: module, TokenLabel: p.token, PIN: pkcs11.PIN(p.pin)}); err != nil {
			return nil, err
		}
		n.tokens[p.token] = tok
	}
	return tok.FindRSAKey(p.keyLabel)
}

// parallel runs f(0…count-1) on Parallel workers and returns the first error; after an error
// no new call starts.
func parallel(ctx context.Context, count int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next int
	)
	for range min(Parallel, count) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := len(errs) > 0 || ctx.Err() != nil
				mu.Unlock()
				if i >= count || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(errs) == 0 && ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

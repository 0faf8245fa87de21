package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/pos"
)

// session is an open terminal: its token, store, printer and the center client.
type session struct {
	g      *globals
	tok    *pkcs11.Token
	term   *pos.Terminal
	store  *pos.Store
	till   *pos.Till
	center *pos.Center
	card   *pos.CardSession
	cardTk *pkcs11.Token
}

func (s *session) close() {
	if s.card != nil {
		s.card.Close() // zeroes the cached shipment keys
	}
	if s.cardTk != nil {
		_ = s.cardTk.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.tok != nil {
		_ = s.tok.Close()
	}
}

// openStore opens only the local store (no token needed): stock, status.
func (g *globals) openStore() (*pos.Store, error) {
	if g.terminal == "" {
		return nil, fmt.Errorf("no terminal in %s: run `evpos enrol` first", filepath.Join(g.dir, configFile))
	}
	return pos.OpenStore(pos.StoreConfig{Path: filepath.Join(g.dir, "pos.db"), Terminal: g.terminal})
}

// open opens the terminal's token, store, printer and center client.
func (g *globals) open(cmd *cobra.Command) (*session, error) {
	s := &session{g: g}
	cfg, err := g.tokenConfig(g.token, tokenPIN())
	if err != nil {
		return nil, fmt.Errorf("terminal token: %w (EVPOS_TOKEN_PIN)", err)
	}
	if s.tok, err = pkcs11.Open(cfg); err != nil {
		return nil, fmt.Errorf("terminal token: %w", err)
	}
	key, err := s.tok.FindRSAKey(g.keyLabel)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("terminal key: %w", err)
	}
	cert, err := readCert(g.certFile)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("terminal certificate (run `evpos enrol`): %w", err)
	}
	ca, err := readCert(g.caFile)
	if err != nil {
		s.close()
		return nil, err
	}
	s.term = &pos.Terminal{ID: cert.Subject.CommonName, Key: key, Cert: cert, CA: ca}
	if g.terminal != "" && g.terminal != s.term.ID {
		s.close()
		return nil, fmt.Errorf("the certificate %s is for terminal %s, the configuration says %s", g.certFile, s.term.ID, g.terminal)
	}
	g.terminal = s.term.ID
	if s.store, err = g.openStore(); err != nil {
		s.close()
		return nil, err
	}
	pr, err := g.newPrinter(cmd)
	if err != nil {
		s.close()
		return nil, err
	}
	hc, err := g.httpClient(&tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert})
	if err != nil {
		s.close()
		return nil, err
	}
	s.center = &pos.Center{URL: g.server, Client: hc}
	s.till = &pos.Till{Term: s.term, Store: s.store, Printer: pr}
	// Online mode is the center's setting (learnt at sync); --online forces it on.
	online, err := s.till.OnlineMode()
	if err != nil {
		s.close()
		return nil, err
	}
	if online || g.online {
		g.online = true
		s.till.Online = s.center
	}
	return s, nil
}

// cardFlags select the vendor card.
type cardFlags struct {
	token, label, cert string
}

func (c *cardFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.token, "card-token", "", "the vendor card's token label (the inserted card)")
	cmd.Flags().StringVar(&c.label, "card-key", "card", "label of the card's key")
	cmd.Flags().StringVar(&c.cert, "card-cert", "", "the card's certificate (PEM; default <dir>/cards/<card-token>.pem, where `card enrol` saves it)")
}

// certPath is the card's certificate file: --card-cert, or where `card enrol` saved it.
func (c *cardFlags) certPath(g *globals) string {
	if c.cert != "" {
		return c.cert
	}
	return filepath.Join(g.dir, "cards", c.token+".pem")
}

// activate unlocks the card with pin (EVPOS_CARD_PIN for the commands, typed on the screen)
// and checks it. A wrong PIN is counted in the
// store and raised as an alarm; a locked card is reported as such, and never retried.
func (s *session) activate(c cardFlags, pin string) error {
	if c.token == "" {
		return errors.New("insert a vendor card: give --card-token")
	}
	c.cert = c.certPath(s.g)
	if s.card != nil {
		s.card.Close() // one card at a time: the previous one's keys are wiped
		s.card = nil
	}
	if s.cardTk != nil {
		_ = s.cardTk.Close()
		s.cardTk = nil
	}
	cfg, err := s.g.tokenConfig(c.token, pin)
	if err != nil {
		return fmt.Errorf("vendor card: %w (EVPOS_CARD_PIN)", err)
	}
	tk, err := pkcs11.Open(cfg)
	switch {
	case errors.Is(err, pkcs11.ErrPINLocked):
		_ = s.store.CardEvent(c.token, "pin_locked", "")
		s.till.Alarm(fmt.Sprintf("card %s is locked after too many wrong PINs", c.token))
		return fmt.Errorf("vendor card %s is locked after too many wrong PINs: the retailer's manager must unlock it with the SO PIN", c.token)
	case errors.Is(err, pkcs11.ErrPINIncorrect):
		_ = s.store.CardEvent(c.token, "wrong_pin", "")
		ev, _ := s.store.CardEvents()
		s.till.Alarm(fmt.Sprintf("wrong PIN for card %s (%d this shift)", c.token, ev["wrong_pin"]))
		return fmt.Errorf("wrong PIN for vendor card %s (%d wrong this shift; the card locks itself after a few): type it again", c.token, ev["wrong_pin"])
	case err != nil:
		return fmt.Errorf("vendor card: %w", err)
	}
	s.cardTk = tk
	key, err := tk.FindRSAKey(c.label)
	if err != nil {
		return fmt.Errorf("vendor card key: %w", err)
	}
	cert, err := readCert(c.cert)
	if err != nil {
		return fmt.Errorf("vendor card certificate: %w", err)
	}
	s.card, err = pos.Activate(s.term, s.store, key, cert, s.g.idle)
	return err
}

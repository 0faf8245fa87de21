package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/pos"
)

// enrolResponse is the center's answer to POST /v1/enrol.
type enrolResponse struct {
	Certificate, CA, Role, Entity, Serial, Error, Reason string
	NotAfter                                             time.Time `json:"not_after"`
}

// enrolKey creates (or finds again) an RSA key in a token, sends its CSR with a one-time code
// for role to the center, and returns the center's answer.
func enrolKey(cmd *cobra.Command, g *globals, tokenLabel, keyLabel, pin string, role pki.Role, code string) (enrolResponse, error) {
	var er enrolResponse
	cfg, err := g.tokenConfig(tokenLabel, pin)
	if err != nil {
		return er, err
	}
	tok, err := pkcs11.Open(cfg)
	if err != nil {
		return er, err
	}
	defer tok.Close()
	key, created, err := tok.RSAKey(keyLabel, 2048)
	if err != nil {
		return er, err
	}
	if created {
		cmd.Printf("created key %q in token %q (non-extractable)\n", keyLabel, tokenLabel)
	}
	csr, err := pki.NewCSR(key, keyLabel)
	if err != nil {
		return er, err
	}
	body, _ := json.Marshal(map[string]string{"code": code, "role": string(role),
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	hc, err := g.httpClient(nil)
	if err != nil {
		return er, err
	}
	resp, err := hc.Post(g.server+"/v1/enrol", "application/json", bytes.NewReader(body))
	if err != nil {
		return er, fmt.Errorf("the center at %s is unreachable: %w", g.server, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(b, &er)
	if resp.StatusCode != http.StatusCreated {
		return er, fmt.Errorf("enrolment refused: %s (%s, HTTP %d)", er.Error, er.Reason, resp.StatusCode)
	}
	return er, nil
}

func newEnrolCmd(g *globals) *cobra.Command {
	var code string
	cmd := &cobra.Command{
		Use:   "enrol",
		Short: "enrol this terminal: key pair generated in its token, CSR + one-time code → certificate",
		Long: `enrol creates (or finds again) the terminal's non-extractable RSA key in its token, sends a
certificate request with the one-time enrolment code to the center, saves the certificate and
the platform CA in --dir and writes the terminal's settings to <dir>/config.json.`,
		Example: "  EVPOS_TOKEN_PIN=… evpos enrol --dir pos --server https://center:8443 --ca ca.pem --token terminal-T-1 --code ABCD-…",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.server == "" {
				return errors.New("give --server, the center's URL")
			}
			if err := os.MkdirAll(g.dir, 0o700); err != nil {
				return err
			}
			er, err := enrolKey(cmd, g, g.token, g.keyLabel, tokenPIN(), pki.RoleTerminal, code)
			if err != nil {
				return fmt.Errorf("terminal token: %w (EVPOS_TOKEN_PIN)", err)
			}
			certPath, caPath := filepath.Join(g.dir, "terminal.pem"), filepath.Join(g.dir, "ca.pem")
			if err := os.WriteFile(certPath, []byte(er.Certificate), 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(caPath, []byte(er.CA), 0o644); err != nil {
				return err
			}
			conf, _ := filepath.Abs(g.softhsmConf)
			if g.softhsmConf == "" {
				conf = os.Getenv("SOFTHSM2_CONF")
			}
			if err := g.save(map[string]string{"server": g.server, "token": g.token, "key-label": g.keyLabel, "module": g.module,
				"softhsm-conf": conf, "terminal": er.Entity, "ca": caPath, "cert": certPath}); err != nil {
				return err
			}
			cmd.Printf("enrolled terminal %s: certificate %s saved to %s (valid until %s); settings in %s\n",
				er.Entity, er.Serial, certPath, er.NotAfter.Format(time.DateOnly), filepath.Join(g.dir, configFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&code, "code", "", "the one-time enrolment code")
	_ = cmd.MarkFlagRequired("code")
	return cmd
}

func newCardCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "card", Short: "vendor cards at this terminal"}
	var cf cardFlags
	var code string
	enrol := &cobra.Command{
		Use:   "enrol",
		Short: "enrol a salesman's vendor card: key pair generated on the card, CSR + one-time code → certificate",
		Long: `card enrol creates (or finds again) the card's non-extractable RSA key on the inserted card
(PIN from EVPOS_CARD_PIN), sends its certificate request with the one-time code the center issued
for the vendor, and saves the certificate as <dir>/cards/<card-token>.pem, where sell finds it.`,
		Example: "  EVPOS_CARD_PIN=… evpos card enrol --card-token card-V-1 --code ABCD-…",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.server == "" {
				return errors.New("give --server, the center's URL (or enrol the terminal first)")
			}
			if cf.token == "" {
				return errors.New("insert the card: give --card-token")
			}
			er, err := enrolKey(cmd, g, cf.token, cf.label, os.Getenv("EVPOS_CARD_PIN"), pki.RoleVendor, code)
			if err != nil {
				return fmt.Errorf("vendor card: %w (EVPOS_CARD_PIN)", err)
			}
			path := cf.certPath(g)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(path, []byte(er.Certificate), 0o644); err != nil {
				return err
			}
			cmd.Printf("enrolled vendor card %s: certificate %s saved to %s (valid until %s)\n",
				er.Entity, er.Serial, path, er.NotAfter.Format(time.DateOnly))
			return nil
		},
	}
	cf.add(enrol)
	enrol.Flags().StringVar(&code, "code", "", "the one-time enrolment code issued for the vendor")
	_ = enrol.MarkFlagRequired("code")
	cmd.AddCommand(enrol)
	return cmd
}

func newSyncCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "sync",
		Short: "fetch the CRL, shipments and key shares (verify, store, acknowledge); send queued reports and returns",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd)
			if err != nil {
				return err
			}
			defer s.close()
			res, err := s.till.Sync(cmd.Context(), s.center)
			printSync(cmd, res)
			return err
		},
	}
}

func newOrderCmd(g *globals) *cobra.Command {
	var operator, product string
	var quantity int
	cmd := &cobra.Command{
		Use:     "order",
		Short:   "order stock from the center (a signed StockOrder); the shipment it answers is verified, stored, acknowledged",
		Example: "  evpos order --operator OP-ACME --product ACME-10 --quantity 20",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd)
			if err != nil {
				return err
			}
			defer s.close()
			res, err := s.till.Order(cmd.Context(), s.center, operator, product, quantity)
			printSync(cmd, res)
			return err
		},
	}
	cmd.Flags().StringVar(&operator, "operator", "", "operator id")
	cmd.Flags().StringVar(&product, "product", "", "product code")
	cmd.Flags().IntVar(&quantity, "quantity", 10, "codes wanted")
	_ = cmd.MarkFlagRequired("operator")
	_ = cmd.MarkFlagRequired("product")
	return cmd
}

func printSync(cmd *cobra.Command, res pos.SyncResult) {
	if res.ModeChanged != "" {
		cmd.Printf("the center switched this terminal to %s mode\n", res.ModeChanged)
	}
	if !res.CRLUpdated.IsZero() {
		cmd.Printf("CRL of %s: %d certificates revoked\n", res.CRLUpdated.UTC().Format(time.RFC3339), res.Revoked)
	}
	for _, r := range res.Received {
		cmd.Printf("received shipment %s; acknowledged\n", r)
	}
	if res.ShareUpdates > 0 {
		cmd.Printf("%d key-share update(s) stored: newly enrolled cards can sell this stock\n", res.ShareUpdates)
	}
	for _, r := range res.Refused {
		cmd.Printf("REFUSED: %s\n", r)
	}
	for _, s := range res.Sent {
		cmd.Printf("sent %s\n", s)
	}
	if res.CenterAlarms > 0 {
		cmd.Printf("%d alarm(s) from the center about this terminal: see `evpos status`\n", res.CenterAlarms)
	}
}

func newStockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stock",
		Short: "codes on the shelf, per product (no token needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			defer st.Close()
			lines, err := st.Stock()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "OPERATOR\tPRODUCT\tVALUE\tON SHELF")
			for _, l := range lines {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", l.Operator, l.Product, pos.Money(l.FaceValue, l.Currency), l.OnShelf)
			}
			return tw.Flush()
		},
	}
}

// finishPending prints the tickets a crash, a dead printer or an unreachable center left.
func finishPending(cmd *cobra.Command, s *session) error {
	pending, err := s.store.Unprinted()
	if err != nil || len(pending) == 0 {
		return err
	}
	cmd.Printf("%d ticket(s) were recorded but not printed; printing them first\n", len(pending))
	done, err := s.till.Resume(cmd.Context(), s.card)
	for _, p := range done {
		cmd.Printf("printed ticket %s%s\n", p.Sale.Ticket, dupNote(p.Duplicate))
	}
	return err
}

func dupNote(d bool) string {
	if d {
		return " (DUPLICATE)"
	}
	return ""
}

func newSellCmd(g *globals) *cobra.Command {
	var cf cardFlags
	var product string
	var count int
	cmd := &cobra.Command{
		Use:   "sell",
		Short: "sell codes of a product with the inserted vendor card: each decrypted, recorded, printed",
		Long: `sell activates the vendor card (PIN from EVPOS_CARD_PIN; its certificate checked against the
latest CRL), prints first any ticket left unprinted, then sells --count codes of --product.
Each sale is on disk before its ticket prints; in online mode the center authorises it first.`,
		Example: "  EVPOS_CARD_PIN=… evpos sell --product ACME-10 --count 2 --card-token card-V-1 --card-cert card-V-1.pem",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.activate(cf, os.Getenv("EVPOS_CARD_PIN")); err != nil {
				return err
			}
			if err := finishPending(cmd, s); err != nil {
				return err
			}
			for i := range count {
				p, err := s.till.Sell(cmd.Context(), s.card, product)
				if err != nil {
					if i > 0 {
						return fmt.Errorf("sold %d of %d: %w", i, count, err)
					}
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "sold ticket %s (serial %s) by %s\n", p.Sale.Ticket, p.Sale.Serial, p.Sale.Vendor)
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&product, "product", "", "product code")
	cmd.Flags().IntVar(&count, "count", 1, "codes to sell")
	_ = cmd.MarkFlagRequired("product")
	return cmd
}

func newReprintCmd(g *globals) *cobra.Command {
	var cf cardFlags
	cmd := &cobra.Command{
		Use:     "reprint TICKET",
		Short:   "print a ticket again, marked DUPLICATE (counted in the next sales report)",
		Example: "  EVPOS_CARD_PIN=… evpos reprint T-1-000012 --card-token card-V-1 --card-cert card-V-1.pem",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd)
			if err != nil {
				return err
			}
			defer s.close()
			n, err := s.store.ParseTicket(args[0])
			if err != nil {
				return err
			}
			if err := s.activate(cf, os.Getenv("EVPOS_CARD_PIN")); err != nil {
				return err
			}
			p, err := s.till.Reprint(cmd.Context(), s.card, n)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "reprinted ticket %s%s\n", p.Sale.Ticket, dupNote(p.Duplicate))
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

func newResumeCmd(g *globals) *cobra.Command {
	var cf cardFlags
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "print the tickets recorded but not printed (after a crash, a dead printer or an unreachable center)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.activate(cf, os.Getenv("EVPOS_CARD_PIN")); err != nil {
				return err
			}
			pending, err := s.store.Unprinted()
			if err != nil {
				return err
			}
			if len(pending) == 0 {
				cmd.Println("every ticket is printed")
				return nil
			}
			return finishPending(cmd, s)
		},
	}
	cf.add(cmd)
	return cmd
}

func newReturnCmd(g *globals) *cobra.Command {
	var cf cardFlags
	var product string
	var count int
	cmd := &cobra.Command{
		Use:   "return",
		Short: "hand unsold codes back to the center, re-encrypted to it (sent with the next sync)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.activate(cf, os.Getenv("EVPOS_CARD_PIN")); err != nil {
				return err
			}
			back, err := s.till.Return(s.card, product, count)
			if err != nil {
				return err
			}
			cmd.Printf("%d code(s) off the shelf, queued for the center: %s\n", len(back), strings.Join(back, " "))
			sent, err := s.till.Flush(cmd.Context(), s.center)
			for _, l := range sent {
				cmd.Printf("sent %s\n", l)
			}
			if pos.IsUnreachable(err) {
				cmd.Printf("the center is unreachable: the return stays queued for the next sync\n")
				return nil
			}
			return err
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&product, "product", "", "only this product (default: all)")
	cmd.Flags().IntVar(&count, "count", 0, "at most this many codes (default: all)")
	return cmd
}

func newShiftCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "shift", Short: "the clerk's shift"}
	show := &cobra.Command{
		Use:   "show",
		Short: "the open shift's figures so far",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			defer st.Close()
			sh, err := st.CurrentShift()
			if err != nil {
				return err
			}
			sh.Closed = time.Now()
			cmd.Println(strings.Join(pos.ShiftLines(g.terminal, sh, 0, g.width), "\n"))
			return nil
		},
	}
	closeCmd := &cobra.Command{
		Use:   "close",
		Short: "close the shift: opening stock, received, sold, returned, closing stock — reconciled, signed, printed, sent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd)
			if err != nil {
				return err
			}
			defer s.close()
			res, err := s.closeShift(cmd.Context(), cmd.OutOrStdout())
			if res.printErr != nil {
				cmd.PrintErrf("the shift report did not print (%v); it is in %s\n", res.printErr, res.path)
			}
			if res.path != "" {
				cmd.Printf("shift %d closed; signed record %s\n", res.shift.ID, res.path)
			}
			for _, l := range res.sent {
				cmd.Printf("sent %s\n", l)
			}
			if res.queued {
				cmd.Printf("the center is unreachable: the closing report stays queued for the next sync\n")
			}
			return err
		},
	}
	cmd.AddCommand(show, closeCmd)
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "last sync, queued documents, unprinted tickets, the terminal's alarms and the center's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore()
			if err != nil {
				return err
			}
			defer st.Close()
			till := &pos.Till{Term: &pos.Terminal{ID: g.terminal}, Store: st}
			s, err := till.Status()
			if err != nil {
				return err
			}
			online, err := till.OnlineMode()
			if err != nil {
				return err
			}
			mode := "offline (sales reported at sync)"
			if g.online || online {
				mode = "online (each sale authorised by the center)"
			}
			cmd.Printf("terminal %s, %s\nlast sync %s, CRL of %s\n%d document(s) queued for the center, %d ticket(s) not printed\n",
				g.terminal, mode, orNever(s.LastSync), orNever(s.CRLAt), s.Queued, s.Unprinted)
			cmd.Printf("this shift: %d wrong PIN(s), %d card(s) refused\n", s.CardEvents["wrong_pin"], s.CardEvents["refused"])
			for _, a := range s.Alarms {
				cmd.Println("ALARM " + a)
			}
			// The center's alarms, as of the last sync: they clear at the center, not here.
			for _, a := range s.Center {
				cmd.Printf("CENTER ALARM %s (%s since %s): %s\n", a.Label(), a.State, a.Since.Local().Format("2006-01-02 15:04"), a.Message)
			}
			return nil
		},
	}
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}

// shiftResult is what closing a shift did.
type shiftResult struct {
	shift    pos.Shift
	lines    []string // the printed report
	path     string   // the signed record
	printErr error    // the report did not print (it is in path)
	sent     []string
	queued   bool // the center was unreachable: the closing report waits for the next sync
}

// closeShift closes the shift, keeps its signed record in <dir>, prints its report (on the
// printer when it prints lines, otherwise on out) and sends the closing report. It returns an
// error when the shift does not reconcile, and the center's refusal; an unreachable center is
// not an error (the report stays queued).
func (s *session) closeShift(ctx context.Context, out io.Writer) (shiftResult, error) {
	var res shiftResult
	sh, record, seq, err := s.till.CloseShift()
	if err != nil {
		return res, err
	}
	res.shift = sh
	res.path = filepath.Join(s.g.dir, fmt.Sprintf("shift-%d.xml", sh.ID))
	if err := os.WriteFile(res.path, record, 0o600); err != nil {
		return res, err
	}
	res.lines = pos.ShiftLines(s.term.ID, sh, seq, s.g.width)
	if lp, ok := s.till.Printer.(pos.LinePrinter); ok {
		res.printErr = lp.PrintLines(ctx, res.lines)
	} else {
		fmt.Fprintln(out, strings.Join(res.lines, "\n"))
	}
	res.sent, err = s.till.Flush(ctx, s.center)
	if pos.IsUnreachable(err) {
		res.queued = true
		err = nil
	}
	if err == nil && !sh.Reconciled() {
		err = errors.New("the shift does not reconcile: call the retailer's manager")
	}
	return res, err
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/pos"
	"github.com/evoucher/evoucher/xml/message"
)

// The terminal commands are the small terminal client of the distribution issue: enough of a
// POS to sync, order, sell with a vendor card, and report, over the real exchange. The full POS
// program is cmd/evpos.

type terminalFlags struct {
	k     keyFlags
	cf    clientFlags
	state string
}

func (tf *terminalFlags) add(cmd *cobra.Command) {
	tf.k.add(cmd, "the terminal")
	tf.cf.add(cmd)
	cmd.Flags().StringVar(&tf.state, "state", "terminal-state", "the terminal's local directory (shipments, sales, report sequence)")
}

// termState is the test client's local record.
type termState struct {
	Seq    int64                   `json:"seq"`    // last report the center took
	Ticket int                     `json:"ticket"` // last ticket number
	Sold   map[string]message.Sale `json:"sold"`   // serial → sale
	Unsent []string                `json:"unsent"` // serials sold and not yet reported
}

func loadState(dir string) (*termState, error) {
	st := &termState{Sold: map[string]message.Sale{}}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st, os.MkdirAll(filepath.Join(dir, "shipments"), 0o700)
	}
	if err != nil {
		return nil, err
	}
	return st, json.Unmarshal(b, st)
}

func (st *termState) save(dir string) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := filepath.Join(dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

type termSession struct {
	term    *pos.Terminal
	hc      *http.Client
	server  string
	release func()
}

func (tf *terminalFlags) open(g *globals) (*termSession, error) {
	key, cert, release, err := tf.k.load(g)
	if err != nil {
		return nil, err
	}
	kp, ok := key.(pos.KeyPair)
	if !ok {
		release()
		return nil, errors.New("the terminal key must be an RSA key that can decrypt")
	}
	ca, err := loadCA(g, &tf.cf)
	if err != nil {
		release()
		return nil, err
	}
	hc, err := tf.cf.client(g, tf.k.tlsCert(key, cert))
	if err != nil {
		release()
		return nil, err
	}
	id := cert.Subject.CommonName
	return &termSession{term: &pos.Terminal{ID: id, Key: kp, Cert: cert, CA: ca}, hc: hc, server: tf.cf.server, release: release}, nil
}

// exchange posts a signed document and returns the center's signed answer.
func (s *termSession) exchange(doc []byte) ([]byte, error) {
	resp, err := s.hc.Post(s.server+"/v1/exchange", "application/xml", bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.Unmarshal(b, &eb)
		return nil, fmt.Errorf("refused: %s (%s)", eb.Error, eb.Reason)
	}
	return b, nil
}

// accept verifies a shipment, keeps it and acknowledges it.
func (s *termSession) accept(cmd *cobra.Command, dir string, raw []byte) error {
	sh, err := s.term.OpenShipment(raw)
	if err != nil {
		return fmt.Errorf("shipment refused: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shipments", sh.ShipmentID+".xml"), raw, 0o600); err != nil {
		return err
	}
	ack, err := s.term.Ack(sh)
	if err != nil {
		return err
	}
	resp, err := s.exchange(ack)
	if err != nil {
		return fmt.Errorf("acknowledging %s: %w", sh.ShipmentID, err)
	}
	rc, err := s.term.OpenReceiptFor(resp, ack)
	if err != nil {
		return err
	}
	vendors := make([]string, 0, len(sh.VendorShares))
	for v := range sh.VendorShares {
		vendors = append(vendors, v)
	}
	sort.Strings(vendors)
	cmd.Printf("received shipment %s: %d × %s of %s, unlockable by vendor cards %s; acknowledged (%s)\n",
		sh.ShipmentID, len(sh.Codes), sh.Product.Code, sh.Product.Operator, strings.Join(vendors, ", "), rc.Detail)
	return nil
}

// shipments loads the kept shipments; with term, the key-share updates filed beside them are
// verified and applied.
func shipments(dir string, term *pos.Terminal) ([]message.Shipment, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "shipments", "S-*.xml"))
	sort.Strings(files)
	var out []message.Shipment
	for _, f := range files {
		if strings.Contains(filepath.Base(f), ".shares-") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := message.Parse(raw, message.DefaultLimits)
		if err != nil {
			return nil, err
		}
		sh, err := message.ReadShipment(doc.Root())
		if err != nil {
			return nil, err
		}
		if term != nil {
			updates, _ := filepath.Glob(filepath.Join(dir, "shipments", sh.ShipmentID+".shares-*.xml"))
			for _, u := range updates {
				raw, err := os.ReadFile(u)
				if err != nil {
					return nil, err
				}
				if err := term.ApplyShares(&sh, raw); err != nil {
					return nil, fmt.Errorf("%s: %w", u, err)
				}
			}
		}
		out = append(out, sh)
	}
	return out, nil
}

func newTerminalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "terminal", Short: "a small terminal client: sync, order, sell with a vendor card, report"}
	var tf terminalFlags
	sync := &cobra.Command{
		Use:     "sync",
		Short:   "fetch the shipments waiting for this terminal, verify, keep and acknowledge them",
		Example: "  evoucher terminal sync --hsm-token terminal-T-1 --key-label terminal --cert terminal.pem --state t1/",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := tf.open(g)
			if err != nil {
				return err
			}
			defer s.release()
			if _, err := loadState(tf.state); err != nil {
				return err
			}
			resp, err := s.hc.Get(s.server + "/v1/terminal/shipments")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var pending struct {
				Shipments    []string `json:"shipments"`
				ShareUpdates []string `json:"share_updates"`
			}
			if err := decodeAnswer(resp, http.StatusOK, &pending); err != nil {
				return err
			}
			if len(pending.Shipments)+len(pending.ShareUpdates) == 0 {
				cmd.Println("no shipment waiting")
			}
			for _, raw := range pending.Shipments {
				if err := s.accept(cmd, tf.state, []byte(raw)); err != nil {
					return err
				}
			}
			for i, raw := range pending.ShareUpdates {
				id, err := pos.ShareUpdateFor([]byte(raw))
				if err != nil {
					return err
				}
				all, err := shipments(tf.state, nil)
				if err != nil {
					return err
				}
				for _, sh := range all {
					if sh.ShipmentID != id {
						continue
					}
					before := len(sh.VendorShares)
					if err := s.term.ApplyShares(&sh, []byte(raw)); err != nil {
						return fmt.Errorf("key shares for %s refused: %w", id, err)
					}
					name := filepath.Join(tf.state, "shipments", fmt.Sprintf("%s.shares-%d-%d.xml", id, time.Now().UnixNano(), i))
					if err := os.WriteFile(name, []byte(raw), 0o600); err != nil {
						return err
					}
					cmd.Printf("shipment %s: %d more vendor card(s) can now unlock it\n", id, len(sh.VendorShares)-before)
				}
			}
			return nil
		},
	}
	tf.add(sync)

	var of terminalFlags
	var operator, product string
	var quantity int
	order := &cobra.Command{
		Use:     "order",
		Short:   "order stock (a signed StockOrder); the center answers with the shipment",
		Example: "  evoucher terminal order --operator OP-ACME --product ACME-10 --quantity 20 --hsm-token terminal-T-1 --key-label terminal --cert terminal.pem",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := of.open(g)
			if err != nil {
				return err
			}
			defer s.release()
			if _, err := loadState(of.state); err != nil {
				return err
			}
			doc, err := s.term.Order(operator, product, quantity)
			if err != nil {
				return err
			}
			raw, err := s.exchange(doc)
			if err != nil {
				return err
			}
			return s.accept(cmd, of.state, raw)
		},
	}
	of.add(order)
	order.Flags().StringVar(&operator, "operator", "", "operator id")
	order.Flags().StringVar(&product, "product", "", "product code")
	order.Flags().IntVar(&quantity, "quantity", 10, "codes wanted")

	var sf terminalFlags
	var count int
	var sellProduct, vendor, cardToken, cardLabel, cardCert string
	sell := &cobra.Command{
		Use:   "sell",
		Short: "sell codes: each decrypted with the terminal's share and the inserted vendor card's share, printed as a ticket",
		Long: `sell opens the vendor card (its token; the card PIN from EVOUCHER_CARD_PIN), and for each code
unwraps the terminal's share in the terminal's token and the card's share in the card, combines
them, decrypts one code and prints its ticket. The sale is recorded locally for the next report.`,
		Example: "  EVOUCHER_CARD_PIN=… evoucher terminal sell --count 2 --vendor V-1 --card-token card-V-1 --card-label card --card-cert v1.pem …",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := sf.open(g)
			if err != nil {
				return err
			}
			defer s.release()
			st, err := loadState(sf.state)
			if err != nil {
				return err
			}
			cfg, err := g.tokenConfig()
			if err != nil {
				return err
			}
			cfg.TokenLabel, cfg.PIN = cardToken, pkcs11.PIN(os.Getenv("EVOUCHER_CARD_PIN"))
			card, err := pkcs11.Open(cfg)
			if err != nil {
				return fmt.Errorf("vendor card: %w", err)
			}
			defer card.Close()
			ck, err := card.FindRSAKey(cardLabel)
			if err != nil {
				return fmt.Errorf("vendor card key: %w", err)
			}
			cc, err := readCertPEM(cardCert)
			if err != nil {
				return err
			}
			resp, err := s.hc.Get(s.server + "/pki/crl")
			if err != nil {
				return err
			}
			crl, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if _, err := s.term.CheckCard(cc, crl); err != nil {
				return err
			}
			all, err := shipments(sf.state, s.term)
			if err != nil {
				return err
			}
			sold := 0
			for _, sh := range all {
				if sellProduct != "" && sh.Product.Code != sellProduct {
					continue
				}
				for _, c := range sh.Codes {
					if sold == count {
						break
					}
					if _, done := st.Sold[c.Serial]; done {
						continue
					}
					pin, err := s.term.Reveal(sh, pos.Card{Vendor: vendor, Key: ck, Cert: cc}, c.Serial)
					if err != nil {
						return err
					}
					st.Ticket++
					sale := message.Sale{Serial: c.Serial, Ticket: fmt.Sprintf("%s-%06d", s.term.ID, st.Ticket), Vendor: vendor, Time: time.Now().UTC()}
					st.Sold[c.Serial] = sale
					st.Unsent = append(st.Unsent, c.Serial)
					if err := st.save(sf.state); err != nil { // recorded before printed
						pin.Zero()
						return err
					}
					cmd.Printf("---- ticket %s ----\n%s %d.%02d %s   serial %s\nPIN %s\n%s\n", sale.Ticket, sh.Product.Code,
						sh.Product.FaceValue/100, sh.Product.FaceValue%100, sh.Product.Currency, c.Serial, string(pin),
						strings.ReplaceAll(sh.RefillTemplate, "{PIN}", string(pin)))
					pin.Zero()
					sold++
				}
			}
			if sold < count {
				return fmt.Errorf("sold %d of %d: no more stock here, order or sync", sold, count)
			}
			return nil
		},
	}
	sf.add(sell)
	sell.Flags().IntVar(&count, "count", 1, "codes to sell")
	sell.Flags().StringVar(&sellProduct, "product", "", "product code (default: any)")
	sell.Flags().StringVar(&vendor, "vendor", "", "the salesman's vendor id")
	sell.Flags().StringVar(&cardToken, "card-token", "", "the vendor card's token label")
	sell.Flags().StringVar(&cardLabel, "card-label", "card", "the card key's label")
	sell.Flags().StringVar(&cardCert, "card-cert", "", "the card's certificate")

	var rf terminalFlags
	report := &cobra.Command{
		Use:     "report",
		Short:   "send the sales not yet reported and the stock per product (a signed SalesReport)",
		Example: "  evoucher terminal report --hsm-token terminal-T-1 --key-label terminal --cert terminal.pem",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := rf.open(g)
			if err != nil {
				return err
			}
			defer s.release()
			st, err := loadState(rf.state)
			if err != nil {
				return err
			}
			var sales []message.Sale
			for _, serial := range st.Unsent {
				sales = append(sales, st.Sold[serial])
			}
			stock, err := stockLevels(rf.state, st)
			if err != nil {
				return err
			}
			doc, err := s.term.Report(st.Seq+1, sales, stock)
			if err != nil {
				return err
			}
			raw, err := s.exchange(doc)
			if err != nil {
				return err
			}
			rc, err := s.term.OpenReceiptFor(raw, doc)
			if err != nil {
				return err
			}
			st.Seq++
			st.Unsent = nil
			if err := st.save(rf.state); err != nil {
				return err
			}
			cmd.Printf("report %d sent: %s\n", st.Seq, rc.Detail)
			return nil
		},
	}
	rf.add(report)

	var kf terminalFlags
	stock := &cobra.Command{
		Use:   "stock",
		Short: "unsold codes held, per product",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := loadState(kf.state)
			if err != nil {
				return err
			}
			levels, err := stockLevels(kf.state, st)
			if err != nil {
				return err
			}
			for _, l := range levels {
				cmd.Printf("%s %s: %d unsold\n", l.Operator, l.Product, l.Count)
			}
			return nil
		},
	}
	stock.Flags().StringVar(&kf.state, "state", "terminal-state", "the terminal's local directory")
	cmd.AddCommand(sync, order, sell, report, stock)
	return cmd
}

func stockLevels(dir string, st *termState) ([]message.StockLevel, error) {
	all, err := shipments(dir, nil)
	if err != nil {
		return nil, err
	}
	counts := map[[2]string]int{}
	for _, sh := range all {
		k := [2]string{sh.Product.Operator, sh.Product.Code}
		counts[k] += 0
		for _, c := range sh.Codes {
			if _, sold := st.Sold[c.Serial]; !sold {
				counts[k]++
			}
		}
	}
	var out []message.StockLevel
	for k, n := range counts {
		out = append(out, message.StockLevel{Operator: k[0], Product: k[1], Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Operator+out[i].Product < out[j].Operator+out[j].Product })
	return out, nil
}

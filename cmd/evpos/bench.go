package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/pki/pkcs11"
	"github.com/evoucher/evoucher/pos"
	"github.com/evoucher/evoucher/pos/postest"
	"github.com/evoucher/evoucher/xml/message"
)

// newBenchCmd is `make bench-pos`: the latency of one sale — the code decrypted with the two
// shares (terminal token and card, SoftHSM2) and the sale committed durably (SQLite WAL,
// synchronous=FULL) — over many sales, no printer.
func newBenchCmd() *cobra.Command {
	var sales int
	cmd := &cobra.Command{
		Use:    "bench",
		Short:  "measure POS sale latency (decrypt + durable record, no printer)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBench(cmd, sales)
		},
	}
	cmd.Flags().IntVar(&sales, "sales", 10_000, "sales to measure")
	return cmd
}

func runBench(cmd *cobra.Command, n int) error {
	dir, err := os.MkdirTemp("", "evpos-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf, err := pkcs11.SoftHSMDir(filepath.Join(dir, "softhsm"))
	if err != nil {
		return err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	module, err := pkcs11.FindSoftHSMModule()
	if err != nil {
		return err
	}
	token := func(label string) (*pkcs11.RSAKey, func(), error) {
		pin := pkcs11.PIN(randHex())
		if err := pkcs11.InitSoftHSMToken(conf, label, pkcs11.PIN(randHex()), pin); err != nil {
			return nil, nil, err
		}
		tok, err := pkcs11.Open(pkcs11.Config{Module: module, TokenLabel: label, PIN: pin})
		if err != nil {
			return nil, nil, err
		}
		k, _, err := tok.RSAKey(label, 2048)
		return k, func() { _ = tok.Close() }, err
	}
	tk, closeT, err := token("terminal")
	if err != nil {
		return err
	}
	defer closeT()
	ck, closeC, err := token("card")
	if err != nil {
		return err
	}
	defer closeC()
	w, err := postest.New("T-B", "R-B", tk)
	if err != nil {
		return err
	}
	card, err := w.Card("V-B", ck)
	if err != nil {
		return err
	}
	raw, _, err := w.Shipment("S-B", "P10", 500_000_000_000, n, card)
	if err != nil {
		return err
	}
	w.Offer(raw)
	store, err := pos.OpenStore(pos.StoreConfig{Path: filepath.Join(dir, "pos.db"), Terminal: "T-B"})
	if err != nil {
		return err
	}
	defer store.Close()
	till := &pos.Till{Term: w.Term, Store: store}
	ctx := context.Background()
	if _, err := till.Sync(ctx, w); err != nil {
		return err
	}
	sess, err := pos.Activate(w.Term, store, ck, card.Cert, time.Hour)
	if err != nil {
		return err
	}
	defer sess.Close()
	cmd.Printf("POS sale latency: %d sales from one %d-code shipment; terminal and card keys in SoftHSM2 tokens;\n", n, n)
	cmd.Printf("each sale: next code off the shelf, decrypted (AES-256-GCM under the shipment key), sale committed (SQLite WAL, synchronous=FULL)\n")
	lat := make([]time.Duration, 0, n)
	var first time.Duration
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		var pin message.PIN
		if _, err := store.Sell("P10", "V-B", func(c pos.ShelfCode) error {
			var err error
			pin, err = sess.Open(c)
			return err
		}); err != nil {
			return fmt.Errorf("sale %d: %w", i, err)
		}
		pin.Zero()
		d := time.Since(t0)
		if i == 0 {
			first = d // unwraps both shares in the tokens: not a steady-state sale
			continue
		}
		lat = append(lat, d)
	}
	total := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	cmd.Printf("first sale (unwraps the terminal share and the card share in their tokens): %.2f ms\n", float64(first.Microseconds())/1000)
	cmd.Printf("steady state over %d sales: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms; %.0f sales/s\n",
		len(lat), q(0.5), q(0.9), q(0.99), q(1), float64(n)/total.Seconds())
	cmd.Printf("target p99 ≤ 2 ms: %s (%.1f× headroom)\n", map[bool]string{true: "met", false: "MISSED"}[q(0.99) <= 2], 2/q(0.99))
	left, _ := store.Stock()
	if len(left) != 1 || left[0].OnShelf != 0 {
		return fmt.Errorf("after %d sales the shelf is %+v", n, left)
	}
	b, _ := json.Marshal(struct {
		Bench string  `json:"bench"`
		Sales int     `json:"sales"`
		P50   float64 `json:"p50_ms"`
		P99   float64 `json:"p99_ms"`
	}{"pos", n, q(0.5), q(0.99)})
	cmd.Println(string(b))
	return nil
}

func randHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

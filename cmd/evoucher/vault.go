package main

import (
	"encoding/csv"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newVaultCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "the code vault: stock and key rotation"}
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate-kek",
		Short: "create a new key-encryption key, re-wrap every data key under it, destroy the old one",
		Long: `rotate-kek creates a new AES-256 KEK in the token and makes it active, re-wraps every batch
data key under it in small transactions (online: the server keeps running; no code row is
touched), then destroys the old KEK in the token. An interrupted rotation is finished by the
next run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.openCenter(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			r, err := c.vault.RotateKEK(cmd.Context())
			if err != nil {
				return err
			}
			cmd.Printf("KEK rotated from %s to %s: %d data keys re-wrapped, %s destroyed in the token\n", r.Old, r.New, r.Rewrapped, r.Old)
			return nil
		},
	}, &cobra.Command{
		Use:   "stock",
		Short: "codes in the vault per operator, product and state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.openCenter(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			stock, err := c.vault.Stock(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "OPERATOR\tPRODUCT\tSTATE\tCODES\tFACE VALUE")
			for _, s := range stock {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d.%02d %s\n", s.Operator, s.Product, s.State, s.Codes, s.FaceValue/100, s.FaceValue%100, s.Currency)
			}
			return tw.Flush()
		},
	}, newQuarantineCmd(g))
	return cmd
}

func newQuarantineCmd(g *globals) *cobra.Command {
	var operator, terminal string
	var asCSV bool
	cmd := &cobra.Command{
		Use:     "quarantine",
		Short:   "serials quarantined from revoked or lost terminals, for the operators to block",
		Example: "  evoucher vault quarantine --operator OP-ACME --csv > block.csv",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.openCenter(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			codes, err := c.vault.Quarantined(cmd.Context(), operator, terminal)
			if err != nil {
				return err
			}
			if asCSV {
				w := csv.NewWriter(cmd.OutOrStdout())
				_ = w.Write([]string{"operator", "product", "serial", "terminal", "expires"})
				for _, q := range codes {
					_ = w.Write([]string{q.Operator, q.Product, q.Serial, q.Terminal, q.Expires.Format(time.DateOnly)})
				}
				w.Flush()
				return w.Error()
			}
			cmd.Printf("%d codes quarantined\n", len(codes))
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "OPERATOR\tPRODUCT\tSERIAL\tTERMINAL\tEXPIRES")
			for _, q := range codes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", q.Operator, q.Product, q.Serial, q.Terminal, q.Expires.Format(time.DateOnly))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&operator, "operator", "", "only this operator's codes")
	cmd.Flags().StringVar(&terminal, "terminal", "", "only codes from this terminal")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "CSV for the operator")
	return cmd
}

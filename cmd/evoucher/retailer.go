package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/retailer"
)

func newRetailerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retailer",
		Short: "retailers, their terminals, vendor cards and terminal stock levels (admin)",
	}
	cmd.AddCommand(newRetailerCreateCmd(g), newAddTerminalCmd(g), newAddVendorCmd(g), newSetLevelCmd(g), newSetModeCmd(g), newRetailerListCmd(g))
	return cmd
}

// withRetailers opens the database and runs f on a retailer registry.
func withRetailers(ctx context.Context, g *globals, f func(*retailer.Registry) error) error {
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	reg, err := retailer.New(db)
	if err != nil {
		return err
	}
	return f(reg)
}

func newRetailerCreateCmd(g *globals) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:     "create ID",
		Short:   "record a retailer",
		Example: `  evoucher retailer create R-CORNER --name "Corner Shop"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRetailers(cmd.Context(), g, func(reg *retailer.Registry) error {
				if err := reg.CreateRetailer(cmd.Context(), retailer.Retailer{ID: args[0], Name: name}); err != nil {
					return err
				}
				cmd.Printf("retailer %s (%s) created; add its terminals with `evoucher retailer add-terminal --retailer %s --id T-1 --name …`\n", args[0], name, args[0])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the retailer's name")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newAddTerminalCmd(g *globals) *cobra.Command {
	var t retailer.Terminal
	cmd := &cobra.Command{
		Use:   "add-terminal",
		Short: "record a POS terminal of a retailer",
		Example: `  evoucher retailer add-terminal --retailer R-CORNER --id T-12 --name "front till"
  evoucher retailer add-terminal --retailer R-CORNER --id T-13 --name "kiosk" --online`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRetailers(cmd.Context(), g, func(reg *retailer.Registry) error {
				if err := reg.AddTerminal(cmd.Context(), t); err != nil {
					return err
				}
				mode := "offline mode: it sells from shipped stock and reports its sales"
				if t.OnlineMode {
					mode = "online mode: the center authorises each sale"
				}
				cmd.Printf("terminal %s (%s) added to retailer %s, %s; enrol it with `evoucher pki issue-code --role terminal --entity %s`\n",
					t.ID, t.Name, t.Retailer, mode, t.ID)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&t.Retailer, "retailer", "", "the retailer's id")
	f.StringVar(&t.ID, "id", "", "terminal id (the entity of its certificate)")
	f.StringVar(&t.Name, "name", "", "a name the retailer recognises, e.g. where it stands")
	f.BoolVar(&t.OnlineMode, "online", false, "have the center authorise each sale before the ticket prints")
	for _, r := range []string{"retailer", "id", "name"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func newSetModeCmd(g *globals) *cobra.Command {
	var terminal string
	var online bool
	cmd := &cobra.Command{
		Use:   "set-mode",
		Short: "switch a terminal between offline selling and online authorisation",
		Long: `set-mode switches a terminal between offline mode (it sells from shipped stock and reports
its sales at the next sync) and online mode (the center authorises each sale before the ticket
prints). The terminal learns the change at its next sync.`,
		Example: `  evoucher retailer set-mode --terminal T-12 --online
  evoucher retailer set-mode --terminal T-12 --online=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRetailers(cmd.Context(), g, func(reg *retailer.Registry) error {
				if err := reg.SetOnlineMode(cmd.Context(), terminal, online); err != nil {
					return err
				}
				mode := "offline mode"
				if online {
					mode = "online mode"
				}
				cmd.Printf("terminal %s set to %s; it takes effect at its next sync\n", terminal, mode)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&terminal, "terminal", "", "the terminal's id")
	cmd.Flags().BoolVar(&online, "online", false, "have the center authorise each sale before the ticket prints")
	_ = cmd.MarkFlagRequired("terminal")
	return cmd
}

func newAddVendorCmd(g *globals) *cobra.Command {
	var v retailer.Vendor
	cmd := &cobra.Command{
		Use:     "add-vendor",
		Short:   "record a salesman's vendor card for a retailer",
		Example: `  evoucher retailer add-vendor --retailer R-CORNER --id V-7 --name "Alice Martin"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRetailers(cmd.Context(), g, func(reg *retailer.Registry) error {
				if err := reg.AddVendor(cmd.Context(), v); err != nil {
					return err
				}
				cmd.Printf("vendor card %s (%s) added to retailer %s; enrol the card with `evoucher pki issue-code --role vendor --entity %s`\n",
					v.ID, v.Name, v.Retailer, v.ID)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&v.Retailer, "retailer", "", "the retailer's id")
	f.StringVar(&v.ID, "id", "", "vendor card id (the entity of its certificate)")
	f.StringVar(&v.Name, "name", "", "the salesman's name")
	for _, r := range []string{"retailer", "id", "name"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func newSetLevelCmd(g *globals) *cobra.Command {
	var l retailer.Level
	cmd := &cobra.Command{
		Use:   "set-level",
		Short: "set the stock band the center keeps a terminal in for one product",
		Long: `set-level records, or replaces, the minimum and maximum stock of one product on one terminal:
when the terminal's stock falls below the minimum it is filled back up to the maximum,
automatically unless --auto-reorder=false (then only when the terminal orders).`,
		Example: `  evoucher retailer set-level --terminal T-12 --operator OP-ACME --product ACME-10 --min 10 --max 50
  evoucher retailer set-level --terminal T-12 --operator OP-ACME --product ACME-20 --min 0 --max 5 --auto-reorder=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRetailers(cmd.Context(), g, func(reg *retailer.Registry) error {
				if err := reg.SetLevel(cmd.Context(), l); err != nil {
					return err
				}
				rt, err := reg.RetailerOf(cmd.Context(), l.Terminal)
				if err != nil {
					return err
				}
				how := fmt.Sprintf("refilled up to %d codes automatically whenever its stock falls below %d", l.Max, l.Min)
				if !l.AutoReorder {
					how = fmt.Sprintf("kept between %d and %d codes, refilled only when the terminal orders", l.Min, l.Max)
				}
				cmd.Printf("terminal %s: %s/%s %s; see `evoucher retailer list --retailer %s`\n", l.Terminal, l.Operator, l.Product, how, rt.ID)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&l.Terminal, "terminal", "", "terminal id")
	f.StringVar(&l.Operator, "operator", "", "operator id")
	f.StringVar(&l.Product, "product", "", "product code")
	f.IntVar(&l.Min, "min", 0, "refill when the terminal holds fewer codes than this")
	f.IntVar(&l.Max, "max", 0, "refill up to this many codes")
	f.BoolVar(&l.AutoReorder, "auto-reorder", true, "ship without waiting for the terminal to order")
	for _, r := range []string{"terminal", "operator", "product", "min", "max"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func newRetailerListCmd(g *globals) *cobra.Command {
	var retailerID string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "list the retailers, or one retailer's terminals, stock levels and vendor cards",
		Example: `  evoucher retailer list
  evoucher retailer list --retailer R-CORNER`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRetailers(cmd.Context(), g, func(reg *retailer.Registry) error {
				if retailerID == "" {
					return listRetailers(cmd.Context(), cmd.OutOrStdout(), reg)
				}
				return showRetailer(cmd.Context(), cmd.OutOrStdout(), reg, retailerID, time.Now())
			})
		},
	}
	cmd.Flags().StringVar(&retailerID, "retailer", "", "show this retailer's terminals, levels and vendor cards")
	return cmd
}

func listRetailers(ctx context.Context, w io.Writer, reg *retailer.Registry) error {
	rs, err := reg.Retailers(ctx)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		fmt.Fprintln(w, "no retailers yet: create one with `evoucher retailer create ID --name …`")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RETAILER\tNAME\tTERMINALS\tVENDOR CARDS")
	for _, r := range rs {
		ts, err := reg.Terminals(ctx, r.ID)
		if err != nil {
			return err
		}
		vs, err := reg.Vendors(ctx, r.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", r.ID, r.Name, len(ts), len(vs))
	}
	return tw.Flush()
}

// showRetailer prints a retailer's terminals (with the certificate each would receive
// shipments under), their stock levels and its vendor cards.
func showRetailer(ctx context.Context, w io.Writer, reg *retailer.Registry, id string, now time.Time) error {
	r, err := reg.Retailer(ctx, id)
	if err != nil {
		return err
	}
	ts, err := reg.Terminals(ctx, id)
	if err != nil {
		return err
	}
	vs, err := reg.Vendors(ctx, id)
	if err != nil {
		return err
	}
	cards, err := reg.VendorCards(ctx, id, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "retailer %s (%s)\n\n", r.ID, r.Name)

	var levels []retailer.Level
	if len(ts) == 0 {
		fmt.Fprintf(w, "no terminals: add one with `evoucher retailer add-terminal --retailer %s --id … --name …`\n", id)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TERMINAL\tNAME\tSTATUS\tMODE\tLAST SEEN\tCERTIFICATE")
		for _, t := range ts {
			mode := "offline"
			if t.OnlineMode {
				mode = "online"
			}
			cert, err := reg.TerminalCertificate(ctx, t.ID, now)
			if err != nil && evoucher.ReasonOf(err) != "no_certificate" {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Status, mode, when(t.LastSeenAt), certState(cert, pki.RoleTerminal, t.ID))
			ls, err := reg.Levels(ctx, t.ID)
			if err != nil {
				return err
			}
			levels = append(levels, ls...)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	if len(levels) == 0 && len(ts) > 0 {
		fmt.Fprintln(w, "no stock levels: set them with `evoucher retailer set-level --terminal … --operator … --product … --min … --max …`")
	} else if len(levels) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TERMINAL\tOPERATOR\tPRODUCT\tMIN\tMAX\tAUTO-REORDER\tREPORTED STOCK")
		for _, l := range levels {
			auto := "yes"
			if !l.AutoReorder {
				auto = "no"
			}
			stock := "not reported"
			if l.ReportedStock != nil {
				stock = fmt.Sprintf("%d (%s)", *l.ReportedStock, when(l.ReportedAt))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", l.Terminal, l.Operator, l.Product, l.Min, l.Max, auto, stock)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	if len(vs) == 0 {
		fmt.Fprintf(w, "no vendor cards: add one with `evoucher retailer add-vendor --retailer %s --id … --name …`\n", id)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VENDOR CARD\tNAME\tSTATUS\tCERTIFICATE")
	for _, v := range vs {
		state := "-"
		if v.Status == retailer.StatusActive {
			state = certState(cards[v.ID], pki.RoleVendor, v.ID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.ID, v.Name, v.Status, state)
	}
	return tw.Flush()
}

// certState names the certificate shipments would be wrapped to, or says how to get one.
func certState(cert *x509.Certificate, role pki.Role, entity string) string {
	if cert == nil {
		return fmt.Sprintf("none: `evoucher pki issue-code --role %s --entity %s`", role, entity)
	}
	return fmt.Sprintf("%s (until %s)", pki.SerialOf(cert), cert.NotAfter.UTC().Format("2006-01-02"))
}

// when prints an optional instant.
func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

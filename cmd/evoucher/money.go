package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/ledger"
)

func newMoneyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "money",
		Short: "retailer accounts, commissions, margins, top-ups, balances, statements and clearing (admin)",
		Long: `money keeps the platform's books: a double-entry ledger in minor units. Balances are what the
platform owes the party: a retailer's negative balance is what it owes.`,
	}
	account := &cobra.Command{Use: "account", Short: "retailers' money accounts"}
	account.AddCommand(newMoneyAccountSetCmd(g))
	commission := &cobra.Command{Use: "commission", Short: "retailers' commissions"}
	commission.AddCommand(newMoneyCommissionSetCmd(g))
	margin := &cobra.Command{Use: "margin", Short: "the platform's margin on operators' codes"}
	margin.AddCommand(newMoneyMarginSetCmd(g))
	cmd.AddCommand(account, commission, margin, newMoneyTopUpCmd(g), newMoneyBalancesCmd(g), newMoneyRatesCmd(g),
		newMoneyStatementCmd(g), newMoneyClearingCmd(g))
	return cmd
}

// withLedger opens the database and runs f on a ledger without a signing key.
func withLedger(ctx context.Context, g *globals, f func(*ledger.Ledger) error) error {
	db, err := g.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	l, err := ledger.New(ledger.Config{DB: db})
	if err != nil {
		return err
	}
	return f(l)
}

func newMoneyAccountSetCmd(g *globals) *cobra.Command {
	var mode, limit, currency, settle string
	cmd := &cobra.Command{
		Use:   "set RETAILER",
		Short: "set a retailer's money terms: prepaid or credit, its limit, currency and when it pays",
		Long: `set records or changes a retailer's money terms. A prepaid retailer pays before it takes stock;
a credit retailer may owe up to --credit-limit. --settle on-shipment charges it when a shipment
is sent; on-sale (consignment) when each sale is reported or authorised. Until its terms are
set, a retailer is not charged.`,
		Example: `  evoucher money account set R-CORNER --mode prepaid --currency EUR
  evoucher money account set R-CORNER --mode credit --credit-limit 500.00 --currency EUR --settle on-sale`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var lim int64
			if limit != "" {
				var err error
				if lim, err = ledger.ParseAmount(limit, currency); err != nil {
					return err
				}
			}
			t := ledger.Terms{Retailer: args[0], Currency: currency, Mode: mode, CreditLimit: lim, Settlement: strings.ReplaceAll(settle, "-", "_")}
			return withLedger(cmd.Context(), g, func(l *ledger.Ledger) error {
				if err := l.SetTerms(cmd.Context(), t); err != nil {
					return err
				}
				cmd.Printf("retailer %s: %s account in %s, credit limit %s, pays %s\n", t.Retailer, t.Mode, t.Currency,
					ledger.FormatAmount(t.CreditLimit, t.Currency), strings.ReplaceAll(t.Settlement, "_", " "))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&mode, "mode", ledger.ModePrepaid, "prepaid or credit")
	cmd.Flags().StringVar(&limit, "credit-limit", "", "credit limit in major units, like 500.00 (credit accounts)")
	cmd.Flags().StringVar(&currency, "currency", "EUR", "ISO 4217 currency of the account")
	cmd.Flags().StringVar(&settle, "settle", "on-shipment", "on-shipment or on-sale (consignment)")
	return cmd
}

func parseBPS(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, evoucher.Errorf(evoucher.KindInvalid, "bad_rate", "--bps %q is not a whole number of basis points (500 = 5%%)", s)
	}
	return n, nil
}

// setBPSCmd makes cmd set a rate given in basis points with --bps: set stores it, and what it
// prints says what now holds.
func setBPSCmd(g *globals, cmd *cobra.Command, flagUsage string, set func(ctx context.Context, l *ledger.Ledger, args []string, bps int) (string, error)) *cobra.Command {
	var bps string
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		n, err := parseBPS(bps)
		if err != nil {
			return err
		}
		return withLedger(cmd.Context(), g, func(l *ledger.Ledger) error {
			said, err := set(cmd.Context(), l, args, n)
			if err != nil {
				return err
			}
			cmd.Println(said)
			return nil
		})
	}
	cmd.Flags().StringVar(&bps, "bps", "", flagUsage)
	_ = cmd.MarkFlagRequired("bps")
	return cmd
}

// percent writes basis points as a percentage: 250 → 2.50%.
func percent(bps int) string { return fmt.Sprintf("%d.%02d%%", bps/100, bps%100) }

func newMoneyCommissionSetCmd(g *globals) *cobra.Command {
	return setBPSCmd(g, &cobra.Command{
		Use:   "set RETAILER OPERATOR PRODUCT",
		Short: "set a retailer's commission on a product, in basis points of the face value ('*' for every operator or product)",
		Example: `  evoucher money commission set R-CORNER OP-ACME ACME-10 --bps 500
  evoucher money commission set R-CORNER '*' '*' --bps 300`,
		Args: cobra.ExactArgs(3),
	}, "commission in basis points (500 = 5%)", func(ctx context.Context, l *ledger.Ledger, args []string, n int) (string, error) {
		return fmt.Sprintf("retailer %s earns %s on %s of %s", args[0], percent(n), args[2], args[1]), l.SetCommission(ctx, args[0], args[1], args[2], n)
	})
}

func newMoneyMarginSetCmd(g *globals) *cobra.Command {
	return setBPSCmd(g, &cobra.Command{
		Use:   "set OPERATOR PRODUCT",
		Short: "set the platform's margin on an operator's product, in basis points ('*' for every product)",
		Long: `set sets the platform's margin: the operator is owed the face value less the margin; the
platform keeps the margin less the retailer's commission.`,
		Example: `  evoucher money margin set OP-ACME '*' --bps 800`,
		Args:    cobra.ExactArgs(2),
	}, "margin in basis points (800 = 8%)", func(ctx context.Context, l *ledger.Ledger, args []string, n int) (string, error) {
		return fmt.Sprintf("the platform's margin on %s of %s is %s", args[1], args[0], percent(n)), l.SetMargin(ctx, args[0], args[1], n)
	})
}

func newMoneyTopUpCmd(g *globals) *cobra.Command {
	var method, reference, by string
	cmd := &cobra.Command{
		Use:   "topup RETAILER AMOUNT",
		Short: "record money a retailer paid (bank transfer or cash), with its unique reference",
		Example: `  evoucher money topup R-CORNER 250.00 --method bank --reference "SEPA 2026-11-30 0042"
  evoucher money topup R-CORNER 50 --method cash --reference RC-0007`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withLedger(cmd.Context(), g, func(l *ledger.Ledger) error {
				t, err := l.Terms(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				amount, err := ledger.ParseAmount(args[1], t.Currency)
				if err != nil {
					return err
				}
				if by == "" {
					by = "cli:" + os.Getenv("USER")
				}
				tu, err := l.RecordTopUp(cmd.Context(), ledger.TopUp{Retailer: args[0], Amount: amount, Method: method, Reference: reference, By: by})
				if err != nil {
					return err
				}
				cmd.Printf("top-up %d: %s credited to retailer %s (%s, reference %q)\n", tu.ID, ledger.FormatAmount(tu.Amount, tu.Currency), tu.Retailer, tu.Method, tu.Reference)
				if tu.AlarmResolved {
					cmd.Printf("retailer %s can order again: its credit_limit alarm is resolved\n", tu.Retailer)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&method, "method", ledger.MethodBank, "bank or cash")
	cmd.Flags().StringVar(&reference, "reference", "", "the bank transfer's or cash receipt's reference (unique)")
	cmd.Flags().StringVar(&by, "by", "", "who records it (default cli:$USER)")
	_ = cmd.MarkFlagRequired("reference")
	return cmd
}

func newMoneyBalancesCmd(g *globals) *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "balances",
		Short: "every account's balance; retailers with their terms and what they may still order",
		Example: `  evoucher money balances
  evoucher money balances --check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withLedger(cmd.Context(), g, func(l *ledger.Ledger) error {
				bs, err := l.Balances(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(tw, "ACCOUNT\tBALANCE\tMODE\tPAYS\tLIMIT\tCONSIGNED\tAVAILABLE\t")
				for _, b := range bs {
					if b.Mode == "" {
						fmt.Fprintf(tw, "%s\t%s\t\t\t\t\t\t\n", b.Account, ledger.FormatAmount(b.Balance, b.Currency))
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", b.Account, ledger.FormatAmount(b.Balance, b.Currency), b.Mode,
						strings.ReplaceAll(b.Settlement, "_", " "), ledger.FormatMinor(b.CreditLimit, b.Currency),
						ledger.FormatMinor(b.Consigned, b.Currency), ledger.FormatMinor(b.Available, b.Currency))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if check {
					if err := l.Check(cmd.Context()); err != nil {
						return err
					}
					cmd.Println("books checked: every balance is the sum of its entries, and every currency's entries sum to zero")
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "also check the books (balances against entries, entries summing to zero)")
	return cmd
}

func newMoneyRatesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rates",
		Short: "commission and margin rates as set",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withLedger(cmd.Context(), g, func(l *ledger.Ledger) error {
				rs, err := l.Rates(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RATE\tRETAILER\tOPERATOR\tPRODUCT\tBPS")
				for _, r := range rs {
					what := "commission"
					if r.Retailer == "" {
						what = "margin"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", what, r.Retailer, r.Operator, r.Product, r.BPS)
				}
				return tw.Flush()
			})
		},
	}
}

// parseWhen reads a period bound: a date (UTC midnight), an RFC 3339 time, or "now".
func parseWhen(flag, s string) (time.Time, error) {
	if s == "now" {
		return time.Now().UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, evoucher.Errorf(evoucher.KindInvalid, "bad_time", "--%s %q is not a date (2026-11-01), an RFC 3339 time or now", flag, s)
	}
	return t.UTC(), nil
}

func newMoneyStatementCmd(g *globals) *cobra.Command {
	var from, to, format, out, kind string
	var check bool
	cmd := &cobra.Command{
		Use:   "statement PARTY",
		Short: "make the signed statement of a retailer or an operator for a period, as XML, CSV or PDF",
		Long: `statement makes the statement of a retailer's or an operator's account for [--from, --to): its
stock movements, top-ups, and opening and closing balances, equal to the ledger's entries. It is
signed with the center-sign key (so it runs on the center, with its token), stored, and appended
to the exchange log; --format csv or pdf renders the same statement.`,
		Example: `  evoucher money statement R-CORNER --from 2026-11-01 --to 2026-12-01 --format pdf -o corner-2026-11.pdf
  evoucher money statement OP-ACME --from 2026-11-01 --to now -o acme.xml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseWhen("from", from)
			if err != nil {
				return err
			}
			t, err := parseWhen("to", to)
			if err != nil {
				return err
			}
			if format == "" {
				format = strings.TrimPrefix(filepath.Ext(out), ".")
			}
			if format != "xml" && format != "csv" && format != "pdf" {
				return evoucher.Errorf(evoucher.KindInvalid, "bad_format", "--format %q is not xml, csv or pdf", format)
			}
			c, err := g.openCenter(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			if kind == "" {
				if kind, err = c.money.PartyKindOf(cmd.Context(), args[0]); err != nil {
					return err
				}
			}
			st, err := c.money.GenerateStatement(cmd.Context(), ledger.StatementRequest{PartyKind: kind, Party: args[0], From: f, To: t})
			if err != nil {
				return err
			}
			write := func(w io.Writer) error {
				switch format {
				case "csv":
					return ledger.WriteStatementCSV(w, st.Content)
				case "pdf":
					return ledger.WriteStatementPDF(w, st.Content)
				}
				_, err := w.Write(st.Document)
				return err
			}
			if out == "" || out == "-" {
				return write(cmd.OutOrStdout())
			}
			file, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := write(file); err != nil {
				file.Close()
				return err
			}
			if err := file.Close(); err != nil {
				return err
			}
			for _, tot := range st.Content.Totals {
				cmd.PrintErrf("statement %s of %s %s: %s opening %s, movements %s, closing %s; written to %s\n", st.ID, kind, args[0], tot.Currency,
					ledger.FormatMinor(tot.Opening, tot.Currency), ledger.FormatMinor(tot.Net, tot.Currency), ledger.FormatMinor(tot.Closing, tot.Currency), out)
			}
			if check {
				return reconcile(cmd, c.money, st)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "also reconcile the statement with the ledger: its balances and lines against the party account's entries")
	cmd.Flags().StringVar(&from, "from", "", "start of the period: a date (UTC), an RFC 3339 time")
	cmd.Flags().StringVar(&to, "to", "now", "end of the period, excluded")
	cmd.Flags().StringVar(&format, "format", "", "xml, csv or pdf (default: from -o's extension, else xml)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default stdout)")
	cmd.Flags().StringVar(&kind, "kind", "", "retailer or operator, when the id is both")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func newMoneyClearingCmd(g *globals) *cobra.Command {
	var from, to, format string
	cmd := &cobra.Command{
		Use:   "clearing",
		Short: "the clearing of a period: what retailers were charged, split among the operators and the platform",
		Example: `  evoucher money clearing --from 2026-11-01 --to 2026-12-01
  evoucher money clearing --from 2026-11-01 --to now --format csv > clearing.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseWhen("from", from)
			if err != nil {
				return err
			}
			t, err := parseWhen("to", to)
			if err != nil {
				return err
			}
			return withLedger(cmd.Context(), g, func(l *ledger.Ledger) error {
				c, err := l.Clearing(cmd.Context(), f, t)
				if err != nil {
					return err
				}
				if format == "csv" {
					return writeClearingCSV(cmd.OutOrStdout(), c)
				}
				cmd.Printf("clearing from %s to %s (end excluded)\n", c.From.Format(time.RFC3339), c.To.Format(time.RFC3339))
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "OPERATOR\tRETAILER\tPRODUCT\tCODES\tFACE VALUE\tRETAILER PAYS\tOPERATOR GETS\tPLATFORM KEEPS\t")
				for _, x := range c.Lines {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", x.Operator, x.Retailer, x.Product, x.Codes,
						ledger.FormatAmount(x.FaceValue, x.Currency), ledger.FormatMinor(x.RetailerPays, x.Currency),
						ledger.FormatMinor(x.OperatorGets, x.Currency), ledger.FormatMinor(x.PlatformKeeps, x.Currency))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				cmd.Println()
				tw = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOTAL\tAMOUNT\tCODES\tTOP-UPS")
				for _, group := range []struct {
					what string
					ts   []ledger.ClearingTotal
				}{{"owed to operator", c.Operators}, {"charged to retailer", c.Retailers}, {"kept by", c.Platform}} {
					for _, x := range group.ts {
						fmt.Fprintf(tw, "%s %s\t%s\t%d\t%s\n", group.what, x.Party, ledger.FormatAmount(x.Amount, x.Currency), x.Codes,
							ledger.FormatMinor(x.TopUps, x.Currency))
					}
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the period: a date (UTC), an RFC 3339 time")
	cmd.Flags().StringVar(&to, "to", "now", "end of the period, excluded")
	cmd.Flags().StringVar(&format, "format", "table", "table or csv")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func writeClearingCSV(w io.Writer, c ledger.Clearing) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"operator", "retailer", "product", "currency", "codes", "face_value", "commission", "margin", "retailer_pays", "operator_gets", "platform_keeps"})
	for _, x := range c.Lines {
		_ = cw.Write([]string{x.Operator, x.Retailer, x.Product, x.Currency, strconv.FormatInt(x.Codes, 10),
			ledger.FormatMinor(x.FaceValue, x.Currency), ledger.FormatMinor(x.Commission, x.Currency), ledger.FormatMinor(x.Margin, x.Currency),
			ledger.FormatMinor(x.RetailerPays, x.Currency), ledger.FormatMinor(x.OperatorGets, x.Currency), ledger.FormatMinor(x.PlatformKeeps, x.Currency)})
	}
	cw.Flush()
	return cw.Error()
}

// reconcile sets a statement against the ledger and says so (on stderr, so that a statement
// written to stdout stays clean); it fails when they differ.
func reconcile(cmd *cobra.Command, l *ledger.Ledger, st ledger.Statement) error {
	rec, err := l.Reconcile(cmd.Context(), st.Content)
	if err != nil {
		return err
	}
	for _, r := range rec {
		cmd.PrintErrf("reconciled: statement %s in %s: opening %s = the ledger's %s before the period; movements %s = lines %s = the ledger's %s in the period; closing %s; account %s\n",
			st.ID, r.Currency, ledger.FormatMinor(r.Opening, r.Currency), ledger.FormatMinor(r.LedgerOpening, r.Currency),
			ledger.FormatMinor(r.Net, r.Currency), ledger.FormatMinor(r.LinesNet, r.Currency), ledger.FormatMinor(r.LedgerNet, r.Currency),
			ledger.FormatMinor(r.Closing, r.Currency), r.Account)
	}
	if len(rec) == 0 {
		cmd.PrintErrf("reconciled: statement %s has no account movement and the ledger none either\n", st.ID)
	}
	return nil
}

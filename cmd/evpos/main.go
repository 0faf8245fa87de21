// Command evpos is the POS terminal program: enrolment, sync with the center, selling with a
// vendor card, tickets on a printer, reprints, returns and shift close, scriptable commands
// and an interactive screen for the clerk. It only wires: flags, environment and files are
// read here and handed to package pos as plain values.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "evpos:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "evpos",
		Short: "the evoucher POS terminal: sell recharge codes on printed tickets",
		Long: `evpos keeps the terminal's stock encrypted in a local store and decrypts one code only when it
prints a ticket, with the terminal's token and an activated vendor card.

Settings live in <dir>/config.json, written by enrol; flags override them. Secrets come from
the environment only: EVPOS_TOKEN_PIN (the terminal's token; EVOUCHER_HSM_PIN also works) and
EVPOS_CARD_PIN (the vendor card).

Without a subcommand, evpos opens the interactive screen.`,
		Example: `  evpos enrol --dir pos --server https://center:8443 --ca ca.pem --token terminal-T-1 --code ABCD-…
  evpos sync --dir pos
  EVPOS_CARD_PIN=… evpos sell --dir pos --product ACME-10 --count 2 --card-token card-V-1 --card-cert v1.pem
  evpos shift close --dir pos`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.load(cmd)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runScreen(cmd, g) },
	}
	g.addFlags(root)
	root.SetOut(os.Stdout)
	root.AddCommand(newEnrolCmd(g), newCardCmd(g), newSyncCmd(g), newOrderCmd(g), newStockCmd(g), newSellCmd(g), newReprintCmd(g), newResumeCmd(g),
		newReturnCmd(g), newShiftCmd(g), newStatusCmd(g), newScreenCmd(g), newBenchCmd())
	return root
}

package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/pos"
)

func newScreenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "screen",
		Short: "the clerk's interactive screen (also: evpos with no subcommand)",
		Long: `screen is the clerk's full-screen mode: stock per product (select one, Enter sells it), card
state, last sync, queue and alarms; keys c (insert card, PIN typed masked), x (card out),
r (reprint), y (sync), u (resume unprinted), k (close shift), q (quit). It fits 40 columns.
Tickets printed on the screen (--printer stdout) show in a preview, the only place a code
appears, wiped when closed.

Without a terminal (input from a pipe), or with --lines, it is a line-mode panel that reads
one command a line (h for help), for scripts and dumb terminals.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runScreen(cmd, g) },
	}
	return cmd
}

// runScreen opens the terminal and runs the full screen on a terminal, the line-mode panel
// otherwise.
func runScreen(cmd *cobra.Command, g *globals) error {
	s, err := g.open(cmd)
	if err != nil {
		return err
	}
	defer s.close()
	if !g.lines && cmd.InOrStdin() == os.Stdin && isTerminal(os.Stdin) && isTerminal(os.Stdout) {
		return runTUI(cmd.Context(), s, g, nil)
	}
	return runLines(cmd, g, s)
}

// runLines is the line-mode panel (stock per product, card state, last sync, alarms) redrawn
// after each command, at --width columns (40 for a handheld).
func runLines(cmd *cobra.Command, g *globals, s *session) error {
	in := bufio.NewScanner(cmd.InOrStdin())
	var cf cardFlags
	msg := "type h for help"
	for {
		drawScreen(cmd, g, s, msg)
		if !in.Scan() {
			return in.Err()
		}
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		msg = ""
		switch f[0] {
		case "q", "quit":
			return nil
		case "h", "help":
			msg = "c TOKEN CERT: card in (PIN from EVPOS_CARD_PIN)\nx: card out  s PRODUCT [N]: sell\nr TICKET: reprint  u: resume\ny: sync  k: close shift  q: quit"
		case "c":
			if len(f) != 3 {
				msg = "c TOKEN CERT"
				continue
			}
			cf = cardFlags{token: f[1], label: "card", cert: f[2]}
			if err := s.activate(cf, os.Getenv("EVPOS_CARD_PIN")); err != nil {
				msg = err.Error()
			} else {
				msg = "card " + s.card.Vendor() + " activated"
			}
		case "x":
			if s.card != nil {
				s.card.Close()
				msg = "card removed: keys wiped"
			}
		case "s":
			if len(f) < 2 || s.card == nil {
				msg = "insert a card (c), then: s PRODUCT [N]"
				continue
			}
			n := 1
			if len(f) > 2 {
				_, _ = fmt.Sscan(f[2], &n)
			}
			for range n {
				p, err := s.till.Sell(cmd.Context(), s.card, f[1])
				if err != nil {
					msg = err.Error()
					break
				}
				msg = "sold " + p.Sale.Ticket
			}
		case "r":
			if len(f) != 2 || s.card == nil {
				msg = "insert a card (c), then: r TICKET"
				continue
			}
			no, err := s.store.ParseTicket(f[1])
			if err == nil {
				_, err = s.till.Reprint(cmd.Context(), s.card, no)
			}
			msg = errOr(err, "reprinted "+f[1]+" (DUPLICATE)")
		case "u":
			if s.card == nil {
				msg = "insert a card (c) first"
				continue
			}
			done, err := s.till.Resume(cmd.Context(), s.card)
			msg = errOr(err, fmt.Sprintf("%d ticket(s) printed", len(done)))
		case "y":
			res, err := s.till.Sync(cmd.Context(), s.center)
			msg = errOr(err, fmt.Sprintf("synced: %d shipment(s), %d sent, %d refused", len(res.Received), len(res.Sent), len(res.Refused)))
		case "k":
			sh, _, seq, err := s.till.CloseShift()
			if err == nil {
				msg = strings.Join(pos.ShiftLines(s.term.ID, sh, seq, g.width), "\n")
			} else {
				msg = err.Error()
			}
		default:
			msg = "unknown command; h for help"
		}
	}
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

func drawScreen(cmd *cobra.Command, g *globals, s *session, msg string) {
	w := max(g.width, 32)
	rule := strings.Repeat("=", w)
	out := cmd.OutOrStdout()
	fmt.Fprint(out, "\033[H\033[2J")
	fmt.Fprintln(out, rule)
	fmt.Fprintf(out, "%-*s\n", w, "evpos  terminal "+s.term.ID)
	card := "no card"
	if s.card != nil {
		if ok, why := s.card.Active(); ok {
			card = "card " + s.card.Vendor() + " ACTIVE"
		} else {
			card = "card off: " + why
		}
	}
	fmt.Fprintln(out, trim(card, w))
	st, _ := s.till.Status()
	fmt.Fprintln(out, trim("sync "+orNever(st.LastSync), w))
	fmt.Fprintln(out, trim(fmt.Sprintf("queued %d  unprinted %d  bad PINs %d", st.Queued, st.Unprinted, st.CardEvents["wrong_pin"]), w))
	fmt.Fprintln(out, strings.Repeat("-", w))
	lines, _ := s.store.Stock()
	for _, l := range lines {
		left := l.Product + " " + pos.Money(l.FaceValue, l.Currency)
		right := fmt.Sprint(l.OnShelf)
		fmt.Fprintln(out, left+strings.Repeat(" ", max(1, w-len(left)-len(right)))+right)
	}
	for _, a := range st.Center[:min(2, len(st.Center))] {
		fmt.Fprintln(out, trim("C "+a.Label()+": "+a.Message, w))
	}
	for _, a := range st.Alarms[max(0, len(st.Alarms)-3):] {
		fmt.Fprintln(out, trim("! "+a, w))
	}
	fmt.Fprintln(out, rule)
	if msg != "" {
		fmt.Fprintln(out, msg)
	}
	fmt.Fprint(out, "> ")
}

func trim(s string, w int) string {
	if len(s) > w {
		return s[:w]
	}
	return s
}

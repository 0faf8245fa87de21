package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/codevault"
)

func newAlarmsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "alarms", Short: "what needs a manager's attention: list, acknowledge, resolve, check"}
	var f codevault.AlarmFilter
	list := &cobra.Command{
		Use:     "list",
		Short:   "list alarms, the most recent first",
		Example: "  evoucher alarms list --state all --kind silent_terminal",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withVault(cmd, g, func(v *codevault.Vault) error {
				as, err := v.Alarms(cmd.Context(), f)
				if err != nil {
					return err
				}
				return printAlarms(cmd.OutOrStdout(), as)
			})
		},
	}
	list.Flags().StringVar(&f.State, "state", codevault.AlarmOpen, "open, acknowledged, resolved or all")
	list.Flags().StringVar(&f.Kind, "kind", "", "only this kind: "+strings.Join(codevault.AlarmKinds(), ", "))
	list.Flags().IntVar(&f.Limit, "limit", 100, "at most this many (up to 1000)")

	move := func(use, short string, do func(*codevault.Vault) func(context.Context, int64) (codevault.Alarm, error)) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || id <= 0 {
					return evoucher.Errorf(evoucher.KindInvalid, "bad_alarm_id", "alarm id %q is not a positive number", args[0])
				}
				return withVault(cmd, g, func(v *codevault.Vault) error {
					a, err := do(v)(cmd.Context(), id)
					if err != nil {
						return err
					}
					cmd.Printf("alarm %d (%s %s) is %s\n", a.ID, a.Kind, a.Subject, a.State)
					return nil
				})
			},
		}
	}
	check := &cobra.Command{
		Use:   "check",
		Short: "evaluate the alarm conditions once (the server does it every --alarm-interval)",
		Long: `check raises terminal_low_stock, expiring_stock and silent_terminal alarms whose condition
holds and resolves those whose condition has cleared, then lists the unresolved alarms.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withVault(cmd, g, func(v *codevault.Vault) error {
				raised, resolved, err := v.CheckAlarms(cmd.Context())
				if err != nil {
					return err
				}
				cmd.Printf("%d raised, %d resolved\n", raised, resolved)
				open, err := v.Alarms(cmd.Context(), codevault.AlarmFilter{State: codevault.AlarmOpen, Limit: 1000})
				if err != nil {
					return err
				}
				acked, err := v.Alarms(cmd.Context(), codevault.AlarmFilter{State: codevault.AlarmAcknowledged, Limit: 1000})
				if err != nil {
					return err
				}
				return printAlarms(cmd.OutOrStdout(), append(open, acked...))
			})
		},
	}
	cmd.AddCommand(list,
		move("ack", "acknowledge an open alarm: seen, being dealt with", func(v *codevault.Vault) func(context.Context, int64) (codevault.Alarm, error) {
			return v.Acknowledge
		}),
		move("resolve", "resolve an alarm once dealt with; a condition that still holds raises a new one", func(v *codevault.Vault) func(context.Context, int64) (codevault.Alarm, error) {
			return v.Resolve
		}),
		check)
	return cmd
}

func withVault(cmd *cobra.Command, g *globals, do func(*codevault.Vault) error) error {
	c, err := g.openCenter(cmd.Context())
	if err != nil {
		return err
	}
	defer c.close()
	return do(c.vault)
}

func printAlarms(w io.Writer, as []codevault.Alarm) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSUBJECT\tSTATE\tCOUNT\tLAST\tMESSAGE")
	for _, a := range as {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", a.ID, a.Kind, a.Subject, a.State, a.Occurrences, a.LastAt.Format(time.RFC3339), a.Message)
	}
	return tw.Flush()
}

// alarmFlags are the server's alarm settings.
type alarmFlags struct {
	webhook    string
	secretFile string
	interval   time.Duration
}

func addAlarmFlags(cmd *cobra.Command) *alarmFlags {
	f := &alarmFlags{}
	cmd.Flags().StringVar(&f.webhook, "alarm-webhook", "", "URL alarm notifications are POSTed to (signed JSON); empty: none")
	cmd.Flags().StringVar(&f.secretFile, "alarm-webhook-secret-file", "", "file holding the webhook's HMAC secret (or EVOUCHER_ALARM_WEBHOOK_SECRET)")
	cmd.Flags().DurationVar(&f.interval, "alarm-interval", time.Minute, "how often alarm conditions are checked; 0: never")
	return f
}

// start runs the alarm checker and, with a webhook, the notifier, until the returned stop is
// called, which waits for them.
func (f *alarmFlags) start(ctx context.Context, g *globals, v *codevault.Vault) (stop func(), err error) {
	var n *codevault.Notifier
	if f.webhook != "" {
		secret, err := f.secret()
		if err != nil {
			return nil, err
		}
		if n, err = v.Notifier(codevault.NotifierConfig{URL: f.webhook, Secret: secret, Logger: g.log}); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if f.interval > 0 {
		wg.Go(func() {
			t := time.NewTicker(f.interval)
			defer t.Stop()
			for {
				raised, resolved, err := v.CheckAlarms(ctx)
				switch {
				case err != nil && ctx.Err() == nil:
					g.log.ErrorContext(ctx, "alarm check failed", "err", err)
				case raised > 0 || resolved > 0:
					g.log.InfoContext(ctx, "alarms checked", "raised", raised, "resolved", resolved)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	if n != nil {
		wg.Go(func() { _ = n.Run(ctx) })
	}
	return func() { cancel(); wg.Wait() }, nil
}

func (f *alarmFlags) secret() (codevault.WebhookSecret, error) {
	if f.secretFile != "" {
		b, err := os.ReadFile(f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--alarm-webhook-secret-file: %w", err)
		}
		return codevault.WebhookSecret(strings.TrimSpace(string(b))), nil
	}
	if s := os.Getenv("EVOUCHER_ALARM_WEBHOOK_SECRET"); s != "" {
		return codevault.WebhookSecret(s), nil
	}
	return nil, errors.New("--alarm-webhook needs a secret to sign with: set --alarm-webhook-secret-file or EVOUCHER_ALARM_WEBHOOK_SECRET (at least 16 bytes)")
}

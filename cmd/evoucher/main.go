// Command evoucher is the central server and its administration tool: init, migrate, server,
// and the PKI commands. It only wires: flags, environment and files are read here and handed
// to the library packages as plain values.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "evoucher:", evoucherMessage(err))
		os.Exit(1)
	}
}

// evoucherMessage shows an error in full, with the context wrapped around it: the CLI user is
// the operator of the platform.
func evoucherMessage(err error) string { return err.Error() }

// globals are the settings every command shares.
type globals struct {
	dir         string
	databaseURL string
	hsmModule   string
	hsmToken    string
	hsmPINFile  string
	hsmPIN      string
	logLevel    string
	logOrigin   string
	log         *slog.Logger
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "evoucher",
		Short: "evoucher central server and administration",
		Long: `evoucher distributes prepaid recharge codes from operators to retailers' terminals.

Settings come from flags, then EVOUCHER_<FLAG> environment variables (for example
EVOUCHER_DATABASE_URL, EVOUCHER_HSM_PIN), then <dir>/config.json, which init writes.`,
		Example: `  evoucher init --dir ./evoucher-data
  evoucher server --dir ./evoucher-data --listen 127.0.0.1:8443
  evoucher pki issue-code --role terminal --entity T-12`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := applyConfig(cmd); err != nil {
				return err
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			g.log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			cflog.SetLogger(cfsslLog{g.log})
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.dir, "dir", envOr("EVOUCHER_DIR", "evoucher-data"), "config directory (EVOUCHER_DIR)")
	pf.StringVar(&g.databaseURL, "database-url", "", "PostgreSQL URL (also DATABASE_URL)")
	pf.StringVar(&g.hsmModule, "hsm-module", "", "PKCS#11 module of the token; empty: the development SoftHSM2 token in <dir>/softhsm")
	pf.StringVar(&g.hsmToken, "hsm-token", "evoucher-center", "token label")
	pf.StringVar(&g.hsmPINFile, "hsm-pin-file", "", "file holding the token PIN (default <dir>/hsm.pin)")
	pf.StringVar(&g.hsmPIN, "hsm-pin", "", "token PIN; prefer EVOUCHER_HSM_PIN or --hsm-pin-file, a flag shows in ps")
	pf.StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	pf.StringVar(&g.logOrigin, "log-origin", "evoucher.center/exchange-log", "the exchange log's origin line in checkpoints")
	root.SetOut(os.Stdout) // cobra's Print* go to stderr unless told otherwise
	root.AddCommand(newInitCmd(g), newTerminalCmd(g), newAuditCmd(g), newMigrateCmd(g), newServerCmd(g), newPKICmd(g), newOperatorCmd(g), newVaultCmd(g), newRetailerCmd(g),
		newAlarmsCmd(g), newUserCmd(g), newMoneyCmd(g))
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// cfsslLog routes cfssl's package logger into slog at debug level: its info lines are noise
// for an operator, its errors reach us as returned errors anyway.
type cfsslLog struct{ l *slog.Logger }

func (c cfsslLog) Debug(s string)   { c.l.Debug(s, "component", "cfssl") }
func (c cfsslLog) Info(s string)    { c.l.Debug(s, "component", "cfssl") }
func (c cfsslLog) Warning(s string) { c.l.Warn(s, "component", "cfssl") }
func (c cfsslLog) Err(s string)     { c.l.Error(s, "component", "cfssl") }
func (c cfsslLog) Crit(s string)    { c.l.Error(s, "component", "cfssl") }
func (c cfsslLog) Emerg(s string)   { c.l.Error(s, "component", "cfssl") }

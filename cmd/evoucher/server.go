package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/migrations"
)

func newMigrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "migrate",
		Short:   "apply the database migrations this binary carries",
		Example: "  evoucher migrate --database-url postgres://localhost/evoucher",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := g.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			applied, err := migrations.Up(cmd.Context(), db)
			for _, name := range applied {
				cmd.Printf("applied %s\n", name)
			}
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				cmd.Println("schema is current: nothing to apply")
			}
			return nil
		},
	}
}

func newServerCmd(g *globals) *cobra.Command {
	var listen string
	var checkpointEvery time.Duration
	var witnesses []string
	var alarms *alarmFlags
	var dash *dashboardFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "run the center's HTTPS server (mTLS for machines)",
		Long: `server serves the center over TLS with the center-tls certificate. Machine endpoints require
a client certificate from the platform CA, checked (chain, validity, role, revocation) on every
request. It logs JSON to stderr and stops gracefully on SIGTERM or SIGINT.`,
		Example: "  evoucher server --dir ./evoucher-data --listen 127.0.0.1:8443",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServer(cmd.Context(), g, listen, checkpointEvery, witnesses, alarms, dash)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8443", "address to listen on")
	cmd.Flags().DurationVar(&checkpointEvery, "checkpoint-interval", 10*time.Second, "how often the exchange log's checkpoint is signed")
	cmd.Flags().StringSliceVar(&witnesses, "checkpoint-witness", nil, "URL every new checkpoint is POSTed to (repeatable), so a copy lives outside the platform")
	alarms = addAlarmFlags(cmd)
	dash = addDashboardFlags(cmd)
	return cmd
}

// sequenceEvery is how often the server sequences the exchange log's queue, for the entries
// no receipt waits for (a statement, a message whose receipt failed, another server's).
const sequenceEvery = 200 * time.Millisecond

func runServer(ctx context.Context, g *globals, listen string, checkpointEvery time.Duration, witnesses []string, alarms *alarmFlags, dashFlags *dashboardFlags) error {
	c, err := g.openCenter(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	tlsKey, err := c.tok.FindECDSAKey("center-tls")
	if err != nil {
		return err
	}
	tlsCert, err := readCertPEM(filepath.Join(g.dir, "center-tls.pem"))
	if err != nil {
		return err
	}
	dash, err := newDashboard(c, g, dashFlags)
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{
		Authority:  c.ca,
		Logger:     g.log,
		Metrics:    c.metrics,
		Exchange:   c.vault,
		Orders:     c.ops,
		Statements: c.money,
		Terminals:  c.vault,
		Alarms:     c.vault,
		Log:        c.xlog,
		Dashboard:  dash,
		CenterCerts: map[string]*x509.Certificate{
			"center-sign": c.certs["center-sign"], "center-encrypt": c.certs["center-encrypt"], "center-tls": tlsCert,
		},
		Ready: []api.Check{
			{Name: "database", Fn: c.db.Ping},
			{Name: "token", Fn: func(context.Context) error { return c.tok.Ping() }},
		},
	})
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		TLSConfig:         api.TLSConfig(tls.Certificate{Certificate: [][]byte{tlsCert.Raw}, PrivateKey: tlsKey, Leaf: tlsCert}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // batches are large
		IdleTimeout:       2 * time.Minute,
	}
	hs.RegisterOnShutdown(dash.Shutdown) // end the dashboard's live event streams
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	g.log.InfoContext(ctx, "server listening", "addr", ln.Addr().String())
	stopAlarms, err := alarms.start(ctx, g, c.vault)
	if err != nil {
		return err
	}
	defer stopAlarms()

	// Sequence the exchange log's queue for the entries nobody waits for (receipts sequence
	// what they answer themselves).
	go func() {
		if err := c.seq.Run(ctx, sequenceEvery); err != nil && ctx.Err() == nil {
			g.log.ErrorContext(ctx, "exchange log sequencer stopped", "err", err)
		}
	}()

	// Sign a checkpoint of the exchange log now and at every interval, and push each new one to
	// the witnesses (a failed push is tried again at the next interval).
	go func() {
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		pushed := map[string]uint64{}
		for {
			cp, err := c.xlog.Sign(ctx)
			if err != nil && ctx.Err() == nil {
				g.log.ErrorContext(ctx, "checkpoint failed", "err", err)
			}
			for _, url := range witnesses {
				if err != nil || pushed[url] >= cp.Size && pushed[url] != 0 {
					continue
				}
				if perr := (auditlog.Witness{URL: url}).Push(ctx, cp.Note); perr != nil {
					g.log.WarnContext(ctx, "checkpoint not pushed to witness", "witness", url, "size", cp.Size, "err", perr)
					continue
				}
				pushed[url] = cp.Size
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	// Keep the CRL fresh even when nothing is revoked.
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if _, err := c.ca.CRL(ctx); err != nil && ctx.Err() == nil {
				g.log.ErrorContext(ctx, "CRL refresh failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	g.log.Info("stopped")
	return nil
}

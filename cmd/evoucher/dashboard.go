package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/api/dashboard"
)

// dashboardFlags are the server's dashboard settings.
type dashboardFlags struct {
	loginRate      int
	trustedProxies []string
}

func addDashboardFlags(cmd *cobra.Command) *dashboardFlags {
	f := &dashboardFlags{}
	cmd.Flags().IntVar(&f.loginRate, "login-rate", dashboard.DefaultLoginLimit.PerMinute,
		"dashboard login attempts per minute per client address (and as many at once), before any password is checked")
	cmd.Flags().StringSliceVar(&f.trustedProxies, "trusted-proxy", nil,
		"address or CIDR of a reverse proxy whose X-Forwarded-For names the client to the login limit (repeatable); default none")
	return f
}

// newDashboard wires the web dashboard on the center's database, vault, registries, PKI and log.
func newDashboard(c *center, g *globals, f *dashboardFlags) (*dashboard.Dashboard, error) {
	if f.loginRate <= 0 {
		return nil, fmt.Errorf("--login-rate %d: give a positive number of attempts per minute", f.loginRate)
	}
	var proxies []netip.Prefix
	for _, s := range f.trustedProxies {
		p, err := netip.ParsePrefix(s)
		if !strings.Contains(s, "/") {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxy %q: want an address or a CIDR such as 10.0.0.0/8: %w", s, err)
		}
		proxies = append(proxies, p.Masked())
	}
	users, err := access.New(access.Config{DB: c.db, Meter: c.metrics.Access})
	if err != nil {
		return nil, err
	}
	return dashboard.New(dashboard.Config{Access: users, Vault: c.vault, Shops: c.shops, Operators: c.ops, PKI: c.ca,
		Log: c.xlog, Money: c.money, Logger: g.log, Meter: c.metrics.Access,
		LoginLimit: dashboard.LoginLimit{PerMinute: f.loginRate}, TrustedProxies: proxies})
}

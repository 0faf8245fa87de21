package main

import (
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/api/dashboard"
)

// newDashboard wires the web dashboard on the center's database, vault, registries, PKI and log.
func newDashboard(c *center, g *globals) (*dashboard.Dashboard, error) {
	users, err := access.New(access.Config{DB: c.db, Meter: c.metrics.Access})
	if err != nil {
		return nil, err
	}
	return dashboard.New(dashboard.Config{Access: users, Vault: c.vault, Shops: c.shops, Operators: c.ops, PKI: c.ca,
		Log: c.xlog, Money: c.money, Logger: g.log})
}

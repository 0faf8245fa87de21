package main

import (
	"bufio"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/access"
)

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "web dashboard users: add, list, disable"}
	var role, retailerID, operatorID string
	var fromStdin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "add a dashboard user; the password is read from stdin (--password-stdin) or generated and printed once",
		Example: `  evoucher user add alice --role manager
  evoucher user add corner-boss --role retailer_manager --retailer R-CORNER
  printf '%s\n' "$PASSWORD" | evoucher user add acme-ops --role operator_user --operator OP-ACME --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := access.ParseRole(role)
			if err != nil {
				return err
			}
			pw := access.GeneratePassword()
			if fromStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("no password on stdin: %w", err)
				}
				pw = access.Password(strings.TrimRight(line, "\r\n"))
			}
			return withAccess(cmd, g, func(s *access.Service) error {
				u, err := s.AddUser(cmd.Context(), access.User{Name: args[0], Role: r, Retailer: retailerID, Operator: operatorID}, pw)
				if err != nil {
					return err
				}
				cmd.Printf("user %s added (%s)\n", u.Name, u.Role)
				if !fromStdin {
					// Shown this once: only its argon2id hash is stored.
					cmd.Printf("password: %s\n", string(pw))
				}
				return nil
			})
		},
	}
	add.Flags().StringVar(&role, "role", "", "admin, manager, retailer_manager, operator_user or auditor")
	add.Flags().StringVar(&retailerID, "retailer", "", "the retailer a retailer_manager sees")
	add.Flags().StringVar(&operatorID, "operator", "", "the operator an operator_user sees")
	add.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password (12 characters at least) from the first line of stdin")
	_ = add.MarkFlagRequired("role")
	list := &cobra.Command{
		Use: "list", Short: "list dashboard users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, g, func(s *access.Service) error {
				us, err := s.Users(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tSCOPE\tSTATUS\tCREATED")
				for _, u := range us {
					scope, status := u.Retailer+u.Operator, "active"
					if u.Disabled {
						status = "disabled"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, scope, status, u.CreatedAt.UTC().Format("2006-01-02 15:04"))
				}
				return tw.Flush()
			})
		},
	}
	disable := &cobra.Command{
		Use: "disable NAME", Short: "stop a user from logging in and end its sessions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, g, func(s *access.Service) error {
				if err := s.DisableUser(cmd.Context(), args[0]); err != nil {
					return err
				}
				cmd.Printf("user %s disabled\n", args[0])
				return nil
			})
		},
	}
	cmd.AddCommand(add, list, disable)
	return cmd
}

func withAccess(cmd *cobra.Command, g *globals, do func(*access.Service) error) error {
	db, err := g.openDB(cmd.Context())
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := access.New(access.Config{DB: db})
	if err != nil {
		return err
	}
	return do(s)
}

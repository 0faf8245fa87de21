package main

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/pki"
)

func newPKICmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "certificates: enrolment codes, enrolment, revocation, listing",
	}
	cmd.AddCommand(newIssueCodeCmd(g), newEnrolCmd(g), newRevokeCmd(g), newListCmd(g), newWhoamiCmd(g))
	return cmd
}

func newIssueCodeCmd(g *globals) *cobra.Command {
	var role, entity string
	cmd := &cobra.Command{
		Use:   "issue-code",
		Short: "create a one-time enrolment code for a certificate of one role and entity",
		Long: `issue-code prints a one-time code that lets one party enrol one certificate of the given role
for the given entity. Hand it over out of band; it is stored only as a hash, works once and
expires after 72 hours.`,
		Example: `  evoucher pki issue-code --role terminal --entity T-12
  evoucher pki issue-code --role operator-sign --entity OP-ACME`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := pki.ParseRole(role)
			if err != nil {
				return err
			}
			c, err := g.openCenter(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			code, err := c.ca.IssueCode(cmd.Context(), r, entity)
			if err != nil {
				return err
			}
			cmd.Printf("enrolment code for %s %s (valid until %s): %s\n", code.Role, code.Entity,
				code.ExpiresAt.Format(time.RFC3339), code.Code.Reveal())
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "role of the certificate (terminal, vendor, operator-sign, …)")
	cmd.Flags().StringVar(&entity, "entity", "", "the id of the terminal, vendor, operator, manager or auditor")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.MarkFlagRequired("entity")
	_ = cmd.RegisterFlagCompletionFunc("role", completeRoles)
	return cmd
}

func completeRoles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, r := range pki.Roles() {
		out = append(out, string(r))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

type clientFlags struct {
	server, caFile string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "https://127.0.0.1:8443", "URL of the center")
	cmd.Flags().StringVar(&f.caFile, "ca", "", "the platform CA certificate to trust (default <dir>/ca.pem)")
}

func (f *clientFlags) client(g *globals, cert *tls.Certificate) (*http.Client, error) {
	path := f.caFile
	if path == "" {
		path = filepath.Join(g.dir, "ca.pem")
	}
	ca, err := readCertPEM(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificate to trust: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

func newEnrolCmd(g *globals) *cobra.Command {
	var (
		cf            clientFlags
		code, role    string
		keyLabel, out string
		keyBits       int
		ecdsaKey      bool
	)
	cmd := &cobra.Command{
		Use:   "enrol",
		Short: "enrol this party: key pair in its token, CSR, one-time code → certificate",
		Long: `enrol runs on the enrolling party (a terminal, a vendor card, an operator): it creates a
non-extractable key pair in the party's own token (--hsm-token; found again if it exists),
sends a certificate request with the one-time code to the center and saves the certificate.`,
		Example: `  EVOUCHER_HSM_PIN=… evoucher pki enrol --hsm-token terminal-T-12 --code ABCD-… \
      --role terminal --key-label terminal --out terminal.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := g.openToken()
			if err != nil {
				return err
			}
			defer tok.Close()
			label := keyLabel
			if label == "" {
				label = role
			}
			var key crypto.Signer
			var created bool
			if ecdsaKey {
				key, created, err = tok.ECDSAKey(label)
			} else {
				key, created, err = tok.RSAKey(label, keyBits)
			}
			if err != nil {
				return err
			}
			if created {
				cmd.Printf("created key %q in token %q\n", label, g.hsmToken)
			}
			csr, err := pki.NewCSR(key, label)
			if err != nil {
				return err
			}
			body, _ := json.Marshal(api.EnrolRequest{Code: code, Role: role,
				CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
			hc, err := cf.client(g, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Post(cf.server+"/v1/enrol", "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var er api.EnrolResponse
			if err := decodeAnswer(resp, http.StatusCreated, &er); err != nil {
				return fmt.Errorf("enrolment refused: %w", err)
			}
			if err := os.WriteFile(out, []byte(er.Certificate), 0o644); err != nil {
				return err
			}
			cmd.Printf("enrolled %s %s: certificate %s saved to %s (valid until %s)\n", er.Role, er.Entity, er.Serial, out, er.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&code, "code", "", "the one-time enrolment code")
	cmd.Flags().StringVar(&role, "role", "", "the role the code is for")
	cmd.Flags().StringVar(&keyLabel, "key-label", "", "label of the key in the token (default: the role)")
	cmd.Flags().IntVar(&keyBits, "key-bits", 2048, "RSA key size")
	cmd.Flags().BoolVar(&ecdsaKey, "ecdsa", false, "an ECDSA P-256 key instead of RSA (manager, auditor)")
	cmd.Flags().StringVar(&out, "out", "certificate.pem", "where to save the certificate")
	_ = cmd.MarkFlagRequired("code")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.RegisterFlagCompletionFunc("role", completeRoles)
	return cmd
}

// decodeAnswer reads a JSON answer of the wanted status into v, or the server's error message.
func decodeAnswer(resp *http.Response, want int, v any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			return fmt.Errorf("%s (%s, HTTP %d)", eb.Error, eb.Reason, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

func newRevokeCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "revoke SERIAL",
		Short:   "revoke a certificate and publish a new CRL",
		Example: "  evoucher pki revoke 3f2a… --reason keyCompromise",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.openCenter(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			rv, err := c.ca.Revoke(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			cmd.Printf("revoked certificate %s of %s on %s (%s); a new CRL is published\n", rv.Serial, rv.Identity, rv.RevokedAt.Format(time.RFC3339), rv.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "unspecified", "keyCompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn or unspecified")
	return cmd
}

func newListCmd(g *globals) *cobra.Command {
	var role, entity string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "list the certificates the platform issued",
		Example: "  evoucher pki list --role terminal",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r pki.Role
			if role != "" {
				var err error
				if r, err = pki.ParseRole(role); err != nil {
					return err
				}
			}
			c, err := g.openCenter(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			certs, err := c.ca.List(cmd.Context(), r, entity)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tROLE\tENTITY\tNOT AFTER\tSTATUS")
			for _, c := range certs {
				status := "valid"
				if c.RevokedAt != nil {
					status = "revoked " + c.RevokedAt.Format(time.RFC3339) + " (" + c.RevocationReason + ")"
				} else if time.Now().After(c.NotAfter) {
					status = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Serial, c.Role, c.Entity, c.NotAfter.Format("2006-01-02"), status)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "only this role")
	cmd.Flags().StringVar(&entity, "entity", "", "only this entity")
	_ = cmd.RegisterFlagCompletionFunc("role", completeRoles)
	return cmd
}

func newWhoamiCmd(g *globals) *cobra.Command {
	var (
		cf       clientFlags
		certFile string
		keyLabel string
	)
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "make an mTLS call to the center with this party's certificate and token key",
		Long: `whoami connects to the center with the certificate in --cert and its key in the token, and
prints the identity the center sees, or the center's reason for refusing it.`,
		Example: "  evoucher pki whoami --hsm-token terminal-T-12 --key-label terminal --cert terminal.pem",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cert, err := readCertPEM(certFile)
			if err != nil {
				return err
			}
			tok, err := g.openToken()
			if err != nil {
				return err
			}
			defer tok.Close()
			key, err := findSigner(tok, keyLabel)
			if err != nil {
				return err
			}
			hc, err := cf.client(g, &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert})
			if err != nil {
				return err
			}
			resp, err := hc.Get(cf.server + "/v1/whoami")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var who api.WhoAmI
			if err := decodeAnswer(resp, http.StatusOK, &who); err != nil {
				return fmt.Errorf("the center refused the call: %w", err)
			}
			cmd.Printf("the center sees %s %s (certificate %s, valid until %s)\n", who.Role, who.Entity, who.Serial, who.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&certFile, "cert", "certificate.pem", "this party's certificate")
	cmd.Flags().StringVar(&keyLabel, "key-label", "", "label of its key in the token")
	_ = cmd.MarkFlagRequired("key-label")
	return cmd
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

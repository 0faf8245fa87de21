package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/auditlog"
	"github.com/evoucher/evoucher/ledger"
	"github.com/evoucher/evoucher/operator"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

func newOperatorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "operators and products (admin); seal, upload, orders and statements (operator side)",
	}
	cmd.AddCommand(newOperatorCreateCmd(g), newProductAddCmd(g), newSealCmd(g), newUploadCmd(g), newOrdersCmd(g), newStatementsCmd(g))
	return cmd
}

func newOperatorCreateCmd(g *globals) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:     "create ID",
		Short:   "record an operator",
		Example: `  evoucher operator create OP-ACME --name "ACME Telecom"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := g.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			reg, _ := operator.New(db)
			if err := reg.CreateOperator(cmd.Context(), operator.Operator{ID: args[0], Name: name}); err != nil {
				return err
			}
			cmd.Printf("operator %s (%s) created; enrol its keys with `evoucher pki issue-code --role operator-sign --entity %s` (and operator-encrypt)\n", args[0], name, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the operator's name")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newProductAddCmd(g *globals) *cobra.Command {
	var p operator.Product
	cmd := &cobra.Command{
		Use:   "add-product",
		Short: "record a product of an operator",
		Example: `  evoucher operator add-product --operator OP-ACME --code ACME-10 --face-value 1000 --currency EUR \
      --refill 'Dial *123*{PIN}#' --serial-pattern '[0-9]{12}' --pin-pattern '[0-9]{14}' \
      --reorder-level 1000 --reorder-quantity 5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := g.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			reg, _ := operator.New(db)
			if err := reg.CreateProduct(cmd.Context(), p); err != nil {
				return err
			}
			cmd.Printf("product %s of %s created: %d minor units of %s, reorder %d below %d\n", p.Code, p.Operator, p.FaceValue, p.Currency, p.ReorderQuantity, p.ReorderLevel)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Operator, "operator", "", "operator id")
	f.StringVar(&p.Code, "code", "", "product code")
	f.StringVar(&p.Name, "name", "", "product name (default: the code)")
	f.Int64Var(&p.FaceValue, "face-value", 0, "face value in minor units (1000 = 10.00)")
	f.StringVar(&p.Currency, "currency", "EUR", "ISO 4217 currency")
	f.StringVar(&p.RefillTemplate, "refill", "", "refill instructions containing {PIN}, e.g. 'Dial *123*{PIN}#'")
	f.StringVar(&p.SerialPattern, "serial-pattern", `[0-9]{8,20}`, "regular expression a serial must match")
	f.StringVar(&p.PINPattern, "pin-pattern", `[0-9]{10,20}`, "regular expression a PIN must match")
	f.IntVar(&p.ReorderLevel, "reorder-level", 0, "order more when vault stock falls below this")
	f.IntVar(&p.ReorderQuantity, "reorder-quantity", 0, "how many codes to order")
	for _, r := range []string{"operator", "code", "face-value", "refill"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

func newSealCmd(g *globals) *cobra.Command {
	var (
		k                   keyFlags
		req                 operator.SealRequest
		csvFile, centerCert string
		outDir              string
	)
	cmd := &cobra.Command{
		Use:   "seal",
		Short: "turn a CSV of codes into signed, encrypted CodeBatch parts",
		Long: `seal reads a CSV of codes (serial,pin,expiry) and writes one CodeBatch document per part into
--out: the codes encrypted (AES-256-GCM, key wrapped with RSA-OAEP) to the center-encrypt
certificate, the header with control totals (count, face value, SHA-256 of the code list),
the whole signed with the operator-sign key from a token or a PEM file.`,
		Example: `  evoucher operator seal --operator OP-ACME --batch B-2026-001 --product ACME-10 --face-value 1000 \
      --csv codes.csv --center-cert center-encrypt.pem --hsm-token op-acme --key-label sign --cert op-sign.pem --out batch/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(csvFile)
			if err != nil {
				return err
			}
			codes, err := operator.ReadCodesCSV(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", csvFile, err)
			}
			defer func() {
				for _, c := range codes {
					c.PIN.Zero()
				}
			}()
			req.Codes = codes
			if req.CenterCert, err = readCertPEM(centerCert); err != nil {
				return err
			}
			signer, cert, release, err := k.load(g)
			if err != nil {
				return err
			}
			defer release()
			req.Signer, req.Cert, req.Now = signer, cert, time.Now()
			start := time.Now()
			docs, err := operator.Seal(req)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return err
			}
			for i, d := range docs {
				name := filepath.Join(outDir, fmt.Sprintf("%s-part-%04d-of-%04d.xml", req.BatchID, i+1, len(docs)))
				if err := os.WriteFile(name, d, 0o644); err != nil {
					return err
				}
			}
			cmd.Printf("sealed %d codes of %s (%d × %d.%02d %s) into %d part(s) in %s in %s\n", len(codes), req.Product,
				len(codes), req.FaceValue/100, req.FaceValue%100, req.Currency, len(docs), outDir, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	k.add(cmd, "the operator-sign")
	f := cmd.Flags()
	f.StringVar(&req.Operator, "operator", "", "this operator's id (the sender)")
	f.StringVar(&req.BatchID, "batch", "", "batch id, unique for this operator")
	f.StringVar(&req.Product, "product", "", "product code")
	f.Int64Var(&req.FaceValue, "face-value", 0, "face value of each code, minor units")
	f.StringVar(&req.Currency, "currency", "EUR", "ISO 4217 currency")
	f.StringVar(&req.PurchaseOrder, "purchase-order", "", "the purchase order this batch answers")
	f.IntVar(&req.PartSize, "part-size", 50_000, "codes per signed part")
	f.StringVar(&csvFile, "csv", "", "CSV of serial,pin,expiry")
	f.StringVar(&centerCert, "center-cert", "", "the center-encrypt certificate (GET /pki/center-encrypt.pem)")
	f.StringVar(&outDir, "out", "batch", "directory for the parts")
	for _, r := range []string{"operator", "batch", "product", "face-value", "csv", "center-cert"} {
		_ = cmd.MarkFlagRequired(r)
	}
	return cmd
}

// centerDoc verifies a document the center signed: profile, a center-sign certificate from
// the platform CA valid at its creation, and addressed to us. It returns the envelope and the
// signed root element: the only element to read.
func centerDoc(raw []byte, ca *x509.Certificate, me string) (message.Envelope, *etree.Element, error) {
	doc, err := message.Parse(raw, message.DefaultLimits)
	if err != nil {
		return message.Envelope{}, nil, err
	}
	claimed, err := message.ReadEnvelope(doc.Root())
	if err != nil {
		return message.Envelope{}, nil, err
	}
	signed, _, err := dsig.Verify(doc, func(cert *x509.Certificate) error {
		_, err := pki.CheckOffline(cert, ca, pki.RoleCenterSign, claimed.Created)
		return err
	})
	if err != nil {
		return message.Envelope{}, nil, err
	}
	env, err := message.ReadEnvelope(signed)
	if err != nil {
		return message.Envelope{}, nil, err
	}
	if env.Recipient != me || env.Sender != message.Center {
		return message.Envelope{}, nil, fmt.Errorf("document from %s to %s, not from the center to %s", env.Sender, env.Recipient, me)
	}
	return env, signed, nil
}

func newUploadCmd(g *globals) *cobra.Command {
	var (
		k        keyFlags
		cf       clientFlags
		receipts string
		parallel int
	)
	cmd := &cobra.Command{
		Use:   "upload FILE…",
		Short: "send sealed CodeBatch parts to the center over mTLS and keep the signed receipts",
		Example: `  evoucher operator upload --server https://center:8443 --hsm-token op-acme --key-label sign \
      --cert op-sign.pem --receipts receipts/ batch/*.xml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			me, ca, hc, release, err := operatorSession(g, &k, &cf)
			if err != nil {
				return err
			}
			defer release()
			if err := os.MkdirAll(receipts, 0o755); err != nil {
				return err
			}
			send := func(file string) (string, error) {
				body, err := os.ReadFile(file)
				if err != nil {
					return "", err
				}
				resp, err := hc.Post(cf.server+"/v1/exchange", "application/xml", bytes.NewReader(body))
				if err != nil {
					return "", err
				}
				b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				if err != nil {
					return "", err
				}
				if resp.StatusCode != http.StatusOK {
					var eb api.ErrorBody
					_ = json.Unmarshal(b, &eb)
					return "", fmt.Errorf("%s refused: %s (%s)", filepath.Base(file), eb.Error, eb.Reason)
				}
				env, signed, err := centerDoc(b, ca, me.Entity)
				if err != nil {
					return "", fmt.Errorf("receipt for %s does not verify: %w", file, err)
				}
				r, err := message.ReadBatchReceipt(signed)
				if err != nil {
					return "", err
				}
				// The receipt proves the part is in the exchange log: check it against our bytes.
				lp := auditlog.Proof{Index: r.LogIndex, Size: r.LogProof.Size, Root: r.LogProof.Root, Hashes: r.LogProof.Hashes}
				logNote := "logged"
				if r.Status == message.StatusAccepted || r.LogProof.Size > 0 {
					if err := lp.Verify(body); err != nil {
						return "", fmt.Errorf("receipt for %s: the log inclusion proof does not verify for the part sent: %w", file, err)
					}
					logNote = fmt.Sprintf("in the exchange log at %d (proof verified)", r.LogIndex)
				}
				out := filepath.Join(receipts, strings.TrimSuffix(filepath.Base(file), ".xml")+".receipt.xml")
				if err := os.WriteFile(out, b, 0o644); err != nil {
					return "", err
				}
				return fmt.Sprintf("%s: %s, batch %s part %d/%d, %d accepted, %d already held, %s; signed receipt %s (%s)\n",
					filepath.Base(file), r.Status, r.BatchID, r.Part, r.Parts, r.Accepted, r.Duplicate, logNote, out, env.MessageID), nil
			}
			// Parts are independent, all-or-nothing units: send a few at a time, report in order.
			type result struct {
				line string
				err  error
			}
			results := make([]chan result, len(args))
			sem := make(chan struct{}, max(parallel, 1))
			for i, file := range args {
				results[i] = make(chan result, 1)
				go func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					line, err := send(file)
					results[i] <- result{line, err}
				}()
			}
			var firstErr error
			for _, rc := range results {
				r := <-rc
				if r.err != nil {
					if firstErr == nil {
						firstErr = r.err
					}
					cmd.PrintErrln(r.err)
					continue
				}
				cmd.Print(r.line)
			}
			if firstErr != nil {
				return fmt.Errorf("not every part was accepted: send the refused ones again once fixed (accepted parts are kept; sending them again changes nothing): %w", firstErr)
			}
			return nil
		},
	}
	k.add(cmd, "the operator-sign")
	cf.add(cmd)
	cmd.Flags().StringVar(&receipts, "receipts", "receipts", "directory for the signed receipts")
	cmd.Flags().IntVar(&parallel, "parallel", 2, "parts sent at the same time")
	return cmd
}

// operatorSession loads the operator's key and certificate, checks the certificate is an
// operator-sign one from the platform CA, and returns the operator's identity, the CA, an mTLS
// client, and the function that releases the token.
func operatorSession(g *globals, k *keyFlags, cf *clientFlags) (pki.Identity, *x509.Certificate, *http.Client, func(), error) {
	signer, cert, release, err := k.load(g)
	if err != nil {
		return pki.Identity{}, nil, nil, nil, err
	}
	fail := func(err error) (pki.Identity, *x509.Certificate, *http.Client, func(), error) {
		release()
		return pki.Identity{}, nil, nil, nil, err
	}
	ca, err := loadCA(g, cf)
	if err != nil {
		return fail(err)
	}
	me, err := pki.CheckOffline(cert, ca, pki.RoleOperatorSign, time.Now())
	if err != nil {
		return fail(err)
	}
	hc, err := cf.client(g, k.tlsCert(signer, cert))
	if err != nil {
		return fail(err)
	}
	return me, ca, hc, release, nil
}

// loadCA reads the platform CA certificate the client trusts.
func loadCA(g *globals, cf *clientFlags) (*x509.Certificate, error) {
	path := cf.caFile
	if path == "" {
		path = filepath.Join(g.dir, "ca.pem")
	}
	ca, err := readCertPEM(path)
	if err != nil {
		return nil, fmt.Errorf("the platform CA certificate to trust (--ca): %w", err)
	}
	return ca, nil
}

// operatorGet opens the operator's mTLS session, GETs path from the center and decodes its
// JSON answer into out; it returns who the center sees and the CA to verify documents with.
func operatorGet(g *globals, k *keyFlags, cf *clientFlags, path string, out any) (pki.Identity, *x509.Certificate, error) {
	me, ca, hc, release, err := operatorSession(g, k, cf)
	if err != nil {
		return pki.Identity{}, nil, err
	}
	defer release()
	resp, err := hc.Get(cf.server + path)
	if err != nil {
		return pki.Identity{}, nil, err
	}
	defer resp.Body.Close()
	return me, ca, decodeAnswer(resp, http.StatusOK, out)
}

func newOrdersCmd(g *globals) *cobra.Command {
	var (
		k     keyFlags
		cf    clientFlags
		state string
	)
	cmd := &cobra.Command{
		Use:     "orders",
		Short:   "fetch this operator's purchase orders from the center and verify their signatures",
		Example: `  evoucher operator orders --hsm-token op-acme --key-label sign --cert op-sign.pem`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var orders []api.OrderInfo
			me, ca, err := operatorGet(g, &k, &cf, "/v1/operator/orders?state="+state, &orders)
			if err != nil {
				return err
			}
			if len(orders) == 0 {
				cmd.Println("no purchase orders")
			}
			for _, o := range orders {
				_, signed, err := centerDoc([]byte(o.Document), ca, me.Entity)
				if err != nil {
					return fmt.Errorf("purchase order %s does not verify: %w", o.ID, err)
				}
				po, err := message.ReadPurchaseOrder(signed)
				if err != nil {
					return err
				}
				cmd.Printf("%s  %-8s %d × %s  (%s; signature verified)\n", po.OrderID, o.State, po.Quantity, po.Product, po.Reason)
			}
			return nil
		},
	}
	k.add(cmd, "the operator-sign")
	cf.add(cmd)
	cmd.Flags().StringVar(&state, "state", "open", "open, fulfilled, cancelled or all")
	return cmd
}

func newStatementsCmd(g *globals) *cobra.Command {
	var (
		k   keyFlags
		cf  clientFlags
		out string
	)
	cmd := &cobra.Command{
		Use:     "statements",
		Short:   "fetch this operator's settlement statements from the center, verify their signatures, save them",
		Example: `  evoucher operator statements --hsm-token op-acme --key-label sign --cert op-sign.pem --out statements/`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var list []api.StatementInfo
			me, ca, err := operatorGet(g, &k, &cf, "/v1/operator/statements", &list)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				cmd.Println("no statements")
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
			}
			for _, it := range list {
				_, signed, err := centerDoc([]byte(it.Document), ca, me.Entity)
				if err != nil {
					return fmt.Errorf("statement %s does not verify: %w", it.ID, err)
				}
				st, err := message.ReadStatement(signed)
				if err != nil {
					return fmt.Errorf("statement %s: %w", it.ID, err)
				}
				saved := ""
				if out != "" {
					path := filepath.Join(out, st.StatementID+".xml")
					if err := os.WriteFile(path, []byte(it.Document), 0o644); err != nil {
						return err
					}
					saved = "; saved " + path
				}
				cmd.Printf("%s  %s → %s", st.StatementID, st.From.Format(time.RFC3339), st.To.Format(time.RFC3339))
				for _, t := range st.Totals {
					cmd.Printf("  %s: %d codes, net %s", t.Currency, t.Codes, ledger.FormatAmount(t.Net, t.Currency))
				}
				cmd.Printf("  (signature verified%s)\n", saved)
			}
			return nil
		},
	}
	k.add(cmd, "the operator-sign")
	cf.add(cmd)
	cmd.Flags().StringVar(&out, "out", "", "directory to save each signed Statement as <id>.xml")
	return cmd
}

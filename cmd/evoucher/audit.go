package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/evoucher/evoucher/api"
	"github.com/evoucher/evoucher/auditlog"
)

// The auditor's commands need no database: they trust the CA certificate and the log's
// verifier key given on the command line, and nothing the center says about itself.

type auditFlags struct {
	k        keyFlags
	cf       clientFlags
	vkeyFile string
	from     string
}

func (a *auditFlags) add(cmd *cobra.Command, withFrom bool) {
	a.cf.add(cmd)
	cmd.Flags().StringVar(&a.k.label, "key-label", "", "label of the auditor's key in the token (--hsm-token)")
	cmd.Flags().StringVar(&a.k.pemFile, "key-pem", "", "or: the auditor's key as a PEM file")
	cmd.Flags().StringVar(&a.k.certFile, "cert", "", "the auditor's certificate (mTLS)")
	cmd.Flags().StringVar(&a.vkeyFile, "log-key", "", "the log's verifier key file (log.vkey, from the platform out of band)")
	_ = cmd.MarkFlagRequired("log-key")
	if withFrom {
		cmd.Flags().StringVar(&a.from, "from", "", "verify an export directory instead of the server")
	}
}

func (a *auditFlags) vkey() (string, error) {
	b, err := os.ReadFile(a.vkeyFile)
	return strings.TrimSpace(string(b)), err
}

// httpSource reads the log from the center's API over mTLS.
type httpSource struct {
	hc     *http.Client
	server string
}

func (a *auditFlags) source(g *globals) (*httpSource, func(), error) {
	if a.k.certFile == "" {
		return nil, nil, errors.New("an auditor (or manager) certificate is needed: --cert and --key-label or --key-pem")
	}
	key, cert, release, err := a.k.load(g)
	if err != nil {
		return nil, nil, err
	}
	hc, err := a.cf.client(g, a.k.tlsCert(key, cert))
	if err != nil {
		release()
		return nil, nil, err
	}
	return &httpSource{hc: hc, server: a.cf.server}, release, nil
}

func (s *httpSource) get(ctx context.Context, path string, v any) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.server+path, nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if v != nil {
		return nil, decodeAnswer(resp, http.StatusOK, v)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, err
}

func (s *httpSource) Checkpoint(ctx context.Context) ([]byte, error) {
	return s.get(ctx, "/v1/log/checkpoint", nil)
}

func (s *httpSource) CRL(ctx context.Context) ([]byte, error) { return s.get(ctx, "/pki/crl", nil) }

func (s *httpSource) Entries(ctx context.Context, from, to uint64) ([]auditlog.Entry, error) {
	var es []api.LogEntry
	if _, err := s.get(ctx, fmt.Sprintf("/v1/log/entries?from=%d&to=%d", from, to), &es); err != nil {
		return nil, err
	}
	out := make([]auditlog.Entry, len(es))
	for i, e := range es {
		out[i] = auditlog.Entry{Index: e.Index, Type: e.Type, Sender: e.Sender, Recipient: e.Recipient, MessageID: e.MessageID, Time: e.Time, Data: e.Data}
	}
	return out, nil
}

func (s *httpSource) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	var p struct{ Proof []string }
	if _, err := s.get(ctx, fmt.Sprintf("/v1/log/proof/consistency?from=%d&to=%d", from, to), &p); err != nil {
		return nil, err
	}
	return decodeHashes(p.Proof)
}

func decodeHashes(in []string) ([][]byte, error) {
	out := make([][]byte, len(in))
	for i, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// verificationReport is what a run found, as reported to the center: the checkpoint verified
// and the entries checked, or the error that stopped it.
func verificationReport(st auditlog.AuditState, sum auditlog.Summary, err error, took time.Duration) api.VerificationReport {
	r := api.VerificationReport{Size: sum.To, From: min(sum.From, sum.To), Outcome: auditlog.VerificationOK, DurationMS: took.Milliseconds()}
	if err != nil {
		r.Outcome, r.Reason = auditlog.VerificationFailed, err.Error()
		return r
	}
	r.Size, r.Root, r.Checkpoint, r.EntriesChecked = st.Size, hex.EncodeToString(st.Root), string(st.Note), sum.To-sum.From
	return r
}

// report tells the center the outcome of a verification (POST /v1/log/verifications); the
// center takes the reporter from the client certificate.
func (s *httpSource) report(ctx context.Context, r api.VerificationReport) error {
	body, _ := json.Marshal(r)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.server+"/v1/log/verifications", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var rec api.VerificationRecord
	return decodeAnswer(resp, http.StatusCreated, &rec)
}

// dirSource reads an export: checkpoint.note, crl.der and entries.jsonl.
type dirSource struct{ dir string }

func (d dirSource) Checkpoint(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.dir, "checkpoint.note"))
}

func (d dirSource) CRL(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.dir, "crl.der"))
}

func (d dirSource) Entries(_ context.Context, from, to uint64) ([]auditlog.Entry, error) {
	f, err := os.Open(filepath.Join(d.dir, "entries.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []auditlog.Entry
	for i := uint64(0); sc.Scan() && i < to; i++ {
		if i < from {
			continue
		}
		var e api.LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("entries.jsonl line %d: %w", i+1, err)
		}
		out = append(out, auditlog.Entry{Index: e.Index, Type: e.Type, Sender: e.Sender, Recipient: e.Recipient, MessageID: e.MessageID, Time: e.Time, Data: e.Data})
	}
	return out, sc.Err()
}

func (d dirSource) Consistency(context.Context, uint64, uint64) ([][]byte, error) {
	return nil, errors.New("an export is verified from scratch: run without --state, or against the server")
}

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "the auditor's tools: verify the exchange log, prove a message, export"}
	var vf auditFlags
	var stateDir string
	var sources []string
	var noReport bool
	verify := &cobra.Command{
		Use:   "verify",
		Short: "verify the exchange log from the outside: checkpoint signature, consistency, every entry and every signature",
		Long: `verify trusts only the CA certificate (--ca) and the log's verifier key (--log-key). It checks the
newest checkpoint's signature; that it extends the checkpoint verified last time (kept in
--state); recomputes the tree from every new entry; and re-verifies every message's XML
signature and its signer's certificate as valid and unrevoked when the message was made. It
prints a summary per message type and party, and exits non-zero naming the first bad entry.`,
		Example: `  evoucher audit verify --server https://center:8443 --ca ca.pem --log-key log.vkey --cert auditor.pem --key-pem auditor-key.pem --state audit/`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			vkey, err := vf.vkey()
			if err != nil {
				return err
			}
			ca, err := loadCA(g, &vf.cf)
			if err != nil {
				return err
			}
			var src auditlog.Source
			var prev *auditlog.AuditState
			if vf.from != "" {
				src = dirSource{vf.from}
			} else {
				hs, release, err := vf.source(g)
				if err != nil {
					return err
				}
				defer release()
				src = hs
				if b, err := os.ReadFile(filepath.Join(stateDir, "state.json")); err == nil {
					prev = &auditlog.AuditState{}
					if err := json.Unmarshal(b, prev); err != nil {
						return fmt.Errorf("%s: %w", stateDir, err)
					}
				}
			}
			// The auditor's live heap is a few pages of entries: collecting it less often
			// saves about a tenth of a long verification's CPU.
			debug.SetGCPercent(auditGCPercent)
			started := time.Now()
			st, sum, err := auditlog.Audit(cmd.Context(), src, vkey, ca, prev)
			var others [][]byte
			for _, s := range sources {
				if err != nil {
					break
				}
				var n []byte
				if n, err = readCheckpointSource(cmd.Context(), s); err != nil {
					err = fmt.Errorf("checkpoint source %s: %w", s, err)
				}
				others = append(others, n)
			}
			if err == nil {
				err = auditlog.CrossCheck(cmd.Context(), src, vkey, st, others)
			}
			if hs, ok := src.(*httpSource); ok && !noReport {
				// The center records who verified what; a report that does not arrive does not
				// change what this run found.
				if rerr := hs.report(cmd.Context(), verificationReport(st, sum, err, time.Since(started))); rerr != nil {
					cmd.PrintErrf("warning: the verification was not reported to the center: %v\n", rerr)
				}
			}
			if err != nil {
				return fmt.Errorf("the log does NOT verify: %w", err)
			}
			if len(others) > 0 {
				cmd.Printf("%d other checkpoint source(s) agree with it: no split view\n", len(others))
			}
			cmd.Printf("the log verifies: checkpoint of %d entries, %d new entries checked (from %d), every signature valid\n%s", st.Size, sum.To-sum.From, sum.From, sum)
			if vf.from == "" {
				if err := os.MkdirAll(stateDir, 0o700); err != nil {
					return err
				}
				b, _ := json.Marshal(st)
				return os.WriteFile(filepath.Join(stateDir, "state.json"), b, 0o600)
			}
			return nil
		},
	}
	vf.add(verify, true)
	verify.Flags().BoolVar(&noReport, "no-report", false, "do not report the outcome to the center (a run against --server reports it; --from never does)")
	verify.Flags().StringVar(&stateDir, "state", "audit-state", "where the last verified checkpoint is kept")
	verify.Flags().StringSliceVar(&sources, "checkpoint-source", nil, "another place holding a checkpoint of this log (a witness URL or a file); repeatable; any disagreement is a split view")

	var pf auditFlags
	prove := &cobra.Command{
		Use:     "prove MESSAGE_ID",
		Short:   "prove a message is in the log: its inclusion proof against the newest checkpoint, verified here",
		Example: `  evoucher audit prove 6006f76b-1643-4194-ba4a-3668da4aab36 --log-key log.vkey --cert auditor.pem --key-pem auditor-key.pem`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vkey, err := pf.vkey()
			if err != nil {
				return err
			}
			v, err := auditlog.NewVerifier(vkey)
			if err != nil {
				return err
			}
			src, release, err := pf.source(g)
			if err != nil {
				return err
			}
			defer release()
			note, err := src.Checkpoint(cmd.Context())
			if err != nil {
				return err
			}
			size, root, err := auditlog.OpenCheckpoint(note, v.Name(), v)
			if err != nil {
				return err
			}
			var p struct {
				Index uint64
				Proof []string
			}
			if _, err := src.get(cmd.Context(), fmt.Sprintf("/v1/log/proof/inclusion?message_id=%s&size=%d", url.QueryEscape(args[0]), size), &p); err != nil {
				return err
			}
			es, err := src.Entries(cmd.Context(), p.Index, p.Index+1)
			if err != nil || len(es) != 1 {
				return fmt.Errorf("entry %d: %v", p.Index, err)
			}
			hashes, err := decodeHashes(p.Proof)
			if err != nil {
				return err
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, size, auditlog.LeafHash(es[0].Data), hashes, root); err != nil {
				return fmt.Errorf("the inclusion proof does NOT verify: %w", err)
			}
			cmd.Printf("message %s (%s from %s to %s) is entry %d of the log; its inclusion proof (%d hashes) verifies against the signed checkpoint of %d entries, root %x\n",
				args[0], es[0].Type, es[0].Sender, es[0].Recipient, p.Index, len(hashes), size, root[:8])
			return nil
		},
	}
	pf.add(prove, false)

	var ef auditFlags
	export := &cobra.Command{
		Use:     "export DIR",
		Short:   "save the log (checkpoint, CRL, every entry) as files, for an offline audit with verify --from",
		Example: `  evoucher audit export log-2026-11/ --log-key log.vkey --cert auditor.pem --key-pem auditor-key.pem`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, release, err := ef.source(g)
			if err != nil {
				return err
			}
			defer release()
			vkey, err := ef.vkey()
			if err != nil {
				return err
			}
			v, err := auditlog.NewVerifier(vkey)
			if err != nil {
				return err
			}
			note, err := src.Checkpoint(cmd.Context())
			if err != nil {
				return err
			}
			size, _, err := auditlog.OpenCheckpoint(note, v.Name(), v)
			if err != nil {
				return err
			}
			crl, err := src.CRL(cmd.Context())
			if err != nil {
				return err
			}
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			f, err := os.Create(filepath.Join(dir, "entries.jsonl"))
			if err != nil {
				return err
			}
			defer f.Close()
			w := bufio.NewWriter(f)
			for from := uint64(0); from < size; from += 1000 {
				es, err := src.Entries(cmd.Context(), from, min(from+1000, size))
				if err != nil {
					return err
				}
				for _, e := range es {
					b, _ := json.Marshal(api.LogEntry{Index: e.Index, Type: e.Type, Sender: e.Sender, Recipient: e.Recipient, MessageID: e.MessageID, Time: e.Time, Data: e.Data})
					w.Write(append(b, '\n'))
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "checkpoint.note"), note, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "crl.der"), crl, 0o644); err != nil {
				return err
			}
			cmd.Printf("exported %d entries, the checkpoint and the CRL to %s\n", size, dir)
			return nil
		},
	}
	ef.add(export, false)
	cmd.AddCommand(verify, prove, export)
	return cmd
}

// readCheckpointSource fetches a checkpoint from a witness URL (GET) or reads it from a file.
func readCheckpointSource(ctx context.Context, s string) ([]byte, error) {
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return os.ReadFile(s)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<16))
}

// auditGCPercent is the garbage collector's target while verifying a log (Go's default is
// 100): entries are read a few pages at a time, so the heap stays small either way.
const auditGCPercent = 400

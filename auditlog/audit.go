package auditlog

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/dsig"
	"github.com/evoucher/evoucher/xml/message"
)

// Source is where an auditor reads the log from: the center's API, or an export.
type Source interface {
	Checkpoint(ctx context.Context) ([]byte, error)
	Entries(ctx context.Context, from, to uint64) ([]Entry, error)
	Consistency(ctx context.Context, from, to uint64) ([][]byte, error)
	CRL(ctx context.Context) ([]byte, error)
}

// AuditState is what an auditor keeps between runs: the last checkpoint it verified and the
// tree's right edge at that size, so the next run checks only what is new.
type AuditState struct {
	Note []byte   `json:"note"`
	Size uint64   `json:"size"`
	Root []byte   `json:"root"`
	Edge [][]byte `json:"edge"`
}

// Summary counts what a run verified, per message type and party.
type Summary struct {
	From, To uint64
	Counts   map[string]int // "CodeBatch from OP-A" → n
}

// String lists the counts, one line each.
func (s Summary) String() string {
	keys := make([]string, 0, len(s.Counts))
	for k := range s.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %6d  %s\n", s.Counts[k], k)
	}
	return b.String()
}

// signerRole is the certificate role each document type must be signed with.
var signerRole = map[string]pki.Role{
	"CodeBatch": pki.RoleOperatorSign, "BatchReceipt": pki.RoleCenterSign, "PurchaseOrder": pki.RoleCenterSign,
	"Shipment": pki.RoleCenterSign, "KeyShareUpdate": pki.RoleCenterSign, "Receipt": pki.RoleCenterSign,
	"Statement": pki.RoleCenterSign, "ShipmentAck": pki.RoleTerminal, "SalesReport": pki.RoleTerminal,
	"StockOrder": pki.RoleTerminal, "StockReturn": pki.RoleTerminal,
}

// Audit verifies the log from prev (nil: from scratch) to the source's current checkpoint,
// trusting only the CA certificate and the log's verifier key: the checkpoint's signature; that
// it extends prev (a consistency proof; a smaller or different tree is a rollback or a split
// view); that the entries hash to its root; and that every message is the document its entry
// says, signed under the profile by a certificate of the right role for its sender, valid and
// not revoked when the message was made. It returns the new state, or an error naming the first
// bad entry or checkpoint.
func Audit(ctx context.Context, src Source, vkey string, ca *x509.Certificate, prev *AuditState) (AuditState, Summary, error) {
	v, err := NewVerifier(vkey)
	if err != nil {
		return AuditState{}, Summary{}, fmt.Errorf("log verifier key: %w", err)
	}
	note, err := src.Checkpoint(ctx)
	if err != nil {
		return AuditState{}, Summary{}, err
	}
	size, root, err := OpenCheckpoint(note, v.Name(), v)
	if err != nil {
		return AuditState{}, Summary{}, err
	}
	start := AuditState{}
	if prev != nil {
		start = *prev
	}
	sum := Summary{From: start.Size, To: size, Counts: map[string]int{}}
	switch {
	case size < start.Size:
		return AuditState{}, sum, evoucher.Errorf(evoucher.KindConflict, "rollback", "checkpoint of size %d is smaller than the %d verified before: the log was rolled back", size, start.Size)
	case size == start.Size && !bytes.Equal(root, start.Root) && start.Size > 0:
		return AuditState{}, sum, evoucher.Errorf(evoucher.KindConflict, "split_view", "checkpoint of size %d has another root than the one verified before: split view", size)
	case start.Size > 0 && size > start.Size:
		p, err := src.Consistency(ctx, start.Size, size)
		if err != nil {
			return AuditState{}, sum, err
		}
		if err := proof.VerifyConsistency(hasher, start.Size, size, p, start.Root, root); err != nil {
			return AuditState{}, sum, evoucher.Errorf(evoucher.KindConflict, "inconsistent", "checkpoint %d is not an extension of checkpoint %d verified before: %v", size, start.Size, err)
		}
	}
	crlDER, err := src.CRL(ctx)
	if err != nil {
		return AuditState{}, sum, err
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil || crl.CheckSignatureFrom(ca) != nil {
		return AuditState{}, sum, evoucher.Errorf(evoucher.KindInvalid, "bad_crl", "the CRL is not signed by the platform CA")
	}
	rng, err := factory.NewRange(0, start.Size, start.Edge)
	if err != nil {
		return AuditState{}, sum, fmt.Errorf("saved state: %w", err)
	}
	if err := newChecker(ca, crl).entries(ctx, src, start.Size, size, rng, sum.Counts); err != nil {
		return AuditState{}, sum, err
	}
	got, err := rng.GetRootHash(nil)
	if err != nil {
		return AuditState{}, sum, err
	}
	if size == 0 {
		// A compact range of nothing has no root; the empty tree's is the hash of nothing.
		got = hasher.EmptyRoot()
	}
	if !bytes.Equal(got, root) {
		return AuditState{}, sum, evoucher.Errorf(evoucher.KindConflict, "root_mismatch", "the entries do not hash to the checkpoint's root at size %d: an entry was altered, removed, added or reordered", size)
	}
	return AuditState{Note: note, Size: size, Root: root, Edge: rng.Hashes()}, sum, nil
}

// pageSize is how many entries Audit asks its source for at once.
const pageSize = 1000

// pagesAhead bounds the pages whose messages are being verified while Audit reads and hashes
// the next: enough to keep every core busy across page boundaries, few enough to bound memory.
const pagesAhead = 2

// fetchedPage is one page of entries as it goes through Audit: fetched, hashed into the tree,
// its messages verified by the workers.
type fetchedPage struct {
	from, to uint64
	es       []Entry
	err      error   // the source's
	errs     []error // each message's, set by the workers
	verified sync.WaitGroup
}

// errStopped marks the messages left unchecked when Audit stops early.
var errStopped = errors.New("auditlog: not checked")

type checkJob struct {
	p *fetchedPage
	i int
}

// entries reads entries [from, size) page by page, appends their leaf hashes to rng in order and
// verifies every message, counting them by type and sender. Reading the next page, hashing and
// verifying overlap, but errors are reported as a page-by-page reading would: the first page
// with a fault decides, and within a page a served entry that is missing or out of place comes
// before a bad message, and the bad message of lowest index wins.
func (c *checker) entries(ctx context.Context, src Source, from, size uint64, rng *compact.Range, counts map[string]int) error {
	ctx, cancel := context.WithCancel(ctx)
	fetched := fetchPages(ctx, src, from, size)
	jobs := make(chan checkJob, pageSize)
	var workers sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		workers.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					j.p.errs[j.i] = errStopped // Audit was cancelled or has returned
				} else {
					j.p.errs[j.i] = c.check(j.p.es[j.i])
				}
				j.p.verified.Done()
			}
		})
	}
	defer func() {
		cancel()
		close(jobs)
		workers.Wait()
		for range fetched {
		}
	}()

	type tally struct{ typ, sender string }
	n := map[tally]int{}
	defer func() {
		for k, v := range n {
			counts[k.typ+" from "+k.sender] += v
		}
	}()
	var inFlight []*fetchedPage
	// settle waits for the oldest page in flight and counts its messages up to the first bad one.
	settle := func() error {
		p := inFlight[0]
		inFlight = inFlight[1:]
		p.verified.Wait()
		for i, err := range p.errs {
			if errors.Is(err, errStopped) {
				return fmt.Errorf("audit stopped before entry %d: %w", p.es[i].Index, context.Cause(ctx))
			}
			if err != nil {
				e := p.es[i]
				return fmt.Errorf("entry %d (%s %s): %w", e.Index, e.Type, e.MessageID, err)
			}
			n[tally{p.es[i].Type, p.es[i].Sender}]++
		}
		return nil
	}
	// fault reports a fault found in a page once the pages before it are settled, since a bad
	// message in one of them comes first.
	fault := func(err error) error {
		for len(inFlight) > 0 {
			if err := settle(); err != nil {
				return err
			}
		}
		return err
	}
	for p := range fetched {
		if p.err != nil {
			return fault(p.err)
		}
		if uint64(len(p.es)) != p.to-p.from {
			return fault(evoucher.Errorf(evoucher.KindConflict, "missing_entries", "entries %d to %d: %d served", p.from, p.to, len(p.es)))
		}
		for i, e := range p.es {
			if e.Index != p.from+uint64(i) {
				return fault(evoucher.Errorf(evoucher.KindConflict, "bad_entry", "entry %d is served as %d", p.from+uint64(i), e.Index))
			}
			if err := rng.Append(LeafHash(e.Data), nil); err != nil {
				return fault(err)
			}
		}
		p.errs = make([]error, len(p.es))
		p.verified.Add(len(p.es))
		inFlight = append(inFlight, p)
		for i := range p.es {
			jobs <- checkJob{p, i}
		}
		for len(inFlight) > pagesAhead {
			if err := settle(); err != nil {
				return err
			}
		}
	}
	if err := context.Cause(ctx); err != nil { // the pages stopped coming
		return fault(fmt.Errorf("audit stopped: %w", err))
	}
	return fault(nil)
}

// fetchPages reads entries [from, size) from src page by page, one page ahead of the reader,
// until a page fails or ctx is done. The channel is closed after the last page.
func fetchPages(ctx context.Context, src Source, from, size uint64) <-chan *fetchedPage {
	fetched := make(chan *fetchedPage, 1)
	go func() {
		defer close(fetched)
		for f := from; f < size; f += pageSize {
			p := &fetchedPage{from: f, to: min(f+pageSize, size)}
			p.es, p.err = src.Entries(ctx, p.from, p.to)
			select {
			case fetched <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil {
				return
			}
		}
	}()
	return fetched
}

// CheckMessage verifies one logged message on its own: it is the document the entry says,
// signed under the profile by a certificate of the platform CA with the right role for its
// type, for its sender, valid and unrevoked when the message was created.
func CheckMessage(e Entry, ca *x509.Certificate, crl *x509.RevocationList) error {
	return newChecker(ca, crl).check(e)
}

// checker verifies messages against one CA and CRL. It remembers the signer certificates whose
// chain it has verified, with the span of time over which that verification holds (where both
// the certificate and the CA are valid), so that a signer's chain costs one RSA verification per
// run instead of one per message; a message made outside that span is checked afresh.
type checker struct {
	verifier *dsig.Verifier
	ca       *x509.Certificate
	revoked  map[string][]time.Time // serial (as pki.SerialOf) → revocation times, in CRL order

	mu      sync.RWMutex
	signers map[pki.Role]map[string]checkedSigner // certificate DER → its identity
}

type checkedSigner struct {
	id          pki.Identity
	from, until time.Time
}

func newChecker(ca *x509.Certificate, crl *x509.RevocationList) *checker {
	c := &checker{verifier: dsig.NewVerifier(), ca: ca, revoked: map[string][]time.Time{}, signers: map[pki.Role]map[string]checkedSigner{}}
	if crl == nil {
		return c
	}
	for _, r := range crl.RevokedCertificateEntries {
		k := r.SerialNumber.Text(16)
		c.revoked[k] = append(c.revoked[k], r.RevocationTime)
	}
	return c
}

// signer is pki.CheckOffline(cert, c.ca, role, at), remembered.
func (c *checker) signer(cert *x509.Certificate, role pki.Role, at time.Time) (pki.Identity, error) {
	c.mu.RLock()
	s, ok := c.signers[role][string(cert.Raw)]
	c.mu.RUnlock()
	if ok && !at.Before(s.from) && !at.After(s.until) {
		return s.id, nil
	}
	id, err := pki.CheckOffline(cert, c.ca, role, at)
	if err != nil || c.ca == nil {
		return id, err
	}
	s = checkedSigner{id: id, from: cert.NotBefore, until: cert.NotAfter}
	if c.ca.NotBefore.After(s.from) {
		s.from = c.ca.NotBefore
	}
	if c.ca.NotAfter.Before(s.until) {
		s.until = c.ca.NotAfter
	}
	c.mu.Lock()
	if c.signers[role] == nil {
		c.signers[role] = map[string]checkedSigner{}
	}
	c.signers[role][string(cert.Raw)] = s
	c.mu.Unlock()
	return id, nil
}

func (c *checker) check(e Entry) error {
	// The envelope is read from the parsed root, to choose the signer's role and time, before
	// the signature is verified; VerifyBytes calls trustFor again when it falls back to
	// parsing the message into a tree, with the same root, so env is the same.
	var env message.Envelope
	trustFor := func(root *etree.Element) (dsig.Trust, error) {
		var err error
		if env, err = message.ReadEnvelope(root); err != nil {
			return nil, err
		}
		if env.Type != e.Type || env.Sender != e.Sender || env.Recipient != e.Recipient || env.MessageID != e.MessageID {
			return nil, evoucher.Errorf(evoucher.KindConflict, "metadata_mismatch", "the entry's metadata does not match its message")
		}
		role, ok := signerRole[env.Type]
		if !ok {
			return nil, evoucher.Errorf(evoucher.KindInvalid, "unknown_type", "unknown message type %s", env.Type)
		}
		created, sender := env.Created, env.Sender
		return func(cert *x509.Certificate) error {
			id, err := c.signer(cert, role, created)
			if err != nil {
				return err
			}
			want := sender
			if role == pki.RoleCenterSign {
				want = "center"
			}
			if id.Entity != want {
				return evoucher.Errorf(evoucher.KindForbidden, "sender_mismatch", "signed by %s, sent as %s", id, sender)
			}
			for _, at := range c.revoked[pki.SerialOf(cert)] {
				// CRL times have a resolution of one second: a message made within the second of
				// its signer's revocation is given the benefit of the doubt (the center itself
				// checked it against the exact time when it took it).
				if at.Before(created.Truncate(time.Second)) {
					return evoucher.Errorf(evoucher.KindUnauthorized, "revoked", "signer %s was revoked on %s, before the message", id, at)
				}
			}
			return nil
		}, nil
	}
	signed, _, err := c.verifier.VerifyBytes(e.Data, message.DefaultLimits, trustFor)
	if err != nil {
		return err
	}
	// The envelope was read from the parsed document to choose the signer's role and time;
	// it must be that of the element the signature covers (it cannot differ: the root's
	// attributes are signed, but only what was verified is taken on trust).
	if signed.Tag != env.Type || signed.NamespaceURI() != message.NS {
		return evoucher.Errorf(evoucher.KindConflict, "metadata_mismatch", "the signed element is not the message's root")
	}
	for _, a := range [...][2]string{{"Id", env.ID}, {"MessageId", env.MessageID}, {"Sender", env.Sender}, {"Recipient", env.Recipient}} {
		if signed.SelectAttrValue(a[0], "") != a[1] {
			return evoucher.Errorf(evoucher.KindConflict, "metadata_mismatch", "the signed element's %s is not the message's", a[0])
		}
	}
	if created, err := time.Parse(time.RFC3339Nano, signed.SelectAttrValue("Created", "")); err != nil || !created.Equal(env.Created) {
		return evoucher.Errorf(evoucher.KindConflict, "metadata_mismatch", "the signed element's Created is not the message's")
	}
	return nil
}

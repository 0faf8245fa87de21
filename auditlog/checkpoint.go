package auditlog

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/evoucher/evoucher"
)

// algECDSAWithSHA256 is the signed-note key type of ECDSA P-256 with SHA-256 (as read by
// transparency-dev/formats/note.NewECDSAVerifier).
const algECDSAWithSHA256 = 2

// Signer signs checkpoints with an ECDSA P-256 key, typically held in the HSM. It implements
// note.Signer.
type Signer struct {
	name    string
	key     crypto.Signer
	der     []byte
	keyHash uint32
}

// NewSigner returns a note signer named name (the log's origin) around key, which must be an
// ECDSA P-256 key.
func NewSigner(name string, key crypto.Signer) (*Signer, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("auditlog: the log key must be ECDSA P-256")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(der)
	return &Signer{name: name, key: key, der: der, keyHash: binary.BigEndian.Uint32(h[:])}, nil
}

// Name is the log's origin.
func (s *Signer) Name() string { return s.name }

// KeyHash identifies the key in signatures.
func (s *Signer) KeyHash() uint32 { return s.keyHash }

// Sign signs msg: ASN.1 ECDSA over its SHA-256.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return s.key.Sign(rand.Reader, d[:], crypto.SHA256)
}

// VerifierKey is the public key auditors are given: name+keyhash+base64(type ‖ DER).
func (s *Signer) VerifierKey() string {
	return s.name + "+" + fmt.Sprintf("%08x", s.keyHash) + "+" + base64.StdEncoding.EncodeToString(append([]byte{algECDSAWithSHA256}, s.der...))
}

// NewVerifier returns the note verifier of a verifier key.
func NewVerifier(vkey string) (note.Verifier, error) { return fnote.NewECDSAVerifier(vkey) }

// Checkpoint is a signed statement of the log's size and root.
type Checkpoint struct {
	Size uint64
	Root []byte
	Note []byte // the signed note, as served
}

// Sign makes, stores and returns a checkpoint of the log as it is now, after sequencing what
// is queued. A checkpoint of the same size as the last one is returned as is.
func (l *Log) Sign(ctx context.Context) (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, errors.New("auditlog: no checkpoint signer")
	}
	if _, err := sequence(ctx, l.db); err != nil {
		return Checkpoint{}, err
	}
	size, err := l.Size(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp, err := l.checkpointAt(ctx, size); err == nil {
		return cp, nil
	}
	root, err := l.Root(ctx, size)
	if err != nil {
		return Checkpoint{}, err
	}
	body := flog.Checkpoint{Origin: l.signer.Name(), Size: size, Hash: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		return Checkpoint{}, err
	}
	if _, err := l.db.Exec(ctx, `INSERT INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (size) DO NOTHING`, int64(size), root, signed, l.now().UTC()); err != nil {
		return Checkpoint{}, err
	}
	return l.checkpointAt(ctx, size)
}

func (l *Log) checkpointAt(ctx context.Context, size uint64) (Checkpoint, error) {
	cp := Checkpoint{Size: size}
	err := l.db.QueryRow(ctx, `SELECT root, note FROM log_checkpoints WHERE size = $1`, int64(size)).Scan(&cp.Root, &cp.Note)
	return cp, err
}

// Latest returns the newest stored checkpoint; not found when none was made.
func (l *Log) Latest(ctx context.Context) (Checkpoint, error) {
	var cp Checkpoint
	var size int64
	err := l.db.QueryRow(ctx, `SELECT size, root, note FROM log_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &cp.Root, &cp.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{}, evoucher.Errorf(evoucher.KindNotFound, "no_checkpoint", "the log has no checkpoint yet")
	}
	cp.Size = uint64(size)
	return cp, err
}

// OpenCheckpoint verifies a signed checkpoint against the log's verifier key and origin.
func OpenCheckpoint(signed []byte, origin string, v note.Verifier) (size uint64, root []byte, err error) {
	cp, _, _, err := flog.ParseCheckpoint(signed, origin, v)
	if err != nil {
		return 0, nil, evoucher.Errorf(evoucher.KindInvalid, "bad_checkpoint", "checkpoint does not verify with the log key: %v", err)
	}
	return cp.Size, cp.Hash, nil
}

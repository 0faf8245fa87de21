package codevault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evoucher/evoucher/pki/pkcs11"

	"github.com/evoucher/evoucher"
)

const (
	dekSize   = 32
	nonceSize = 12
	tagSize   = 16
)

// dekAAD binds a wrapped DEK to its batch part and KEK.
func dekAAD(batchID int64, part int, kekLabel string) []byte {
	return []byte("evoucher-dek-v1|" + strconv.FormatInt(batchID, 10) + "|" + strconv.Itoa(part) + "|" + kekLabel)
}

// pinAAD binds a PIN's ciphertext to its serial and batch part, so a ciphertext copied to
// another row does not decrypt.
func pinAAD(dst []byte, serial string, batchID int64, part int) []byte {
	dst = append(dst[:0], serial...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, batchID, 10)
	dst = append(dst, '|')
	return strconv.AppendInt(dst, int64(part), 10)
}

// activeKEK returns the label of the KEK new parts are wrapped with. It returns unavailable
// when there is none (run init).
func (v *Vault) activeKEK(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (string, cipher.AEAD, error) {
	var label string
	err := q.QueryRow(ctx, `SELECT label FROM center_keys WHERE purpose = 'kek' AND retired_at IS NULL`).Scan(&label)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, evoucher.Errorf(evoucher.KindUnavailable, "no_kek", "the vault has no key-encryption key: run `evoucher init`")
	}
	if err != nil {
		return "", nil, err
	}
	kek, err := v.keys.FindAESKey(label)
	if err != nil {
		return "", nil, fmt.Errorf("KEK %q in the token: %w", label, err)
	}
	return label, kek, nil
}

// EnsureKEK makes sure the vault has an active KEK, creating kek-1 in the token and recording
// it when there is none. created reports whether it did. init calls it.
func EnsureKEK(ctx context.Context, db *pgxpool.Pool, keys KeyStore) (label string, created bool, err error) {
	err = db.QueryRow(ctx, `SELECT label FROM center_keys WHERE purpose = 'kek' AND retired_at IS NULL`).Scan(&label)
	if err == nil {
		if _, err := keys.FindAESKey(label); err != nil {
			return "", false, fmt.Errorf("active KEK %q is recorded but not in the token: %w", label, err)
		}
		return label, false, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", false, err
	}
	label, err = nextKEKLabel(ctx, db)
	if err != nil {
		return "", false, err
	}
	if _, _, err := keys.AESKey(label); err != nil {
		return "", false, err
	}
	_, err = db.Exec(ctx, `INSERT INTO center_keys (label, purpose, algorithm) VALUES ($1, 'kek', 'AES-256')`, label)
	return label, err == nil, err
}

func nextKEKLabel(ctx context.Context, db *pgxpool.Pool) (string, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT coalesce(max(substr(label, 5)::int), 0) FROM center_keys
		WHERE purpose = 'kek' AND label ~ '^kek-[0-9]+$'`).Scan(&n)
	return "kek-" + strconv.Itoa(n+1), err
}

// newDEK returns a fresh data key and its wrapping under kek.
func newDEK(kek cipher.AEAD, aad []byte) (dek, wrapped []byte, err error) {
	dek = make([]byte, dekSize)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, err
	}
	wrapped, err = wrap(kek, dek, aad)
	return dek, wrapped, err
}

func wrap(kek cipher.AEAD, dek, aad []byte) ([]byte, error) {
	nonce := make([]byte, nonceSize, nonceSize+dekSize+tagSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return kek.Seal(nonce, nonce, dek, aad), nil
}

func unwrap(kek cipher.AEAD, wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) != nonceSize+dekSize+tagSize {
		return nil, errors.New("wrapped DEK has the wrong length")
	}
	dek, err := kek.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, errors.New("wrapped DEK does not open under its KEK")
	}
	return dek, nil
}

func dekCipher(dek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Rotation reports what a KEK rotation did.
type Rotation struct {
	Old, New  string
	Rewrapped int // DEKs re-wrapped; no code row is touched
}

// RotateKEK creates a new KEK in the token, makes it the active one, re-wraps every DEK under
// it (online: parts being stored meanwhile already use the new KEK, and each DEK names its
// KEK), then destroys the old KEK in the token. A rotation interrupted half-way is finished by
// the next call before it starts another.
func (v *Vault) RotateKEK(ctx context.Context) (Rotation, error) {
	var r Rotation
	if err := v.rewrapRetired(ctx, &r); err != nil {
		return r, err
	}
	old, _, err := v.activeKEK(ctx, v.db)
	if err != nil {
		return r, err
	}
	next, err := nextKEKLabel(ctx, v.db)
	if err != nil {
		return r, err
	}
	if _, _, err := v.keys.AESKey(next); err != nil {
		return r, err
	}
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return r, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE center_keys SET retired_at = $2 WHERE label = $1`, old, v.now().UTC()); err != nil {
		return r, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO center_keys (label, purpose, algorithm) VALUES ($1, 'kek', 'AES-256')`, next); err != nil {
		return r, err
	}
	if err := tx.Commit(ctx); err != nil {
		return r, err
	}
	r.Old, r.New = old, next
	return r, v.rewrapRetired(ctx, &r)
}

// rewrapRetired re-wraps, under the active KEK, every DEK still wrapped by a retired KEK, in
// small transactions, then destroys the retired KEKs that no DEK uses any more.
func (v *Vault) rewrapRetired(ctx context.Context, r *Rotation) error {
	for {
		n, err := v.rewrapChunk(ctx)
		if err != nil {
			return err
		}
		r.Rewrapped += n
		if n == 0 {
			break
		}
	}
	rows, err := v.db.Query(ctx, `SELECT k.label FROM center_keys k WHERE k.purpose = 'kek' AND k.retired_at IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM batch_parts p WHERE p.kek_label = k.label)`)
	if err != nil {
		return err
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, l := range labels {
		if err := v.keys.DeleteKey(l); err != nil && !errors.Is(err, pkcs11.ErrKeyNotFound) {
			return fmt.Errorf("destroy retired KEK %q: %w", l, err)
		}
	}
	return nil
}

func (v *Vault) rewrapChunk(ctx context.Context) (int, error) {
	tx, err := v.db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	label, kek, err := v.activeKEK(ctx, tx)
	if err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `SELECT batch_id, part, kek_label, dek_wrapped FROM batch_parts
		WHERE kek_label <> $1 ORDER BY batch_id, part LIMIT 500 FOR UPDATE SKIP LOCKED`, label)
	if err != nil {
		return 0, err
	}
	type item struct {
		batch   int64
		part    int
		label   string
		wrapped []byte
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (item, error) {
		var it item
		err := row.Scan(&it.batch, &it.part, &it.label, &it.wrapped)
		return it, err
	})
	if err != nil {
		return 0, err
	}
	olds := map[string]cipher.AEAD{}
	for _, it := range items {
		old, ok := olds[it.label]
		if !ok {
			if old, err = v.keys.FindAESKey(it.label); err != nil {
				return 0, fmt.Errorf("KEK %q of batch %d part %d: %w", it.label, it.batch, it.part, err)
			}
			olds[it.label] = old
		}
		dek, err := unwrap(old, it.wrapped, dekAAD(it.batch, it.part, it.label))
		if err != nil {
			return 0, fmt.Errorf("batch %d part %d: %w", it.batch, it.part, err)
		}
		w, err := wrap(kek, dek, dekAAD(it.batch, it.part, label))
		clear(dek)
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `UPDATE batch_parts SET kek_label = $3, dek_wrapped = $4 WHERE batch_id = $1 AND part = $2`,
			it.batch, it.part, label, w); err != nil {
			return 0, err
		}
	}
	return len(items), tx.Commit(ctx)
}

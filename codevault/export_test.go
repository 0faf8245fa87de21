package codevault

import (
	"context"
)

// RevealForTest decrypts the PIN of one code the way a shipment will: unwrap its part's DEK
// with the KEK in the token, open the PIN under its AAD. Tests only.
func (v *Vault) RevealForTest(ctx context.Context, operatorID, serial string) ([]byte, error) {
	var batchID int64
	var part int
	var ct, wrapped []byte
	var label string
	err := v.db.QueryRow(ctx, `SELECT c.batch_id, c.part, c.pin_ct, p.dek_wrapped, p.kek_label FROM codes c
		JOIN batch_parts p ON p.batch_id = c.batch_id AND p.part = c.part WHERE c.operator_id = $1 AND c.serial = $2`,
		operatorID, serial).Scan(&batchID, &part, &ct, &wrapped, &label)
	if err != nil {
		return nil, err
	}
	kek, err := v.keys.FindAESKey(label)
	if err != nil {
		return nil, err
	}
	dek, err := unwrap(kek, wrapped, dekAAD(batchID, part, label))
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	aead, err := dekCipher(dek)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, ct[:nonceSize], ct[nonceSize:], pinAAD(nil, serial, batchID, part))
}

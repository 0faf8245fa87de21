package codevault

import (
	"context"
	"log/slog"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/pki"
	"github.com/evoucher/evoucher/xml/message"
)

// refuse records a refused document: a line in the refusal journal (never the document), a
// security alarm about the peer, and the meter. The refusal's effects were rolled back already.
func (v *Vault) refuse(ctx context.Context, peer pki.Identity, env message.Envelope, raw []byte, digest [32]byte, cause error) {
	reason := evoucher.ReasonOf(cause)
	if reason == "" {
		reason = "other"
	}
	now := v.now().UTC()
	// Record even when the request's context is gone: a refusal must not go unnoticed.
	ctx = context.WithoutCancel(ctx)
	msg := evoucher.MessageOf(cause)
	_, err := v.db.Exec(ctx, `INSERT INTO refused_messages (received_at, peer, type, message_id, sender, reason, detail, size, digest)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, now, peer.String(), env.Type, env.MessageID, env.Sender, reason, msg, len(raw), digest[:])
	if err == nil && !businessRefusals[reason] {
		err = raiseAlarm(ctx, v.db, "security", "exchange:"+peer.String(), "refused "+orUnknown(env.Type)+" from "+peer.String()+": "+msg, now)
	}
	if err != nil {
		slog.ErrorContext(ctx, "could not record a refused message", "peer", peer.String(), "reason", reason, "err", err)
	}
	v.meter.Refused(orUnknown(env.Type), reason)
}

// businessRefusals are refusals of well-formed, authentic messages that the business cannot
// serve now; they are no security matter, and each has its own alarm: an order beyond the
// retailer's credit (credit_limit), an order the vault has no stock for (vault_low_stock), an
// order for a retailer without a vendor card to unlock it (the retailer's setup).
var businessRefusals = map[string]bool{"credit_limit": true, "out_of_stock": true, "no_vendor_card": true}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

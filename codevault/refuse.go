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
	// An order refused for credit raised its own credit_limit alarm: it is no security matter.
	if err == nil && reason != "credit_limit" {
		err = raiseAlarm(ctx, v.db, "security", "exchange:"+peer.String(), "refused "+orUnknown(env.Type)+" from "+peer.String()+": "+msg, now)
	}
	if err != nil {
		slog.ErrorContext(ctx, "could not record a refused message", "peer", peer.String(), "reason", reason, "err", err)
	}
	v.meter.Refused(orUnknown(env.Type), reason)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

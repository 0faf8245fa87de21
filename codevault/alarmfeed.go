package codevault

import (
	"context"
	"strconv"
)

// ListenAlarms calls fn with every alarm raised or changed from now on, by any server or
// command (migration 0009 announces each change when its transaction commits), until ctx ends
// or the connection fails; it holds one database connection meanwhile. It returns the error
// that ended it (ctx's, once cancelled).
func (v *Vault) ListenAlarms(ctx context.Context, fn func(Alarm)) error {
	conn, err := v.db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN evoucher_alarms`); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: stop listening on it.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `UNLISTEN evoucher_alarms`)
	}()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		id, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			continue
		}
		a, err := v.Alarm(ctx, id, Scope{})
		if err != nil {
			continue // gone, or rolled back before it was read: nothing to show
		}
		fn(a)
	}
}

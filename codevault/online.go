package codevault

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/evoucher/evoucher"
)

// OnlineMode tells whether the center set terminal to online mode (each sale authorised by
// the center before its ticket prints), for the terminal's sync to learn it. It returns a
// not-found error with reason "unknown_terminal" for a terminal not recorded.
func (v *Vault) OnlineMode(ctx context.Context, terminal string) (bool, error) {
	var on bool
	err := v.db.QueryRow(ctx, `SELECT online_mode FROM terminals WHERE id = $1`, terminal).Scan(&on)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, evoucher.Errorf(evoucher.KindNotFound, "unknown_terminal", "terminal %s is not recorded at the center", terminal)
	}
	return on, err
}

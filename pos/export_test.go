package pos

import (
	"context"
	"fmt"
)

// LeaveRoomForTest makes the store's disk full but for room pages: it drops the free pages
// inside the file (VACUUM), then caps the database at its size plus room (SQLite's
// max_page_count) on every connection of the pool. Past the cap a write that needs a new page
// fails with SQLITE_FULL, exactly as on a full disk. A negative room lifts the cap.
func (s *Store) LeaveRoomForTest(room int64) error {
	ctx := context.Background()
	max := int64(1 << 30)
	if room >= 0 {
		if _, err := s.db.ExecContext(ctx, `VACUUM`); err != nil {
			return err
		}
		if err := s.db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&max); err != nil {
			return err
		}
		max += room
	}
	const conns = 4 // OpenStore's SetMaxOpenConns
	s.db.SetMaxIdleConns(conns)
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	// Holding all the pool's connections at once reaches each of them.
	for range conns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			return err
		}
		held = append(held, c)
		var got int64
		if err := c.QueryRowContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", max)).Scan(&got); err != nil {
			return err
		}
		if got != max {
			return fmt.Errorf("max_page_count is %d, want %d", got, max)
		}
	}
	return nil
}

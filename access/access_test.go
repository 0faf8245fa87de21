package access_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/evoucher/evoucher"
	"github.com/evoucher/evoucher/access"
	"github.com/evoucher/evoucher/internal/testdb"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	s, err := access.New(access.Config{DB: testdb.MustPool(t), Now: c.Now, IdleTimeout: 10 * time.Minute, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, access.User{Name: "m", Role: access.RoleManager}, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, access.User{Name: "x", Role: access.RoleManager, Retailer: "R-1"}, "a long enough password"); !errors.Is(err, evoucher.ErrInvalid) {
		t.Fatalf("manager with a retailer scope: %v", err)
	}
	sess, err := s.Login(ctx, "m", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	// Used every 9 minutes, the session lives until its absolute expiry, not beyond.
	for i := 0; i < 6; i++ {
		c.Add(9 * time.Minute)
		if _, err := s.Session(ctx, sess.Token); err != nil {
			t.Fatalf("after %d minutes: %v", 9*(i+1), err)
		}
	}
	c.Add(7 * time.Minute) // 61 minutes after login
	if _, err := s.Session(ctx, sess.Token); !errors.Is(err, evoucher.ErrUnauthorized) {
		t.Fatalf("past the absolute expiry: %v", err)
	}
	// Idle for longer than the idle timeout: gone.
	sess, err = s.Login(ctx, "m", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(11 * time.Minute)
	if _, err := s.Session(ctx, sess.Token); !errors.Is(err, evoucher.ErrUnauthorized) {
		t.Fatalf("idle session: %v", err)
	}
	if access.CheckCSRF(sess.Token, "") || !access.CheckCSRF(sess.Token, sess.CSRF()) {
		t.Fatal("CSRF check")
	}
}

// A locked account answers exactly as an unknown name does, so failing logins cannot tell
// which names exist; once the lock expires, the right password works again.
func TestLockedLooksUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)}
	s, err := access.New(access.Config{DB: testdb.MustPool(t), Now: c.Now, MaxFailures: 3, LockFor: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const pw = "a long enough password"
	if _, err := s.AddUser(ctx, access.User{Name: "m", Role: access.RoleManager}, pw); err != nil {
		t.Fatal(err)
	}
	_, unknown := s.Login(ctx, "nobody", "whatever it is")
	for i := 0; i < 3; i++ {
		if _, err := s.Login(ctx, "m", "not the password"); err == nil {
			t.Fatal("a wrong password logged in")
		}
	}
	_, locked := s.Login(ctx, "m", pw)
	if locked == nil || unknown == nil || locked.Error() != unknown.Error() || evoucher.ReasonOf(locked) != evoucher.ReasonOf(unknown) {
		t.Fatalf("locked account: %v; unknown name: %v — want the same answer", locked, unknown)
	}
	c.Add(11 * time.Minute)
	if _, err := s.Login(ctx, "m", pw); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
}

package evoucher_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/evoucher/evoucher"
)

func TestErrors(t *testing.T) {
	cause := errors.New("pq: connection refused")
	err := fmt.Errorf("store batch: %w", evoucher.Errorf(evoucher.KindConflict, "code_used", "code was used on %s", "Monday"))
	if !errors.Is(err, evoucher.ErrConflict) || errors.Is(err, evoucher.ErrNotFound) {
		t.Fatal("errors.Is does not match on kind")
	}
	if !errors.Is(err, &evoucher.Error{Kind: evoucher.KindConflict, Reason: "code_used"}) ||
		errors.Is(err, &evoucher.Error{Kind: evoucher.KindConflict, Reason: "other"}) {
		t.Fatal("errors.Is does not match on reason")
	}
	if evoucher.KindOf(err) != evoucher.KindConflict || evoucher.ReasonOf(err) != "code_used" || evoucher.MessageOf(err) != "code was used on Monday" {
		t.Fatalf("kind %s reason %s message %q", evoucher.KindOf(err), evoucher.ReasonOf(err), evoucher.MessageOf(err))
	}
	internal := fmt.Errorf("load: %w", cause)
	if evoucher.KindOf(internal) != evoucher.KindInternal || evoucher.MessageOf(internal) != "internal error" {
		t.Fatal("a plain error is not internal, or its text leaks")
	}
	wrapped := evoucher.Errorf(evoucher.KindUnavailable, "db", "database unavailable: %w", cause)
	if !errors.Is(wrapped, cause) {
		t.Fatal("%w cause not unwrapped")
	}
}

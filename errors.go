// Package evoucher holds what every part of the platform shares: the one error model. Domain
// packages return these kinds; only package api turns them into HTTP statuses.
package evoucher

import (
	"errors"
	"fmt"
)

// Kind is the closed set of error kinds the platform speaks.
type Kind string

// The error kinds. Each maps to one HTTP status in package api, nowhere else.
const (
	KindInvalid      Kind = "invalid"      // the input is malformed or breaks a rule
	KindUnauthorized Kind = "unauthorized" // no or unacceptable credentials
	KindForbidden    Kind = "forbidden"    // authenticated, but not allowed
	KindNotFound     Kind = "not_found"
	KindConflict     Kind = "conflict" // the state does not allow it (already used, duplicate)
	KindUnavailable  Kind = "unavailable"
	KindInternal     Kind = "internal"
)

// Error is a domain error: a kind, a message a user can act on, an optional machine-readable
// reason (used as a metric label), and an optional cause that is logged but never shown.
type Error struct {
	Kind    Kind
	Reason  string
	Message string
	Err     error
}

// Error returns the message (which Errorf builds with the cause's text in it).
func (e *Error) Error() string {
	switch {
	case e.Message != "":
		return e.Message
	case e.Err != nil:
		return e.Err.Error()
	}
	return string(e.Kind)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same kind (and of the same reason when the
// target names one), so callers can test errors.Is(err, evoucher.ErrNotFound).
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) || t == e {
		return false
	}
	return t.Kind == e.Kind && (t.Reason == "" || t.Reason == e.Reason) && t.Message == ""
}

// Sentinels for errors.Is on the kind alone.
var (
	ErrInvalid      = &Error{Kind: KindInvalid}
	ErrUnauthorized = &Error{Kind: KindUnauthorized}
	ErrForbidden    = &Error{Kind: KindForbidden}
	ErrNotFound     = &Error{Kind: KindNotFound}
	ErrConflict     = &Error{Kind: KindConflict}
	ErrUnavailable  = &Error{Kind: KindUnavailable}
	ErrInternal     = &Error{Kind: KindInternal}
)

// Errorf returns an *Error of kind k with a reason and a formatted message. A %w verb in the
// format sets the cause.
func Errorf(k Kind, reason, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Reason: reason, Message: err.Error(), Err: errors.Unwrap(err)}
}

// KindOf returns the kind of err: that of the first *Error in its chain, KindInternal otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// ReasonOf returns the reason of the first *Error in err's chain, or "".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// MessageOf returns what a client may be shown: the message of the first *Error in err's chain,
// or "internal error" for anything else and for internal errors.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		return e.Message
	}
	return "internal error"
}

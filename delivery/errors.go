package delivery

import (
	"context"
	"errors"
	"time"
)

// Error is a failed send, classified so that the retry loop and the client
// know what to do: a transient failure (connection refused, timeout, a 5xx
// or 429 from the provider) may succeed when tried again; a permanent one
// (the provider refused the address or the credentials, any other 4xx) will
// not.
//
// Reason is a short, fixed description such as "smtp 550" or "http 503":
// it is logged and counted, so it must never hold the passcode, the message
// or the recipient.
type Error struct {
	Permanent bool
	Reason    string
	// RetryAfter is the provider's own hint (a 429's Retry-After); zero when
	// it gave none.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Err == nil {
		return "delivery: " + kind + " failure: " + e.Reason
	}
	return "delivery: " + kind + " failure: " + e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a failure that retrying cannot fix.
func Permanent(reason string, err error) error {
	return &Error{Permanent: true, Reason: reason, Err: err}
}

// Transient marks err as a failure that a later attempt may not meet.
func Transient(reason string, err error) error {
	return &Error{Reason: reason, Err: err}
}

// IsPermanent reports whether err is a permanent failure. Errors that no
// channel classified count as transient: the retry budget bounds them.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// ReasonOf is the loggable reason of a failure ("unclassified" when no
// channel classified it).
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "unclassified"
}

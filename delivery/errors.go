package delivery

import (
	"context"
	"errors"
	"strconv"
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
	// Misconfigured marks a permanent failure that is the deployment's
	// fault, not the address's: no channel, credentials or TLS refused, an
	// endpoint that is not there. The user cannot fix it by typing the
	// address again.
	Misconfigured bool
	Reason        string
	// RetryAfter is the provider's own hint (a 429's Retry-After); zero when
	// it gave none.
	RetryAfter time.Duration
	// Attempts is how many sends Retrying made before giving up; zero when
	// the error did not come through Retrying.
	Attempts int
	Err      error
}

func (e *Error) Error() string {
	what := "transient failure"
	if e.Permanent {
		what = "permanent failure"
	}
	switch {
	case e.Attempts == 1:
		what += " after 1 attempt"
	case e.Attempts > 1:
		what += " after " + strconv.Itoa(e.Attempts) + " attempts"
	}
	if e.Err == nil {
		return "delivery: " + what + ": " + e.Reason
	}
	return "delivery: " + what + ": " + e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a failure that retrying cannot fix.
func Permanent(reason string, err error) error {
	return &Error{Permanent: true, Reason: reason, Err: err}
}

// Misconfigured marks err as a permanent failure of the channel's own
// configuration (credentials, TLS, endpoint), not of the recipient.
func Misconfigured(reason string, err error) error {
	return &Error{Permanent: true, Misconfigured: true, Reason: reason, Err: err}
}

// IsMisconfigured reports whether err is a configuration fault.
func IsMisconfigured(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent && e.Misconfigured
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

// AttemptsOf is how many sends Retrying made before it returned err (zero
// when err did not come through Retrying).
func AttemptsOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Attempts
	}
	return 0
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

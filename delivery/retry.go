package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("250ms", "10s"): a bare number would leave the reader guessing
// the unit. Channel configurations use it for their timeouts.
type Duration time.Duration

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string; numbers are refused because their
// unit is ambiguous (is 10 ten seconds or ten nanoseconds?).
func (d *Duration) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return errors.New(`duration must be a string such as "10s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit such as \"250ms\" or \"10s\"", s)
	}
	*d = Duration(v)
	return nil
}

// Retry policy defaults and limits. The limits keep one delivery inside
// the few seconds a user waits for a passcode.
const (
	DefaultAttempts       = 3
	DefaultInitialBackoff = 250 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
	maxAttempts           = 10
	maxBackoffLimit       = 30 * time.Second
)

// RetryPolicy says how often and how patiently Retrying tries a send. (The
// field tags name the JSON keys for strict configuration decoding, which
// checks keys against them; MarshalJSON and UnmarshalJSON do the rest.)
// In JSON the backoffs are duration strings:
//
//	{"attempts": 3, "initialBackoff": "250ms", "maxBackoff": "2s"}
type RetryPolicy struct {
	// Attempts counts every send, the first one included.
	Attempts int `json:"attempts"`
	// InitialBackoff bounds the wait before the second attempt; each later
	// wait may be twice as long as the one before.
	InitialBackoff time.Duration `json:"initialBackoff"`
	// MaxBackoff caps every wait, a provider's Retry-After included.
	MaxBackoff time.Duration `json:"maxBackoff"`
}

// retryPolicyJSON is RetryPolicy's wire form.
type retryPolicyJSON struct {
	Attempts       int      `json:"attempts"`
	InitialBackoff Duration `json:"initialBackoff"`
	MaxBackoff     Duration `json:"maxBackoff"`
}

// MarshalJSON writes the backoffs as duration strings.
func (p RetryPolicy) MarshalJSON() ([]byte, error) {
	return json.Marshal(retryPolicyJSON{p.Attempts, Duration(p.InitialBackoff), Duration(p.MaxBackoff)})
}

// UnmarshalJSON reads the backoffs as duration strings.
func (p *RetryPolicy) UnmarshalJSON(data []byte) error {
	w := retryPolicyJSON{p.Attempts, Duration(p.InitialBackoff), Duration(p.MaxBackoff)}
	// Strict like the rest of the configuration: a misspelt field must not
	// silently leave a default in place.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*p = RetryPolicy{w.Attempts, time.Duration(w.InitialBackoff), time.Duration(w.MaxBackoff)}
	return nil
}

// WithDefaults fills the fields left at zero (3 attempts, 250ms, 2s).
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.Attempts == 0 {
		p.Attempts = DefaultAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	return p
}

// Validate checks p as given (call WithDefaults first to accept zeros).
// Errors start with the field's JSON name ("attempts: must be 1-10"); the
// caller, which knows where the policy sits in its configuration, adds the
// path in front.
func (p RetryPolicy) Validate() error {
	switch {
	case p.Attempts < 1 || p.Attempts > maxAttempts:
		return fmt.Errorf("attempts: must be 1-%d", maxAttempts)
	case p.InitialBackoff <= 0:
		return errors.New("initialBackoff: must be positive")
	case p.MaxBackoff <= 0:
		return errors.New("maxBackoff: must be positive")
	case p.MaxBackoff < p.InitialBackoff:
		return errors.New("maxBackoff: must not be below initialBackoff")
	case p.MaxBackoff > maxBackoffLimit:
		return fmt.Errorf("maxBackoff: must be at most %s", maxBackoffLimit)
	}
	return nil
}

// Retrying wraps s so that each Send tries up to p.Attempts times (zero
// fields of p take the defaults). It stops at the first success, at a
// permanent error, and when ctx is done; between attempts it waits an
// exponential backoff with full jitter, at least the provider's RetryAfter
// (capped at MaxBackoff), and never past ctx's deadline: when the next wait
// would end after it, the last error is returned at once.
//
// A failure comes back as an *Error whose Attempts says how many sends were
// made (see AttemptsOf); its Permanent and Reason are the last failure's.
func Retrying(s Sender, p RetryPolicy) Sender {
	p = p.WithDefaults()
	// Rejecting a bad policy is Validate's job; a send is still tried once.
	p.Attempts = max(p.Attempts, 1)
	return &retrier{next: s, policy: p, sleep: sleepContext, jitter: fullJitter}
}

type retrier struct {
	next   Sender
	policy RetryPolicy
	// sleep and jitter are replaced by tests to run fast and predictably.
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(ceiling time.Duration) time.Duration
}

func (r *retrier) Send(ctx context.Context, msg Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	attempts := 0
	for attempts < r.policy.Attempts {
		attempts++
		if err = r.next.Send(ctx, msg); err == nil {
			return nil
		}
		if IsPermanent(err) || attempts == r.policy.Attempts || ctx.Err() != nil {
			break
		}
		wait := r.backoff(attempts, err)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			break // waiting would only end in ctx's deadline
		}
		if r.sleep(ctx, wait) != nil {
			break
		}
	}
	return withAttempts(err, attempts)
}

// backoff is the wait after the given (1-based) failed attempt: a random
// time up to InitialBackoff·2^(attempt-1), capped at MaxBackoff, but no less
// than the provider's RetryAfter (itself capped at MaxBackoff).
func (r *retrier) backoff(attempt int, err error) time.Duration {
	ceiling := r.policy.InitialBackoff
	for i := 1; i < attempt && ceiling < r.policy.MaxBackoff; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, r.policy.MaxBackoff)
	wait := time.Duration(0)
	if ceiling > 0 {
		wait = min(r.jitter(ceiling), ceiling)
	}
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > wait {
		wait = min(e.RetryAfter, r.policy.MaxBackoff)
	}
	return max(wait, 0)
}

// withAttempts records the attempt count on err, keeping its class and
// reason. A channel's own *Error is copied rather than wrapped so that the
// message does not repeat its reason.
func withAttempts(err error, attempts int) error {
	if e, ok := err.(*Error); ok {
		c := *e
		c.Attempts = attempts
		return &c
	}
	return &Error{Permanent: IsPermanent(err), Reason: ReasonOf(err), Attempts: attempts, Err: err}
}

// fullJitter picks a wait uniformly in [0, ceiling], which spreads the
// retries of many clients failing at once.
func fullJitter(ceiling time.Duration) time.Duration {
	return rand.N(ceiling + 1)
}

// sleepContext waits d or until ctx is done, whichever comes first.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ParseRetryAfter reads an HTTP Retry-After value, either delay-seconds or
// an HTTP date; it is zero when the value is absent, malformed or past.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 32); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if at, err := http.ParseTime(value); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}

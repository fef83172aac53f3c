package engine_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/engine"
)

func TestAsErrorHidesCause(t *testing.T) {
	cause := errors.New("redis: dial tcp 10.0.0.7:6379: secret-host refused")
	e := engine.AsError(fmt.Errorf("load: %w", cause))
	if e.Status != http.StatusInternalServerError || e.Code != engine.CodeUnexpected {
		t.Fatalf("status/code = %d %s", e.Status, e.Code)
	}
	if strings.Contains(e.Message, "secret-host") || strings.Contains(e.Message, "redis") {
		t.Fatalf("client message reveals the cause: %q", e.Message)
	}
	if len(e.Details) != 0 {
		t.Fatalf("details reveal something: %+v", e.Details)
	}
	if !errors.Is(e, cause) {
		t.Fatal("the cause is not kept for the log (Unwrap)")
	}
	if !strings.Contains(e.Error(), "secret-host") {
		t.Fatalf("Error() (for the log) lacks the cause: %q", e.Error())
	}
}

func TestAsErrorKeepsAPIErrors(t *testing.T) {
	orig := engine.InvalidField("user.id", engine.DetailRequired, "is required")
	if got := engine.AsError(orig); got != orig {
		t.Fatal("an *Error is not returned as is")
	}
	if got := engine.AsError(fmt.Errorf("wrapped: %w", orig)); got != orig {
		t.Fatal("a wrapped *Error is not unwrapped")
	}
}

func TestTooSoon(t *testing.T) {
	tests := []struct {
		wait, want time.Duration
	}{
		{-5 * time.Second, time.Second},
		{0, time.Second},
		{time.Millisecond, time.Second},
		{999 * time.Millisecond, time.Second},
		{time.Second, time.Second},
		{1400 * time.Millisecond, 2 * time.Second}, // rounded up: never early
		{time.Second + time.Nanosecond, 2 * time.Second},
		{1500 * time.Millisecond, 2 * time.Second},
		{1600 * time.Millisecond, 2 * time.Second},
		{29*time.Second + 200*time.Millisecond, 30 * time.Second},
		{2 * time.Minute, 2 * time.Minute},
	}
	for _, tc := range tests {
		e := engine.TooSoon("wait", tc.wait)
		if e.RetryAfter != tc.want {
			t.Errorf("TooSoon(%v).RetryAfter = %v, want %v", tc.wait, e.RetryAfter, tc.want)
		}
		if e.Status != http.StatusTooManyRequests || e.Code != engine.CodeRequestLimited || e.Message != "wait" {
			t.Errorf("TooSoon = %+v", e)
		}
		if e.RetryAfter%time.Second != 0 || e.RetryAfter < time.Second {
			t.Errorf("RetryAfter %v is not whole seconds >= 1s", e.RetryAfter)
		}
	}
}

func TestErrorConstructors(t *testing.T) {
	one := engine.InvalidField("otp", engine.DetailInvalidOTP, "is wrong")
	if one.Status != 400 || one.Code != engine.CodeInvalidData || one.Message != "otp: is wrong" {
		t.Errorf("InvalidField = %+v", one)
	}
	if got := one.Error(); got != "INVALID_DATA: otp: is wrong [INVALID_OTP otp: is wrong]" {
		t.Errorf("Error() = %q", got)
	}
	two := engine.Invalid(engine.ErrorDetail{Target: "a", Message: "x"}, engine.ErrorDetail{Target: "b", Message: "y"})
	if !strings.Contains(two.Message, "One or more validation errors") || len(two.Details) != 2 {
		t.Errorf("Invalid(2) = %+v", two)
	}
	nf := engine.NotFound("flow execution")
	if nf.Status != 404 || nf.Code != engine.CodeNotFound || !strings.HasPrefix(nf.Message, "flow execution not found") {
		t.Errorf("NotFound = %+v", nf)
	}
	cause := errors.New("down")
	un := engine.Unavailable(cause)
	if un.Status != 503 || un.Code != engine.CodeServiceUnavailable || !errors.Is(un, cause) || strings.Contains(un.Message, "down") {
		t.Errorf("Unavailable = %+v", un)
	}
	c := engine.Conflict()
	if c.Status != 409 || c.Code != engine.CodeConcurrentUpdate {
		t.Errorf("Conflict = %+v", c)
	}
}

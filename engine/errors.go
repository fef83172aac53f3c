package engine

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error codes of the error body. They follow the codes client developers
// already know from comparable APIs (see REFERENCE.md), plus a few that
// distinguish cases a client must treat differently.
const (
	CodeInvalidData          = "INVALID_DATA"           // 400: a field is wrong
	CodeInvalidRequest       = "INVALID_REQUEST"        // 400: the body is not JSON
	CodeAccessFailed         = "ACCESS_FAILED"          // 401
	CodeNotFound             = "NOT_FOUND"              // 404
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"     // 405
	CodeActionNotAllowed     = "ACTION_NOT_ALLOWED"     // 409: not in this state
	CodeConcurrentUpdate     = "CONCURRENT_UPDATE"      // 409: lost the compare-and-set race
	CodeUniquenessViolation  = "UNIQUENESS_VIOLATION"   // 409: id already taken
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE" // 415
	CodeRequestLimited       = "REQUEST_LIMITED"        // 429
	CodeUnexpected           = "UNEXPECTED_ERROR"       // 500
	CodeServiceUnavailable   = "SERVICE_UNAVAILABLE"    // 503
)

// Detail codes name what is wrong with one target.
const (
	DetailRequired        = "REQUIRED_VALUE"
	DetailInvalidValue    = "INVALID_VALUE"
	DetailUnknownField    = "UNKNOWN_FIELD"
	DetailInvalidOTP      = "INVALID_OTP"
	DetailOTPExpired      = "OTP_EXPIRED"
	DetailOTPVoid         = "OTP_ATTEMPTS_EXCEEDED"
	DetailOTPReplayed     = "OTP_REPLAYED"
	DetailLimitExceeded   = "LIMIT_EXCEEDED"
	DetailPolicyViolation = "POLICY_VIOLATION"
	// DetailUserLocked: mfaSettings.lockout refuses the user's
	// verifications until innerError.lockedUntil.
	DetailUserLocked = "USER_LOCKED"
	// A send budget refused the passcode (mfaSettings.sendLimits).
	DetailSendLimitUser        = "SEND_LIMIT_USER"
	DetailSendLimitAddress     = "SEND_LIMIT_ADDRESS"
	DetailSendLimitEnvironment = "SEND_LIMIT_ENVIRONMENT"
)

// Error is the one error type the API returns. Status is the HTTP status;
// the rest becomes the body {id, code, message, details}.
type Error struct {
	Status     int
	Code       string
	Message    string
	Details    []ErrorDetail
	RetryAfter time.Duration // for 429: sent as Retry-After
	Cause      error         // logged, never returned to the client
}

// ErrorDetail names one problem with one target (a field path).
type ErrorDetail struct {
	Code       string         `json:"code"`
	Target     string         `json:"target,omitempty"`
	Message    string         `json:"message"`
	InnerError map[string]any `json:"innerError,omitempty"`
}

func (e *Error) Error() string {
	msg := e.Code + ": " + e.Message
	for _, d := range e.Details {
		msg += fmt.Sprintf(" [%s %s: %s]", d.Code, d.Target, d.Message)
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Cause }

// AsError turns any error into an *Error; unknown errors become a 500 that
// reveals nothing but keeps the cause for the log.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeUnexpected,
		Message: "An unexpected error occurred.", Cause: err}
}

// Invalid builds a 400 INVALID_DATA error from field details.
func Invalid(details ...ErrorDetail) *Error {
	msg := "The request could not be completed. One or more validation errors were in the request."
	if len(details) == 1 {
		msg = details[0].Target + ": " + details[0].Message
	}
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidData, Message: msg, Details: details}
}

// InvalidField is the common case of one bad field.
func InvalidField(target, code, message string) *Error {
	return Invalid(ErrorDetail{Code: code, Target: target, Message: message})
}

// NotFound is the 404 for a resource the caller named.
func NotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: what + " not found (or expired)."}
}

// Unavailable is the 503 for a store that cannot be reached.
func Unavailable(cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeServiceUnavailable,
		Message: "The service is temporarily unavailable; nothing was changed. Retry later.", Cause: cause}
}

// TooSoon is the 429 with the wait until the action is possible again.
// Retry-After has whole seconds, so the wait is rounded up: a client that
// obeys it must not be refused again.
func TooSoon(message string, wait time.Duration) *Error {
	wait = (wait + time.Second - 1).Truncate(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRequestLimited, Message: message, RetryAfter: wait}
}

// LimitReached is the 429 for a limit that no wait lifts within this
// execution: it has no Retry-After.
func LimitReached(message string) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRequestLimited, Message: message}
}

// Conflict is the 409 for a lost compare-and-set race.
func Conflict() *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConcurrentUpdate,
		Message: "The flow execution was changed by another request; nothing was changed. Reload it and retry."}
}

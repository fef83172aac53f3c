// Package httpchannel is what the HTTP-based delivery channels (webhook,
// twilio) share: a client that never follows redirects, the classification
// of transport failures and status codes into *delivery.Error, the rules
// for a configured URL, and the draining of responses.
//
// It holds only what is the same for every such channel. Each channel keeps
// its own configuration errors (which name its fields, as in
// "webhook.url: ..."), its own failure reasons for replies ("http 503",
// "twilio 400 code 21211") and its own request building.
package httpchannel

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
)

// ReadLimit bounds how much of a response a channel reads: the answer of a
// provider is at most a short error document, and reading an unbounded one
// would let a slow or hostile server stall the send.
const ReadLimit = 4 << 10

// NewClient is an http.Client whose requests end after timeout and which
// never follows a redirect: following one would resend the credentials
// (basic auth, API key headers) and the passcode to a place nobody
// configured. The 3xx comes back as the response, which StatusError
// reports as a permanent failure.
func NewClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TransportError classifies a failed round trip (an error from
// http.Client.Do) as transient, with the reason "timeout" or
// "connection failed". The *url.Error net/http wraps the cause in is
// dropped: its text holds the request's URL, which may carry a token or
// an account id, and the error ends up in logs and API answers.
func TransportError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return delivery.Transient("timeout", err)
	}
	return delivery.Transient("connection failed", err)
}

// StatusError classifies a reply by its status: nil for 2xx; transient for
// 429 (with the Retry-After hint, read relative to now) and 5xx, where the
// provider is overloaded or failing and a later attempt may succeed;
// permanent for anything else (4xx, and 3xx since redirects are not
// followed), which sending again would not change.
//
// reason is called only for a failure and gives the *delivery.Error's
// Reason; it may read resp.Body (at most ReadLimit bytes). A nil reason
// gives HTTPReason. The reason must hold neither the passcode nor the
// recipient, since it is logged and counted.
func StatusError(resp *http.Response, now time.Time, reason func(*http.Response) string) error {
	status := resp.StatusCode
	if status >= 200 && status < 300 {
		return nil
	}
	if reason == nil {
		reason = HTTPReason
	}
	why := reason(resp)
	switch {
	case status == http.StatusTooManyRequests:
		return &delivery.Error{Reason: why, RetryAfter: delivery.ParseRetryAfter(resp.Header.Get("Retry-After"), now)}
	case status >= 500:
		return delivery.Transient(why, nil)
	}
	return delivery.Permanent(why, nil)
}

// HTTPReason is the plain reason for a failed reply: "http" and the status
// code, as in "http 503".
func HTTPReason(resp *http.Response) string {
	return "http " + strconv.Itoa(resp.StatusCode)
}

// DrainAndClose reads at most ReadLimit bytes of what is left of body, so
// that a short answer leaves the connection reusable without a long one
// stalling the send, and closes it.
func DrainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, ReadLimit))
	_ = body.Close()
}

// ParseAbsolute parses raw as an absolute URL with a host (not opaque, as
// "mailto:x" is); ok is false when it is not one. The caller checks the
// rest (SecureScheme, userinfo, query) and words its own errors.
func ParseAbsolute(raw string) (u *url.URL, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, false
	}
	return u, true
}

// SecureScheme reports whether u may carry credentials and passcodes: https
// to any host, or plain http to this machine only (a development gateway or
// a test server), where nothing crosses the network unencrypted.
func SecureScheme(u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return IsLoopback(u.Hostname())
	}
	return false
}

// IsLoopback reports whether host (without a port) is this machine:
// "localhost", 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

// Package httpchannel is what the HTTP-based delivery channels (webhook,
// twilio) share: a client that never follows redirects, the classification
// of transport failures and status codes into *delivery.Error, the rules
// for a configured URL, and the draining of responses. Its destination
// rules (AllowedAddr, NewDialer) also serve the SMTP channel, so that every
// channel saved through the management API keeps off the same addresses.
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
	"syscall"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
)

// ReadLimit bounds how much of a response a channel reads: the answer of a
// provider is at most a short error document, and reading an unbounded one
// would let a slow or hostile server stall the send.
const ReadLimit = 4 << 10

// Option adjusts a client built by NewClient.
type Option func(*clientOptions)

type clientOptions struct {
	restrict bool
}

// RestrictDestinations makes the client refuse to connect to an address
// that is not AllowedAddr: this machine, link-local addresses (the cloud
// metadata service among them) and the unspecified address. The check is
// made on the address actually dialled, after name resolution, so a name
// that resolves (or later rebinds) to such an address is refused too; the
// failure is delivery.Misconfigured with the reason "destination not
// allowed". It is meant for channels saved through the management API,
// whose caller must not be able to reach what only this machine can.
//
// A restricted client ignores HTTP_PROXY and HTTPS_PROXY: through a proxy
// the address dialled would be the proxy's, and the check moot.
func RestrictDestinations() Option {
	return func(o *clientOptions) { o.restrict = true }
}

// NewClient is an http.Client whose requests end after timeout and which
// never follows a redirect: following one would resend the credentials
// (basic auth, API key headers) and the passcode to a place nobody
// configured. The 3xx comes back as the response, which StatusError
// reports as a configuration fault.
func NewClient(timeout time.Duration, opts ...Option) *http.Client {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	client := &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if o.restrict {
		client.Transport = restrictedTransport()
	}
	return client
}

// restrictedTransport is http.DefaultTransport's settings with a dialer
// that refuses what AllowedAddr does not allow, and no proxy.
func restrictedTransport() *http.Transport {
	var t *http.Transport
	if def, ok := http.DefaultTransport.(*http.Transport); ok {
		t = def.Clone()
	} else {
		t = &http.Transport{ForceAttemptHTTP2: true, MaxIdleConns: 100, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second, ExpectContinueTimeout: time.Second}
	}
	t.Proxy = nil
	t.DialContext = NewDialer(true).DialContext
	// A TLS dial function would be used instead of DialContext for https.
	t.DialTLSContext = nil
	return t
}

// ErrDestinationNotAllowed is the dial error of a restricted dialer (see
// NewDialer) for an address that AllowedAddr refuses.
var ErrDestinationNotAllowed = errors.New("destination not allowed")

// NewDialer is a net.Dialer with http.DefaultTransport's timeouts. When
// restrict is true its connections to an address AllowedAddr refuses fail
// before any packet is sent, with an error wrapping
// ErrDestinationNotAllowed; the check runs on each resolved address, in
// the dialer's Control hook, so DNS cannot bypass it.
func NewDialer(restrict bool) *net.Dialer {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if restrict {
		d.ControlContext = restrictedControl
	}
	return d
}

// restrictedControl is the Control hook of a restricted dialer: address is
// the resolved "ip:port" about to be connected to.
func restrictedControl(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Not an IP and port: not a TCP or UDP dial, which no channel makes.
		return ErrDestinationNotAllowed
	}
	if !AllowedAddr(ap.Addr()) {
		return ErrDestinationNotAllowed
	}
	return nil
}

// ec2MetadataV6 is the IPv6 address of Amazon EC2's instance metadata
// service: a unique local address, not a link-local one, so it is named.
var ec2MetadataV6 = netip.MustParseAddr("fd00:ec2::254")

// thisNetwork is 0.0.0.0/8, "this host on this network" (RFC 1122):
// connecting to 0.0.0.0 reaches this machine.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// AllowedAddr reports whether a restricted channel may connect to addr:
// not loopback (127.0.0.0/8, ::1), not link-local (169.254.0.0/16,
// fe80::/10, where cloud metadata services answer, nor the link-local
// multicast ranges), not unspecified (0.0.0.0/8, ::), not EC2's IPv6
// metadata address, and none of these in IPv4-mapped IPv6 form
// (::ffff:127.0.0.1).
func AllowedAddr(addr netip.Addr) bool {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid(),
		addr.IsLoopback(),
		addr.IsLinkLocalUnicast(),
		addr.IsLinkLocalMulticast(),
		addr.IsInterfaceLocalMulticast(),
		addr.IsUnspecified(),
		thisNetwork.Contains(addr),
		addr.WithZone("") == ec2MetadataV6:
		return false
	}
	return true
}

// AllowedHost reports whether a restricted channel may be configured with
// host (a name or an IP address, without a port or brackets): false for
// "localhost" and its subdomains and for an IP address AllowedAddr
// refuses. Any other name is allowed here; what it resolves to is checked
// when it is dialled. It gives a configuration error early, not the
// protection, which is the dialer's.
func AllowedHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return AllowedAddr(addr)
	}
	return true
}

// IsDestinationNotAllowed reports whether err is a restricted dialer's
// refusal.
func IsDestinationNotAllowed(err error) bool {
	return errors.Is(err, ErrDestinationNotAllowed)
}

// TransportError classifies a failed round trip (an error from
// http.Client.Do) as transient, with the reason "timeout" or
// "connection failed", except for a destination that a restricted client
// refused (see RestrictDestinations), a configuration fault with the
// reason "destination not allowed". The *url.Error net/http wraps the
// cause in is dropped: its text holds the request's URL, which may carry
// a token or an account id, and the error ends up in logs and API answers.
func TransportError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if IsDestinationNotAllowed(err) {
		return delivery.Misconfigured("destination not allowed", err)
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
// permanent for anything else, which sending again would not change. Of
// the permanent ones, those that say the channel is set up wrong rather
// than that the message was refused are delivery.Misconfigured (see
// MisconfiguredStatus): the credentials (401, 403, 407), the endpoint
// (404, 405) and any 3xx, since redirects are not followed.
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
	case MisconfiguredStatus(status):
		return delivery.Misconfigured(why, nil)
	}
	return delivery.Permanent(why, nil)
}

// MisconfiguredStatus reports whether an HTTP reply with status is the
// channel's own fault, whatever the recipient: a redirect (3xx, never
// followed: the URL is out of date), 401 Unauthorized, 403 Forbidden and
// 407 Proxy Authentication Required (the credentials), 404 Not Found and
// 405 Method Not Allowed (the URL).
func MisconfiguredStatus(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed,
		http.StatusProxyAuthRequired:
		return true
	}
	return status >= 300 && status < 400
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

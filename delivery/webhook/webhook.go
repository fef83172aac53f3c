// Package webhook delivers passcodes as a signed JSON POST to the
// operator's own gateway, which relays them by SMS, voice or e-mail.
//
// The request body is
//
//	{"id":"…","environmentId":"…","method":"SMS","recipient":"+12015554567","locale":"en","content":"…"}
//
// with "subject" (before "content") and "html" (after it) added for e-mail
// when they are not empty. The headers are
//
//	Content-Type: application/json
//	User-Agent: enrollflow
//	X-Enrollflow-Timestamp: <unix seconds>
//	X-Enrollflow-Signature: v1=<lowercase hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// plus the configured ones. A receiver checks the signature with Verify.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/httpchannel"
)

// Header names of the signature scheme.
const (
	TimestampHeader = "X-Enrollflow-Timestamp"
	SignatureHeader = "X-Enrollflow-Signature"
)

// DefaultTimeout bounds one request.
const DefaultTimeout = 5 * time.Second

// minSecretLen keeps the HMAC key out of guessing range.
const minSecretLen = 16

// Config is a webhook channel's settings.
type Config struct {
	// URL receives the POST: https, or http on a loopback host for
	// development.
	URL string `json:"url"`
	// Secret keys the HMAC signature; at least 16 bytes.
	Secret string `json:"secret,omitempty"`
	// Headers are added to every request (an API key for the gateway, say).
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds one request (DefaultTimeout when zero).
	Timeout delivery.Duration `json:"timeout,omitempty"`
}

// reservedHeaders are set by the Sender or by net/http; a configured value
// would break the signature or the framing.
var reservedHeaders = []string{
	"Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection",
	TimestampHeader, SignatureHeader,
}

// Validate checks the configuration; errors name the field, as in
// "webhook.url: must use https". Neither the secret nor header values are
// quoted, since they may be credentials.
func (c *Config) Validate() error {
	if err := validateURL(c.URL); err != nil {
		return err
	}
	if len(c.Secret) < minSecretLen {
		return fmt.Errorf("webhook.secret: must be at least %d bytes", minSecretLen)
	}
	for name, value := range c.Headers {
		if !isToken(name) {
			return fmt.Errorf("webhook.headers: %q is not a valid header name", name)
		}
		for _, reserved := range reservedHeaders {
			if strings.EqualFold(name, reserved) {
				return fmt.Errorf("webhook.headers: %s is set by enrollflow", reserved)
			}
		}
		if !validFieldValue(value) {
			// The name is a token (checked above), safe to repeat; the
			// value is never quoted.
			return fmt.Errorf("webhook.headers.%s: must be a valid HTTP field value (no control characters but tab)", name)
		}
	}
	if c.Timeout < 0 {
		return errors.New("webhook.timeout: must be positive")
	}
	return nil
}

// ValidateForAPI is Validate with the rules for a channel saved through the
// management API rather than the configuration file: the URL may not
// point at this machine or a link-local address (the cloud metadata
// service), so plain http, which Validate allows on a loopback host only,
// is refused altogether. New with RestrictDestinations enforces the same
// when it connects, whatever the name resolves to.
func (c *Config) ValidateForAPI() error {
	if err := c.Validate(); err != nil {
		return err
	}
	u, _ := httpchannel.ParseAbsolute(c.URL) // Validate accepted it
	switch {
	case u.Scheme == "http":
		return errors.New("webhook.url: http is allowed on a loopback host only in the configuration file")
	case !httpchannel.AllowedHost(u.Hostname()):
		return errors.New("webhook.url: must not be this machine or a link-local address")
	}
	return nil
}

// validFieldValue reports whether v can be sent as an HTTP field value
// (RFC 9110 section 5.5): no control character but horizontal tab, and no
// DEL. Bytes from 0x80 up (obs-text, or UTF-8) pass, as net/http lets them.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// validateURL applies httpchannel's URL rules to the webhook's URL; a query
// is allowed (the gateway may want one), credentials in it are not (they
// belong in webhook.headers, which are never quoted).
func validateURL(raw string) error {
	if raw == "" {
		return errors.New("webhook.url: is required")
	}
	u, ok := httpchannel.ParseAbsolute(raw)
	switch {
	case !ok:
		return errors.New("webhook.url: must be an absolute URL")
	case u.User != nil:
		return errors.New("webhook.url: must not hold credentials (use webhook.headers)")
	case u.Fragment != "":
		return errors.New("webhook.url: must not have a fragment")
	case httpchannel.SecureScheme(u):
		return nil
	case u.Scheme == "http":
		return errors.New("webhook.url: must use https (http only on a loopback host)")
	}
	return errors.New("webhook.url: must use https")
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// Sender posts messages to one webhook. It is safe for concurrent use.
type Sender struct {
	url     string
	secret  []byte
	headers http.Header
	client  *http.Client
}

// Option adjusts a Sender; httpchannel's options apply.
type Option = httpchannel.Option

// RestrictDestinations makes the Sender refuse to connect to this machine,
// to link-local addresses (the cloud metadata service) and to the
// unspecified address, checked on the address dialled so that DNS cannot
// get around it, and ignore any HTTP proxy from the environment. A refused
// send fails delivery.Misconfigured with the reason "destination not
// allowed". Use it, with Config.ValidateForAPI, for a channel saved
// through the management API.
func RestrictDestinations() Option { return httpchannel.RestrictDestinations() }

// New validates cfg and builds its Sender.
func New(cfg Config, opts ...Option) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout := time.Duration(cfg.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	headers := http.Header{}
	for name, value := range cfg.Headers {
		headers.Set(name, value)
	}
	return &Sender{
		url:     cfg.URL,
		secret:  []byte(cfg.Secret),
		headers: headers,
		// A redirect is refused, and reported as the configuration fault
		// a 3xx is.
		client: httpchannel.NewClient(timeout, opts...),
	}, nil
}

// Kind names the channel type.
func (*Sender) Kind() string { return "webhook" }

// payload is the request body; see the package documentation.
type payload struct {
	ID            string          `json:"id"`
	EnvironmentID string          `json:"environmentId"`
	Method        delivery.Method `json:"method"`
	Recipient     string          `json:"recipient"`
	Locale        string          `json:"locale"`
	Subject       string          `json:"subject,omitempty"`
	Content       string          `json:"content"`
	HTML          string          `json:"html,omitempty"`
}

func payloadOf(msg delivery.Message) payload {
	p := payload{ID: msg.ID, EnvironmentID: msg.EnvID, Method: msg.Method, Recipient: msg.Recipient,
		Locale: msg.Locale, Content: msg.Body}
	if msg.Method == delivery.Email {
		p.Subject, p.HTML = msg.Subject, msg.HTMLBody
	}
	return p
}

// Send posts msg. Failures are *delivery.Error values: 429 and 5xx
// replies and network failures are transient, other replies permanent;
// of those, a redirect, 401, 403, 404, 405 and 407 are
// delivery.Misconfigured (see httpchannel.StatusError), while 400, 422 and
// the rest say the gateway refused the message.
func (s *Sender) Send(ctx context.Context, msg delivery.Message) error {
	switch msg.Method {
	case delivery.SMS, delivery.Voice, delivery.Email:
	default:
		return delivery.Misconfigured("method not supported", nil)
	}
	body, err := json.Marshal(payloadOf(msg))
	if err != nil {
		return delivery.Permanent("bad message", nil)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return delivery.Misconfigured("bad configuration", nil)
	}
	req.Header = s.headers.Clone()
	timestamp := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "enrollflow")
	}
	req.Header.Set(TimestampHeader, timestamp)
	req.Header.Set(SignatureHeader, Sign(s.secret, timestamp, body))

	resp, err := s.client.Do(req)
	if err != nil {
		return httpchannel.TransportError(err)
	}
	// The gateway's answer is not used: its status is the reason
	// ("http 503").
	defer httpchannel.DrainAndClose(resp.Body)
	return httpchannel.StatusError(resp, time.Now(), httpchannel.HTTPReason)
}

// Sign is the X-Enrollflow-Signature value for a request: "v1=" and the
// lowercase hex HMAC-SHA256 of timestamp + "." + body under secret.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors from Verify.
var (
	ErrBadTimestamp = errors.New("webhook: timestamp missing, malformed or outside the tolerance")
	ErrBadSignature = errors.New("webhook: signature does not match")
)

// Verify checks a received request: the timestamp header must lie within
// tolerance of now (which stops a recorded request from being replayed
// later), and signature, the X-Enrollflow-Signature header, must be
// Sign(secret, timestamp, body). The comparison takes constant time.
func Verify(secret []byte, timestamp string, body []byte, signature string, now time.Time, tolerance time.Duration) error {
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if skew := now.Sub(time.Unix(secs, 0)); skew > tolerance || skew < -tolerance {
		return ErrBadTimestamp
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body))) {
		return ErrBadSignature
	}
	return nil
}

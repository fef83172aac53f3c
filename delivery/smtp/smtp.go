// Package smtp delivers e-mail passcodes through an SMTP server (a relay or
// a provider's submission endpoint), one connection per message.
package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"regexp"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/httpchannel"
)

// TLS policies (Config.TLS).
const (
	// TLSMandatory refuses to send unless the connection is encrypted:
	// STARTTLS, or implicit TLS when the port is 465 (RFC 8314).
	TLSMandatory = "mandatory"
	// TLSOpportunistic uses STARTTLS when the server offers it.
	TLSOpportunistic = "opportunistic"
	// TLSNone never encrypts; for a relay on the same host or network.
	TLSNone = "none"
)

// DefaultTimeout bounds one send: dial, TLS, authentication and transfer.
const DefaultTimeout = 10 * time.Second

// implicitTLSPort is the submission port that speaks TLS from the first
// byte instead of upgrading with STARTTLS.
const implicitTLSPort = 465

// Config is an SMTP channel's settings.
type Config struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// TLS is "mandatory" (the default), "opportunistic" or "none".
	TLS string `json:"tls,omitempty"`
	// Username and Password enable SMTP AUTH. The mechanism is the
	// strongest the server offers; PLAIN and LOGIN are used only over an
	// encrypted connection, so that the password never travels in clear.
	// They require TLS "mandatory", unless Host is a loopback address.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// From is the sender, as "addr@example.com" or "Name <addr@example.com>".
	From    string `json:"from"`
	ReplyTo string `json:"replyTo,omitempty"`
	// Timeout bounds one send (DefaultTimeout when zero).
	Timeout delivery.Duration `json:"timeout,omitempty"`
	// CAFile is a PEM file of private CAs to trust instead of the system's,
	// for a relay with a certificate from an internal CA. Configuration file
	// only (see ValidateForAPI).
	CAFile string `json:"caFile,omitempty"`
}

// withDefaults fills the fields left empty.
func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSMandatory
	}
	if c.Timeout == 0 {
		c.Timeout = delivery.Duration(DefaultTimeout)
	}
	return c
}

// Validate checks the configuration (empty optional fields take their
// defaults). Errors name the field, as in "smtp.port: must be 1-65535".
func (c *Config) Validate() error {
	cfg := c.withDefaults()
	switch {
	case strings.TrimSpace(cfg.Host) == "":
		return errors.New("smtp.host: is required")
	case strings.ContainsAny(cfg.Host, " /\t\r\n"):
		return errors.New("smtp.host: must be a host name or IP address")
	case hasPort(cfg.Host):
		return errors.New("smtp.host: must not include a port (set smtp.port)")
	case cfg.Port < 1 || cfg.Port > 65535:
		return errors.New("smtp.port: must be 1-65535")
	case cfg.TLS != TLSMandatory && cfg.TLS != TLSOpportunistic && cfg.TLS != TLSNone:
		return errors.New("smtp.tls: must be mandatory, opportunistic or none")
	case cfg.Password != "" && cfg.Username == "":
		return errors.New("smtp.password: is set but smtp.username is not")
	case cfg.Username != "" && cfg.Password == "":
		return errors.New("smtp.password: is required with smtp.username")
	case cfg.Port == implicitTLSPort && cfg.TLS != TLSMandatory:
		return errors.New("smtp.port: 465 speaks TLS from the first byte; use tls: mandatory")
	case cfg.Username != "" && cfg.TLS != TLSMandatory && !httpchannel.IsLoopback(cfg.Host):
		return errors.New(authNeedsTLS)
	case !validAddress(cfg.From):
		return errors.New("smtp.from: must be an e-mail address")
	case cfg.ReplyTo != "" && !validAddress(cfg.ReplyTo):
		return errors.New("smtp.replyTo: must be an e-mail address")
	case cfg.Timeout < 0:
		return errors.New("smtp.timeout: must be positive")
	}
	return nil
}

// authNeedsTLS refuses SMTP AUTH over a connection that may be plain.
const authNeedsTLS = "smtp.tls: must be mandatory when username is set, so the credentials never cross the network in clear (a loopback relay may use none)"

// ValidateForAPI is Validate with the rules for a channel saved through the
// management API rather than the configuration file: no caFile (a path on
// this machine, which the API's caller has no business naming), and a
// host that is neither this machine nor a link-local address (the cloud
// metadata service), so the exception Validate makes for authenticating
// to a loopback relay without TLS does not arise. New with
// RestrictDestinations enforces the address rule when it connects,
// whatever the name resolves to.
func (c *Config) ValidateForAPI() error {
	if err := c.Validate(); err != nil {
		return err
	}
	switch {
	case c.CAFile != "":
		return errors.New("smtp.caFile: is for the configuration file only")
	case !httpchannel.AllowedHost(c.Host):
		return errors.New("smtp.host: must not be this machine or a link-local address")
	}
	return nil
}

func hasPort(host string) bool {
	_, _, err := net.SplitHostPort(host)
	return err == nil
}

func validAddress(s string) bool {
	_, err := mail.ParseAddress(s)
	return err == nil
}

// Option adjusts a Sender.
type Option func(*Sender)

// WithRootCAs trusts pool's CAs for the server certificate, instead of
// Config.CAFile or the system's.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(s *Sender) { s.tls.RootCAs = pool }
}

// RestrictDestinations makes the Sender refuse to connect to this machine,
// to link-local addresses (the cloud metadata service) and to the
// unspecified address (httpchannel.AllowedAddr), checked on the address
// dialled so that DNS cannot get around it. A refused send fails
// delivery.Misconfigured with the reason "destination not allowed". Use
// it, with Config.ValidateForAPI, for a channel saved through the
// management API.
func RestrictDestinations() Option {
	return func(s *Sender) { s.restrict = true }
}

// Sender sends e-mail through one SMTP server. It is safe for concurrent
// use: every Send opens its own connection.
type Sender struct {
	cfg         Config
	tls         *tls.Config
	implicitTLS bool
	// restrict refuses the addresses httpchannel.AllowedAddr refuses.
	restrict bool
	// msgIDDomain is the From address's domain, for Message-IDs.
	msgIDDomain string
}

// New validates cfg and builds its Sender.
func New(cfg Config, opts ...Option) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	from, _ := mail.ParseAddress(cfg.From)
	s := &Sender{
		cfg:         cfg,
		tls:         &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12},
		implicitTLS: cfg.TLS == TLSMandatory && cfg.Port == implicitTLSPort,
		msgIDDomain: from.Address[strings.LastIndexByte(from.Address, '@')+1:],
	}
	if cfg.CAFile != "" {
		pool, err := loadCAFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		s.tls.RootCAs = pool
	}
	for _, opt := range opts {
		opt(s)
	}
	return s, nil
}

// loadCAFile reads the PEM file of CAs to trust. Its errors name the field
// ("smtp.caFile: ...") and wrap a delivery.Misconfigured with the reason
// "tls ca file", for a caller that reports a channel it cannot build.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{msg: "smtp.caFile: " + err.Error(), err: delivery.Misconfigured("tls ca file", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &configError{msg: "smtp.caFile: holds no PEM certificate",
			err: delivery.Misconfigured("tls ca file", nil)}
	}
	return pool, nil
}

// configError is a configuration error that reads as a field's ("smtp.caFile:
// ...") and unwraps to the *delivery.Error that classifies it.
type configError struct {
	msg string
	err error
}

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return e.err }

// Kind names the channel type.
func (*Sender) Kind() string { return "smtp" }

// Send delivers msg to msg.Recipient. Failures are *delivery.Error values
// whose text holds neither the recipient nor the message.
func (s *Sender) Send(ctx context.Context, msg delivery.Message) error {
	m, err := s.compose(msg)
	if err != nil {
		return err
	}
	timeout := time.Duration(s.cfg.Timeout)
	// go-mail applies ctx to the dial only and then bounds the conversation
	// with its own timeout: shorten that to what is left of ctx.
	if deadline, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(deadline))
	}
	if timeout <= 0 {
		return delivery.Transient("timeout", context.DeadlineExceeded)
	}
	client, err := gomail.NewClient(s.cfg.Host, s.clientOptions(timeout)...)
	if err != nil {
		return delivery.Misconfigured("bad configuration", nil)
	}
	if err := client.DialAndSendWithContext(ctx, m); err != nil {
		return classify(err)
	}
	return nil
}

// compose builds the message: text/plain, plus text/html as an
// alternative when there is one.
func (s *Sender) compose(msg delivery.Message) (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return nil, delivery.Misconfigured("bad configuration", nil)
	}
	// go-mail's error quotes the address: keep only the verdict.
	if err := m.To(msg.Recipient); err != nil {
		return nil, delivery.Permanent("bad address", nil)
	}
	if s.cfg.ReplyTo != "" {
		if err := m.ReplyTo(s.cfg.ReplyTo); err != nil {
			return nil, delivery.Misconfigured("bad configuration", nil)
		}
	}
	m.Subject(msg.Subject)
	m.SetDate()
	if safeID.MatchString(msg.ID) {
		// The same Message-ID on every retry lets the receiving side drop
		// a copy that a lost reply made us send twice.
		m.SetMessageIDWithValue(msg.ID + "@" + s.msgIDDomain)
		m.SetGenHeader("X-Enrollflow-Delivery-Id", msg.ID)
	} else {
		m.SetMessageID()
	}
	m.SetBodyString(gomail.TypeTextPlain, msg.Body)
	if msg.HTMLBody != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, msg.HTMLBody)
	}
	return m, nil
}

// safeID matches the delivery ids that can go verbatim into a Message-ID.
var safeID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func (s *Sender) clientOptions(timeout time.Duration) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(s.dial),
	}
	switch {
	case s.implicitTLS:
		// s.dial has made the TLS handshake. go-mail counts a connection
		// as encrypted only when it dialled TLS itself (WithSSL) or when
		// its TLS policy finds the connection to be TLS: the opportunistic
		// policy does, and does not try STARTTLS, which a server must not
		// offer over TLS (RFC 3207).
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case s.cfg.TLS == TLSMandatory:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case s.cfg.TLS == TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		// Auto-discovery picks the strongest mechanism offered and leaves
		// PLAIN and LOGIN out on an unencrypted connection.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	return opts
}

// dial connects to the server: TCP, and the TLS handshake too on the
// implicit TLS port. With RestrictDestinations the dialer refuses the
// addresses httpchannel.AllowedAddr refuses, after name resolution.
func (s *Sender) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d := httpchannel.NewDialer(s.restrict)
	if !s.implicitTLS {
		return d.DialContext(ctx, network, address)
	}
	td := &tls.Dialer{NetDialer: d, Config: s.tls}
	return td.DialContext(ctx, network, address)
}

// classify turns a go-mail failure into a *delivery.Error. go-mail's own
// errors quote the server's replies and the recipients, so only the reply
// code goes into the reason, and only network and TLS errors (which name
// the server, not the user) are kept as the cause.
//
// A failure that is the channel's own (the credentials, TLS, the sender
// address, a refused destination) is delivery.Misconfigured; a refusal of
// the recipient (5xx on RCPT TO, or an address that does not parse) stays
// plain permanent.
func classify(err error) error {
	if httpchannel.IsDestinationNotAllowed(err) {
		return delivery.Misconfigured("destination not allowed", netCause(err))
	}
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) {
		if code := sendErr.ErrorCode(); code != 0 {
			if sendErr.Reason == gomail.ErrSMTPMailFrom && code >= 500 {
				// The server refused the configured sender (or the
				// relay refused us): no recipient can fix that.
				return delivery.Misconfigured(fmt.Sprintf("smtp %d", code), nil)
			}
			return replyError(code)
		}
		if sendErr.Reason == gomail.ErrGetSender || sendErr.Reason == gomail.ErrGetRcpts {
			return delivery.Permanent("bad address", nil)
		}
	}
	var reply *textproto.Error
	if errors.As(err, &reply) {
		return replyError(reply.Code)
	}
	if authUnavailable(err) {
		return delivery.Misconfigured("auth unavailable", nil)
	}
	// go-mail has no sentinel for a server without STARTTLS under a
	// mandatory policy; the test against a server without it guards this.
	if strings.Contains(err.Error(), "does not support STARTTLS") {
		return delivery.Misconfigured("tls unavailable", nil)
	}
	// A certificate that does not verify will not verify on the next
	// attempt either: the relay's certificate, or the trust, is wrong.
	if certErr := certificateFailure(err); certErr != nil {
		return delivery.Misconfigured("tls certificate", certErr)
	}
	if tlsErr := tlsFailure(err); tlsErr != nil {
		return delivery.Transient("tls handshake failed", tlsErr)
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return delivery.Transient("timeout", netCause(err))
	}
	return delivery.Transient("connection failed", netCause(err))
}

// replyError classifies an SMTP reply code: 5xx will fail again, 4xx may
// not. The 5xx replies about authentication are the channel's fault: 530
// (authentication required), 534 (mechanism too weak), 535 (credentials
// invalid), 538 (encryption required for the mechanism).
func replyError(code int) error {
	reason := fmt.Sprintf("smtp %d", code)
	switch {
	case code == 530 || code == 534 || code == 535 || code == 538:
		return delivery.Misconfigured(reason, nil)
	case code >= 500:
		return delivery.Permanent(reason, nil)
	}
	return delivery.Transient(reason, nil)
}

func authUnavailable(err error) bool {
	for _, target := range []error{gomail.ErrNoSupportedAuthDiscovered, gomail.ErrPlainAuthNotSupported,
		gomail.ErrLoginAuthNotSupported} {
		if errors.Is(err, target) {
			return true
		}
	}
	return strings.Contains(err.Error(), "does not support SMTP AUTH")
}

// certificateFailure finds a certificate verification error (unknown
// authority, wrong host name, expired or otherwise invalid) in err's
// chain.
func certificateFailure(err error) error {
	var (
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &verifyErr):
		return verifyErr
	case errors.As(err, &unknownCA):
		return unknownCA
	case errors.As(err, &hostErr):
		return hostErr
	case errors.As(err, &invalidErr):
		return invalidErr
	}
	return nil
}

// tlsFailure finds another TLS handshake error in err's chain: one that
// may pass on another attempt.
func tlsFailure(err error) error {
	var (
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
	)
	switch {
	case errors.As(err, &recordErr):
		return recordErr
	case errors.As(err, &alertErr):
		return alertErr
	}
	return nil
}

// netCause is the network error inside err (it names the server only), or
// nil when there is none.
func netCause(err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	if errors.Is(err, context.Canceled) {
		return context.Canceled
	}
	return nil
}

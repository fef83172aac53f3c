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
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// From is the sender, as "addr@example.com" or "Name <addr@example.com>".
	From    string `json:"from"`
	ReplyTo string `json:"replyTo,omitempty"`
	// Timeout bounds one send (DefaultTimeout when zero).
	Timeout delivery.Duration `json:"timeout,omitempty"`
	// CAFile is a PEM file of private CAs to trust instead of the system's,
	// for a relay with a certificate from an internal CA.
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
	case !validAddress(cfg.From):
		return errors.New("smtp.from: must be an e-mail address")
	case cfg.ReplyTo != "" && !validAddress(cfg.ReplyTo):
		return errors.New("smtp.replyTo: must be an e-mail address")
	case cfg.Timeout < 0:
		return errors.New("smtp.timeout: must be positive")
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

// Sender sends e-mail through one SMTP server. It is safe for concurrent
// use: every Send opens its own connection.
type Sender struct {
	cfg         Config
	tls         *tls.Config
	implicitTLS bool
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

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("smtp.caFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("smtp.caFile: holds no PEM certificate")
	}
	return pool, nil
}

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
		return delivery.Permanent("bad configuration", nil)
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
		return nil, delivery.Permanent("bad configuration", nil)
	}
	// go-mail's error quotes the address: keep only the verdict.
	if err := m.To(msg.Recipient); err != nil {
		return nil, delivery.Permanent("bad address", nil)
	}
	if s.cfg.ReplyTo != "" {
		if err := m.ReplyTo(s.cfg.ReplyTo); err != nil {
			return nil, delivery.Permanent("bad configuration", nil)
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
	}
	switch {
	case s.implicitTLS:
		opts = append(opts, gomail.WithSSL())
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

// classify turns a go-mail failure into a *delivery.Error. go-mail's own
// errors quote the server's replies and the recipients, so only the reply
// code goes into the reason, and only network and TLS errors (which name
// the server, not the user) are kept as the cause.
func classify(err error) error {
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) {
		if code := sendErr.ErrorCode(); code != 0 {
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
		return delivery.Permanent("auth unavailable", nil)
	}
	// go-mail has no sentinel for a server without STARTTLS under a
	// mandatory policy; the test against a server without it guards this.
	if strings.Contains(err.Error(), "does not support STARTTLS") {
		return delivery.Permanent("tls unavailable", nil)
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

// replyError classifies an SMTP reply code: 5xx will fail again, 4xx may not.
func replyError(code int) error {
	reason := fmt.Sprintf("smtp %d", code)
	if code >= 500 {
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

// tlsFailure finds a TLS handshake or certificate error in err's chain.
func tlsFailure(err error) error {
	var (
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
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

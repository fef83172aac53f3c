package smtp

import (
	"context"
	"io"
	"log"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/httpchannel"
	"github.com/enrollflow/enrollflow/delivery/smtp/smtptest"
)

// scriptedSession takes every message, unless mailErr refuses MAIL FROM.
type scriptedSession struct {
	mailErr   error
	delivered *atomic.Int32
}

func (s *scriptedSession) Mail(string, *gosmtp.MailOptions) error { return s.mailErr }
func (s *scriptedSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s *scriptedSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	s.delivered.Add(1)
	return err
}
func (s *scriptedSession) Reset()        {}
func (s *scriptedSession) Logout() error { return nil }

// scriptedServer is a plain SMTP server on addr ("127.0.0.1:0" and so on)
// whose MAIL FROM answers mailErr; it returns the port and the count of
// messages taken, or port 0 when addr cannot be listened on.
func scriptedServer(t *testing.T, addr string, mailErr error) (int, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, nil
	}
	var delivered atomic.Int32
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &scriptedSession{mailErr: mailErr, delivered: &delivered}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, &delivered
}

func TestSendRefusedSenderIsMisconfigured(t *testing.T) {
	tests := []struct {
		name    string
		mailErr *gosmtp.SMTPError
		reason  string
	}{
		{"sender refused", &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
			Message: "sender address not owned by user"}, "smtp 553"},
		{"sender blocked", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
			Message: "sender blocked"}, "smtp 550"},
		{"authentication required", &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
			Message: "authentication required"}, "smtp 530"},
		{"encryption required", &gosmtp.SMTPError{Code: 538, EnhancedCode: gosmtp.EnhancedCode{5, 7, 11},
			Message: "encryption required"}, "smtp 538"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port, delivered := scriptedServer(t, "127.0.0.1:0", tc.mailErr)
			err := newSender(t, config(port, TLSNone)).Send(context.Background(), testMessage())
			if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != tc.reason {
				t.Fatalf("err = %v, want misconfigured %s", err, tc.reason)
			}
			if delivered.Load() != 0 {
				t.Fatal("a message was delivered anyway")
			}
		})
	}
	// A temporary refusal of the sender stays transient.
	port, _ := scriptedServer(t, "127.0.0.1:0", &gosmtp.SMTPError{Code: 451, Message: "try later"})
	err := newSender(t, config(port, TLSNone)).Send(context.Background(), testMessage())
	if delivery.IsPermanent(err) || delivery.ReasonOf(err) != "smtp 451" {
		t.Fatalf("451 on MAIL FROM: err = %v, want transient smtp 451", err)
	}
}

func TestSendImplicitTLSAuthenticates(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{ImplicitTLS: true, Username: "relay-user", Password: "s3cret-pass"})
	cfg := config(ts.Port, TLSMandatory)
	cfg.Username, cfg.Password = "relay-user", "s3cret-pass"
	s := newSender(t, cfg, WithRootCAs(ts.CertPool))
	s.implicitTLS = true // the implicit TLS port is 465, which a test cannot listen on
	if err := s.Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if got := ts.Mails(); len(got) != 1 || got[0].User != "relay-user" || !got[0].TLS {
		t.Fatalf("received %+v, want one message from relay-user over TLS", got)
	}
}

func TestConfigValidateForAPI(t *testing.T) {
	valid := Config{Host: "smtp.example.org", Port: 587, From: "no-reply@example.org", Username: "u", Password: "p"}
	const notHere = "smtp.host: must not be this machine or a link-local address"
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" when valid
	}{
		{"remote relay with auth", func(*Config) {}, ""},
		{"private address", func(c *Config) { c.Host = "10.0.0.25" }, ""},
		{"implicit TLS", func(c *Config) { c.Port = 465 }, ""},
		{"caFile", func(c *Config) { c.CAFile = "/etc/ssl/private/relay-ca.pem" }, "smtp.caFile: is for the configuration file only"},
		{"localhost", func(c *Config) { c.Host = "localhost" }, notHere},
		{"loopback", func(c *Config) { c.Host = "127.0.0.1" }, notHere},
		{"loopback v6", func(c *Config) { c.Host = "::1" }, notHere},
		{"loopback relay without TLS", func(c *Config) { c.Host, c.TLS = "127.0.0.1", TLSNone }, notHere},
		{"metadata", func(c *Config) { c.Host = "169.254.169.254" }, notHere},
		{"link-local v6", func(c *Config) { c.Host = "fe80::1" }, notHere},
		{"unspecified", func(c *Config) { c.Host = "0.0.0.0" }, notHere},
		{"auth without TLS", func(c *Config) { c.TLS = TLSNone }, authNeedsTLS},
		{"465 without TLS", func(c *Config) { c.Port, c.Username, c.Password, c.TLS = 465, "", "", TLSNone },
			"smtp.port: 465 speaks TLS from the first byte; use tls: mandatory"},
	}
	for _, tc := range tests {
		cfg := valid
		tc.edit(&cfg)
		err := cfg.ValidateForAPI()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// The configuration file may still name a CA file and a loopback relay.
	cfg := valid
	cfg.Host, cfg.TLS, cfg.CAFile = "127.0.0.1", TLSNone, "/etc/ssl/private/relay-ca.pem"
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestSendRestrictedRefusesThisMachine(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{})
	tlsServer := smtptest.Start(t, smtptest.Options{ImplicitTLS: true})
	fastRetry := delivery.RetryPolicy{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	tests := []struct {
		name     string
		host     string
		port     int
		implicit bool
	}{
		{"loopback address", "127.0.0.1", ts.Port, false},
		{"a name for this machine", "localhost", ts.Port, false},
		{"implicit TLS", "127.0.0.1", tlsServer.Port, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(tc.port, TLSNone)
			cfg.Host = tc.host
			if tc.implicit {
				cfg.TLS = TLSMandatory
			}
			s := newSender(t, cfg, RestrictDestinations(), WithRootCAs(tlsServer.CertPool))
			s.implicitTLS = tc.implicit
			err := delivery.Retrying(s, fastRetry).Send(context.Background(), testMessage())
			if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "destination not allowed" || delivery.AttemptsOf(err) != 1 {
				t.Fatalf("err = %v (attempts %d), want misconfigured destination not allowed", err, delivery.AttemptsOf(err))
			}
			if !httpchannel.IsDestinationNotAllowed(err) {
				t.Errorf("err = %v does not wrap httpchannel.ErrDestinationNotAllowed", err)
			}
			if strings.Contains(err.Error(), recipient) {
				t.Errorf("error %q reveals the recipient", err)
			}
		})
	}
	if n := len(ts.Mails()) + len(tlsServer.Mails()); n != 0 {
		t.Fatalf("%d messages reached this machine", n)
	}
	// Without the option the same server takes the message.
	if err := newSender(t, config(ts.Port, TLSNone)).Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
}

// externalAddr is an IPv4 address of this machine's that a restricted
// sender may reach, or the zero Addr when it has none.
func externalAddr() netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		prefix, err := netip.ParsePrefix(a.String())
		if err == nil && prefix.Addr().Is4() && httpchannel.AllowedAddr(prefix.Addr()) {
			return prefix.Addr()
		}
	}
	return netip.Addr{}
}

func TestSendRestrictedReachesOtherAddresses(t *testing.T) {
	addr := externalAddr()
	if !addr.IsValid() {
		t.Skip("this machine has no address but loopback and link-local ones")
	}
	port, delivered := scriptedServer(t, netip.AddrPortFrom(addr, 0).String(), nil)
	if port == 0 {
		t.Skipf("cannot listen on %s", addr)
	}
	cfg := config(port, TLSNone)
	cfg.Host = addr.String()
	if err := newSender(t, cfg, RestrictDestinations()).Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("restricted send to %s: %v", addr, err)
	}
	if delivered.Load() != 1 {
		t.Fatalf("%d messages delivered, want 1", delivered.Load())
	}
}

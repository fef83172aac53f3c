package smtp

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"mime"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/smtp/smtptest"
)

const (
	otp       = "493817"
	recipient = "jane.doe@example.com"
	sender    = "Enrollflow <no-reply@example.org>"
)

func testMessage() delivery.Message {
	return delivery.Message{
		ID: "0123456789abcdef", EnvID: "env1", Method: delivery.Email, Recipient: recipient, Locale: "es-ES",
		Subject:  "Tu código de verificación",
		Body:     "Tu código es " + otp + ".\nSi no lo pediste, ignora este mensaje.",
		HTMLBody: "<p>Tu código es <b>" + otp + "</b>.</p>",
	}
}

func config(port int, tlsPolicy string) Config {
	return Config{
		Host: "127.0.0.1", Port: port, TLS: tlsPolicy, From: sender, ReplyTo: "help@example.org",
		Timeout: delivery.Duration(5 * time.Second),
	}
}

func newSender(t *testing.T, cfg Config, opts ...Option) *Sender {
	t.Helper()
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sendOne sends msg with cfg and returns what the server received: one
// message, read back.
func sendOne(t *testing.T, ts *smtptest.Server, cfg Config, msg delivery.Message) (smtptest.Mail, smtptest.Parsed) {
	t.Helper()
	if err := newSender(t, cfg).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	mails := ts.Mails()
	if len(mails) != 1 {
		t.Fatalf("%d messages received, want 1", len(mails))
	}
	parsed, err := mails[0].Parse()
	if err != nil {
		t.Fatal(err)
	}
	return mails[0], parsed
}

func TestSendDeliversMultipartMessage(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{})
	msg := testMessage()
	got, m := sendOne(t, ts, config(ts.Port, TLSNone), msg)
	if got.From != "no-reply@example.org" || len(got.To) != 1 || got.To[0] != recipient {
		t.Fatalf("envelope: MAIL FROM %q, RCPT TO %q", got.From, got.To)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != msg.Subject {
		t.Errorf("Subject = %q (%v), want %q", subject, err, msg.Subject)
	}
	for header, want := range map[string]string{
		"To":                       "<" + recipient + ">",
		"Reply-To":                 "<help@example.org>",
		"Message-Id":               "<" + msg.ID + "@example.org>",
		"X-Enrollflow-Delivery-Id": msg.ID,
	} {
		if got := m.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	if from, err := m.Header.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "no-reply@example.org" || from[0].Name != "Enrollflow" {
		t.Errorf("From = %q (%v)", m.Header.Get("From"), err)
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	mediaType, _, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	// Parse undoes the transfer encoding (quoted-printable).
	if len(m.Parts) != 2 || normalizeNewlines(m.Text) != msg.Body || normalizeNewlines(m.HTML) != msg.HTMLBody {
		t.Fatalf("parts %q: text %q, html %q", m.Parts, m.Text, m.HTML)
	}
}

func TestSendPlainTextOnlyWithoutHTML(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{})
	msg := testMessage()
	msg.HTMLBody = ""
	_, m := sendOne(t, ts, config(ts.Port, TLSNone), msg)
	if mediaType, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); mediaType != "text/plain" || len(m.Parts) != 1 {
		t.Fatalf("Content-Type = %q, parts %q; want a single text/plain part", m.Header.Get("Content-Type"), m.Parts)
	}
	// The line break that ends the message body is the encoder's, not ours.
	if got := strings.TrimSuffix(normalizeNewlines(m.Text), "\n"); got != msg.Body {
		t.Fatalf("body = %q, want %q", got, msg.Body)
	}
}

func TestSendWithoutDeliveryIDStillHasMessageID(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{})
	msg := testMessage()
	msg.ID = ""
	_, m := sendOne(t, ts, config(ts.Port, TLSNone), msg)
	if id := m.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.Contains(id, "@") {
		t.Fatalf("Message-ID = %q", id)
	}
	if m.Header.Get("X-Enrollflow-Delivery-Id") != "" {
		t.Fatal("empty delivery id header sent")
	}
}

func TestSendAuthenticates(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{StartTLS: true, Username: "relay-user", Password: "s3cret-pass"})
	cfg := config(ts.Port, TLSMandatory)
	cfg.Username, cfg.Password = "relay-user", "s3cret-pass"
	if err := newSender(t, cfg, WithRootCAs(ts.CertPool)).Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if got := ts.Mails(); len(got) != 1 || got[0].User != "relay-user" || !got[0].TLS {
		t.Fatalf("received %+v, want one message from relay-user over TLS", got)
	}

	cfg.Password = "wrong-password"
	err := newSender(t, cfg, WithRootCAs(ts.CertPool)).Send(context.Background(), testMessage())
	if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "smtp 535" {
		t.Fatalf("wrong password: err = %v, want misconfigured smtp 535", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("error reveals the password: %v", err)
	}
}

func TestSendNeverAuthenticatesInClear(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{AllowInsecureAuth: true, Username: "relay-user", Password: "s3cret-pass"})
	cfg := config(ts.Port, TLSNone)
	cfg.Username, cfg.Password = "relay-user", "s3cret-pass"
	err := newSender(t, cfg).Send(context.Background(), testMessage())
	if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "auth unavailable" {
		t.Fatalf("err = %v, want misconfigured auth unavailable", err)
	}
	if ts.AuthTries() != 0 {
		t.Fatal("the password was sent over a plain connection")
	}
}

func TestSendTLSPolicies(t *testing.T) {
	tests := []struct {
		name       string
		server     smtptest.Options
		policy     string
		trust      bool
		implicit   bool
		wantTLS    bool
		serverName string // the name the certificate must hold, when not the host
		wantReason string // "" for success
		permanent  bool
		misconfig  bool
	}{
		{name: "opportunistic upgrades", server: smtptest.Options{StartTLS: true}, policy: TLSOpportunistic, trust: true, wantTLS: true},
		{name: "opportunistic without STARTTLS", policy: TLSOpportunistic},
		{name: "mandatory upgrades", server: smtptest.Options{StartTLS: true}, policy: TLSMandatory, trust: true, wantTLS: true},
		{name: "mandatory without STARTTLS", policy: TLSMandatory, wantReason: "tls unavailable", permanent: true, misconfig: true},
		{name: "mandatory, untrusted certificate", server: smtptest.Options{StartTLS: true}, policy: TLSMandatory,
			wantReason: "tls certificate", permanent: true, misconfig: true},
		{name: "mandatory, certificate for another host", server: smtptest.Options{StartTLS: true}, policy: TLSMandatory, trust: true,
			serverName: "relay.example.org", wantReason: "tls certificate", permanent: true, misconfig: true},
		{name: "opportunistic, untrusted certificate", server: smtptest.Options{StartTLS: true}, policy: TLSOpportunistic,
			wantReason: "tls certificate", permanent: true, misconfig: true},
		{name: "implicit TLS", server: smtptest.Options{ImplicitTLS: true}, policy: TLSMandatory, trust: true, implicit: true, wantTLS: true},
		{name: "implicit TLS, untrusted certificate", server: smtptest.Options{ImplicitTLS: true}, policy: TLSMandatory, implicit: true,
			wantReason: "tls certificate", permanent: true, misconfig: true},
		{name: "implicit TLS to a plain server", policy: TLSMandatory, trust: true, implicit: true,
			wantReason: "tls handshake failed"},
		{name: "none ignores STARTTLS", server: smtptest.Options{StartTLS: true}, policy: TLSNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := smtptest.Start(t, tc.server)
			var opts []Option
			if tc.trust {
				opts = append(opts, WithRootCAs(ts.CertPool))
			}
			s := newSender(t, config(ts.Port, tc.policy), opts...)
			// The implicit TLS port is 465, which a test cannot listen on.
			s.implicitTLS = tc.implicit
			if tc.serverName != "" {
				s.tls.ServerName = tc.serverName
			}
			err := s.Send(context.Background(), testMessage())
			if tc.wantReason != "" {
				if delivery.ReasonOf(err) != tc.wantReason || delivery.IsPermanent(err) != tc.permanent ||
					delivery.IsMisconfigured(err) != tc.misconfig {
					t.Fatalf("err = %v, want %s (permanent %v, misconfigured %v)", err, tc.wantReason, tc.permanent, tc.misconfig)
				}
				if len(ts.Mails()) != 0 {
					t.Fatal("a message was delivered anyway")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ts.Mails(); len(got) != 1 || got[0].TLS != tc.wantTLS {
				t.Fatalf("received %d messages, TLS %v; want 1, TLS %v", len(got), len(got) > 0 && got[0].TLS, tc.wantTLS)
			}
		})
	}
}

func TestSendTrustsCAFile(t *testing.T) {
	ts := smtptest.Start(t, smtptest.Options{StartTLS: true})
	cfg := config(ts.Port, TLSMandatory)
	cfg.CAFile = ts.CAFile(t)
	if err := newSender(t, cfg).Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if got := ts.Mails(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("received %+v", got)
	}
}

func TestSendClassifiesReplies(t *testing.T) {
	tests := []struct {
		name      string
		rcptErr   error
		reason    string
		permanent bool
		misconfig bool
	}{
		{"mailbox unavailable", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1},
			Message: "<" + recipient + ">: mailbox unavailable"}, "smtp 550", true, false},
		{"user not local", &gosmtp.SMTPError{Code: 551, EnhancedCode: gosmtp.EnhancedCode{5, 1, 6},
			Message: "<" + recipient + ">: user not local"}, "smtp 551", true, false},
		{"mailbox name not allowed", &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3},
			Message: "<" + recipient + ">: bad address syntax"}, "smtp 553", true, false},
		{"syntax error in address", &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3},
			Message: "<" + recipient + ">: syntax"}, "smtp 501", true, false},
		{"authentication required", &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
			Message: "authentication required"}, "smtp 530", true, true},
		{"try again later", &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
			Message: "<" + recipient + ">: greylisted"}, "smtp 451", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := smtptest.Start(t, smtptest.Options{RcptError: tc.rcptErr})
			err := newSender(t, config(ts.Port, TLSNone)).Send(context.Background(), testMessage())
			if delivery.ReasonOf(err) != tc.reason || delivery.IsPermanent(err) != tc.permanent ||
				delivery.IsMisconfigured(err) != tc.misconfig {
				t.Fatalf("err = %v, want %s (permanent %v, misconfigured %v)", err, tc.reason, tc.permanent, tc.misconfig)
			}
		})
	}
}

func TestSendBadRecipientIsPermanent(t *testing.T) {
	msg := testMessage()
	msg.Recipient = "jane.doe at example.com"
	// No server: the address is refused before any connection.
	err := newSender(t, config(1, TLSNone)).Send(context.Background(), msg)
	if !delivery.IsPermanent(err) || delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "bad address" {
		t.Fatalf("err = %v, want permanent bad address", err)
	}
}

func TestSendConnectionRefusedIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	err = newSender(t, config(port, TLSNone)).Send(context.Background(), testMessage())
	if err == nil || delivery.IsPermanent(err) || delivery.ReasonOf(err) != "connection failed" {
		t.Fatalf("err = %v, want transient connection failed", err)
	}
}

// silentListener accepts connections and never says a word.
func silentListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func TestSendTimesOut(t *testing.T) {
	port := silentListener(t)
	cfg := config(port, TLSNone)
	cfg.Timeout = delivery.Duration(300 * time.Millisecond)
	start := time.Now()
	err := newSender(t, cfg).Send(context.Background(), testMessage())
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v with a 300ms timeout", elapsed)
	}
	if err == nil || delivery.IsPermanent(err) || delivery.ReasonOf(err) != "timeout" {
		t.Fatalf("err = %v, want transient timeout", err)
	}
}

func TestSendTLSHandshakeTimeoutIsTransient(t *testing.T) {
	cfg := config(silentListener(t), TLSMandatory)
	cfg.Timeout = delivery.Duration(300 * time.Millisecond)
	s := newSender(t, cfg)
	s.implicitTLS = true // the handshake is the first thing said, and never answered
	err := s.Send(context.Background(), testMessage())
	if err == nil || delivery.IsPermanent(err) || delivery.ReasonOf(err) != "timeout" {
		t.Fatalf("err = %v, want transient timeout", err)
	}
}

func TestSendStopsAtContextDeadline(t *testing.T) {
	port := silentListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := newSender(t, config(port, TLSNone)).Send(ctx, testMessage()) // Timeout is 5s
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v with a 200ms deadline", elapsed)
	}
	if delivery.IsPermanent(err) || delivery.ReasonOf(err) != "timeout" {
		t.Fatalf("err = %v, want transient timeout", err)
	}
}

func TestErrorsRevealNeitherPasscodeNorRecipient(t *testing.T) {
	var logs bytes.Buffer
	log.SetOutput(&logs)
	defer log.SetOutput(os.Stderr)

	echo := &gosmtp.SMTPError{Code: 550, Message: "<" + recipient + "> unknown; " + otp}
	refused := smtptest.Start(t, smtptest.Options{RcptError: echo})
	authServer := smtptest.Start(t, smtptest.Options{AllowInsecureAuth: true, Username: recipient, Password: otp})
	msg := testMessage()
	var errs []error
	errs = append(errs, newSender(t, config(refused.Port, TLSNone)).Send(context.Background(), msg))
	errs = append(errs, newSender(t, config(authServer.Port, TLSNone)).Send(context.Background(), msg))
	errs = append(errs, newSender(t, config(silentListener(t), TLSMandatory)).Send(ctxTimeout(t, 100*time.Millisecond), msg))
	bad := msg
	bad.Recipient = recipient + " <" + otp
	errs = append(errs, newSender(t, config(1, TLSNone)).Send(context.Background(), bad))
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d succeeded", i)
		}
		for _, secret := range []string{otp, recipient, "jane.doe"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(delivery.ReasonOf(err), secret) {
				t.Errorf("case %d: error %q reveals %q", i, err, secret)
			}
		}
	}
	if strings.Contains(logs.String(), otp) || strings.Contains(logs.String(), "jane.doe") {
		t.Errorf("logs reveal the passcode or recipient: %q", logs.String())
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConfigValidate(t *testing.T) {
	valid := Config{Host: "smtp.example.org", Port: 587, From: "no-reply@example.org"}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" when valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"full", func(c *Config) {
			c.TLS, c.Username, c.Password, c.ReplyTo = TLSMandatory, "u", "p", "Help <help@example.org>"
			c.Timeout = delivery.Duration(time.Second)
			c.CAFile = "/etc/enrollflow/relay-ca.pem" // read by New, not Validate
		}, ""},
		{"opportunistic without auth", func(c *Config) { c.TLS = TLSOpportunistic }, ""},
		{"auth with tls opportunistic", func(c *Config) { c.TLS, c.Username, c.Password = TLSOpportunistic, "u", "p" }, "smtp.tls"},
		{"auth with tls none", func(c *Config) { c.TLS, c.Username, c.Password = TLSNone, "u", "p" }, "smtp.tls"},
		{"auth with tls none on a private address", func(c *Config) { c.Host, c.TLS, c.Username, c.Password = "10.0.0.25", TLSNone, "u", "p" }, "smtp.tls"},
		{"auth with tls none on 127.0.0.1", func(c *Config) { c.Host, c.TLS, c.Username, c.Password = "127.0.0.1", TLSNone, "u", "p" }, ""},
		{"auth with tls none on localhost", func(c *Config) { c.Host, c.TLS, c.Username, c.Password = "localhost", TLSNone, "u", "p" }, ""},
		{"auth with tls opportunistic on ::1", func(c *Config) { c.Host, c.TLS, c.Username, c.Password = "::1", TLSOpportunistic, "u", "p" }, ""},
		{"auth on a localhost lookalike", func(c *Config) {
			c.Host, c.TLS, c.Username, c.Password = "localhost.example.org", TLSNone, "u", "p"
		}, "smtp.tls"},
		{"port 465", func(c *Config) { c.Port = 465 }, ""},
		{"port 465, mandatory", func(c *Config) { c.Port, c.TLS = 465, TLSMandatory }, ""},
		{"port 465, opportunistic", func(c *Config) { c.Port, c.TLS = 465, TLSOpportunistic }, "smtp.port"},
		{"port 465, none", func(c *Config) { c.Port, c.TLS = 465, TLSNone }, "smtp.port"},
		{"tls none", func(c *Config) { c.TLS = TLSNone }, ""},
		{"ipv6 host", func(c *Config) { c.Host = "::1" }, ""},
		{"no host", func(c *Config) { c.Host = " " }, "smtp.host"},
		{"host with port", func(c *Config) { c.Host = "smtp.example.org:587" }, "smtp.host"},
		{"host with scheme", func(c *Config) { c.Host = "smtp://smtp.example.org" }, "smtp.host"},
		{"no port", func(c *Config) { c.Port = 0 }, "smtp.port"},
		{"port too high", func(c *Config) { c.Port = 70000 }, "smtp.port"},
		{"unknown tls", func(c *Config) { c.TLS = "starttls" }, "smtp.tls"},
		{"password alone", func(c *Config) { c.Password = "p" }, "smtp.password"},
		{"username alone", func(c *Config) { c.Username = "u" }, "smtp.password"},
		{"no from", func(c *Config) { c.From = "" }, "smtp.from"},
		{"bad from", func(c *Config) { c.From = "no-reply" }, "smtp.from"},
		{"bad replyTo", func(c *Config) { c.ReplyTo = "help at example.org" }, "smtp.replyTo"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "smtp.timeout"},
	}
	for _, tc := range tests {
		cfg := valid
		tc.edit(&cfg)
		err := cfg.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: err = %v, want one naming %s", tc.name, err, tc.field)
		}
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted the configuration", tc.name)
		}
	}
}

func TestNewRejectsBadCAFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.pem"), notPEM} {
		cfg := config(25, TLSMandatory)
		cfg.CAFile = path
		_, err := New(cfg)
		if err == nil || !strings.HasPrefix(err.Error(), "smtp.caFile:") {
			t.Errorf("%s: err = %v", filepath.Base(path), err)
		}
		if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "tls ca file" {
			t.Errorf("%s: err = %v, want it to be misconfigured tls ca file", filepath.Base(path), err)
		}
	}
}

func TestConfigJSONDefaultsAndKind(t *testing.T) {
	var cfg Config
	err := json.Unmarshal([]byte(`{"host": "smtp.example.org", "port": 587, "username": "u", "password": "p",
		"from": "no-reply@example.org", "replyTo": "help@example.org", "timeout": "3s", "caFile": ""}`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Host: "smtp.example.org", Port: 587, Username: "u", Password: "p", From: "no-reply@example.org",
		ReplyTo: "help@example.org", Timeout: delivery.Duration(3 * time.Second)}
	if cfg != want {
		t.Fatalf("decoded %+v", cfg)
	}
	cfg.Timeout = 0
	s := newSender(t, cfg)
	if s.Kind() != "smtp" || s.cfg.TLS != TLSMandatory || time.Duration(s.cfg.Timeout) != DefaultTimeout {
		t.Fatalf("kind %q, defaults tls %q timeout %v", s.Kind(), s.cfg.TLS, s.cfg.Timeout)
	}
}

func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

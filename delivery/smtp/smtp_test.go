package smtp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/enrollflow/enrollflow/delivery"
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

// received is one message as the test server took it.
type received struct {
	from string
	to   []string
	data []byte
	tls  bool
	user string // who authenticated, "" when nobody did
}

// serverOptions shape a test server.
type serverOptions struct {
	startTLS    bool   // offer STARTTLS with a self-signed certificate
	implicitTLS bool   // speak TLS from the first byte
	user, pass  string // offer AUTH PLAIN and require these credentials
	insecure    bool   // offer AUTH without TLS
	rcptErr     error  // the reply to every RCPT TO
}

// testServer is a go-smtp server on 127.0.0.1 that records what it gets.
type testServer struct {
	opts    serverOptions
	port    int
	certs   *x509.CertPool // trusts the server's certificate
	certDER []byte         // the server's certificate

	mu        sync.Mutex
	mails     []received
	authTries int
}

func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	ts := &testServer{opts: opts}
	srv := gosmtp.NewServer(ts)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	srv.AllowInsecureAuth = opts.insecure
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.startTLS || opts.implicitTLS {
		var cfg *tls.Config
		cfg, ts.certDER = selfSignedTLS(t)
		ts.certs = x509.NewCertPool()
		cert, _ := x509.ParseCertificate(ts.certDER)
		ts.certs.AddCert(cert)
		if opts.implicitTLS {
			ln = tls.NewListener(ln, cfg)
		} else {
			srv.TLSConfig = cfg
		}
	}
	ts.port = ln.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

func (ts *testServer) received() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.mails...)
}

func (ts *testServer) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return &session{srv: ts, conn: c}, nil
}

type session struct {
	srv  *testServer
	conn *gosmtp.Conn
	cur  received
}

func (s *session) AuthMechanisms() []string {
	if s.srv.opts.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		s.srv.mu.Lock()
		s.srv.authTries++
		s.srv.mu.Unlock()
		if username != s.srv.opts.user || password != s.srv.opts.pass {
			return gosmtp.ErrAuthFailed
		}
		s.cur.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.srv.opts.user != "" && s.cur.user == "" {
		return gosmtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if s.srv.opts.rcptErr != nil {
		return s.srv.opts.rcptErr
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset() { s.cur = received{user: s.cur.user} }

func (s *session) Logout() error { return nil }

// selfSignedTLS makes a server configuration with a self-signed
// certificate for 127.0.0.1, and returns the certificate too.
func selfSignedTLS(t *testing.T) (*tls.Config, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "enrollflow test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, der
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

func TestSendDeliversMultipartMessage(t *testing.T) {
	ts := startServer(t, serverOptions{})
	msg := testMessage()
	if err := newSender(t, config(ts.port, TLSNone)).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	mails := ts.received()
	if len(mails) != 1 {
		t.Fatalf("%d messages received, want 1", len(mails))
	}
	got := mails[0]
	if got.from != "no-reply@example.org" || len(got.to) != 1 || got.to[0] != recipient {
		t.Fatalf("envelope: MAIL FROM %q, RCPT TO %q", got.from, got.to)
	}
	m, err := mail.ReadMessage(bytes.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
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
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p) // the reader undoes quoted-printable
		partType, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[partType] = normalizeNewlines(string(body))
	}
	if len(parts) != 2 || parts["text/plain"] != msg.Body || parts["text/html"] != msg.HTMLBody {
		t.Fatalf("parts = %q", parts)
	}
}

func TestSendPlainTextOnlyWithoutHTML(t *testing.T) {
	ts := startServer(t, serverOptions{})
	msg := testMessage()
	msg.HTMLBody = ""
	if err := newSender(t, config(ts.port, TLSNone)).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(ts.received()[0].data))
	if err != nil {
		t.Fatal(err)
	}
	if mediaType, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); mediaType != "text/plain" {
		t.Fatalf("Content-Type = %q, want a single text/plain part", m.Header.Get("Content-Type"))
	}
	body := io.Reader(m.Body)
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	raw, _ := io.ReadAll(body)
	// The line break that ends the message body is the encoder's, not ours.
	if got := strings.TrimSuffix(normalizeNewlines(string(raw)), "\n"); got != msg.Body {
		t.Fatalf("body = %q, want %q", got, msg.Body)
	}
}

func TestSendWithoutDeliveryIDStillHasMessageID(t *testing.T) {
	ts := startServer(t, serverOptions{})
	msg := testMessage()
	msg.ID = ""
	if err := newSender(t, config(ts.port, TLSNone)).Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	m, _ := mail.ReadMessage(bytes.NewReader(ts.received()[0].data))
	if id := m.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.Contains(id, "@") {
		t.Fatalf("Message-ID = %q", id)
	}
	if m.Header.Get("X-Enrollflow-Delivery-Id") != "" {
		t.Fatal("empty delivery id header sent")
	}
}

func TestSendAuthenticates(t *testing.T) {
	ts := startServer(t, serverOptions{startTLS: true, user: "relay-user", pass: "s3cret-pass"})
	cfg := config(ts.port, TLSMandatory)
	cfg.Username, cfg.Password = "relay-user", "s3cret-pass"
	if err := newSender(t, cfg, WithRootCAs(ts.certs)).Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if got := ts.received(); len(got) != 1 || got[0].user != "relay-user" || !got[0].tls {
		t.Fatalf("received %+v, want one message from relay-user over TLS", got)
	}

	cfg.Password = "wrong-password"
	err := newSender(t, cfg, WithRootCAs(ts.certs)).Send(context.Background(), testMessage())
	if !delivery.IsPermanent(err) || delivery.ReasonOf(err) != "smtp 535" {
		t.Fatalf("wrong password: err = %v, want permanent smtp 535", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("error reveals the password: %v", err)
	}
}

func TestSendNeverAuthenticatesInClear(t *testing.T) {
	ts := startServer(t, serverOptions{insecure: true, user: "relay-user", pass: "s3cret-pass"})
	cfg := config(ts.port, TLSNone)
	cfg.Username, cfg.Password = "relay-user", "s3cret-pass"
	err := newSender(t, cfg).Send(context.Background(), testMessage())
	if !delivery.IsPermanent(err) || delivery.ReasonOf(err) != "auth unavailable" {
		t.Fatalf("err = %v, want permanent auth unavailable", err)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.authTries != 0 {
		t.Fatal("the password was sent over a plain connection")
	}
}

func TestSendTLSPolicies(t *testing.T) {
	tests := []struct {
		name       string
		server     serverOptions
		policy     string
		trust      bool
		implicit   bool
		wantTLS    bool
		wantReason string // "" for success
		permanent  bool
	}{
		{name: "opportunistic upgrades", server: serverOptions{startTLS: true}, policy: TLSOpportunistic, trust: true, wantTLS: true},
		{name: "opportunistic without STARTTLS", policy: TLSOpportunistic},
		{name: "mandatory upgrades", server: serverOptions{startTLS: true}, policy: TLSMandatory, trust: true, wantTLS: true},
		{name: "mandatory without STARTTLS", policy: TLSMandatory, wantReason: "tls unavailable", permanent: true},
		{name: "mandatory, untrusted certificate", server: serverOptions{startTLS: true}, policy: TLSMandatory,
			wantReason: "tls handshake failed"},
		{name: "implicit TLS", server: serverOptions{implicitTLS: true}, policy: TLSMandatory, trust: true, implicit: true, wantTLS: true},
		{name: "none ignores STARTTLS", server: serverOptions{startTLS: true}, policy: TLSNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.server)
			var opts []Option
			if tc.trust {
				opts = append(opts, WithRootCAs(ts.certs))
			}
			s := newSender(t, config(ts.port, tc.policy), opts...)
			// The implicit TLS port is 465, which a test cannot listen on.
			s.implicitTLS = tc.implicit
			err := s.Send(context.Background(), testMessage())
			if tc.wantReason != "" {
				if delivery.ReasonOf(err) != tc.wantReason || delivery.IsPermanent(err) != tc.permanent {
					t.Fatalf("err = %v, want %s (permanent %v)", err, tc.wantReason, tc.permanent)
				}
				if len(ts.received()) != 0 {
					t.Fatal("a message was delivered anyway")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ts.received(); len(got) != 1 || got[0].tls != tc.wantTLS {
				t.Fatalf("received %d messages, TLS %v; want 1, TLS %v", len(got), len(got) > 0 && got[0].tls, tc.wantTLS)
			}
		})
	}
}

func TestSendTrustsCAFile(t *testing.T) {
	ts := startServer(t, serverOptions{startTLS: true})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.certDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config(ts.port, TLSMandatory)
	cfg.CAFile = caFile
	if err := newSender(t, cfg).Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if got := ts.received(); len(got) != 1 || !got[0].tls {
		t.Fatalf("received %+v", got)
	}
}

func TestSendClassifiesReplies(t *testing.T) {
	tests := []struct {
		name      string
		rcptErr   error
		reason    string
		permanent bool
	}{
		{"mailbox unavailable", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1},
			Message: "<" + recipient + ">: mailbox unavailable"}, "smtp 550", true},
		{"try again later", &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
			Message: "<" + recipient + ">: greylisted"}, "smtp 451", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOptions{rcptErr: tc.rcptErr})
			err := newSender(t, config(ts.port, TLSNone)).Send(context.Background(), testMessage())
			if delivery.ReasonOf(err) != tc.reason || delivery.IsPermanent(err) != tc.permanent {
				t.Fatalf("err = %v, want %s (permanent %v)", err, tc.reason, tc.permanent)
			}
		})
	}
}

func TestSendBadRecipientIsPermanent(t *testing.T) {
	msg := testMessage()
	msg.Recipient = "jane.doe at example.com"
	// No server: the address is refused before any connection.
	err := newSender(t, config(1, TLSNone)).Send(context.Background(), msg)
	if !delivery.IsPermanent(err) || delivery.ReasonOf(err) != "bad address" {
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
	refused := startServer(t, serverOptions{rcptErr: echo})
	authServer := startServer(t, serverOptions{insecure: true, user: recipient, pass: otp})
	msg := testMessage()
	var errs []error
	errs = append(errs, newSender(t, config(refused.port, TLSNone)).Send(context.Background(), msg))
	errs = append(errs, newSender(t, config(authServer.port, TLSNone)).Send(context.Background(), msg))
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
			c.TLS, c.Username, c.Password, c.ReplyTo = TLSOpportunistic, "u", "p", "Help <help@example.org>"
			c.Timeout = delivery.Duration(time.Second)
		}, ""},
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
		if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "smtp.caFile:") {
			t.Errorf("%s: err = %v", filepath.Base(path), err)
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

// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on
// 127.0.0.1 for tests: it takes mail the way a mail server does, records
// each message, and reads its MIME parts back, so a test can pick the
// passcode out of an e-mail that really crossed an SMTP connection.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
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
)

// Options shape a server.
type Options struct {
	// StartTLS offers STARTTLS with a self-signed certificate for
	// 127.0.0.1 (trust it with Server.CertPool).
	StartTLS bool
	// ImplicitTLS speaks TLS from the first byte (SMTPS, port 465 style).
	ImplicitTLS bool
	// Username and Password, when set, are required through AUTH PLAIN.
	Username, Password string
	// AllowInsecureAuth offers AUTH without TLS.
	AllowInsecureAuth bool
	// RcptError, when set, is the reply to every RCPT TO (for example
	// &gosmtp.SMTPError{Code: 550, ...}).
	RcptError error
}

// Mail is one message as the server received it.
type Mail struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // it came over TLS
	User string // who authenticated, "" when nobody did
}

// Server is a running SMTP server.
type Server struct {
	opts     Options
	Port     int
	CertPool *x509.CertPool // trusts the server's certificate, when it has one
	cert     *x509.Certificate

	mu        sync.Mutex
	mails     []Mail
	authTries int
	arrived   chan struct{} // closed, and replaced, when a message arrives
}

// Start starts a server on a free port of 127.0.0.1; it stops when the test
// ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, arrived: make(chan struct{})}
	srv := gosmtp.NewServer(s)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	srv.AllowInsecureAuth = opts.AllowInsecureAuth
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.StartTLS || opts.ImplicitTLS {
		cfg, cert := selfSigned(t)
		s.cert = cert
		s.CertPool = x509.NewCertPool()
		s.CertPool.AddCert(cert)
		if opts.ImplicitTLS {
			ln = tls.NewListener(ln, cfg)
		} else {
			srv.TLSConfig = cfg
		}
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// CAFile writes the server's certificate as a PEM file, for a channel's
// caFile, and returns its path.
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	if s.cert == nil {
		t.Fatal("smtptest: the server has no certificate (set StartTLS or ImplicitTLS)")
	}
	path := filepath.Join(t.TempDir(), "smtptest-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Mails returns what has arrived so far.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// AuthTries counts AUTH attempts.
func (s *Server) AuthTries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authTries
}

// WaitMail waits until at least n messages have arrived and returns the
// n-th (1-based); it fails the test when they have not within timeout.
// Several goroutines may wait at once.
func (s *Server) WaitMail(t testing.TB, n int, timeout time.Duration) Mail {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.mails), s.arrived
		if got >= n {
			m := s.mails[n-1]
			s.mu.Unlock()
			return m
		}
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("smtptest: %d message(s) arrived within %s, want %d", len(s.Mails()), timeout, n)
			return Mail{}
		}
	}
}

// NewSession implements gosmtp.Backend.
func (s *Server) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return &session{srv: s, conn: c}, nil
}

type session struct {
	srv  *Server
	conn *gosmtp.Conn
	cur  Mail
}

func (ss *session) AuthMechanisms() []string {
	if ss.srv.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		ss.srv.mu.Lock()
		ss.srv.authTries++
		ss.srv.mu.Unlock()
		if username != ss.srv.opts.Username || password != ss.srv.opts.Password {
			return gosmtp.ErrAuthFailed
		}
		ss.cur.User = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if ss.srv.opts.Username != "" && ss.cur.User == "" {
		return gosmtp.ErrAuthRequired
	}
	ss.cur.From = from
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if ss.srv.opts.RcptError != nil {
		return ss.srv.opts.RcptError
	}
	ss.cur.To = append(ss.cur.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.Data = data
	_, ss.cur.TLS = ss.conn.TLSConnectionState()
	ss.srv.mu.Lock()
	ss.srv.mails = append(ss.srv.mails, ss.cur)
	close(ss.srv.arrived)
	ss.srv.arrived = make(chan struct{})
	ss.srv.mu.Unlock()
	return nil
}

func (ss *session) Reset() { ss.cur = Mail{User: ss.cur.User} }

func (ss *session) Logout() error { return nil }

// Parsed is a message read back: its header and its decoded text and HTML
// parts.
type Parsed struct {
	Header mail.Header
	Text   string
	HTML   string
	// Parts are the media types of the message's parts other than
	// multipart containers, in order: "text/plain" for a plain message,
	// "text/plain" and "text/html" for a usual multipart/alternative one.
	Parts []string
}

// Parse reads the message's header and its text/plain and text/html parts
// (directly, or inside multipart/alternative or multipart/mixed), undoing
// quoted-printable and base64 transfer encodings.
func (m Mail) Parse() (Parsed, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return Parsed{}, err
	}
	p := Parsed{Header: msg.Header}
	err = p.readPart(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return p, err
}

func (p *Parsed) readPart(contentType, encoding string, body io.Reader) error {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := p.readPart(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: body})
	}
	text, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	p.Parts = append(p.Parts, mediaType)
	switch mediaType {
	case "text/plain":
		p.Text = string(text)
	case "text/html":
		p.HTML = string(text)
	}
	return nil
}

// newlineStripper drops CR and LF, which base64 bodies are folded with.
type newlineStripper struct{ r io.Reader }

func (n *newlineStripper) Read(b []byte) (int, error) {
	c, err := n.r.Read(b)
	out := b[:0]
	for _, x := range b[:c] {
		if x != '\r' && x != '\n' {
			out = append(out, x)
		}
	}
	return len(out), err
}

// selfSigned makes a TLS configuration with a fresh certificate for
// 127.0.0.1 and localhost.
func selfSigned(t testing.TB) (*tls.Config, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "smtptest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, cert
}

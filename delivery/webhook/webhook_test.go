package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/webhook"
)

const (
	secret    = "0123456789abcdef-webhook-secret"
	otp       = "493817"
	recipient = "+12015554567"
)

// request is one request as the gateway got it.
type request struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// reply is what the gateway answers to one request.
type reply struct {
	status int
	header map[string]string
}

// gateway is an httptest server that records requests and answers them
// from a script, then with 200.
type gateway struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	script   []reply
}

func newGateway(t *testing.T, script ...reply) *gateway {
	g := &gateway{script: script}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.requests = append(g.requests, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	rep := reply{status: http.StatusOK}
	if n := len(g.requests); n <= len(g.script) {
		rep = g.script[n-1]
	}
	g.mu.Unlock()
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, `{"error": "recipient `+recipient+` refused"}`)
}

func (g *gateway) received() []request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]request(nil), g.requests...)
}

func newSender(t *testing.T, url string, edit ...func(*webhook.Config)) *webhook.Sender {
	t.Helper()
	cfg := webhook.Config{URL: url, Secret: secret, Headers: map[string]string{"X-Api-Key": "gateway-key"}}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func smsMessage() delivery.Message {
	return delivery.Message{ID: "d1", EnvID: "env1", Method: delivery.SMS, Recipient: recipient, Locale: "en",
		Body: "Your verification code is " + otp + "."}
}

// hmacHex computes the signature here, independently of webhook.Sign.
func hmacHex(timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "." + string(body)))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestSendPostsSignedJSON(t *testing.T) {
	email := delivery.Message{ID: "d2", EnvID: "env1", Method: delivery.Email, Recipient: "jane@example.com",
		Locale: "es-ES", Subject: "Tu código", Body: "Código: " + otp, HTMLBody: "<p>Código: <b>" + otp + "</b></p>"}
	voice := smsMessage()
	voice.Method, voice.Body = delivery.Voice, "Your code is 4, 9, 3, 8, 1, 7."
	smsWithSubject := smsMessage()
	smsWithSubject.Subject = "ignored"
	tests := []struct {
		name string
		msg  delivery.Message
		want string
	}{
		{"sms", smsMessage(),
			`{"id":"d1","environmentId":"env1","method":"SMS","recipient":"+12015554567","locale":"en","content":"Your verification code is 493817."}`},
		{"voice", voice,
			`{"id":"d1","environmentId":"env1","method":"VOICE","recipient":"+12015554567","locale":"en","content":"Your code is 4, 9, 3, 8, 1, 7."}`},
		{"email", email,
			`{"id":"d2","environmentId":"env1","method":"EMAIL","recipient":"jane@example.com","locale":"es-ES","subject":"Tu código","content":"Código: 493817","html":"\u003cp\u003eCódigo: \u003cb\u003e493817\u003c/b\u003e\u003c/p\u003e"}`},
		{"subject only for e-mail", smsWithSubject,
			`{"id":"d1","environmentId":"env1","method":"SMS","recipient":"+12015554567","locale":"en","content":"Your verification code is 493817."}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			if err := newSender(t, g.URL+"/hooks/otp?tenant=acme").Send(context.Background(), tc.msg); err != nil {
				t.Fatal(err)
			}
			reqs := g.received()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/hooks/otp" || r.query != "tenant=acme" {
				t.Errorf("request %s %s?%s", r.method, r.path, r.query)
			}
			if string(r.body) != tc.want {
				t.Errorf("body\n got %s\nwant %s", r.body, tc.want)
			}
			if !json.Valid(r.body) {
				t.Error("body is not JSON")
			}
			for name, want := range map[string]string{
				"Content-Type": "application/json", "User-Agent": "enrollflow", "X-Api-Key": "gateway-key",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			ts := r.header.Get("X-Enrollflow-Timestamp")
			secs, err := strconv.ParseInt(ts, 10, 64)
			if err != nil || time.Since(time.Unix(secs, 0)).Abs() > 5*time.Second {
				t.Errorf("timestamp %q is not the current unix time", ts)
			}
			sig := r.header.Get("X-Enrollflow-Signature")
			if sig != "v1="+hmacHex(ts, r.body) {
				t.Errorf("signature %q does not match HMAC-SHA256(secret, timestamp.body)", sig)
			}
			if err := webhook.Verify([]byte(secret), ts, r.body, sig, time.Now(), time.Minute); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestSendUserAgentMayBeConfigured(t *testing.T) {
	g := newGateway(t)
	s := newSender(t, g.URL, func(c *webhook.Config) { c.Headers = map[string]string{"user-agent": "acme-relay"} })
	if err := s.Send(context.Background(), smsMessage()); err != nil {
		t.Fatal(err)
	}
	if ua := g.received()[0].header.Get("User-Agent"); ua != "acme-relay" {
		t.Fatalf("User-Agent = %q", ua)
	}
}

var fastRetry = delivery.RetryPolicy{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}

func TestSendRetriesUnavailableGateway(t *testing.T) {
	g := newGateway(t, reply{status: http.StatusServiceUnavailable})
	if err := delivery.Retrying(newSender(t, g.URL), fastRetry).Send(context.Background(), smsMessage()); err != nil {
		t.Fatal(err)
	}
	reqs := g.received()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Fatal("the retry sent a different body (the id must stay the same)")
	}
}

func TestSendClassifiesReplies(t *testing.T) {
	tests := []struct {
		name       string
		reply      reply
		reason     string
		permanent  bool
		misconfig  bool // the gateway's address or credentials, not the recipient
		retryAfter time.Duration
	}{
		{"bad request", reply{status: 400}, "http 400", true, false, 0},
		{"unprocessable", reply{status: 422}, "http 422", true, false, 0},
		{"unauthorized", reply{status: 401}, "http 401", true, true, 0},
		{"forbidden", reply{status: 403}, "http 403", true, true, 0},
		{"not found", reply{status: 404}, "http 404", true, true, 0},
		{"method not allowed", reply{status: 405}, "http 405", true, true, 0},
		{"proxy auth", reply{status: 407}, "http 407", true, true, 0},
		{"rate limited", reply{status: 429, header: map[string]string{"Retry-After": "7"}}, "http 429", false, false, 7 * time.Second},
		{"rate limited without hint", reply{status: 429}, "http 429", false, false, 0},
		{"server error", reply{status: 500}, "http 500", false, false, 0},
		{"bad gateway", reply{status: 502}, "http 502", false, false, 0},
		{"redirect", reply{status: 302, header: map[string]string{"Location": "/elsewhere"}}, "http 302", true, true, 0},
		{"permanent redirect", reply{status: 308, header: map[string]string{"Location": "/elsewhere"}}, "http 308", true, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, tc.reply, tc.reply, tc.reply)
			err := newSender(t, g.URL).Send(context.Background(), smsMessage())
			var e *delivery.Error
			if !errors.As(err, &e) || e.Reason != tc.reason || e.Permanent != tc.permanent || e.RetryAfter != tc.retryAfter {
				t.Fatalf("err = %#v, want %s permanent %v retry after %v", err, tc.reason, tc.permanent, tc.retryAfter)
			}
			if delivery.IsMisconfigured(err) != tc.misconfig {
				t.Errorf("misconfigured = %v, want %v", !tc.misconfig, tc.misconfig)
			}
			if n := len(g.received()); n != 1 {
				t.Fatalf("%d requests, want 1 (a redirect is not followed)", n)
			}
		})
	}
}

func TestSendPermanentFailureIsNotRetried(t *testing.T) {
	g := newGateway(t, reply{status: http.StatusBadRequest})
	err := delivery.Retrying(newSender(t, g.URL), fastRetry).Send(context.Background(), smsMessage())
	if !delivery.IsPermanent(err) || delivery.ReasonOf(err) != "http 400" || delivery.AttemptsOf(err) != 1 {
		t.Fatalf("err = %v (attempts %d)", err, delivery.AttemptsOf(err))
	}
	if n := len(g.received()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestSendTimesOut(t *testing.T) {
	s := newSender(t, stallingServer(t).URL, func(c *webhook.Config) { c.Timeout = delivery.Duration(200 * time.Millisecond) })
	start := time.Now()
	err := s.Send(context.Background(), smsMessage())
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v with a 200ms timeout", elapsed)
	}
	if err == nil || delivery.IsPermanent(err) || delivery.ReasonOf(err) != "timeout" {
		t.Fatalf("err = %v, want transient timeout", err)
	}
}

// stallingServer never answers, until the client gives up.
func stallingServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// net/http notices the client leaving only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func closedPortURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func TestSendConnectionRefusedIsTransient(t *testing.T) {
	err := newSender(t, closedPortURL(t)).Send(context.Background(), smsMessage())
	if err == nil || delivery.IsPermanent(err) || delivery.ReasonOf(err) != "connection failed" {
		t.Fatalf("err = %v, want transient connection failed", err)
	}
}

func TestErrorsRevealNeitherPasscodeNorRecipient(t *testing.T) {
	var logs bytes.Buffer
	log.SetOutput(&logs)
	defer log.SetOutput(os.Stderr)

	rejecting := newGateway(t, reply{status: 400}, reply{status: 503})
	slow := stallingServer(t)
	const token = "url-token-4711"
	senders := []*webhook.Sender{
		newSender(t, rejecting.URL),
		newSender(t, rejecting.URL),
		newSender(t, slow.URL+"/?token="+token, func(c *webhook.Config) { c.Timeout = delivery.Duration(100 * time.Millisecond) }),
		newSender(t, closedPortURL(t)+"/hook?token="+token),
	}
	msg := smsMessage()
	msg.Method = "PUSH"
	if err := senders[0].Send(context.Background(), msg); delivery.ReasonOf(err) != "method not supported" || !delivery.IsMisconfigured(err) {
		t.Errorf("unknown method: %v", err)
	}
	for i, s := range senders {
		err := s.Send(context.Background(), smsMessage())
		if err == nil {
			t.Fatalf("case %d succeeded", i)
		}
		for _, secret := range []string{otp, recipient, token, secret} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("case %d: error %q reveals %q", i, err, secret)
			}
		}
	}
	if strings.Contains(logs.String(), otp) || strings.Contains(logs.String(), recipient) {
		t.Errorf("logs reveal the passcode or recipient: %q", logs.String())
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"id":"d1","content":"493817"}`)
	good := webhook.Sign([]byte(secret), ts, body)
	if good != "v1="+hmacHex(ts, body) {
		t.Fatalf("Sign = %q, want v1= and the hex HMAC", good)
	}
	stale := strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)
	future := strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10)
	tests := []struct {
		name      string
		secret    string
		timestamp string
		body      []byte
		signature string
		want      error
	}{
		{"good", secret, ts, body, good, nil},
		{"within tolerance", secret, strconv.FormatInt(now.Add(-4*time.Minute).Unix(), 10), body,
			webhook.Sign([]byte(secret), strconv.FormatInt(now.Add(-4*time.Minute).Unix(), 10), body), nil},
		{"tampered body", secret, ts, []byte(`{"id":"d1","content":"000000"}`), good, webhook.ErrBadSignature},
		{"wrong secret", "another-secret-of-16+", ts, body, good, webhook.ErrBadSignature},
		{"signature without version", secret, ts, body, strings.TrimPrefix(good, "v1="), webhook.ErrBadSignature},
		{"uppercase hex", secret, ts, body, "v1=" + strings.ToUpper(strings.TrimPrefix(good, "v1=")), webhook.ErrBadSignature},
		{"stale timestamp", secret, stale, body, webhook.Sign([]byte(secret), stale, body), webhook.ErrBadTimestamp},
		{"future timestamp", secret, future, body, webhook.Sign([]byte(secret), future, body), webhook.ErrBadTimestamp},
		{"timestamp swapped", secret, stale, body, good, webhook.ErrBadTimestamp},
		{"malformed timestamp", secret, "yesterday", body, good, webhook.ErrBadTimestamp},
	}
	for _, tc := range tests {
		err := webhook.Verify([]byte(tc.secret), tc.timestamp, tc.body, tc.signature, now, 5*time.Minute)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := webhook.Config{URL: "https://gateway.example.com/otp", Secret: secret}
	tests := []struct {
		name  string
		edit  func(*webhook.Config)
		field string // "" when valid
	}{
		{"minimal", func(*webhook.Config) {}, ""},
		{"headers and timeout", func(c *webhook.Config) {
			c.Headers = map[string]string{"Authorization": "Bearer x", "X-Tenant": "acme", "User-Agent": "relay"}
			c.Timeout = delivery.Duration(time.Second)
		}, ""},
		{"http on localhost", func(c *webhook.Config) { c.URL = "http://localhost:8080/otp" }, ""},
		{"http on 127.0.0.2", func(c *webhook.Config) { c.URL = "http://127.0.0.2/otp" }, ""},
		{"http on ::1", func(c *webhook.Config) { c.URL = "http://[::1]:9000/otp" }, ""},
		{"no url", func(c *webhook.Config) { c.URL = "" }, "webhook.url"},
		{"relative url", func(c *webhook.Config) { c.URL = "/otp" }, "webhook.url"},
		{"http elsewhere", func(c *webhook.Config) { c.URL = "http://gateway.example.com/otp" }, "webhook.url"},
		{"http on a localhost lookalike", func(c *webhook.Config) { c.URL = "http://localhost.example.com/otp" }, "webhook.url"},
		{"other scheme", func(c *webhook.Config) { c.URL = "ftp://gateway.example.com/otp" }, "webhook.url"},
		{"credentials in url", func(c *webhook.Config) { c.URL = "https://u:p@gateway.example.com/otp" }, "webhook.url"},
		{"short secret", func(c *webhook.Config) { c.Secret = "0123456789abcde" }, "webhook.secret"},
		{"bad header name", func(c *webhook.Config) { c.Headers = map[string]string{"X Tenant": "a"} }, "webhook.headers"},
		{"empty header name", func(c *webhook.Config) { c.Headers = map[string]string{"": "a"} }, "webhook.headers"},
		{"header value with tab and UTF-8", func(c *webhook.Config) { c.Headers = map[string]string{"X-Tenant": "a\tb ñ €"} }, ""},
		{"empty header value", func(c *webhook.Config) { c.Headers = map[string]string{"X-Tenant": ""} }, ""},
		{"header value with newline", func(c *webhook.Config) { c.Headers = map[string]string{"X-Tenant": "a\r\nX-Evil: 1"} }, "webhook.headers.X-Tenant"},
		{"header value with LF", func(c *webhook.Config) { c.Headers = map[string]string{"X-Tenant": "a\nb"} }, "webhook.headers.X-Tenant"},
		{"header value with NUL", func(c *webhook.Config) { c.Headers = map[string]string{"X-Tenant": "a\x00"} }, "webhook.headers.X-Tenant"},
		{"header value with a control", func(c *webhook.Config) { c.Headers = map[string]string{"Authorization": "Bearer \x01x"} }, "webhook.headers.Authorization"},
		{"header value with ESC", func(c *webhook.Config) { c.Headers = map[string]string{"X-Tenant": "\x1b[2J"} }, "webhook.headers.X-Tenant"},
		{"header value with DEL", func(c *webhook.Config) { c.Headers = map[string]string{"Authorization": "Bearer x\x7f"} }, "webhook.headers.Authorization"},
		{"content type", func(c *webhook.Config) { c.Headers = map[string]string{"content-type": "text/plain"} }, "webhook.headers"},
		{"signature", func(c *webhook.Config) { c.Headers = map[string]string{"X-Enrollflow-Signature": "v1=0"} }, "webhook.headers"},
		{"timestamp", func(c *webhook.Config) { c.Headers = map[string]string{"X-ENROLLFLOW-TIMESTAMP": "0"} }, "webhook.headers"},
		{"host", func(c *webhook.Config) { c.Headers = map[string]string{"Host": "evil.example"} }, "webhook.headers"},
		{"content length", func(c *webhook.Config) { c.Headers = map[string]string{"Content-Length": "1"} }, "webhook.headers"},
		{"negative timeout", func(c *webhook.Config) { c.Timeout = -1 }, "webhook.timeout"},
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
			continue
		}
		if strings.Contains(err.Error(), secret[:16]) || strings.Contains(err.Error(), "Bearer") {
			t.Errorf("%s: error %q quotes a credential", tc.name, err)
		}
		for _, value := range cfg.Headers {
			if len(value) >= 3 && strings.Contains(err.Error(), value) {
				t.Errorf("%s: error %q quotes a header value", tc.name, err)
			}
		}
		if _, err := webhook.New(cfg); err == nil {
			t.Errorf("%s: New accepted the configuration", tc.name)
		}
	}
}

func TestConfigJSONAndKind(t *testing.T) {
	var cfg webhook.Config
	err := json.Unmarshal([]byte(`{"url": "https://gateway.example.com/otp", "secret": "`+secret+`",
		"headers": {"X-Tenant": "acme"}, "timeout": "2s"}`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "https://gateway.example.com/otp" || cfg.Secret != secret || cfg.Headers["X-Tenant"] != "acme" ||
		cfg.Timeout != delivery.Duration(2*time.Second) {
		t.Fatalf("decoded %+v", cfg)
	}
	if s, err := webhook.New(cfg); err != nil || s.Kind() != "webhook" {
		t.Fatalf("New: %v", err)
	}
}

func TestConfigValidateForAPI(t *testing.T) {
	valid := webhook.Config{URL: "https://gateway.example.com/otp", Secret: secret}
	tests := []struct {
		name string
		url  string
		want string // "" when valid
	}{
		{"https", "https://gateway.example.com/otp", ""},
		{"https on a private address", "https://10.0.0.7/otp", ""},
		{"http on localhost", "http://localhost:8080/otp", "webhook.url: http is allowed on a loopback host only in the configuration file"},
		{"http on 127.0.0.1", "http://127.0.0.1/otp", "webhook.url: http is allowed on a loopback host only in the configuration file"},
		{"http on ::1", "http://[::1]:9000/otp", "webhook.url: http is allowed on a loopback host only in the configuration file"},
		{"https on localhost", "https://localhost/otp", "webhook.url: must not be this machine or a link-local address"},
		{"https on loopback", "https://127.0.0.1:8443/otp", "webhook.url: must not be this machine or a link-local address"},
		{"metadata", "https://169.254.169.254/latest/meta-data", "webhook.url: must not be this machine or a link-local address"},
		{"link-local v6", "https://[fe80::1]/otp", "webhook.url: must not be this machine or a link-local address"},
		{"mapped loopback", "https://[::ffff:127.0.0.1]/otp", "webhook.url: must not be this machine or a link-local address"},
		{"unspecified", "https://0.0.0.0/otp", "webhook.url: must not be this machine or a link-local address"},
		{"http elsewhere", "http://gateway.example.com/otp", "webhook.url: must use https (http only on a loopback host)"},
	}
	for _, tc := range tests {
		cfg := valid
		cfg.URL = tc.url
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
	// Validate, for the configuration file, still takes http on loopback.
	cfg := valid
	cfg.URL = "http://localhost:8080/otp"
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// ValidateForAPI applies Validate's rules too.
	cfg = valid
	cfg.Headers = map[string]string{"X-Tenant": "a\nb"}
	if err := cfg.ValidateForAPI(); err == nil || !strings.HasPrefix(err.Error(), "webhook.headers.X-Tenant:") {
		t.Errorf("bad header: err = %v", err)
	}
}

func TestSendRestrictedRefusesThisMachine(t *testing.T) {
	g := newGateway(t)
	port := g.Listener.Addr().(*net.TCPAddr).Port
	for _, target := range []string{g.URL + "/otp", "http://localhost:" + strconv.Itoa(port) + "/otp"} {
		s, err := webhook.New(webhook.Config{URL: target, Secret: secret}, webhook.RestrictDestinations())
		if err != nil {
			t.Fatal(err)
		}
		err = delivery.Retrying(s, fastRetry).Send(context.Background(), smsMessage())
		if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "destination not allowed" || delivery.AttemptsOf(err) != 1 {
			t.Errorf("%s: err = %v (attempts %d), want misconfigured destination not allowed, not retried", target, err, delivery.AttemptsOf(err))
		}
	}
	if n := len(g.received()); n != 0 {
		t.Fatalf("%d requests reached this machine", n)
	}
	// Without the option the same gateway is reached.
	if err := newSender(t, g.URL).Send(context.Background(), smsMessage()); err != nil {
		t.Fatal(err)
	}
}

func TestConfigJSONOmitsEmptySecret(t *testing.T) {
	out, err := json.Marshal(webhook.Config{URL: "https://gateway.example.com/otp"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secret") {
		t.Errorf("JSON %s shows the (redacted) secret", out)
	}
	out, _ = json.Marshal(webhook.Config{URL: "https://gateway.example.com/otp", Secret: secret})
	if !strings.Contains(string(out), `"secret":"`+secret+`"`) {
		t.Errorf("JSON %s lost the secret", out)
	}
}

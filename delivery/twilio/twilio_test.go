package twilio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/twilio"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "twilio-auth-token-0123"
	from       = "+12015551111"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
	otp        = "493817"
	recipient  = "+34600123456"
)

// call is one API request as the fake Twilio got it.
type call struct {
	path       string
	user, pass string
	authOK     bool
	form       url.Values
	header     http.Header
}

// reply is the fake's answer to one request.
type reply struct {
	status int
	body   string
	header map[string]string
}

// fakeTwilio records requests and answers them from a script, then with
// 201 Created.
type fakeTwilio struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []call
	script []reply
}

func newFake(t *testing.T, script ...reply) *fakeTwilio {
	f := &fakeTwilio{script: script}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	_ = r.ParseForm()
	f.mu.Lock()
	f.calls = append(f.calls, call{r.URL.Path, user, pass, ok, r.PostForm, r.Header.Clone()})
	rep := reply{status: http.StatusCreated, body: `{"sid": "SM0123", "status": "queued"}`}
	if n := len(f.calls); n <= len(f.script) {
		rep = f.script[n-1]
	}
	f.mu.Unlock()
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (f *fakeTwilio) received() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func config(baseURL string) twilio.Config {
	return twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: from, BaseURL: baseURL}
}

func newSender(t *testing.T, cfg twilio.Config) *twilio.Sender {
	t.Helper()
	s, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func smsMessage() delivery.Message {
	return delivery.Message{ID: "d1", EnvID: "env1", Method: delivery.SMS, Recipient: recipient, Locale: "es-ES",
		Body: "Tu código es " + otp + "."}
}

func voiceMessage() delivery.Message {
	return delivery.Message{ID: "d2", EnvID: "env1", Method: delivery.Voice, Recipient: recipient, Locale: "es-ES",
		Body: "Tu código es: 4, 9, 3, 8, 1, 7. <Otra vez> & de nuevo: 4, 9, 3, 8, 1, 7."}
}

func checkAuth(t *testing.T, c call) {
	t.Helper()
	if !c.authOK || c.user != accountSID || c.pass != authToken {
		t.Errorf("Basic auth %q:%q (%v), want the account SID and token", c.user, c.pass, c.authOK)
	}
	if ct := c.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func checkForm(t *testing.T, got url.Values, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("form fields %v, want exactly %v", keys(got), want)
	}
	for k, v := range want {
		if got[k] == nil || len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("form %s = %q, want %q", k, got[k], v)
		}
	}
}

func keys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

func TestSendSMS(t *testing.T) {
	f := newFake(t)
	if err := newSender(t, config(f.URL)).Send(context.Background(), smsMessage()); err != nil {
		t.Fatal(err)
	}
	calls := f.received()
	if len(calls) != 1 || calls[0].path != "/2010-04-01/Accounts/"+accountSID+"/Messages.json" {
		t.Fatalf("calls %+v", calls)
	}
	checkAuth(t, calls[0])
	checkForm(t, calls[0].form, map[string]string{"To": recipient, "From": from, "Body": smsMessage().Body})
}

func TestSendSMSThroughMessagingService(t *testing.T) {
	f := newFake(t)
	cfg := config(f.URL + "/") // a trailing slash does not double
	cfg.MessagingServiceSID = serviceSID
	if err := newSender(t, cfg).Send(context.Background(), smsMessage()); err != nil {
		t.Fatal(err)
	}
	c := f.received()[0]
	if c.path != "/2010-04-01/Accounts/"+accountSID+"/Messages.json" {
		t.Fatalf("path %s", c.path)
	}
	checkForm(t, c.form, map[string]string{"To": recipient, "MessagingServiceSid": serviceSID, "Body": smsMessage().Body})
}

// parsedTwiML is what the test reads back from the Twiml field.
type parsedTwiML struct {
	XMLName xml.Name `xml:"Response"`
	Says    []struct {
		Language string `xml:"language,attr"`
		Voice    string `xml:"voice,attr"`
		Text     string `xml:",chardata"`
	} `xml:"Say"`
}

func TestSendVoice(t *testing.T) {
	tests := []struct {
		name, locale, voice string
	}{
		{"locale and voice", "es-ES", "Polly.Lucia"},
		{"neither", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			cfg := config(f.URL)
			cfg.Voice = tc.voice
			cfg.MessagingServiceSID = serviceSID // calls still come from From
			msg := voiceMessage()
			msg.Locale = tc.locale
			if err := newSender(t, cfg).Send(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			c := f.received()[0]
			if c.path != "/2010-04-01/Accounts/"+accountSID+"/Calls.json" {
				t.Fatalf("path %s", c.path)
			}
			checkAuth(t, c)
			twiml := c.form.Get("Twiml")
			checkForm(t, c.form, map[string]string{"To": recipient, "From": from, "Twiml": twiml})
			var doc parsedTwiML
			if err := xml.Unmarshal([]byte(twiml), &doc); err != nil {
				t.Fatalf("Twiml %q: %v", twiml, err)
			}
			if len(doc.Says) != 1 || doc.Says[0].Text != msg.Body || doc.Says[0].Language != tc.locale || doc.Says[0].Voice != tc.voice {
				t.Fatalf("Twiml %q parses to %+v", twiml, doc)
			}
		})
	}
}

func TestSendRefusesEmailAndBadNumbers(t *testing.T) {
	f := newFake(t)
	s := newSender(t, config(f.URL))
	email := smsMessage()
	email.Method, email.Recipient = delivery.Email, "jane@example.com"
	if err := s.Send(context.Background(), email); !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "method not supported" {
		t.Errorf("e-mail: %v", err)
	}
	bad := smsMessage()
	bad.Recipient = "0034 600 123 456"
	if err := s.Send(context.Background(), bad); !delivery.IsPermanent(err) || delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "bad address" {
		t.Errorf("bad number: %v", err)
	}
	if n := len(f.received()); n != 0 {
		t.Fatalf("%d requests reached Twilio", n)
	}
}

const invalidNumber = `{"code": 21211, "message": "The 'To' number ` + recipient + ` is not a valid phone number.",
	"more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`

func TestSendClassifiesReplies(t *testing.T) {
	tests := []struct {
		name       string
		reply      reply
		reason     string
		permanent  bool
		misconfig  bool // the account, token, From number or base URL, not the recipient
		retryAfter time.Duration
	}{
		{"invalid number", reply{status: 400, body: invalidNumber}, "twilio 400 code 21211", true, false, 0},
		{"not a mobile number", reply{status: 400, body: `{"code": 21614, "status": 400}`}, "twilio 400 code 21614", true, false, 0},
		{"unsubscribed", reply{status: 400, body: `{"code": 21610, "status": 400}`}, "twilio 400 code 21610", true, false, 0},
		{"bad request without code", reply{status: 400, body: `{}`}, "twilio 400", true, false, 0},
		{"bad credentials", reply{status: 401, body: `{"code": 20003, "message": "Authenticate", "status": 401}`},
			"twilio 401 code 20003", true, true, 0},
		{"authenticate code on 403", reply{status: 403, body: `{"code": 20003, "status": 403}`}, "twilio 403 code 20003", true, true, 0},
		{"authenticate code on 400", reply{status: 400, body: `{"code": 20003, "status": 400}`}, "twilio 400 code 20003", true, true, 0},
		{"forbidden", reply{status: 403, body: `{}`}, "twilio 403", true, true, 0},
		{"not json", reply{status: 404, body: "<html>not found</html>"}, "twilio 404", true, true, 0},
		{"resource not found", reply{status: 404, body: `{"code": 20404, "status": 404}`}, "twilio 404 code 20404", true, true, 0},
		{"from not SMS-capable", reply{status: 400, body: `{"code": 21606, "status": 400}`}, "twilio 400 code 21606", true, true, 0},
		{"from invalid", reply{status: 400, body: `{"code": 21212, "status": 400}`}, "twilio 400 code 21212", true, true, 0},
		{"from not owned", reply{status: 400, body: `{"code": 21659, "status": 400}`}, "twilio 400 code 21659", true, true, 0},
		{"rate limited", reply{status: 429, body: `{"code": 20429, "status": 429}`, header: map[string]string{"Retry-After": "3"}},
			"twilio 429 code 20429", false, false, 3 * time.Second},
		{"unavailable", reply{status: 503}, "twilio 503", false, false, 0},
		{"unavailable with a configuration code", reply{status: 503, body: `{"code": 20003}`}, "twilio 503 code 20003", false, false, 0},
		{"redirect", reply{status: 301, header: map[string]string{"Location": "/elsewhere"}}, "twilio 301", true, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.reply)
			err := newSender(t, config(f.URL)).Send(context.Background(), smsMessage())
			var e *delivery.Error
			if !errors.As(err, &e) || e.Reason != tc.reason || e.Permanent != tc.permanent || e.RetryAfter != tc.retryAfter {
				t.Fatalf("err = %#v, want %s permanent %v retry after %v", err, tc.reason, tc.permanent, tc.retryAfter)
			}
			if delivery.IsMisconfigured(err) != tc.misconfig {
				t.Errorf("misconfigured = %v, want %v", !tc.misconfig, tc.misconfig)
			}
			if n := len(f.received()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
		})
	}
}

var fastRetry = delivery.RetryPolicy{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}

func TestSendRetriesThroughOutage(t *testing.T) {
	f := newFake(t, reply{status: 503, body: `{"code": 20500, "status": 503}`})
	if err := delivery.Retrying(newSender(t, config(f.URL)), fastRetry).Send(context.Background(), smsMessage()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.received()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestSendDoesNotRetryInvalidNumber(t *testing.T) {
	f := newFake(t, reply{status: 400, body: invalidNumber})
	err := delivery.Retrying(newSender(t, config(f.URL)), fastRetry).Send(context.Background(), smsMessage())
	if delivery.ReasonOf(err) != "twilio 400 code 21211" || delivery.AttemptsOf(err) != 1 || len(f.received()) != 1 {
		t.Fatalf("err = %v after %d requests", err, len(f.received()))
	}
}

func TestSendTimeoutAndRefusal(t *testing.T) {
	stalling := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // net/http notices the client leaving only after this
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer stalling.Close()
	cfg := config(stalling.URL)
	cfg.Timeout = delivery.Duration(200 * time.Millisecond)
	start := time.Now()
	err := newSender(t, cfg).Send(context.Background(), smsMessage())
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v with a 200ms timeout", elapsed)
	}
	if delivery.IsPermanent(err) || delivery.ReasonOf(err) != "timeout" {
		t.Errorf("stalling server: err = %v, want transient timeout", err)
	}

	err = newSender(t, config(closedPortURL(t))).Send(context.Background(), smsMessage())
	if err == nil || delivery.IsPermanent(err) || delivery.ReasonOf(err) != "connection failed" {
		t.Errorf("closed port: err = %v, want transient connection failed", err)
	}
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

func TestErrorsRevealNeitherPasscodeNorRecipient(t *testing.T) {
	var logs bytes.Buffer
	log.SetOutput(&logs)
	defer log.SetOutput(os.Stderr)

	echo := `{"code": 21211, "message": "` + recipient + ` cannot receive ` + otp + `", "status": 400}`
	f := newFake(t, reply{status: 400, body: echo}, reply{status: 400, body: echo}, reply{status: 500, body: echo})
	s := newSender(t, config(f.URL))
	errs := []error{
		s.Send(context.Background(), smsMessage()),
		s.Send(context.Background(), voiceMessage()),
		s.Send(context.Background(), smsMessage()),
		newSender(t, config(closedPortURL(t))).Send(context.Background(), smsMessage()),
	}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d succeeded", i)
		}
		for _, secret := range []string{otp, recipient, strings.TrimPrefix(recipient, "+"), authToken, "4, 9, 3"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("case %d: error %q reveals %q", i, err, secret)
			}
		}
	}
	if strings.Contains(logs.String(), otp) || strings.Contains(logs.String(), recipient) {
		t.Errorf("logs reveal the passcode or recipient: %q", logs.String())
	}
}

func TestConfigValidate(t *testing.T) {
	valid := twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: from}
	tests := []struct {
		name  string
		edit  func(*twilio.Config)
		field string // "" when valid
	}{
		{"minimal", func(*twilio.Config) {}, ""},
		{"full", func(c *twilio.Config) {
			c.MessagingServiceSID, c.BaseURL, c.Voice = serviceSID, "https://twilio-proxy.example.com/api", "alice"
			c.Timeout = delivery.Duration(time.Second)
		}, ""},
		{"http on loopback", func(c *twilio.Config) { c.BaseURL = "http://127.0.0.1:8080" }, ""},
		{"no account", func(c *twilio.Config) { c.AccountSID = "" }, "twilio.accountSid"},
		{"short account", func(c *twilio.Config) { c.AccountSID = "AC0123" }, "twilio.accountSid"},
		{"account not hex", func(c *twilio.Config) { c.AccountSID = "AC0123456789abcdef0123456789abcdez" }, "twilio.accountSid"},
		{"no token", func(c *twilio.Config) { c.AuthToken = "" }, "twilio.authToken"},
		{"no from", func(c *twilio.Config) { c.From = "" }, "twilio.from"},
		{"no from with a messaging service", func(c *twilio.Config) { c.From, c.MessagingServiceSID = "", serviceSID }, ""},
		{"bad from with a messaging service", func(c *twilio.Config) { c.From, c.MessagingServiceSID = "5550001111", serviceSID }, "twilio.from"},
		{"from without plus", func(c *twilio.Config) { c.From = "15550001111" }, "twilio.from"},
		{"from too short", func(c *twilio.Config) { c.From = "+12345" }, "twilio.from"},
		{"from too long", func(c *twilio.Config) { c.From = "+1234567890123456" }, "twilio.from"},
		{"bad service", func(c *twilio.Config) { c.MessagingServiceSID = "PN0123456789abcdef0123456789abcdef" }, "twilio.messagingServiceSid"},
		{"http elsewhere", func(c *twilio.Config) { c.BaseURL = "http://api.twilio.com" }, "twilio.baseUrl"},
		{"relative base", func(c *twilio.Config) { c.BaseURL = "api.twilio.com" }, "twilio.baseUrl"},
		{"base with query", func(c *twilio.Config) { c.BaseURL = "https://api.twilio.com?x=1" }, "twilio.baseUrl"},
		{"voice with newline", func(c *twilio.Config) { c.Voice = "alice\n" }, "twilio.voice"},
		{"negative timeout", func(c *twilio.Config) { c.Timeout = -1 }, "twilio.timeout"},
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
		if strings.Contains(err.Error(), authToken) {
			t.Errorf("%s: error quotes the auth token", tc.name)
		}
		if _, err := twilio.New(cfg); err == nil {
			t.Errorf("%s: New accepted the configuration", tc.name)
		}
	}
}

func TestConfigJSONAndKind(t *testing.T) {
	var cfg twilio.Config
	err := json.Unmarshal([]byte(`{"accountSid": "`+accountSID+`", "authToken": "`+authToken+`", "from": "`+from+`",
		"messagingServiceSid": "`+serviceSID+`", "baseUrl": "https://api.twilio.com", "voice": "alice", "timeout": "4s"}`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: from, MessagingServiceSID: serviceSID,
		BaseURL: "https://api.twilio.com", Voice: "alice", Timeout: delivery.Duration(4 * time.Second)}
	if cfg != want {
		t.Fatalf("decoded %+v", cfg)
	}
	if s := newSender(t, twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: from}); s.Kind() != "twilio" {
		t.Fatalf("Kind = %q", s.Kind())
	}
}

func TestSendWithoutFrom(t *testing.T) {
	f := newFake(t)
	cfg := config(f.URL)
	cfg.From, cfg.MessagingServiceSID = "", serviceSID
	s := newSender(t, cfg)
	if err := s.Send(context.Background(), smsMessage()); err != nil {
		t.Fatalf("SMS through the messaging service: %v", err)
	}
	checkForm(t, f.received()[0].form, map[string]string{"To": recipient, "MessagingServiceSid": serviceSID, "Body": smsMessage().Body})
	err := delivery.Retrying(s, fastRetry).Send(context.Background(), voiceMessage())
	if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "no caller id" || delivery.AttemptsOf(err) != 1 {
		t.Fatalf("voice without from: err = %v (attempts %d), want misconfigured no caller id", err, delivery.AttemptsOf(err))
	}
	if n := len(f.received()); n != 1 {
		t.Fatalf("%d requests, want only the SMS", n)
	}
}

func TestConfigValidateForAPI(t *testing.T) {
	tests := []struct {
		name, baseURL, want string // want "" when valid
	}{
		{"default", "", ""},
		{"https proxy", "https://twilio-proxy.example.com/api", ""},
		{"http on loopback", "http://127.0.0.1:8080", "twilio.baseUrl: http is allowed on a loopback host only in the configuration file"},
		{"http on localhost", "http://localhost:8080", "twilio.baseUrl: http is allowed on a loopback host only in the configuration file"},
		{"https on loopback", "https://localhost:8443", "twilio.baseUrl: must not be this machine or a link-local address"},
		{"metadata", "https://169.254.169.254", "twilio.baseUrl: must not be this machine or a link-local address"},
		{"link-local v6", "https://[fe80::1]", "twilio.baseUrl: must not be this machine or a link-local address"},
		{"http elsewhere", "http://api.twilio.com", "twilio.baseUrl: must use https (http only on a loopback host)"},
	}
	for _, tc := range tests {
		cfg := config(tc.baseURL)
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
	cfg := config("http://127.0.0.1:8080")
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate (configuration file): %v", err)
	}
	cfg = config("")
	cfg.AuthToken = ""
	if err := cfg.ValidateForAPI(); err == nil || !strings.HasPrefix(err.Error(), "twilio.authToken:") {
		t.Errorf("no token: err = %v", err)
	}
}

func TestSendRestrictedRefusesThisMachine(t *testing.T) {
	f := newFake(t)
	s, err := twilio.New(config(f.URL), twilio.RestrictDestinations())
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []delivery.Message{smsMessage(), voiceMessage()} {
		err := delivery.Retrying(s, fastRetry).Send(context.Background(), msg)
		if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "destination not allowed" || delivery.AttemptsOf(err) != 1 {
			t.Errorf("%s: err = %v (attempts %d), want misconfigured destination not allowed", msg.Method, err, delivery.AttemptsOf(err))
		}
		if strings.Contains(err.Error(), accountSID) || strings.Contains(err.Error(), authToken) {
			t.Errorf("%s: error %q reveals the account", msg.Method, err)
		}
	}
	if n := len(f.received()); n != 0 {
		t.Fatalf("%d requests reached this machine", n)
	}
}

func TestConfigJSONOmitsEmptyAuthToken(t *testing.T) {
	out, err := json.Marshal(twilio.Config{AccountSID: accountSID, From: from})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "authToken") {
		t.Errorf("JSON %s shows the (redacted) auth token", out)
	}
	out, _ = json.Marshal(config(""))
	if !strings.Contains(string(out), `"authToken":"`+authToken+`"`) {
		t.Errorf("JSON %s lost the auth token", out)
	}
}

package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/delivery/smtp"
	"github.com/enrollflow/enrollflow/delivery/smtp/smtptest"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/delivery/twilio"
	"github.com/enrollflow/enrollflow/delivery/webhook"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/redis"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

const (
	envID      = "e1"
	recipient  = "+12015554321"
	passcode   = "987654"
	hookSecret = "hook-secret-0123456789abcdef"
	twilioSID  = "AC0123456789abcdef0123456789abcdef"
	twilioAuth = "twilio-auth-token-xyz"
	smtpUser   = "mailer"
	smtpPass   = "smtp-password-abc"
)

// fastRetry keeps retried sends quick.
var fastRetry = &delivery.RetryPolicy{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}

func testSealer(t testing.TB) *mfa.Sealer {
	t.Helper()
	keys, err := mfa.DeriveKeys(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := mfa.NewSealer(keys.SealConfig)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newDispatcher fills what o leaves out: a memory store and a sealer (the
// zero Log writes nothing).
func newDispatcher(t testing.TB, o dispatch.Options) *dispatch.Dispatcher {
	t.Helper()
	if o.Store == nil {
		o.Store = memory.New(nil)
	}
	if o.Sealer == nil {
		o.Sealer = testSealer(t)
	}
	d, err := dispatch.New(o)
	if err != nil {
		t.Fatalf("dispatch.New: %v", err)
	}
	return d
}

func oneEnv(env dispatch.Environment) map[string]dispatch.Environment {
	return map[string]dispatch.Environment{envID: env}
}

// smsMessage is a rendered SMS as the enrollment step would hand it over.
func smsMessage(env string) delivery.Message {
	return delivery.Message{ID: store.NewID(), EnvID: env, Method: delivery.SMS, Recipient: recipient,
		Locale: "en", Body: "Your code is " + passcode}
}

// outcomes is an Observer that keeps every outcome.
type outcomes struct {
	mu   sync.Mutex
	list []dispatch.Outcome
}

func (o *outcomes) Delivered(x dispatch.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, x)
}

func (o *outcomes) last(t *testing.T) dispatch.Outcome {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.list) == 0 {
		t.Fatal("the observer saw no outcome")
	}
	return o.list[len(o.list)-1]
}

// memOutbox stands in for the development outbox.
type memOutbox struct {
	mu   sync.Mutex
	msgs []delivery.Message
}

func (m *memOutbox) Send(_ context.Context, msg delivery.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return nil
}

func (m *memOutbox) received() []delivery.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// gateway is a webhook receiver that checks the signature with its secret
// and answers reply(n) to the n-th request (200 when reply is nil).
type gateway struct {
	srv    *httptest.Server
	secret string
	reply  func(n int) int
	delay  time.Duration // held before answering, unless the client gives up

	mu       sync.Mutex
	requests int
	accepted []map[string]any // signed requests, decoded
	headers  []http.Header    // the headers of the signed requests
	badSigs  int
}

func startGateway(t *testing.T, secret string, reply func(n int) int) *gateway {
	t.Helper()
	g := &gateway{secret: secret, reply: reply}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := webhook.Verify([]byte(g.secret), r.Header.Get(webhook.TimestampHeader), body,
		r.Header.Get(webhook.SignatureHeader), time.Now(), time.Minute)
	g.mu.Lock()
	g.requests++
	n := g.requests
	if err != nil {
		g.badSigs++
		g.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p map[string]any
	_ = json.Unmarshal(body, &p)
	g.accepted = append(g.accepted, p)
	g.headers = append(g.headers, r.Header.Clone())
	g.mu.Unlock()
	if g.delay > 0 {
		select {
		case <-time.After(g.delay):
		case <-r.Context().Done():
			return
		}
	}
	status := http.StatusOK
	if g.reply != nil {
		status = g.reply(n)
	}
	w.WriteHeader(status)
}

func (g *gateway) counts() (requests, accepted, badSigs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests, len(g.accepted), g.badSigs
}

// lastHeaders are the headers of the last signed request.
func (g *gateway) lastHeaders(t *testing.T) http.Header {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.headers) == 0 {
		t.Fatal("the gateway accepted no request")
	}
	return g.headers[len(g.headers)-1]
}

func (g *gateway) channel() dispatch.Channel {
	return dispatch.Channel{Type: dispatch.TypeWebhook, Retry: fastRetry,
		Webhook: &webhook.Config{URL: g.srv.URL, Secret: g.secret}}
}

// replies answers the given statuses in turn, then 200.
func replies(statuses ...int) func(int) int {
	return func(n int) int {
		if n <= len(statuses) {
			return statuses[n-1]
		}
		return http.StatusOK
	}
}

func validSMTP() *smtp.Config {
	return &smtp.Config{Host: "mail.example.test", Port: 587, From: "mfa@example.test"}
}

func wantEngineError(t *testing.T, err error, status int, code string) *engine.Error {
	t.Helper()
	var e *engine.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *engine.Error %d %s", err, err, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("err = %d %s (%v), want %d %s", e.Status, e.Code, e, status, code)
	}
	return e
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	const emptyVar, unsetVar, setVar = "EF_DISPATCH_TEST_EMPTY", "EF_DISPATCH_TEST_UNSET", "EF_DISPATCH_TEST_SET"
	sms := func(ch dispatch.Channel) map[delivery.Method]dispatch.Channel {
		return map[delivery.Method]dispatch.Channel{delivery.SMS: ch}
	}
	hook := &webhook.Config{URL: "https://gw.example.test/hook", Secret: hookSecret}
	tests := []struct {
		name string
		env  dispatch.Environment
		want string // the error's path and message, after "environment e1: "
	}{
		{"bad default locale", dispatch.Environment{DefaultLocale: "english!"},
			`notifications.defaultLocale: "english!" is not a language tag`},
		{"unknown type", dispatch.Environment{Channels: sms(dispatch.Channel{Type: "pigeon"})},
			"notifications.channels.SMS.type: must be smtp, webhook, twilio or outbox"},
		{"smtp cannot carry SMS", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeSMTP, SMTP: validSMTP()})},
			"notifications.channels.SMS.type: a smtp channel cannot deliver SMS"},
		{"twilio cannot carry EMAIL", dispatch.Environment{Channels: map[delivery.Method]dispatch.Channel{
			delivery.Email: {Type: dispatch.TypeTwilio, Twilio: &twilio.Config{AccountSID: twilioSID, AuthToken: twilioAuth, From: "+12015551111"}}}},
			"notifications.channels.EMAIL.type: a twilio channel cannot deliver EMAIL"},
		{"missing section", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook})},
			"notifications.channels.SMS.webhook: is required for a webhook channel"},
		{"section of another type", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeOutbox, Webhook: hook})},
			"notifications.channels.SMS.webhook: is not used by a outbox channel"},
		{"bad smtp port", dispatch.Environment{Channels: map[delivery.Method]dispatch.Channel{
			delivery.Email: {Type: dispatch.TypeSMTP, SMTP: &smtp.Config{Host: "mail.example.test", Port: 70000, From: "mfa@example.test"}}}},
			"notifications.channels.EMAIL.smtp.port: must be 1-65535"},
		{"bad retry attempts", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeOutbox, Retry: &delivery.RetryPolicy{Attempts: 11}})},
			"notifications.channels.SMS.retry.attempts: must be 1-10"},
		{"bad retry backoff", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeOutbox,
			Retry: &delivery.RetryPolicy{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}})},
			"notifications.channels.SMS.retry.maxBackoff: must not be below initialBackoff"},
		{"credentialEnv names an empty variable", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: &webhook.Config{URL: "https://gw.example.test/hook"}, CredentialEnv: emptyVar})},
			"notifications.channels.SMS.credentialEnv: environment variable " + emptyVar + " is empty"},
		{"credentialEnv names an unset variable", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: &webhook.Config{URL: "https://gw.example.test/hook"}, CredentialEnv: unsetVar})},
			"notifications.channels.SMS.credentialEnv: environment variable " + unsetVar + " is empty"},
		{"headersEnv names an empty variable", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: hook, HeadersEnv: map[string]string{"Authorization": emptyVar}})},
			"notifications.channels.SMS.headersEnv.Authorization: environment variable " + emptyVar + " is empty"},
		{"headersEnv names an unset variable", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: hook, HeadersEnv: map[string]string{"X-Api-Key": unsetVar}})},
			"notifications.channels.SMS.headersEnv.X-Api-Key: environment variable " + unsetVar + " is empty"},
		{"headersEnv names no variable", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: hook, HeadersEnv: map[string]string{"X-Api-Key": ""}})},
			"notifications.channels.SMS.headersEnv.X-Api-Key: names no environment variable"},
		{"headersEnv repeats a configured header", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook:    &webhook.Config{URL: hook.URL, Secret: hookSecret, Headers: map[string]string{"authorization": "x"}},
			HeadersEnv: map[string]string{"Authorization": setVar}})},
			"notifications.channels.SMS.headersEnv.Authorization: webhook.headers sets authorization too"},
		{"headersEnv names a header twice", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: hook, HeadersEnv: map[string]string{"X-Key": setVar, "x-key": setVar}})},
			"notifications.channels.SMS.headersEnv.x-key: the same header as headersEnv.X-Key"},
		{"headersEnv on another type", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeOutbox,
			HeadersEnv: map[string]string{"Authorization": setVar}})},
			"notifications.channels.SMS.headersEnv: is used by webhook channels only"},
		{"headersEnv sets a reserved header", dispatch.Environment{Channels: sms(dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: hook, HeadersEnv: map[string]string{"Content-Type": setVar}})},
			"notifications.channels.SMS.webhook.headers: Content-Type is set by enrollflow"},
		{"bad template content", dispatch.Environment{Templates: []templates.Content{
			{Method: delivery.SMS, Locale: "en", Body: "Code ${otp}"},
			{Method: delivery.SMS, Locale: "fr", Body: "Pas de code"}}},
			"notifications.templates.device_pairing.contents[1].content: "},
		{"template field of another method", dispatch.Environment{Templates: []templates.Content{
			{Method: delivery.SMS, Locale: "en", Body: "Code ${otp}", Subject: "Hello"}}},
			"notifications.templates.device_pairing.contents[0].subject: "},
		{"duplicate template keys", dispatch.Environment{Templates: []templates.Content{
			{Method: delivery.SMS, Locale: "en", Body: "A ${otp}"},
			{Method: "sms", Locale: "EN", Body: "B ${otp}"}}},
			"notifications.templates.device_pairing.contents[1]: duplicate content"},
	}
	t.Setenv(emptyVar, "")
	t.Setenv(setVar, "some-value")
	t.Setenv(unsetVar, "x") // restored when the test ends
	if err := os.Unsetenv(unsetVar); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := dispatch.New(dispatch.Options{Store: memory.New(nil), Sealer: testSealer(t), Envs: oneEnv(tc.env)})
			if err == nil {
				t.Fatalf("New accepted the configuration (dispatcher %v)", d)
			}
			if want := "environment " + envID + ": " + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %q\nwant it to start with %q", err, want)
			}
		})
	}
}

// credentialCase is a channel whose secret comes from an environment
// variable, and a server that accepts only that secret.
type credentialCase struct {
	name   string
	method delivery.Method
	secret string
	// start returns the channel (without its secret) and a check that the
	// server received the message authenticated with the secret.
	start func(t *testing.T) (dispatch.Channel, func(t *testing.T))
}

func TestCredentialEnvFillsTheSecret(t *testing.T) {
	cases := []credentialCase{
		{"webhook.secret", delivery.SMS, hookSecret, func(t *testing.T) (dispatch.Channel, func(*testing.T)) {
			g := startGateway(t, hookSecret, nil)
			ch := g.channel()
			ch.Webhook.Secret = ""
			return ch, func(t *testing.T) {
				if req, ok, bad := g.counts(); req != 1 || ok != 1 || bad != 0 {
					t.Fatalf("gateway: %d requests, %d signed with the secret, %d badly signed", req, ok, bad)
				}
			}
		}},
		{"twilio.authToken", delivery.SMS, twilioAuth, func(t *testing.T) (dispatch.Channel, func(*testing.T)) {
			var mu sync.Mutex
			authed := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				user, pass, ok := r.BasicAuth()
				if !ok || user != twilioSID || pass != twilioAuth {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				mu.Lock()
				authed++
				mu.Unlock()
				w.WriteHeader(http.StatusCreated)
			}))
			t.Cleanup(srv.Close)
			ch := dispatch.Channel{Type: dispatch.TypeTwilio, Twilio: &twilio.Config{AccountSID: twilioSID, From: "+12015551111", BaseURL: srv.URL}}
			return ch, func(t *testing.T) {
				mu.Lock()
				defer mu.Unlock()
				if authed != 1 {
					t.Fatalf("%d requests authenticated with the token, want 1", authed)
				}
			}
		}},
		{"smtp.password", delivery.Email, smtpPass, func(t *testing.T) (dispatch.Channel, func(*testing.T)) {
			mail := smtptest.Start(t, smtptest.Options{StartTLS: true, Username: smtpUser, Password: smtpPass})
			ch := dispatch.Channel{Type: dispatch.TypeSMTP, SMTP: &smtp.Config{Host: "127.0.0.1", Port: mail.Port,
				TLS: smtp.TLSMandatory, CAFile: mail.CAFile(t), Username: smtpUser, From: "mfa@example.test"}}
			return ch, func(t *testing.T) {
				m := mail.WaitMail(t, 1, 5*time.Second)
				if m.User != smtpUser || !m.TLS {
					t.Fatalf("mail arrived as user %q (TLS %v), want %q over TLS", m.User, m.TLS, smtpUser)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const variable = "EF_DISPATCH_TEST_SECRET"
			t.Setenv(variable, tc.secret)
			ch, check := tc.start(t)
			ch.CredentialEnv = variable
			configured := map[delivery.Method]dispatch.Channel{tc.method: ch}
			before, _ := json.Marshal(configured)
			d := newDispatcher(t, dispatch.Options{Envs: oneEnv(dispatch.Environment{Channels: configured})})
			if after, _ := json.Marshal(configured); !bytes.Equal(before, after) {
				t.Errorf("New wrote into the caller's configuration:\nbefore %s\nafter  %s", before, after)
			}

			msg := smsMessage(envID)
			msg.Method = tc.method
			if tc.method == delivery.Email {
				msg.Recipient, msg.Subject = "jane@example.test", "Your code"
			}
			if err := d.Send(t.Context(), msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			check(t)

			// The management API shows neither the secret nor where it came from.
			e, err := d.ChannelFor(t.Context(), envID, tc.method)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(e)
			if bytes.Contains(js, []byte(tc.secret)) || bytes.Contains(js, []byte(variable)) || e.Source != dispatch.SourceConfiguration {
				t.Fatalf("ChannelFor = %s", js)
			}
		})
	}
}

func TestComposePairing(t *testing.T) {
	ctx := t.Context()
	d := newDispatcher(t, dispatch.Options{Envs: oneEnv(dispatch.Environment{Templates: []templates.Content{
		{Method: delivery.SMS, Locale: "en", Body: "Configured ${otp}"},
		{Method: delivery.SMS, Locale: "en", Variant: "promo", Body: "Promo ${otp}"},
	}})})
	pairing := delivery.Pairing{EnvID: envID, Method: delivery.SMS, Recipient: recipient, OTP: passcode}
	compose := func(p delivery.Pairing) delivery.Message {
		t.Helper()
		m, err := d.ComposePairing(ctx, p)
		if err != nil {
			t.Fatalf("ComposePairing(%+v): %v", p, err)
		}
		if m.EnvID != p.EnvID || m.Method != p.Method || m.Recipient != p.Recipient {
			t.Fatalf("message addressed %s %s %s, want %s %s %s", m.EnvID, m.Method, m.Recipient, p.EnvID, p.Method, p.Recipient)
		}
		return m
	}
	wantBody := func(step string, m delivery.Message, body, locale string) {
		t.Helper()
		if m.Body != body || m.Locale != locale {
			t.Fatalf("%s: body %q locale %q, want %q %q", step, m.Body, m.Locale, body, locale)
		}
	}

	first, second := compose(pairing), compose(pairing)
	wantBody("configured", first, "Configured "+passcode, "en")
	if first.ID == "" || first.ID == second.ID {
		t.Fatalf("message ids %q and %q: want non-empty and distinct", first.ID, second.ID)
	}
	promo := pairing
	promo.Variant = "promo"
	wantBody("configured variant", compose(promo), "Promo "+passcode, "en")

	// A saved content overrides the configured one with its key, at once.
	created, err := d.SaveTemplateContent(ctx, envID, templates.Content{Method: "sms", Locale: "EN", Body: "Saved ${otp}"})
	if err != nil || created {
		t.Fatalf("SaveTemplateContent(override) = %v, %v; want created=false", created, err)
	}
	wantBody("override", compose(pairing), "Saved "+passcode, "en")
	wantBody("other key untouched", compose(promo), "Promo "+passcode, "en")
	if _, err := d.SaveTemplateContent(ctx, envID, templates.Content{Method: delivery.SMS, Locale: "en", Body: "Saved again ${otp}"}); err != nil {
		t.Fatal(err)
	}
	wantBody("override replaced", compose(pairing), "Saved again "+passcode, "en")

	// A new locale is chosen for a user in it, with its own locale.
	created, err = d.SaveTemplateContent(ctx, envID, templates.Content{Method: delivery.SMS, Locale: "es", Body: "Código ${otp}"})
	if err != nil || !created {
		t.Fatalf("SaveTemplateContent(new) = %v, %v; want created=true", created, err)
	}
	es := pairing
	es.Locale = "es-MX"
	wantBody("new locale", compose(es), "Código "+passcode, "es")

	// Deleting the override restores the configured content.
	if err := d.DeleteTemplateContent(ctx, envID, templates.Key{Method: delivery.SMS, Locale: "en"}); err != nil {
		t.Fatal(err)
	}
	wantBody("override deleted", compose(pairing), "Configured "+passcode, "en")
	err = d.DeleteTemplateContent(ctx, envID, templates.Key{Method: delivery.SMS, Locale: "en"})
	wantEngineError(t, err, http.StatusConflict, engine.CodeActionNotAllowed)
	err = d.DeleteTemplateContent(ctx, envID, templates.Key{Method: delivery.Voice, Locale: "en"})
	wantEngineError(t, err, http.StatusNotFound, engine.CodeNotFound)

	// Another environment has none of these: the built-in content goes.
	other := pairing
	other.EnvID = "e2"
	if m := compose(other); strings.HasPrefix(m.Body, "Configured") || !strings.Contains(m.Body, passcode) {
		t.Fatalf("environment without contents rendered %q", m.Body)
	}
}

// unavailableDocs fails every document read, like a Redis that is down.
type unavailableDocs struct{ *memory.Store }

var errDown = fmt.Errorf("%w: connection refused", store.ErrUnavailable)

func (unavailableDocs) ListDocuments(context.Context, string, store.Kind) ([]store.Document, error) {
	return nil, errDown
}

func (unavailableDocs) GetDocument(context.Context, string, store.Kind, string) (store.Document, error) {
	return store.Document{}, errDown
}

func TestStoreUnavailable(t *testing.T) {
	ctx := t.Context()
	obs := &outcomes{}
	d := newDispatcher(t, dispatch.Options{Store: unavailableDocs{memory.New(nil)}, Observer: obs, Outbox: &memOutbox{},
		Envs: oneEnv(dispatch.Environment{Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: {Type: dispatch.TypeOutbox}}})})
	_, err := d.ComposePairing(ctx, delivery.Pairing{EnvID: envID, Method: delivery.SMS, Recipient: recipient, OTP: passcode})
	e := wantEngineError(t, err, http.StatusServiceUnavailable, engine.CodeServiceUnavailable)
	if !errors.Is(e, store.ErrUnavailable) {
		t.Fatalf("the cause is lost: %v", e)
	}
	_, err = d.TemplateContents(ctx, envID)
	wantEngineError(t, err, http.StatusServiceUnavailable, engine.CodeServiceUnavailable)
	_, err = d.ChannelFor(ctx, envID, delivery.SMS)
	wantEngineError(t, err, http.StatusServiceUnavailable, engine.CodeServiceUnavailable)
	_, err = d.Channels(ctx, envID)
	wantEngineError(t, err, http.StatusServiceUnavailable, engine.CodeServiceUnavailable)

	// Whether a saved channel overrides the configured one is unknown: the
	// send fails, and may succeed later.
	err = d.Send(ctx, smsMessage(envID))
	if err == nil || delivery.IsPermanent(err) || delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "store unavailable" {
		t.Fatalf("Send = %v, want a transient failure, reason \"store unavailable\"", err)
	}
	if o := obs.last(t); o.Result != dispatch.ResultFailed || o.Channel != "none" || o.Attempts != 0 {
		t.Fatalf("outcome %+v", o)
	}
}

func TestSendWithoutChannel(t *testing.T) {
	obs := &outcomes{}
	d := newDispatcher(t, dispatch.Options{Observer: obs, Envs: oneEnv(dispatch.Environment{
		Channels: map[delivery.Method]dispatch.Channel{delivery.Email: {Type: dispatch.TypeOutbox}}})})
	for _, env := range []string{envID, "unknown-env"} {
		err := d.Send(t.Context(), smsMessage(env))
		if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "no channel" {
			t.Fatalf("%s: Send = %v; want a misconfiguration, reason \"no channel\"", env, err)
		}
		got := obs.last(t)
		want := dispatch.Outcome{EnvID: env, Method: delivery.SMS, Channel: "none", Result: dispatch.ResultRefused, Reason: "no channel"}
		got.Duration = 0
		if got != want {
			t.Fatalf("outcome %+v, want %+v", got, want)
		}
	}
}

func TestSendOutbox(t *testing.T) {
	obs, box := &outcomes{}, &memOutbox{}
	d := newDispatcher(t, dispatch.Options{Observer: obs, Outbox: box, Envs: oneEnv(dispatch.Environment{
		Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: {Type: dispatch.TypeOutbox}}})})
	msg := smsMessage(envID)
	if err := d.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if got := box.received(); len(got) != 1 || got[0] != msg {
		t.Fatalf("outbox received %+v, want just %+v", got, msg)
	}
	if o := obs.last(t); o.Result != dispatch.ResultSent || o.Attempts != 1 || o.Channel != dispatch.TypeOutbox || o.Reason != "" {
		t.Fatalf("outcome %+v", o)
	}

	// Without an outbox on this node the channel cannot be used.
	d = newDispatcher(t, dispatch.Options{Observer: obs, Envs: oneEnv(dispatch.Environment{
		Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: {Type: dispatch.TypeOutbox}}})})
	err := d.Send(t.Context(), msg)
	if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "channel unusable" {
		t.Fatalf("outbox channel without an outbox: %v; want a misconfiguration, reason \"channel unusable\"", err)
	}
}

func TestSendWebhookRetries(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int
		wantResult   string
		wantAttempts int
		wantReason   string
	}{
		{"transient failures then success", []int{503, 503, 200}, dispatch.ResultSent, 3, ""},
		{"success at once", []int{204}, dispatch.ResultSent, 1, ""},
		{"refused", []int{400}, dispatch.ResultRefused, 1, "http 400"},
		{"refused after a transient failure", []int{502, 404}, dispatch.ResultRefused, 2, "http 404"},
		{"transient failures outlast the retries", []int{503, 503, 503, 200}, dispatch.ResultFailed, 3, "http 503"},
		{"rate limited", []int{429, 429, 429}, dispatch.ResultFailed, 3, "http 429"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, hookSecret, replies(tc.statuses...))
			obs := &outcomes{}
			d := newDispatcher(t, dispatch.Options{Observer: obs, Envs: oneEnv(dispatch.Environment{
				Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: g.channel()}})})
			err := d.Send(t.Context(), smsMessage(envID))
			if (err == nil) != (tc.wantResult == dispatch.ResultSent) {
				t.Fatalf("Send = %v, want result %s", err, tc.wantResult)
			}
			if err != nil && (delivery.IsPermanent(err) != (tc.wantResult == dispatch.ResultRefused) || delivery.ReasonOf(err) != tc.wantReason) {
				t.Fatalf("Send = %v (permanent %v, reason %q), want %s %q", err, delivery.IsPermanent(err), delivery.ReasonOf(err), tc.wantResult, tc.wantReason)
			}
			o := obs.last(t)
			if o.Result != tc.wantResult || o.Attempts != tc.wantAttempts || o.Reason != tc.wantReason || o.Channel != dispatch.TypeWebhook {
				t.Fatalf("outcome %+v, want %s after %d attempts, reason %q", o, tc.wantResult, tc.wantAttempts, tc.wantReason)
			}
			if req, ok, bad := g.counts(); req != tc.wantAttempts || ok != req || bad != 0 {
				t.Fatalf("gateway saw %d requests (%d well signed), want %d", req, ok, tc.wantAttempts)
			}
		})
	}
}

func TestSendBudget(t *testing.T) {
	g := startGateway(t, hookSecret, nil)
	g.delay = time.Second
	ch := g.channel()
	ch.Webhook.Timeout = delivery.Duration(5 * time.Second)
	obs := &outcomes{}
	const budget = 100 * time.Millisecond
	d := newDispatcher(t, dispatch.Options{Budget: budget, Observer: obs, Envs: oneEnv(dispatch.Environment{
		Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: ch}})})
	start := time.Now()
	err := d.Send(t.Context(), smsMessage(envID))
	took := time.Since(start)
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("Send = %v, want a transient failure", err)
	}
	if took < budget || took > budget+600*time.Millisecond {
		t.Fatalf("Send took %s with a budget of %s and a server that answers after 1s", took, budget)
	}
	if o := obs.last(t); o.Result != dispatch.ResultFailed || o.Reason != "timeout" || o.Attempts != 1 {
		t.Fatalf("outcome %+v, want failed after 1 attempt, reason timeout", o)
	}
}

func TestSendFollowsSavedChannels(t *testing.T) {
	ctx := t.Context()
	a := startGateway(t, hookSecret, nil)
	b := startGateway(t, "another-secret-0123456789", nil)
	box, obs := &memOutbox{}, &outcomes{}
	// The gateways listen on 127.0.0.1.
	d := newDispatcher(t, dispatch.Options{Outbox: box, Observer: obs, AllowLocalDestinations: true, Envs: oneEnv(dispatch.Environment{
		Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: {Type: dispatch.TypeOutbox}}})})
	send := func() {
		t.Helper()
		if err := d.Send(ctx, smsMessage(envID)); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	wantCounts := func(step string, inA, inB, inBox int) {
		t.Helper()
		_, gotA, _ := a.counts()
		_, gotB, _ := b.counts()
		if gotA != inA || gotB != inB || len(box.received()) != inBox {
			t.Fatalf("%s: gateway A %d, gateway B %d, outbox %d; want %d, %d, %d", step, gotA, gotB, len(box.received()), inA, inB, inBox)
		}
	}
	send()
	wantCounts("configured outbox", 0, 0, 1)
	if _, err := d.SaveChannel(ctx, envID, delivery.SMS, a.channel()); err != nil {
		t.Fatal(err)
	}
	send()
	send()
	wantCounts("saved channel A", 2, 0, 1)
	if _, err := d.SaveChannel(ctx, envID, delivery.SMS, b.channel()); err != nil {
		t.Fatal(err)
	}
	send()
	wantCounts("channel A replaced by B", 2, 1, 1)
	// Back to the first configuration: noticed as well.
	if _, err := d.SaveChannel(ctx, envID, delivery.SMS, a.channel()); err != nil {
		t.Fatal(err)
	}
	send()
	wantCounts("back to A", 3, 1, 1)
	if err := d.DeleteChannel(ctx, envID, delivery.SMS); err != nil {
		t.Fatal(err)
	}
	send()
	wantCounts("saved channel deleted", 3, 1, 2)
	if o := obs.last(t); o.Channel != dispatch.TypeOutbox {
		t.Fatalf("outcome %+v", o)
	}
}

func TestDeliveryLogLines(t *testing.T) {
	var buf syncBuffer
	g := startGateway(t, hookSecret, func(int) int { return http.StatusServiceUnavailable })
	refusing := startGateway(t, hookSecret, func(int) int { return http.StatusBadRequest })
	// A gateway that is gone, at a URL whose path holds a token: the
	// cause of the failure is logged, the URL is not.
	const pathToken = "path-token-31415926"
	gone := startGateway(t, hookSecret, nil)
	goneChannel := gone.channel()
	goneChannel.Webhook.URL += "/hook/" + pathToken
	gone.srv.Close()
	d := newDispatcher(t, dispatch.Options{Outbox: &memOutbox{}, Log: zerolog.New(&buf), Envs: map[string]dispatch.Environment{
		envID: {Channels: map[delivery.Method]dispatch.Channel{
			delivery.Email: {Type: dispatch.TypeOutbox},
			delivery.SMS:   g.channel(),
			delivery.Voice: refusing.channel(),
		}},
		"e2": {Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: goneChannel}},
	}})
	ctx := t.Context()
	tests := []struct {
		env                  string
		method               delivery.Method
		to                   string
		level, result        string
		attempts             float64
		reason, channel      string
		wantErr, wantPermErr bool
		cause                string // in the logged error, after the reason
	}{
		{envID, delivery.Email, "jane.doe@example.test", "info", dispatch.ResultSent, 1, "", dispatch.TypeOutbox, false, false, ""},
		{envID, delivery.SMS, recipient, "warn", dispatch.ResultFailed, 3, "http 503", dispatch.TypeWebhook, true, false, ""},
		{envID, delivery.Voice, recipient, "warn", dispatch.ResultRefused, 1, "http 400", dispatch.TypeWebhook, true, true, ""},
		{"e2", delivery.SMS, recipient, "warn", dispatch.ResultFailed, 3, "connection failed", dispatch.TypeWebhook, true, false,
			"connection refused"},
		{"e2", delivery.Voice, recipient, "warn", dispatch.ResultRefused, 0, "no channel", "none", true, true,
			"environment e2 has no channel for VOICE"},
	}
	for _, tc := range tests {
		msg, err := d.ComposePairing(ctx, delivery.Pairing{EnvID: tc.env, Method: tc.method, Recipient: tc.to, OTP: passcode,
			Email: "jane.doe@example.test", MobilePhone: recipient})
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		err = d.Send(ctx, msg)
		if (err != nil) != tc.wantErr || delivery.IsPermanent(err) != tc.wantPermErr {
			t.Fatalf("%s: Send = %v", tc.method, err)
		}
		line := buf.String()
		if strings.Contains(line, passcode) || strings.Contains(line, tc.to) || strings.Contains(line, "7654321") ||
			strings.Contains(line, "jane.doe") || strings.Contains(line, pathToken) || strings.Contains(line, hookSecret) {
			t.Fatalf("%s: the log line holds the passcode, the recipient, the URL or the secret: %s", tc.method, line)
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("%s: want one JSON log line, got %q: %v", tc.method, line, err)
		}
		want := map[string]any{"level": tc.level, "env": tc.env, "method": string(tc.method), "channel": tc.channel,
			"result": tc.result, "attempts": tc.attempts, "delivery": msg.ID}
		if tc.reason != "" {
			want["reason"] = tc.reason
		}
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("%s/%s: log field %s = %v, want %v (line %s)", tc.env, tc.method, k, fields[k], v, line)
			}
		}
		if _, ok := fields["reason"]; ok && tc.reason == "" {
			t.Errorf("%s/%s: a sent delivery logged a reason: %s", tc.env, tc.method, line)
		}
		// The error is the one Send returned, its cause included.
		logged, _ := fields["error"].(string)
		switch {
		case !tc.wantErr && logged != "":
			t.Errorf("%s/%s: a sent delivery logged an error: %s", tc.env, tc.method, line)
		case tc.wantErr && (logged != err.Error() || !strings.Contains(logged, tc.reason) || !strings.Contains(logged, tc.cause)):
			t.Errorf("%s/%s: logged error %q, want %q (reason %q, cause %q)", tc.env, tc.method, logged, err, tc.reason, tc.cause)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func TestSaveChannelRefusals(t *testing.T) {
	d := newDispatcher(t, dispatch.Options{Envs: oneEnv(dispatch.Environment{})})
	tests := []struct {
		name   string
		method delivery.Method
		ch     dispatch.Channel
		target string
	}{
		{"credentialEnv", delivery.SMS, dispatch.Channel{Type: dispatch.TypeOutbox, CredentialEnv: "HOME"}, "credentialEnv"},
		{"headersEnv", delivery.SMS, dispatch.Channel{Type: dispatch.TypeWebhook, HeadersEnv: map[string]string{"Authorization": "HOME"},
			Webhook: &webhook.Config{URL: "https://gw.example.test/hook", Secret: hookSecret}}, "headersEnv"},
		{"redacted header value sent back", delivery.SMS, dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: &webhook.Config{URL: "https://gw.example.test/hook", Secret: hookSecret,
				Headers: map[string]string{"X-Tenant": "acme", "Authorization": "********"}}}, "webhook.headers.Authorization"},
		{"unknown type", delivery.SMS, dispatch.Channel{Type: "fax"}, "type"},
		{"smtp for SMS", delivery.SMS, dispatch.Channel{Type: dispatch.TypeSMTP, SMTP: validSMTP()}, "type"},
		{"missing section", delivery.Voice, dispatch.Channel{Type: dispatch.TypeTwilio}, "twilio"},
		{"bad smtp port", delivery.Email, dispatch.Channel{Type: dispatch.TypeSMTP,
			SMTP: &smtp.Config{Host: "mail.example.test", Port: -1, From: "mfa@example.test"}}, "smtp.port"},
		{"bad twilio account", delivery.SMS, dispatch.Channel{Type: dispatch.TypeTwilio,
			Twilio: &twilio.Config{AccountSID: "nope", AuthToken: twilioAuth, From: "+12015551111"}}, "twilio.accountSid"},
		{"http webhook elsewhere than loopback", delivery.SMS, dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: &webhook.Config{URL: "http://gw.example.test/hook", Secret: hookSecret}}, "webhook.url"},
		{"short webhook secret", delivery.SMS, dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: &webhook.Config{URL: "https://gw.example.test/hook", Secret: "short"}}, "webhook.secret"},
		{"bad retry", delivery.SMS, dispatch.Channel{Type: dispatch.TypeOutbox, Retry: &delivery.RetryPolicy{Attempts: 99}}, "retry.attempts"},
		// What the configuration file may do, and the API may not: reach
		// this machine or link-local addresses, name a file of the node.
		{"webhook on this machine", delivery.SMS, dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: &webhook.Config{URL: "http://127.0.0.1:8080/hook", Secret: hookSecret}}, "webhook.url"},
		{"webhook at the metadata service", delivery.SMS, dispatch.Channel{Type: dispatch.TypeWebhook,
			Webhook: &webhook.Config{URL: "https://169.254.169.254/latest", Secret: hookSecret}}, "webhook.url"},
		{"twilio on this machine", delivery.SMS, dispatch.Channel{Type: dispatch.TypeTwilio,
			Twilio: &twilio.Config{AccountSID: twilioSID, AuthToken: twilioAuth, From: "+12015551111", BaseURL: "https://localhost:8443"}}, "twilio.baseUrl"},
		{"smtp on this machine", delivery.Email, dispatch.Channel{Type: dispatch.TypeSMTP,
			SMTP: &smtp.Config{Host: "127.0.0.1", Port: 25, TLS: smtp.TLSNone, From: "mfa@example.test"}}, "smtp.host"},
		{"smtp caFile", delivery.Email, dispatch.Channel{Type: dispatch.TypeSMTP,
			SMTP: &smtp.Config{Host: "mail.example.test", Port: 587, From: "mfa@example.test", CAFile: "/etc/passwd"}}, "smtp.caFile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.SaveChannel(t.Context(), envID, tc.method, tc.ch)
			e := wantEngineError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
			if len(e.Details) != 1 || e.Details[0].Target != tc.target || e.Details[0].Code != engine.DetailInvalidValue {
				t.Fatalf("details %+v, want one INVALID_VALUE on %s", e.Details, tc.target)
			}
			if strings.Contains(e.Error(), hookSecret) || strings.Contains(e.Error(), twilioAuth) {
				t.Fatalf("the error quotes a credential: %v", e)
			}
			_, err = d.ChannelFor(t.Context(), envID, tc.method)
			wantEngineError(t, err, http.StatusNotFound, engine.CodeNotFound)
		})
	}
}

func TestChannelManagement(t *testing.T) {
	ctx := t.Context()
	mailCfg := validSMTP()
	mailCfg.Username, mailCfg.Password = smtpUser, smtpPass
	d := newDispatcher(t, dispatch.Options{Envs: oneEnv(dispatch.Environment{Channels: map[delivery.Method]dispatch.Channel{
		delivery.Email: {Type: dispatch.TypeSMTP, SMTP: mailCfg},
	}})})

	created, err := d.SaveChannel(ctx, envID, delivery.SMS, dispatch.Channel{Type: dispatch.TypeTwilio,
		Twilio: &twilio.Config{AccountSID: twilioSID, AuthToken: twilioAuth, From: "+12015551111"}})
	if err != nil || !created {
		t.Fatalf("SaveChannel(SMS) = %v, %v; want created", created, err)
	}
	created, err = d.SaveChannel(ctx, envID, delivery.Voice, dispatch.Channel{Type: dispatch.TypeWebhook,
		Webhook: &webhook.Config{URL: "https://gw.example.test/voice", Secret: hookSecret}})
	if err != nil || !created {
		t.Fatalf("SaveChannel(VOICE) = %v, %v; want created", created, err)
	}
	created, err = d.SaveChannel(ctx, envID, delivery.Voice, dispatch.Channel{Type: dispatch.TypeWebhook,
		Webhook: &webhook.Config{URL: "https://gw.example.test/voice2", Secret: hookSecret}})
	if err != nil || created {
		t.Fatalf("SaveChannel(VOICE again) = %v, %v; want replaced", created, err)
	}

	list, err := d.Channels(ctx, envID)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(list)
	for _, secret := range []string{smtpPass, twilioAuth, hookSecret} {
		if bytes.Contains(js, []byte(secret)) {
			t.Fatalf("the channel list shows a credential: %s", js)
		}
	}
	type row struct{ method, typ, source string }
	var got []row
	for _, e := range list {
		got = append(got, row{string(e.Method), e.Type, e.Source})
	}
	want := []row{{"EMAIL", dispatch.TypeSMTP, dispatch.SourceConfiguration}, {"SMS", dispatch.TypeTwilio, dispatch.SourceAPI},
		{"VOICE", dispatch.TypeWebhook, dispatch.SourceAPI}}
	if !slices.Equal(got, want) {
		t.Fatalf("channels %+v, want %+v", got, want)
	}
	// What is not secret is shown.
	if list[0].SMTP.Username != smtpUser || list[1].Twilio.AccountSID != twilioSID || list[2].Webhook.URL != "https://gw.example.test/voice2" {
		t.Fatalf("channel list lost its settings: %s", js)
	}
	// Redaction copies: the configuration keeps its password.
	if mailCfg.Password != smtpPass {
		t.Fatal("listing the channels erased the configured password")
	}

	// Overriding the configured channel is not "created"; deleting the
	// override brings the configured one back, which cannot be deleted.
	created, err = d.SaveChannel(ctx, envID, delivery.Email, dispatch.Channel{Type: dispatch.TypeOutbox})
	if err != nil || created {
		t.Fatalf("SaveChannel(EMAIL over configured) = %v, %v", created, err)
	}
	if e, err := d.ChannelFor(ctx, envID, delivery.Email); err != nil || e.Type != dispatch.TypeOutbox || e.Source != dispatch.SourceAPI {
		t.Fatalf("ChannelFor(EMAIL) = %+v, %v", e, err)
	}
	if err := d.DeleteChannel(ctx, envID, delivery.Email); err != nil {
		t.Fatal(err)
	}
	if e, err := d.ChannelFor(ctx, envID, delivery.Email); err != nil || e.Type != dispatch.TypeSMTP || e.Source != dispatch.SourceConfiguration {
		t.Fatalf("ChannelFor(EMAIL) after delete = %+v, %v", e, err)
	}
	wantEngineError(t, d.DeleteChannel(ctx, envID, delivery.Email), http.StatusConflict, engine.CodeActionNotAllowed)
	if err := d.DeleteChannel(ctx, envID, delivery.SMS); err != nil {
		t.Fatal(err)
	}
	wantEngineError(t, d.DeleteChannel(ctx, envID, delivery.SMS), http.StatusNotFound, engine.CodeNotFound)
	_, err = d.ChannelFor(ctx, envID, delivery.SMS)
	wantEngineError(t, err, http.StatusNotFound, engine.CodeNotFound)
	if list, err := d.Channels(ctx, "e2"); err != nil || len(list) != 0 {
		t.Fatalf("Channels of an environment without any = %+v, %v", list, err)
	}
}

func TestSaveTemplateContent(t *testing.T) {
	ctx := t.Context()
	configured := templates.Content{Method: delivery.SMS, Locale: "fr", Body: "Code : ${otp}"}
	d := newDispatcher(t, dispatch.Options{Envs: oneEnv(dispatch.Environment{Templates: []templates.Content{configured}})})

	tests := []struct {
		name    string
		content templates.Content
		want    map[string]string // target -> detail code
	}{
		{"no passcode and a subject on an SMS", templates.Content{Method: delivery.SMS, Locale: "en", Subject: "Hi", Body: "no code"},
			map[string]string{"content": engine.DetailRequired, "subject": engine.DetailInvalidValue}},
		{"e-mail without text, with content", templates.Content{Method: delivery.Email, Locale: "en", Subject: "Code", Body: "${otp}"},
			map[string]string{"text": engine.DetailRequired, "content": engine.DetailInvalidValue}},
		{"bad method and locale", templates.Content{Method: "PUSH", Locale: "not a locale", Body: "${otp}"},
			map[string]string{"deliveryMethod": engine.DetailInvalidValue, "locale": engine.DetailInvalidValue}},
		{"unknown variable", templates.Content{Method: delivery.SMS, Locale: "en", Body: "${user.phone} ${otp}"},
			map[string]string{"content": templates.CodeUnknownVariable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.SaveTemplateContent(ctx, envID, tc.content)
			e := wantEngineError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
			got := map[string]string{}
			for _, det := range e.Details {
				if det.Message == "" {
					t.Errorf("detail %+v has no message", det)
				}
				got[det.Target] = det.Code
			}
			if len(got) != len(tc.want) {
				t.Fatalf("details %+v, want %v", e.Details, tc.want)
			}
			for target, code := range tc.want {
				if got[target] != code {
					t.Fatalf("details %+v, want %s on %s", e.Details, code, target)
				}
			}
		})
	}
	list, err := d.TemplateContents(ctx, envID)
	if err != nil || len(list) != 1 || list[0].Content != configured || list[0].Source != dispatch.SourceConfiguration {
		t.Fatalf("refused contents changed the list: %+v, %v", list, err)
	}

	created, err := d.SaveTemplateContent(ctx, envID, templates.Content{Method: delivery.SMS, Locale: "fr", Body: "Votre code : ${otp}"})
	if err != nil || created {
		t.Fatalf("overriding a configured content: created=%v, %v; want false", created, err)
	}
	created, err = d.SaveTemplateContent(ctx, envID, templates.Content{Method: delivery.SMS, Locale: "en", Variant: "Promo", Body: "Promo ${otp}"})
	if err != nil || !created {
		t.Fatalf("a new content: created=%v, %v; want true", created, err)
	}
	created, err = d.SaveTemplateContent(ctx, envID, templates.Content{Method: delivery.SMS, Locale: "en", Variant: "PROMO", Body: "Promo 2 ${otp}"})
	if err != nil || created {
		t.Fatalf("replacing a saved content: created=%v, %v; want false", created, err)
	}
	e, err := d.TemplateContent(ctx, envID, templates.Key{Method: delivery.SMS, Locale: "en", Variant: "promo"})
	if err != nil || e.Body != "Promo 2 ${otp}" || e.Source != dispatch.SourceAPI {
		t.Fatalf("TemplateContent = %+v, %v", e, err)
	}
	e, err = d.TemplateContent(ctx, envID, templates.Key{Method: delivery.SMS, Locale: "fr"})
	if err != nil || e.Body != "Votre code : ${otp}" || e.Source != dispatch.SourceAPI {
		t.Fatalf("TemplateContent(override) = %+v, %v", e, err)
	}
	_, err = d.TemplateContent(ctx, envID, templates.Key{Method: delivery.Voice, Locale: "fr"})
	wantEngineError(t, err, http.StatusNotFound, engine.CodeNotFound)
}

// The channel document in Redis is sealed: no setting of the channel is
// readable there, and a copy moved to another environment or method cannot
// be opened, so that delivery fails for good instead of sending with
// another tenant's credentials.
func TestSavedChannelIsSealedInRedis(t *testing.T) {
	srv := redistest.Start(t)
	st, err := redis.Open(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := t.Context()

	g := startGateway(t, hookSecret, nil)
	ch := g.channel()
	const apiKey = "gateway-api-key-5551212"
	ch.Webhook.Headers = map[string]string{"X-Api-Key": apiKey}
	box, obs := &memOutbox{}, &outcomes{}
	// CacheTTL -1: the copies below are written behind the dispatcher's
	// back, as another node would, and must be read at once. The gateway
	// listens on 127.0.0.1.
	d := newDispatcher(t, dispatch.Options{Store: st, Outbox: box, Observer: obs, CacheTTL: -1, AllowLocalDestinations: true, Envs: map[string]dispatch.Environment{
		envID: {},
		"e2":  {Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: {Type: dispatch.TypeOutbox}}},
	}})
	if _, err := d.SaveChannel(ctx, envID, delivery.SMS, ch); err != nil {
		t.Fatal(err)
	}

	// Everything in Redis, read with a client of its own.
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = raw.Close() })
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("KEYS = %v, %v", keys, err)
	}
	var dump bytes.Buffer
	for _, k := range keys {
		fields, err := raw.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatalf("HGETALL %s: %v", k, err)
		}
		for f, v := range fields {
			fmt.Fprintf(&dump, "%s %s %s\n", k, f, v)
		}
	}
	for _, clear := range []string{hookSecret, apiKey, g.srv.URL, "webhook"} {
		if strings.Contains(dump.String(), clear) {
			t.Fatalf("Redis holds %q in clear:\n%s", clear, dump.String())
		}
	}

	// The dispatcher itself opens it.
	if err := d.Send(ctx, smsMessage(envID)); err != nil {
		t.Fatalf("Send through the saved channel: %v", err)
	}
	if _, ok, _ := g.counts(); ok != 1 {
		t.Fatalf("gateway accepted %d requests, want 1", ok)
	}

	doc, err := st.GetDocument(ctx, envID, store.KindChannel, string(delivery.SMS))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []struct {
		env    string
		method delivery.Method
	}{{"e2", delivery.SMS}, {envID, delivery.Voice}} {
		moved := store.Document{EnvID: target.env, Kind: store.KindChannel, ID: string(target.method), Data: doc.Data}
		if _, err := st.PutDocument(ctx, moved, false); err != nil {
			t.Fatal(err)
		}
		msg := smsMessage(target.env)
		msg.Method = target.method
		err := d.Send(ctx, msg)
		if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "channel unusable" {
			t.Fatalf("%s/%s: Send with a copied channel = %v; want a misconfiguration, reason \"channel unusable\"", target.env, target.method, err)
		}
		if o := obs.last(t); o.Result != dispatch.ResultRefused || o.Reason != "channel unusable" || o.Attempts != 0 {
			t.Fatalf("%s/%s: outcome %+v", target.env, target.method, o)
		}
	}
	if _, ok, _ := g.counts(); ok != 1 || len(box.received()) != 0 {
		t.Fatalf("a copied channel delivered: gateway %d, outbox %d", ok, len(box.received()))
	}

	// The management API cannot show it either, and says so: no retry
	// helps (not a 503). Deleting it brings the configured channel back.
	_, err = d.ChannelFor(ctx, "e2", delivery.SMS)
	if e := wantEngineError(t, err, http.StatusInternalServerError, engine.CodeUnexpected); !errors.Is(e, mfa.ErrUnseal) ||
		strings.Contains(e.Message, "unseal") {
		t.Fatalf("ChannelFor of a copied channel = %v (message %q)", e, e.Message)
	}
	_, err = d.Channels(ctx, "e2")
	wantEngineError(t, err, http.StatusInternalServerError, engine.CodeUnexpected)
	if err := d.DeleteChannel(ctx, "e2", delivery.SMS); err != nil {
		t.Fatal(err)
	}
	if e, err := d.ChannelFor(ctx, "e2", delivery.SMS); err != nil || e.Type != dispatch.TypeOutbox || e.Source != dispatch.SourceConfiguration {
		t.Fatalf("after deleting the copy: %+v, %v", e, err)
	}
	if err := d.Send(ctx, smsMessage("e2")); err != nil || len(box.received()) != 1 {
		t.Fatalf("Send through the configured channel again: %v (outbox %d)", err, len(box.received()))
	}
}

// A node reuses the saved channels and templates for CacheTTL: what another
// node saves arrives within it, what this node saves at once.
func TestSavedDocumentsAreReusedForCacheTTL(t *testing.T) {
	st := memory.New(nil)
	const ttl = 200 * time.Millisecond
	d := newDispatcher(t, dispatch.Options{Store: st, CacheTTL: ttl, Envs: map[string]dispatch.Environment{"e1": {}}})
	other := newDispatcher(t, dispatch.Options{Store: st, Envs: map[string]dispatch.Environment{"e1": {}}}) // another node
	ctx := t.Context()
	compose := func() string {
		msg, err := d.ComposePairing(ctx, delivery.Pairing{EnvID: "e1", Method: delivery.SMS, OTP: "123456"})
		if err != nil {
			t.Fatal(err)
		}
		return msg.Body
	}
	builtin := compose()
	if _, err := other.SaveTemplateContent(ctx, "e1", templates.Content{Method: delivery.SMS, Locale: "en", Body: "Other node: ${otp}"}); err != nil {
		t.Fatal(err)
	}
	saved := time.Now()
	if got := compose(); got != builtin && time.Since(saved) < ttl {
		t.Fatalf("another node's template was read again within CacheTTL: %q", got)
	}
	time.Sleep(ttl)
	if got := compose(); got != "Other node: 123456" {
		t.Fatalf("after CacheTTL: %q", got)
	}
	if _, err := d.SaveTemplateContent(ctx, "e1", templates.Content{Method: delivery.SMS, Locale: "en", Body: "This node: ${otp}"}); err != nil {
		t.Fatal(err)
	}
	if got := compose(); got != "This node: 123456" {
		t.Fatalf("this node's own change is not seen at once: %q", got)
	}
}

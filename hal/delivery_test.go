package hal_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/delivery/smtp"
	"github.com/enrollflow/enrollflow/delivery/smtp/smtptest"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/delivery/twilio"
	"github.com/enrollflow/enrollflow/delivery/webhook"
)

// Passcodes over real channels: e-mail through a real SMTP server, SMS and
// voice through the webhook gateway and the Twilio-compatible API, the
// passcode read from what the provider received and typed back through the
// HTTP API, on memory and on Redis.

const (
	smtpUser, smtpPass = "mailer", "mail-password-123"
	userEmail          = "jane@example.com"
	userPhone          = "+12015550000"
)

// providers are the three servers one test talks to.
type providers struct {
	mail   *smtptest.Server
	hook   *gateway
	twilio *twilioAPI
}

func startProviders(t *testing.T) *providers {
	return &providers{
		mail:   smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPass, StartTLS: true}),
		hook:   startGateway(t),
		twilio: startTwilio(t),
	}
}

// smtpChannel sends with STARTTLS required, trusting the test server's
// certificate through caFile, and authenticates.
func (p *providers) smtpChannel(t *testing.T) dispatch.Channel {
	return dispatch.Channel{Type: dispatch.TypeSMTP, SMTP: &smtp.Config{Host: "127.0.0.1", Port: p.mail.Port, TLS: smtp.TLSMandatory,
		CAFile: p.mail.CAFile(t), Username: smtpUser, Password: smtpPass, From: "MFA <mfa@acme.test>", ReplyTo: "help@acme.test"}}
}

func (p *providers) hookChannel() dispatch.Channel {
	return dispatch.Channel{Type: dispatch.TypeWebhook, Webhook: &webhook.Config{URL: p.hook.url(), Secret: hookSecret,
		Headers: map[string]string{"X-Tenant": "acme"}}}
}

func (p *providers) twilioChannel() dispatch.Channel {
	return dispatch.Channel{Type: dispatch.TypeTwilio, Twilio: &twilio.Config{AccountSID: twilioSID, AuthToken: twilioToken,
		From: twilioFrom, BaseURL: p.twilio.srv.URL}}
}

// fastRetry keeps the retry tests quick.
var fastRetry = &delivery.RetryPolicy{Attempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

// channelConfig is the demo environment with the given channels.
func channelConfig(channels map[delivery.Method]dispatch.Channel, contents ...templates.Content) *config.File {
	return demoConfig(func(e *config.Environment) {
		e.Notifications = config.Notifications{DefaultLocale: "en", Channels: channels}
		if len(contents) > 0 {
			e.Notifications.Templates = map[string][]templates.Content{templates.DevicePairing: contents}
		}
	})
}

var digits = regexp.MustCompile(`[0-9]`)

// spokenCode reads a passcode spoken digit by digit ("4, 9, 1, ...").
func spokenCode(t *testing.T, text string) string {
	t.Helper()
	code := strings.Join(digits.FindAllString(text, -1), "")
	if len(code) < 12 || len(code)%2 != 0 || code[:len(code)/2] != code[len(code)/2:] {
		t.Fatalf("the call does not say one passcode twice: %q", text)
	}
	return code[:len(code)/2]
}

func TestEnrollmentOverEachChannel(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		p := startProviders(t)
		cases := []struct {
			name     string
			method   delivery.Method
			channel  dispatch.Channel
			passcode func(t *testing.T) string
		}{
			{"EMAIL over SMTP", delivery.Email, p.smtpChannel(t), func(t *testing.T) string {
				m := p.mail.WaitMail(t, 1, 5*time.Second)
				parsed, err := m.Parse()
				if err != nil {
					t.Fatal(err)
				}
				if !m.TLS || m.User != smtpUser || m.From != "mfa@acme.test" || len(m.To) != 1 || m.To[0] != userEmail ||
					parsed.Header.Get("Reply-To") != "<help@acme.test>" || parsed.Header.Get("Subject") != "Your verification code" {
					t.Errorf("mail: user %q from %q to %v header %v", m.User, m.From, m.To, parsed.Header)
				}
				code := otpPattern.FindString(parsed.Text)
				if code == "" || !strings.Contains(parsed.HTML, code) {
					t.Fatalf("passcode %q not in text %q and html %q", code, parsed.Text, parsed.HTML)
				}
				return code
			}},
			{"SMS over the webhook", delivery.SMS, p.hookChannel(), func(t *testing.T) string {
				got := p.hook.received()
				if len(got) != 1 || got[0].Method != "SMS" || got[0].Recipient != userPhone || got[0].EnvironmentID != "demo" || got[0].ID == "" {
					t.Fatalf("gateway received %+v", got)
				}
				return otpPattern.FindString(got[0].Content)
			}},
			{"VOICE over the webhook", delivery.Voice, p.hookChannel(), func(t *testing.T) string {
				got := p.hook.received()
				if len(got) != 2 || got[1].Method != "VOICE" {
					t.Fatalf("gateway received %+v", got)
				}
				return spokenCode(t, got[1].Content)
			}},
			{"SMS over Twilio", delivery.SMS, p.twilioChannel(), func(t *testing.T) string {
				got := p.twilio.received()
				if len(got) != 1 || got[0].Resource != "Messages" || got[0].Form.Get("To") != userPhone || got[0].Form.Get("From") != twilioFrom {
					t.Fatalf("twilio received %+v", got)
				}
				return otpPattern.FindString(got[0].Form.Get("Body"))
			}},
			{"VOICE over Twilio", delivery.Voice, p.twilioChannel(), func(t *testing.T) string {
				got := p.twilio.received()
				if len(got) != 2 || got[1].Resource != "Calls" || got[1].Form.Get("To") != userPhone {
					t.Fatalf("twilio received %+v", got)
				}
				return spokenCode(t, strings.Join(got[1].Say, " "))
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := newNode(t, b, apptest.Options{Config: channelConfig(map[delivery.Method]dispatch.Channel{tc.method: tc.channel})})
				id := n.startFlow(demoFlow, map[string]any{"id": "user-" + strings.ToLower(string(tc.method)), "email": userEmail, "mobilePhone": userPhone})
				r := n.create(id, string(tc.method))
				mustState(t, r, "ACTIVATION_REQUIRED")
				if r.Body["error"] != nil {
					t.Fatalf("delivery failed: %s", r)
				}
				code := tc.passcode(t)
				if code == "" {
					t.Fatal("no passcode in what the provider received")
				}
				if len(n.Outbox.Messages()) != 0 {
					t.Fatal("a message went to the development outbox instead of the channel")
				}
				mustState(t, n.activate(id, code), "COMPLETED")
			})
		}
	})
}

func TestDeliveryRetriesTransientFailures(t *testing.T) {
	p := startProviders(t)
	p.hook.reply = func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	ch := p.hookChannel()
	ch.Retry = fastRetry
	n := newNode(t, &backend{t: t}, apptest.Options{Config: channelConfig(map[delivery.Method]dispatch.Channel{delivery.SMS: ch})})
	id := n.start("retry")
	r := n.create(id, "SMS")
	mustState(t, r, "ACTIVATION_REQUIRED")
	got := p.hook.received()
	if len(got) != 2 || got[0].ID != got[1].ID || got[0].Content != got[1].Content {
		t.Fatalf("want the same delivery twice (503, then 200), got %+v", got)
	}
	if r.Body["error"] != nil {
		t.Fatalf("a retried delivery left an error: %s", r)
	}
	mustState(t, n.activate(id, otpPattern.FindString(got[1].Content)), "COMPLETED")
}

func TestDeliveryRefusedShowsErrorAndResendWorks(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		p := startProviders(t)
		refuse := true
		p.hook.reply = func(int) int {
			if refuse {
				return http.StatusBadRequest
			}
			return http.StatusOK
		}
		ch := p.hookChannel()
		ch.Retry = fastRetry
		n := newNode(t, b, apptest.Options{Config: channelConfig(map[delivery.Method]dispatch.Channel{delivery.SMS: ch})})
		id := n.start("refused")
		r := n.create(id, "SMS")
		mustState(t, r, "ACTIVATION_REQUIRED")
		if len(p.hook.received()) != 1 {
			t.Fatalf("a 400 was retried: %d requests", len(p.hook.received()))
		}
		if str(r.Body, "error", "code") != "DELIVERY_FAILED" || !strings.Contains(str(r.Body, "error", "message"), "otp.resend") ||
			strings.Contains(str(r.Body, "error", "message"), userPhone) {
			t.Fatalf("want error DELIVERY_FAILED naming otp.resend and not the full number: %s", r)
		}
		mustLinks(t, r, "device.activate", "otp.resend", "device.delete")
		if poll := n.get(id); str(poll.Body, "error", "code") != "DELIVERY_FAILED" {
			t.Fatalf("the error is not kept for the next poll: %s", poll)
		}
		// The passcode never arrived, so the resend cool-down does not hold.
		refuse = false
		r = n.act(id, ctResend, "")
		mustState(t, r, "ACTIVATION_REQUIRED")
		if r.Body["error"] != nil {
			t.Fatalf("error still shown after a good resend: %s", r)
		}
		got := p.hook.received()
		mustState(t, n.activate(id, otpPattern.FindString(got[len(got)-1].Content)), "COMPLETED")
	})
}

func TestSlowDeliveryDoesNotHoldTheRequest(t *testing.T) {
	p := startProviders(t)
	p.hook.delay = 1500 * time.Millisecond
	ch := p.hookChannel()
	ch.Webhook.Timeout = delivery.Duration(300 * time.Millisecond)
	ch.Retry = &delivery.RetryPolicy{Attempts: 2, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	n := newNode(t, &backend{t: t}, apptest.Options{DeliveryWait: 200 * time.Millisecond,
		Config: channelConfig(map[delivery.Method]dispatch.Channel{delivery.SMS: ch})})
	id := n.start("slow")
	start := time.Now()
	r := n.create(id, "SMS")
	if took := time.Since(start); took > time.Second {
		t.Fatalf("device.create took %s with a 200ms delivery wait", took)
	}
	mustState(t, r, "ACTIVATION_REQUIRED")
	if r.Body["error"] != nil {
		t.Fatalf("the answer came before the delivery ended, yet shows an error: %s", r)
	}
	// Both attempts time out; the failure lands for the next poll.
	deadline := time.Now().Add(5 * time.Second)
	for {
		poll := n.get(id)
		if code := str(poll.Body, "error", "code"); code != "" {
			if code != "DELIVERY_UNAVAILABLE" {
				t.Fatalf("error %s", poll)
			}
			mustLinks(t, poll, "device.activate", "otp.resend", "device.delete")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timed-out delivery never showed: %s", poll)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := len(p.hook.received()); got != 2 {
		t.Fatalf("%d attempts, want 2", got)
	}
	if err := n.Runner.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// No channel for the method is the deployment's fault, not the address's:
// the user is told the service is unavailable, not to check the number.
func TestNoChannelIsDeliveryUnavailable(t *testing.T) {
	n := newNode(t, &backend{t: t}, apptest.Options{Config: channelConfig(map[delivery.Method]dispatch.Channel{
		delivery.Email: {Type: dispatch.TypeOutbox}})})
	id := n.start("nochannel")
	r := n.create(id, "VOICE")
	mustState(t, r, "ACTIVATION_REQUIRED")
	if str(r.Body, "error", "code") != "DELIVERY_UNAVAILABLE" || strings.Contains(str(r.Body, "error", "message"), "Check the address") {
		t.Fatalf("want DELIVERY_UNAVAILABLE, not sending the user to check the address, without a VOICE channel: %s", r)
	}
}

// A template saved through the API is used on the next passcode, in the
// user's locale, with the integrator's variables.
func TestTemplateFromTheAPIReachesTheUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		p := startProviders(t)
		n := newNode(t, b, apptest.Options{Config: channelConfig(map[delivery.Method]dispatch.Channel{
			delivery.SMS: p.hookChannel(), delivery.Email: p.smtpChannel(t)})})
		path := "/environments/demo/templates/device_pairing/contents/SMS/es"
		mustStatus(t, n.admin(http.MethodPut, path, `{"content":"Hola ${user.username}: tu código de ${brand} es ${otp}"}`), http.StatusCreated)
		mustStatus(t, n.admin(http.MethodPut, "/environments/demo/templates/device_pairing/contents/EMAIL/es",
			`{"subject":"Tu código","text":"Código: ${otp}","html":"<p>Hola ${user.username}, código <b>${otp}</b></p>"}`), http.StatusCreated)

		body := `{"flow":{"id":"` + demoFlow + `"},"inputs":{"user":{"id":"u-es","username":"<Ana>","email":"` + userEmail + `","mobilePhone":"` + userPhone +
			`"},"template":{"locale":"es-MX","variables":{"brand":"Acme"}}}}`
		r := n.admin(http.MethodPost, execPath, body)
		mustStatus(t, r, http.StatusCreated)
		id := str(r.Body, "id")
		mustState(t, n.create(id, "SMS"), "ACTIVATION_REQUIRED")
		got := p.hook.received()
		code := otpPattern.FindString(got[0].Content)
		if want := "Hola <Ana>: tu código de Acme es " + code; got[0].Content != want || got[0].Locale != "es" {
			t.Fatalf("SMS %q (%s), want %q (es)", got[0].Content, got[0].Locale, want)
		}
		mustStatus(t, n.act(id, ctDelete, ""), http.StatusOK)
		mustState(t, n.create(id, "EMAIL"), "ACTIVATION_REQUIRED")
		parsed, err := p.mail.WaitMail(t, 1, 5*time.Second).Parse()
		if err != nil {
			t.Fatal(err)
		}
		code = otpPattern.FindString(parsed.Text)
		if parsed.Header.Get("Subject") == "" || !strings.Contains(parsed.HTML, "Hola &lt;Ana&gt;, código <b>"+code+"</b>") {
			t.Fatalf("e-mail: subject %q html %q", parsed.Header.Get("Subject"), parsed.HTML)
		}
		mustState(t, n.activate(id, code), "COMPLETED")
	})
}

func TestTemplateManagementAPI(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		configured := templates.Content{Method: delivery.SMS, Locale: "fr", Body: "Code : ${otp}"}
		n := newNode(t, b, apptest.Options{Config: channelConfig(map[delivery.Method]dispatch.Channel{
			delivery.SMS: {Type: dispatch.TypeOutbox}}, configured)})
		base := "/environments/demo/templates/device_pairing/contents"

		// Refused contents change nothing and name the field.
		for _, tc := range []struct{ path, body, target, code string }{
			{base + "/SMS/en", `{"content":"no passcode here"}`, "content", "REQUIRED_VALUE"},
			{base + "/SMS/en", `{"content":"Hi ${user.phone}, ${otp}"}`, "content", "UNKNOWN_VARIABLE"},
			{base + "/SMS/en", `{"content":"` + strings.Repeat("x", 150) + ` ${otp}"}`, "content", "LIMIT_EXCEEDED"},
			{base + "/EMAIL/en", `{"subject":"` + strings.Repeat("s", 257) + `","text":"${otp}"}`, "subject", "LIMIT_EXCEEDED"},
			{base + "/EMAIL/en", `{"subject":"Code","text":"${otp}","content":"${otp}"}`, "content", "INVALID_VALUE"},
			{base + "/SMS/en", `{"content":"${otp}","colour":"red"}`, "colour", "UNKNOWN_FIELD"},
			{base + "/SMS/en", `{"locale":"de","content":"${otp}"}`, "locale", "INVALID_VALUE"},
		} {
			r := n.admin(http.MethodPut, tc.path, tc.body)
			mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{Target: tc.target, Code: tc.code})
		}
		list := n.admin(http.MethodGet, base, "")
		mustStatus(t, list, http.StatusOK)
		if num(list.Body, "count") != 1 {
			t.Fatalf("refused contents were saved: %s", list)
		}

		// Create, read, replace, list, delete; variants are case-insensitive.
		r := n.admin(http.MethodPut, base+"/sms/en-gb/Promo", `{"content":"Promo ${otp}"}`)
		mustStatus(t, r, http.StatusCreated)
		if str(r.Body, "locale") != "en-GB" || str(r.Body, "variant") != "promo" || str(r.Body, "deliveryMethod") != "SMS" ||
			str(r.Body, "_links", "self", "href") != baseURL+base+"/SMS/en-GB/promo" {
			t.Fatalf("saved content: %s", r)
		}
		mustStatus(t, n.admin(http.MethodPut, base+"/SMS/en-GB/PROMO", `{"content":"Promo two ${otp}"}`), http.StatusOK)
		r = n.admin(http.MethodGet, base+"/SMS/en-GB/promo", "")
		if str(r.Body, "content") != "Promo two ${otp}" || str(r.Body, "source") != "api" {
			t.Fatalf("read back: %s", r)
		}
		// A configured content can be overridden, not deleted.
		mustStatus(t, n.admin(http.MethodPut, base+"/SMS/fr", `{"content":"Votre code : ${otp}"}`), http.StatusOK)
		mustStatus(t, n.admin(http.MethodDelete, base+"/SMS/fr", ""), http.StatusNoContent)
		if r := n.admin(http.MethodGet, base+"/SMS/fr", ""); str(r.Body, "content") != "Code : ${otp}" || str(r.Body, "source") != "configuration" {
			t.Fatalf("deleting the override did not restore the configured content: %s", r)
		}
		mustError(t, n.admin(http.MethodDelete, base+"/SMS/fr", ""), http.StatusConflict, "ACTION_NOT_ALLOWED")
		mustStatus(t, n.admin(http.MethodDelete, base+"/SMS/en-GB/promo", ""), http.StatusNoContent)
		mustError(t, n.admin(http.MethodGet, base+"/SMS/en-GB/promo", ""), http.StatusNotFound, "NOT_FOUND")
		mustError(t, n.admin(http.MethodGet, "/environments/demo/templates/welcome/contents", ""), http.StatusNotFound, "NOT_FOUND")
		mustError(t, n.admin(http.MethodGet, base+"/PUSH/en", ""), http.StatusNotFound, "NOT_FOUND")
		// A path whose locale is no language tag is a bad request, whatever
		// the verb; an unknown method still names no resource.
		for _, verb := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			mustError(t, n.admin(verb, base+"/SMS/not_a_locale!", `{"content":"${otp}"}`), http.StatusBadRequest, "INVALID_DATA",
				detail{Target: "locale", Code: "INVALID_VALUE"})
		}
		mustError(t, n.admin(http.MethodGet, base+"/PUSH/not_a_locale!", ""), http.StatusNotFound, "NOT_FOUND")
		// Without the key, nothing.
		mustStatus(t, n.do(http.MethodGet, base, "", ""), http.StatusUnauthorized)
	})
}

func TestChannelManagementAPI(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		p := startProviders(t)
		n := newNode(t, b, apptest.Options{Config: channelConfig(map[delivery.Method]dispatch.Channel{
			delivery.SMS: {Type: dispatch.TypeOutbox}})})
		body := fmt.Sprintf(`{"type":"twilio","twilio":{"accountSid":%q,"authToken":%q,"from":%q,"baseUrl":%q}}`,
			twilioSID, twilioToken, twilioFrom, p.twilio.srv.URL)
		// Bad channels are refused with the field named.
		mustError(t, n.admin(http.MethodPut, "/environments/demo/channels/SMS", `{"type":"smtp","smtp":{"host":"mail","port":25,"from":"a@b.c"}}`),
			http.StatusBadRequest, "INVALID_DATA", detail{Target: "type", Code: "INVALID_VALUE"})
		mustError(t, n.admin(http.MethodPut, "/environments/demo/channels/SMS", `{"type":"twilio","twilio":{"accountSid":"nope","authToken":"x","from":"+12015559999"}}`),
			http.StatusBadRequest, "INVALID_DATA", detail{Target: "twilio.accountSid", Code: "INVALID_VALUE"})
		mustError(t, n.admin(http.MethodPut, "/environments/demo/channels/SMS", `{"type":"webhook","webhook":{"url":"https://gw.example","secret":"0123456789abcdef0","timeout":"10"}}`),
			http.StatusBadRequest, "INVALID_DATA", detail{Target: "webhook.timeout"})
		mustError(t, n.admin(http.MethodPut, "/environments/demo/channels/SMS", `{"type":"outbox","credentialEnv":"HOME"}`),
			http.StatusBadRequest, "INVALID_DATA", detail{Target: "credentialEnv", Code: "INVALID_VALUE"})
		mustError(t, n.admin(http.MethodPut, "/environments/demo/channels/SMS",
			`{"type":"webhook","webhook":{"url":"https://gw.example.test/hook","secret":"0123456789abcdef"},"headersEnv":{"Authorization":"HOME"}}`),
			http.StatusBadRequest, "INVALID_DATA", detail{Target: "headersEnv", Code: "INVALID_VALUE"})

		r := n.admin(http.MethodPut, "/environments/demo/channels/sms", body)
		mustStatus(t, r, http.StatusOK) // the configured outbox was there
		if strings.Contains(string(r.Raw), twilioToken) || str(r.Body, "twilio", "accountSid") != twilioSID || str(r.Body, "source") != "api" {
			t.Fatalf("saved channel shows its token or lacks its fields: %s", r)
		}
		r = n.admin(http.MethodGet, "/environments/demo/channels", "")
		if strings.Contains(string(r.Raw), twilioToken) || num(r.Body, "count") != 1 {
			t.Fatalf("channel list: %s", r)
		}
		// At rest the credential is sealed.
		doc, err := n.Store.GetDocument(t.Context(), "demo", "channels", "SMS")
		if err != nil || strings.Contains(string(doc.Data), twilioToken) || strings.Contains(string(doc.Data), twilioSID) {
			t.Fatalf("stored channel %q, %v", doc.Data, err)
		}
		// The next passcode goes through it.
		id := n.start("api-channel")
		mustState(t, n.create(id, "SMS"), "ACTIVATION_REQUIRED")
		got := p.twilio.received()
		if len(got) != 1 {
			t.Fatalf("twilio received %d requests", len(got))
		}
		mustState(t, n.activate(id, otpPattern.FindString(got[0].Form.Get("Body"))), "COMPLETED")
		// Deleting it brings back the configured channel; that one stays.
		mustStatus(t, n.admin(http.MethodDelete, "/environments/demo/channels/SMS", ""), http.StatusNoContent)
		if r := n.admin(http.MethodGet, "/environments/demo/channels/SMS", ""); str(r.Body, "type") != "outbox" || str(r.Body, "source") != "configuration" {
			t.Fatalf("after delete: %s", r)
		}
		mustError(t, n.admin(http.MethodDelete, "/environments/demo/channels/SMS", ""), http.StatusConflict, "ACTION_NOT_ALLOWED")
		mustError(t, n.admin(http.MethodGet, "/environments/demo/channels/VOICE", ""), http.StatusNotFound, "NOT_FOUND")
	})
}

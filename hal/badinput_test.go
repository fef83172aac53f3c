package hal_test

// Every kind of bad request: each gets its status, error code and detail
// targets, and leaves the execution exactly as it was.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/hal"
	"github.com/enrollflow/enrollflow/store"
)

func TestActionBadInput(t *testing.T) {
	const (
		enrolling  = "DEVICE_ENROLLMENT_REQUIRED"
		activating = "ACTIVATION_REQUIRED"
	)
	cases := []struct {
		name    string
		state   string // the execution the request goes to
		ct      string
		body    string
		status  int
		code    string
		details []detail
	}{
		// Content type.
		{"no Content-Type", enrolling, "", `{"type":"EMAIL"}`, 415, "UNSUPPORTED_MEDIA_TYPE", []detail{{"Content-Type", "INVALID_VALUE"}}},
		{"plain JSON", enrolling, "application/json", `{"type":"EMAIL"}`, 415, "UNSUPPORTED_MEDIA_TYPE", []detail{{"Content-Type", "INVALID_VALUE"}}},
		{"unknown action", enrolling, "application/vnd.pingidentity.device.frobnicate+json", `{}`, 415, "UNSUPPORTED_MEDIA_TYPE", nil},
		{"vendor type without +json", enrolling, "application/vnd.pingidentity.device.create", `{"type":"EMAIL"}`, 415, "UNSUPPORTED_MEDIA_TYPE", nil},
		{"unparsable Content-Type", enrolling, "application/vnd.pingidentity.device.create+json; =", `{"type":"EMAIL"}`, 415, "UNSUPPORTED_MEDIA_TYPE", nil},

		// JSON syntax.
		{"malformed JSON", enrolling, ctCreate, `{"type":`, 400, "INVALID_REQUEST", nil},
		{"broken JSON", enrolling, ctCreate, `{"type" "EMAIL"}`, 400, "INVALID_REQUEST", nil},
		{"not an object", enrolling, ctCreate, `["EMAIL"]`, 400, "INVALID_REQUEST", nil},
		{"empty body for device.create", enrolling, ctCreate, ``, 400, "INVALID_REQUEST", nil},
		{"trailing data", enrolling, ctCreate, `{"type":"EMAIL"} {}`, 400, "INVALID_REQUEST", nil},
		{"malformed body of a parameterless action", enrolling, ctSkip, `{`, 400, "INVALID_REQUEST", nil},

		// Fields of device.create.
		{"unknown field", enrolling, ctCreate, `{"type":"EMAIL","colour":"red"}`, 400, "INVALID_DATA", []detail{{"colour", "UNKNOWN_FIELD"}}},
		{"type is a number", enrolling, ctCreate, `{"type":5}`, 400, "INVALID_DATA", []detail{{"type", "INVALID_VALUE"}}},
		{"email is an object", enrolling, ctCreate, `{"type":"EMAIL","email":{"a":1}}`, 400, "INVALID_DATA", []detail{{"email", "INVALID_VALUE"}}},
		{"missing type", enrolling, ctCreate, `{}`, 400, "INVALID_DATA", []detail{{"type", "REQUIRED_VALUE"}}},
		{"empty type", enrolling, ctCreate, `{"type":""}`, 400, "INVALID_DATA", []detail{{"type", "REQUIRED_VALUE"}}},
		{"unknown type", enrolling, ctCreate, `{"type":"PIGEON"}`, 400, "INVALID_DATA", []detail{{"type", "INVALID_VALUE"}}},
		{"MOBILE without an application", enrolling, ctCreate, `{"type":"MOBILE"}`, 400, "INVALID_DATA", []detail{{"application.id", "REQUIRED_VALUE"}}},
		{"MOBILE with an unknown application", enrolling, ctCreate, `{"type":"MOBILE","application":{"id":"nope"}}`, 400, "INVALID_DATA", []detail{{"application.id", "POLICY_VIOLATION"}}},
		{"MOBILE with an e-mail address", enrolling, ctCreate, `{"type":"MOBILE","email":"a@example.com","application":{"id":"demo-authenticator"}}`, 400, "INVALID_DATA", []detail{{"email", "INVALID_VALUE"}}},
		{"PLATFORM for a relying party not configured", enrolling, ctCreate, `{"type":"PLATFORM","rp":{"id":"evil.example"}}`, 400, "INVALID_DATA", []detail{{"rp.id", "RP_ID_NOT_ALLOWED"}}},
		{"SECURITY_KEY with an address", enrolling, ctCreate, `{"type":"SECURITY_KEY","email":"a@example.com"}`, 400, "INVALID_DATA", []detail{{"email", "INVALID_VALUE"}}},
		{"rp for an EMAIL device", enrolling, ctCreate, `{"type":"EMAIL","rp":{"id":"localhost"}}`, 400, "INVALID_DATA", []detail{{"rp", "INVALID_VALUE"}}},
		{"SECURITY_KEY with an application", enrolling, ctCreate, `{"type":"SECURITY_KEY","application":{"id":"demo-authenticator"}}`, 400, "INVALID_DATA", []detail{{"application.id", "INVALID_VALUE"}}},
		{"bad email", enrolling, ctCreate, `{"type":"EMAIL","email":"not-an-address"}`, 400, "INVALID_DATA", []detail{{"email", "INVALID_VALUE"}}},
		{"email with a display name", enrolling, ctCreate, `{"type":"EMAIL","email":"Jane <jane@example.com>"}`, 400, "INVALID_DATA", []detail{{"email", "INVALID_VALUE"}}},
		{"phone for an EMAIL device", enrolling, ctCreate, `{"type":"EMAIL","phone":"+12015554567"}`, 400, "INVALID_DATA", []detail{{"phone", "INVALID_VALUE"}}},
		{"bad phone", enrolling, ctCreate, `{"type":"SMS","phone":"5551234"}`, 400, "INVALID_DATA", []detail{{"phone", "INVALID_VALUE"}}},
		{"bad VOICE phone", enrolling, ctCreate, `{"type":"VOICE","phone":"+1 555 123 4567"}`, 400, "INVALID_DATA", []detail{{"phone", "INVALID_VALUE"}}},
		{"email for an SMS device", enrolling, ctCreate, `{"type":"SMS","email":"a@example.com"}`, 400, "INVALID_DATA", []detail{{"email", "INVALID_VALUE"}}},
		{"address for a TOTP device", enrolling, ctCreate, `{"type":"TOTP","email":"a@example.com"}`, 400, "INVALID_DATA", []detail{{"email", "INVALID_VALUE"}}},
		{"application for an EMAIL device", enrolling, ctCreate, `{"type":"EMAIL","application":{"id":"app"}}`, 400, "INVALID_DATA", []detail{{"application.id", "INVALID_VALUE"}}},
		{"nickname too long", enrolling, ctCreate, `{"type":"EMAIL","nickname":"` + strings.Repeat("n", 101) + `"}`, 400, "INVALID_DATA", []detail{{"nickname", "INVALID_VALUE"}}},

		// Fields of device.activate.
		{"missing otp", activating, ctActivate, `{}`, 400, "INVALID_DATA", []detail{{"otp", "REQUIRED_VALUE"}}},
		{"otp is a number", activating, ctActivate, `{"otp":123456}`, 400, "INVALID_DATA", []detail{{"otp", "INVALID_VALUE"}}},
		{"non-digit otp", activating, ctActivate, `{"otp":"12ab56"}`, 400, "INVALID_DATA", []detail{{"otp", "INVALID_VALUE"}}},
		{"otp with spaces", activating, ctActivate, `{"otp":"123 456"}`, 400, "INVALID_DATA", []detail{{"otp", "INVALID_VALUE"}}},
		{"otp too long", activating, ctActivate, `{"otp":"12345678901"}`, 400, "INVALID_DATA", []detail{{"otp", "INVALID_VALUE"}}},
		{"otp too short", activating, ctActivate, `{"otp":"123"}`, 400, "INVALID_DATA", []detail{{"otp", "INVALID_VALUE"}}},
		{"attestation for an EMAIL device", activating, ctActivate, `{"otp":"123456","attestation":"x"}`, 400, "INVALID_DATA", []detail{{"attestation", "INVALID_VALUE"}}},
		{"unknown field in activate", activating, ctActivate, `{"otp":"123456","code":"1"}`, 400, "INVALID_DATA", []detail{{"code", "UNKNOWN_FIELD"}}},
		{"parameter for a parameterless action", activating, ctResend, `{"force":true}`, 400, "INVALID_DATA", []detail{{"force", "UNKNOWN_FIELD"}}},

		// Not allowed in the state.
		{"activate before create", enrolling, ctActivate, `{"otp":"123456"}`, 409, "ACTION_NOT_ALLOWED", []detail{{"action", "INVALID_VALUE"}}},
		{"create twice", activating, ctCreate, `{"type":"EMAIL"}`, 409, "ACTION_NOT_ALLOWED", []detail{{"action", "INVALID_VALUE"}}},
		{"skip while activating", activating, ctSkip, ``, 409, "ACTION_NOT_ALLOWED", []detail{{"action", "INVALID_VALUE"}}},
		{"resend too soon", activating, ctResend, ``, 429, "REQUEST_LIMITED", nil},
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		// One execution per state serves every case: failing requests
		// change nothing, which each case asserts.
		ids := map[string]string{enrolling: n.start("bad1"), activating: n.start("bad2")}
		mustStatus(t, n.create(ids[activating], "EMAIL"), http.StatusOK)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := &node{t: t, API: n.API}
				sent := len(n.Outbox.Messages())
				n.unchanged(ids[tc.state], func() {
					r := n.act(ids[tc.state], tc.ct, tc.body)
					mustError(t, r, tc.status, tc.code, tc.details...)
				})
				if len(n.Outbox.Messages()) != sent {
					t.Errorf("a refused request sent a message")
				}
			})
		}
	})
}

// TestUnsupportedMediaTypeNamesAcceptedTypes: the 415 lists every action
// content type in its message and its innerError.
func TestUnsupportedMediaTypeNamesAcceptedTypes(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("media")
		n.unchanged(id, func() {
			r := n.act(id, "text/plain", `{"type":"EMAIL"}`)
			mustError(t, r, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", detail{"Content-Type", "INVALID_VALUE"})
			accepted := list(r.Body, "details", "0", "innerError", "accepted")
			if len(accepted) != len(actions.Names()) {
				t.Errorf("innerError.accepted = %v, want all %d action types", accepted, len(actions.Names()))
			}
			for _, a := range actions.Names() {
				if !strings.Contains(str(r.Body, "message"), actions.ContentType(a)) {
					t.Errorf("415 message %q does not name %s", str(r.Body, "message"), actions.ContentType(a))
				}
			}
		})
		// Media types are case-insensitive and may carry parameters.
		r := n.act(id, "Application/VND.PingIdentity.Device.Create+JSON; charset=utf-8", `{"type":"EMAIL"}`)
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "ACTIVATION_REQUIRED")
	})
}

func TestStartBadInput(t *testing.T) {
	auth := []string{"Authorization", "Bearer " + apptest.APIKey}
	start := func(inputs string) string { return `{"flow":{"id":"` + demoFlow + `"},"inputs":` + inputs + `}` }
	cases := []struct {
		name    string
		path    string
		header  []string
		body    string
		status  int
		code    string
		details []detail
	}{
		{"no API key", execPath, nil, start(`{"user":{"id":"a"}}`), 401, "ACCESS_FAILED", nil},
		{"wrong API key", execPath, []string{"Authorization", "Bearer not-the-key-0123456789"}, start(`{"user":{"id":"a"}}`), 401, "ACCESS_FAILED", nil},
		{"key without Bearer", execPath, []string{"Authorization", apptest.APIKey}, start(`{"user":{"id":"a"}}`), 401, "ACCESS_FAILED", nil},
		{"Basic auth", execPath, []string{"Authorization", "Basic dXNlcjpwYXNz"}, start(`{"user":{"id":"a"}}`), 401, "ACCESS_FAILED", nil},
		{"empty bearer", execPath, []string{"Authorization", "Bearer "}, start(`{"user":{"id":"a"}}`), 401, "ACCESS_FAILED", nil},
		{"unknown environment", "/nowhere/flowExecutions", auth, start(`{"user":{"id":"a"}}`), 401, "ACCESS_FAILED", nil},

		{"malformed JSON", execPath, auth, `{"flow":`, 400, "INVALID_REQUEST", nil},
		{"not an object", execPath, auth, `"start"`, 400, "INVALID_REQUEST", nil},
		{"unknown field", execPath, auth, `{"flow":{"id":"` + demoFlow + `"},"inputs":{"user":{"id":"a"}},"debug":true}`, 400, "INVALID_DATA", []detail{{"debug", "UNKNOWN_FIELD"}}},
		{"inputs is an array", execPath, auth, `{"flow":{"id":"` + demoFlow + `"},"inputs":[]}`, 400, "INVALID_DATA", []detail{{"inputs", "INVALID_VALUE"}}},
		{"missing flow", execPath, auth, `{"inputs":{"user":{"id":"a"}}}`, 400, "INVALID_DATA", []detail{{"flow.id", "REQUIRED_VALUE"}}},
		{"empty flow id", execPath, auth, `{"flow":{"id":""},"inputs":{"user":{"id":"a"}}}`, 400, "INVALID_DATA", []detail{{"flow.id", "REQUIRED_VALUE"}}},
		{"unknown flow", execPath, auth, `{"flow":{"id":"nope"},"inputs":{"user":{"id":"a"}}}`, 400, "INVALID_DATA", []detail{{"flow.id", "INVALID_VALUE"}}},
		{"no inputs", execPath, auth, `{"flow":{"id":"` + demoFlow + `"}}`, 400, "INVALID_DATA", []detail{{"inputs.user.id", "REQUIRED_VALUE"}}},
		{"missing user.id", execPath, auth, start(`{"user":{"email":"a@example.com"}}`), 400, "INVALID_DATA", []detail{{"inputs.user.id", "REQUIRED_VALUE"}}},
		{"blank user.id", execPath, auth, start(`{"user":{"id":"  "}}`), 400, "INVALID_DATA", []detail{{"inputs.user.id", "REQUIRED_VALUE"}}},
		{"numeric user.id", execPath, auth, start(`{"user":{"id":42}}`), 400, "INVALID_DATA", []detail{{"inputs.user.id", "REQUIRED_VALUE"}}},
		{"user.id too long", execPath, auth, start(`{"user":{"id":"` + strings.Repeat("u", 129) + `"}}`), 400, "INVALID_DATA", []detail{{"inputs.user.id", "INVALID_VALUE"}}},
		{"bad email", execPath, auth, start(`{"user":{"id":"a","email":"nope"}}`), 400, "INVALID_DATA", []detail{{"inputs.user.email", "INVALID_VALUE"}}},
		{"email not a string", execPath, auth, start(`{"user":{"id":"a","email":true}}`), 400, "INVALID_DATA", []detail{{"inputs.user.email", "INVALID_VALUE"}}},
		{"bad phone", execPath, auth, start(`{"user":{"id":"a","mobilePhone":"555-1234"}}`), 400, "INVALID_DATA", []detail{{"inputs.user.mobilePhone", "INVALID_VALUE"}}},
		{"bad email and phone", execPath, auth, start(`{"user":{"id":"a","email":"@","mobilePhone":"+0123"}}`), 400, "INVALID_DATA",
			[]detail{{"inputs.user.email", "INVALID_VALUE"}, {"inputs.user.mobilePhone", "INVALID_VALUE"}}},
		{"unknown input field", execPath, auth, start(`{"user":{"id":"a","emial":"a@example.com"}}`), 400, "INVALID_DATA", []detail{{"inputs.user.emial", "UNKNOWN_FIELD"}}},
		{"unknown input group", execPath, auth, start(`{"user":{"id":"a"},"zzz":{"a":1}}`), 400, "INVALID_DATA", []detail{{"inputs.zzz.a", "UNKNOWN_FIELD"}}},
		{"dotted keys are read too", execPath, auth, start(`{"user.id":"a","user.email":"nope"}`), 400, "INVALID_DATA", []detail{{"inputs.user.email", "INVALID_VALUE"}}},
		{"bad webauthn compatibility", execPath, auth, start(`{"user":{"id":"a"},"webauthn":{"compatibility":"SOME"}}`), 400, "INVALID_DATA", []detail{{"inputs.webauthn.compatibility", "INVALID_VALUE"}}},
		{"bad locale", execPath, auth, start(`{"user":{"id":"a"},"template":{"locale":"not a locale"}}`), 400, "INVALID_DATA", []detail{{"inputs.template.locale", "INVALID_VALUE"}}},
		{"template variable is an object", execPath, auth, start(`{"user":{"id":"a"},"template":{"variables":{"v":{}}}}`), 400, "INVALID_DATA", []detail{{"inputs.template.variables.v", "INVALID_VALUE"}}},
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := &node{t: t, API: n.API}
				r := n.do(http.MethodPost, tc.path, "application/json", tc.body, tc.header...)
				mustError(t, r, tc.status, tc.code, tc.details...)
				if tc.status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if r.Header.Get("Location") != "" {
					t.Errorf("a refused start has a Location: %s", r.Header.Get("Location"))
				}
			})
		}
		if m := n.Outbox.Messages(); len(m) != 0 {
			t.Errorf("refused starts sent messages: %v", m)
		}
		// The same body with the key is fine: the cases failed for their reason.
		mustStatus(t, n.do(http.MethodPost, execPath, "application/json", start(`{"user":{"id":"a"}}`), auth...), http.StatusCreated)
	})
}

// TestManagementNeedsAPIKey: every management route is behind the key.
func TestManagementNeedsAPIKey(t *testing.T) {
	routes := []struct{ method, path string }{
		{"GET", "/environments/demo/flows"},
		{"POST", "/environments/demo/flows"},
		{"GET", "/environments/demo/flows/" + demoFlow},
		{"PUT", "/environments/demo/flows/" + demoFlow},
		{"DELETE", "/environments/demo/flows/" + demoFlow},
		{"GET", "/environments/demo/deviceAuthenticationPolicies"},
		{"GET", "/environments/demo/deviceAuthenticationPolicies/default"},
		{"GET", "/environments/demo/users/u/devices"},
		{"GET", "/environments/demo/users/u/devices/d"},
		{"DELETE", "/environments/demo/users/u/devices/d"},
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		for _, rt := range routes {
			for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong-key-0123456789"}, {"Authorization", "Token " + apptest.APIKey}} {
				r := n.do(rt.method, rt.path, "application/json", `{}`, hdr...)
				mustError(t, r, http.StatusUnauthorized, "ACCESS_FAILED")
				if r.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s: 401 without WWW-Authenticate", rt.method, rt.path)
				}
			}
		}
		// An unknown environment answers like a wrong key, even to the right
		// one: no hint which environments exist.
		mustError(t, n.admin(http.MethodGet, "/environments/nowhere/flows", ""), http.StatusUnauthorized, "ACCESS_FAILED")
		// Nothing was deleted by the refused calls.
		mustStatus(t, n.admin(http.MethodGet, "/environments/demo/flows/"+demoFlow, ""), http.StatusOK)
	})
}

func TestBodyTooLarge(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("big")
		huge := `{"type":"EMAIL","nickname":"` + strings.Repeat("a", hal.MaxBodyBytes) + `"}`
		n.unchanged(id, func() {
			mustError(t, n.act(id, ctCreate, huge), http.StatusRequestEntityTooLarge, "INVALID_REQUEST")
		})
		// Exactly at the cap the body is read, and refused for its content.
		prefix, suffix := `{"type":"EMAIL","nickname":"`, `"}`
		atCap := prefix + strings.Repeat("a", hal.MaxBodyBytes-len(prefix)-len(suffix)) + suffix
		n.unchanged(id, func() {
			mustError(t, n.act(id, ctCreate, atCap), http.StatusBadRequest, "INVALID_DATA", detail{"nickname", "INVALID_VALUE"})
		})
		mustError(t, n.admin(http.MethodPost, execPath, `{"flow":{"id":"`+demoFlow+`"},"inputs":{"user":{"id":"b","pad":"`+strings.Repeat("p", hal.MaxBodyBytes)+`"}}}`),
			http.StatusRequestEntityTooLarge, "INVALID_REQUEST")
		mustError(t, n.admin(http.MethodPost, "/environments/demo/flows", `{"id":"big","name":"`+strings.Repeat("p", hal.MaxBodyBytes)+`"}`),
			http.StatusRequestEntityTooLarge, "INVALID_REQUEST")
	})
}

func TestUnknownExecution(t *testing.T) {
	two := config.Demo(apptest.APIKey)
	other := two.Environments[0]
	other.ID, other.APIKey = "other", "other-api-key-0123456789"
	two.Environments = append(two.Environments, other)
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{Config: &two})
		id := n.start("known")
		unknown := []string{
			store.NewExecutionID("demo", "known"), // well-formed, never created
			"abc",
			strings.ToUpper(id), // ids are case-sensitive
			id + "0",
		}
		for _, u := range unknown {
			mustError(t, n.get(u), http.StatusNotFound, "NOT_FOUND")
			mustError(t, n.act(u, ctSkip, ""), http.StatusNotFound, "NOT_FOUND")
			mustError(t, n.do(http.MethodGet, execPath+"/"+u+"/qrcode.png", "", ""), http.StatusNotFound, "NOT_FOUND")
		}
		// An execution belongs to its environment.
		for _, p := range []string{"/other/flowExecutions/" + id, "/nowhere/flowExecutions/" + id} {
			mustError(t, n.do(http.MethodGet, p, "", ""), http.StatusNotFound, "NOT_FOUND")
			mustError(t, n.do(http.MethodPost, p, ctSkip, ""), http.StatusNotFound, "NOT_FOUND")
		}
		// Routes that do not exist at all.
		mustError(t, n.do(http.MethodGet, "/nothing/here/at/all/x", "", ""), http.StatusNotFound, "NOT_FOUND")
		mustError(t, n.do(http.MethodPost, "/healthz", "", ""), http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
		mustState(t, n.get(id), "DEVICE_ENROLLMENT_REQUIRED")
	})
}

// TestWrongOTPCountsDown: a wrong passcode is counted (the execution does
// change: fewer attempts), with innerError.remainingAttempts going down;
// the last one voids the passcode.
func TestWrongOTPCountsDown(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("wrong")
		mustStatus(t, n.create(id, "SMS"), http.StatusOK)
		right := n.passcode("+12015550000")
		bad := wrongCode(right)
		// Malformed codes are refused before they are counted.
		for _, otp := range []string{"abcdef", "12345a", "123"} {
			n.unchanged(id, func() {
				mustError(t, n.activate(id, otp), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_VALUE"})
			})
		}
		for i, want := range []struct {
			code      string
			remaining float64
		}{{"INVALID_OTP", 2}, {"INVALID_OTP", 1}, {"OTP_ATTEMPTS_EXCEEDED", 0}} {
			r := n.activate(id, bad)
			mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"otp", want.code})
			if got := num(r.Body, "details", "0", "innerError", "remainingAttempts"); got != want.remaining {
				t.Errorf("attempt %d: remainingAttempts = %v, want %v", i+1, got, want.remaining)
			}
			g := n.get(id)
			mustState(t, g, "ACTIVATION_REQUIRED")
			if got := num(g.Body, "device", "otp", "remainingAttempts"); got != want.remaining {
				t.Errorf("attempt %d: the execution shows remainingAttempts %v, want %v", i+1, got, want.remaining)
			}
		}
		// Once void, even the right passcode is refused, and nothing changes.
		n.unchanged(id, func() {
			mustError(t, n.activate(id, right), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "OTP_ATTEMPTS_EXCEEDED"})
		})
	})
}

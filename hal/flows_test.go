package hal_test

// Flow composition and the management API: flows, policies.

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/mfa"
)

// emailThenTOTP enrolls an e-mail address (no skipping), then offers an
// authenticator app that may be skipped. The second step's inputs are
// mapped: expressions from the flow inputs and an earlier step's outputs,
// and a literal phone number.
const emailThenTOTP = `{
  "id": "email-then-totp",
  "name": "E-mail, then an authenticator app",
  "trigger": {"next": "email"},
  "stepDefinitions": {
    "email": {
      "type": "MFA_DEVICE_ENROLLMENT",
      "configuration": {"useDefaultPolicy": true},
      "outlets": {"ENROLLED": {"next": "totp"}}
    },
    "totp": {
      "type": "MFA_DEVICE_ENROLLMENT",
      "configuration": {"useDefaultPolicy": true, "allowSkip": true},
      "input": {
        "user": {"id": "${flow.inputs.user.id}", "email": "${flow.inputs.user.email}"},
        "user.mobilePhone": "+12015551111",
        "template": {"locale": "de", "variables": {"firstDevice": "${steps.email.outputs.device.id}", "note": "after ${steps.email.outputs.device.type}"}}
      }
    }
  }
}`

func TestTwoStepFlow(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		r := n.admin(http.MethodPost, "/environments/demo/flows", emailThenTOTP)
		mustStatus(t, r, http.StatusCreated)
		if loc := r.Header.Get("Location"); loc != baseURL+"/environments/demo/flows/email-then-totp" {
			t.Errorf("Location = %q", loc)
		}

		id := n.startFlow("email-then-totp", map[string]any{"id": "duo", "email": "duo@example.com"})
		g := n.get(id)
		mustState(t, g, "DEVICE_ENROLLMENT_REQUIRED")
		mustLinks(t, g, actions.DeviceCreate) // the first step may not be skipped
		if str(g.Body, "step", "id") != "email" {
			t.Errorf("step = %v, want email", g.Body["step"])
		}
		n.unchanged(id, func() {
			mustError(t, n.act(id, ctSkip, ""), http.StatusConflict, "ACTION_NOT_ALLOWED")
		})

		n.enrollEmail(id, "duo@example.com")
		g = n.get(id)
		mustState(t, g, "DEVICE_ENROLLMENT_REQUIRED")
		if str(g.Body, "step", "id") != "totp" || str(g.Body, "step", "type") != "MFA_DEVICE_ENROLLMENT" {
			t.Errorf("after enrolling EMAIL the execution is at %v, want step totp", g.Body["step"])
		}
		mustLinks(t, g, actions.DeviceCreate, actions.DeviceSkipEnrollment)
		// The mapped inputs: an expression and a literal.
		if str(g.Body, "email") != "duo@example.com" || str(g.Body, "mobilePhone") != "+12015551111" {
			t.Errorf("step totp inputs: email %q, mobilePhone %q", str(g.Body, "email"), str(g.Body, "mobilePhone"))
		}
		// The EMAIL device is in the registry already, and the running
		// execution shows the ended step's result beside the current step.
		l := n.admin(http.MethodGet, "/environments/demo/users/duo/devices", "")
		emailDevice := str(l.Body, "_embedded", "devices", "0", "id")
		if num(l.Body, "count") != 1 || emailDevice == "" {
			t.Fatalf("registry after step email = %s", l.Raw)
		}
		if str(g.Body, "steps", "email", "result") != "ENROLLED" || str(g.Body, "steps", "email", "outputs", "device", "id") != emailDevice {
			t.Errorf("running execution's steps = %v, want step email ENROLLED with device %s", g.Body["steps"], emailDevice)
		}
		if _, ok := g.Body["steps"].(map[string]any)["totp"]; ok {
			t.Errorf("the running step has no result yet: steps = %v", g.Body["steps"])
		}

		r = n.act(id, ctSkip, "")
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "COMPLETED")
		mustLinks(t, r)
		want := map[string]any{
			"email": map[string]any{"type": "MFA_DEVICE_ENROLLMENT", "result": "ENROLLED",
				"outputs": map[string]any{"device": map[string]any{"id": emailDevice, "type": "EMAIL"}}},
			"totp": map[string]any{"type": "MFA_DEVICE_ENROLLMENT", "result": "SKIPPED"},
		}
		if !reflect.DeepEqual(r.Body["steps"], want) {
			t.Errorf("steps = %v\nwant %v", r.Body["steps"], want)
		}
		if l := n.admin(http.MethodGet, "/environments/demo/users/duo/devices", ""); num(l.Body, "count") != 1 {
			t.Errorf("registry = %s, want the one EMAIL device", l.Raw)
		}
	})
}

// TestTwoStepFlowBothEnrolled: the second step enrolls too, and its
// passcode uses the literal locale mapped into its input.
func TestTwoStepFlowBothEnrolled(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		german := templates.Content{Method: delivery.SMS, Locale: "de", Body: "Ihr Code lautet ${otp}."}
		n := newNode(t, b, apptest.Options{Config: demoConfig(func(e *config.Environment) {
			e.Notifications.Templates = map[string][]templates.Content{templates.DevicePairing: {german}}
		})})
		mustStatus(t, n.admin(http.MethodPost, "/environments/demo/flows", emailThenTOTP), http.StatusCreated)
		id := n.startFlow("email-then-totp", map[string]any{"id": "trio", "email": "trio@example.com"})
		n.enrollEmail(id, "trio@example.com")
		mustStatus(t, n.create(id, "SMS"), http.StatusOK)
		msg, ok := n.Outbox.Last("+12015551111")
		if !ok || msg.Locale != "de" || !strings.HasPrefix(msg.Body, "Ihr Code lautet ") {
			t.Fatalf("second step's message = %+v, want one to the mapped phone in locale de", msg)
		}
		r := n.activate(id, n.passcode("+12015551111"))
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "COMPLETED")
		if str(r.Body, "steps", "email", "result") != "ENROLLED" || str(r.Body, "steps", "totp", "result") != "ENROLLED" ||
			str(r.Body, "steps", "totp", "outputs", "device", "type") != "SMS" {
			t.Errorf("steps = %v", r.Body["steps"])
		}
		if l := n.admin(http.MethodGet, "/environments/demo/users/trio/devices", ""); num(l.Body, "count") != 2 {
			t.Errorf("registry = %s, want two devices", l.Raw)
		}
	})
}

func TestFlowValidation(t *testing.T) {
	step := func(s string) string {
		return `{"id":"bad","trigger":{"next":"s1"},"stepDefinitions":{` + s + `}}`
	}
	cases := []struct {
		name    string
		body    string
		status  int
		code    string
		details []detail
	}{
		{"unknown step type", step(`"s1":{"type":"COFFEE","configuration":{"useDefaultPolicy":true}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.type", "INVALID_VALUE"}}},
		{"bad outlet result", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"outlets":{"DONE":{"next":""}}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.outlets.DONE", "INVALID_VALUE"}}},
		{"outlet to unknown step", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"outlets":{"ENROLLED":{"next":"s9"}}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.outlets.ENROLLED.next", "INVALID_VALUE"}}},
		{"cycle", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"outlets":{"ENROLLED":{"next":"s2"}}},
			"s2":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"outlets":{"SKIPPED":{"next":"s1"}}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions", "INVALID_VALUE"}}},
		{"unknown policy", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":"nope"}}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.configuration.deviceAuthenticationPolicy.id", "INVALID_VALUE"}}},
		{"no policy and no default", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":false}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.configuration.deviceAuthenticationPolicy.id", "REQUIRED_VALUE"}}},
		{"missing useDefaultPolicy", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"allowSkip":true}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.configuration.useDefaultPolicy", "REQUIRED_VALUE"}}},
		{"no configuration", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT"}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.configuration.useDefaultPolicy", "REQUIRED_VALUE"}}},
		{"unknown configuration field", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true,"skippable":true}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.configuration.skippable", "UNKNOWN_FIELD"}}},
		{"expression to an unknown step", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"input":{"user":{"id":"${steps.s9.outputs.device.id}"}}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.input.user.id", "INVALID_VALUE"}}},
		{"bad expression", step(`"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"input":{"user":{"id":"${user.id}"}}}`), 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.input.user.id", "INVALID_VALUE"}}},
		{"trigger to unknown step", `{"id":"bad","trigger":{"next":"s2"},"stepDefinitions":{"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`, 400, "INVALID_DATA",
			[]detail{{"trigger.next", "INVALID_VALUE"}}},
		{"no steps", `{"id":"bad","trigger":{"next":"s1"},"stepDefinitions":{}}`, 400, "INVALID_DATA",
			[]detail{{"stepDefinitions", "REQUIRED_VALUE"}, {"trigger.next", "INVALID_VALUE"}}},
		{"bad id", `{"id":"-bad id","trigger":{"next":"s1"},"stepDefinitions":{"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`, 400, "INVALID_DATA",
			[]detail{{"id", "INVALID_VALUE"}}},
		{"several problems at once", `{"id":"bad","trigger":{"next":"s1"},"stepDefinitions":{
			"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{},"outlets":{"NOPE":{"next":"zz"}}},
			"s2":{"type":"COFFEE"}}}`, 400, "INVALID_DATA",
			[]detail{{"stepDefinitions.s1.configuration.useDefaultPolicy", "REQUIRED_VALUE"}, {"stepDefinitions.s1.outlets.NOPE", "INVALID_VALUE"},
				{"stepDefinitions.s1.outlets.NOPE.next", "INVALID_VALUE"}, {"stepDefinitions.s2.type", "INVALID_VALUE"}}},
		{"unknown top-level field", `{"id":"bad","steps":{}}`, 400, "INVALID_DATA", []detail{{"steps", "UNKNOWN_FIELD"}}},
		{"malformed JSON", `{"id":`, 400, "INVALID_REQUEST", nil},
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := &node{t: t, API: n.API}
				mustError(t, n.admin(http.MethodPost, "/environments/demo/flows", tc.body), tc.status, tc.code, tc.details...)
				mustError(t, n.admin(http.MethodPut, "/environments/demo/flows/bad", tc.body), tc.status, tc.code, tc.details...)
			})
		}
		if r := n.admin(http.MethodGet, "/environments/demo/flows", ""); num(r.Body, "count") != 1 {
			t.Errorf("refused flows were stored: %s", r.Raw)
		}
	})
}

func TestFlowLifecycle(t *testing.T) {
	const oneStep = `{"id":"solo","name":"%s","trigger":{"next":"s"},"stepDefinitions":{"s":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true,"allowSkip":%s}}}}`
	body := func(name, skip string) string {
		return strings.Replace(strings.Replace(oneStep, "%s", name, 1), "%s", skip, 1)
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		const flow = "/environments/demo/flows/solo"

		created := n.admin(http.MethodPost, "/environments/demo/flows", body("first", "false"))
		mustStatus(t, created, http.StatusCreated)
		if str(created.Body, "createdAt") == "" || str(created.Body, "createdAt") != str(created.Body, "updatedAt") {
			t.Errorf("created flow: createdAt %q, updatedAt %q", str(created.Body, "createdAt"), str(created.Body, "updatedAt"))
		}
		if path(str(created.Body, "_links", "self", "href")) != flow {
			t.Errorf("self = %v", created.Body["_links"])
		}
		g := n.admin(http.MethodGet, flow, "")
		mustStatus(t, g, http.StatusOK)
		if !reflect.DeepEqual(g.Body, created.Body) {
			t.Errorf("GET %s\nwant %s", g.Raw, created.Raw)
		}

		// A running execution keeps the definition it started with.
		running := n.startFlow("solo", map[string]any{"id": "solo-user"})
		mustLinks(t, n.get(running), actions.DeviceCreate)

		dup := n.admin(http.MethodPost, "/environments/demo/flows", body("second", "true"))
		mustError(t, dup, http.StatusConflict, "UNIQUENESS_VIOLATION", detail{"id", "INVALID_VALUE"})
		if g := n.admin(http.MethodGet, flow, ""); str(g.Body, "name") != "first" {
			t.Errorf("a refused POST replaced the flow: %s", g.Raw)
		}

		n.Clock.Advance(time.Minute)
		put := n.admin(http.MethodPut, flow, body("second", "true"))
		mustStatus(t, put, http.StatusOK)
		if str(put.Body, "name") != "second" || str(put.Body, "createdAt") != str(created.Body, "createdAt") ||
			str(put.Body, "updatedAt") == str(created.Body, "updatedAt") {
			t.Errorf("PUT replace: %s (created %s)", put.Raw, created.Raw)
		}
		if g := n.admin(http.MethodGet, flow, ""); !reflect.DeepEqual(g.Body, put.Body) {
			t.Errorf("GET after PUT %s\nwant %s", g.Raw, put.Raw)
		}
		mustLinks(t, n.get(running), actions.DeviceCreate)
		mustLinks(t, n.get(n.startFlow("solo", map[string]any{"id": "solo-user"})), actions.DeviceCreate, actions.DeviceSkipEnrollment)

		mustError(t, n.admin(http.MethodPut, flow, `{"id":"other","trigger":{"next":"s"},"stepDefinitions":{"s":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`),
			http.StatusBadRequest, "INVALID_DATA", detail{"id", "INVALID_VALUE"})
		// PUT without an id takes the path's, and creates.
		mustStatus(t, n.admin(http.MethodPut, "/environments/demo/flows/solo2", `{"trigger":{"next":"s"},"stepDefinitions":{"s":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`),
			http.StatusCreated)

		l := n.admin(http.MethodGet, "/environments/demo/flows", "")
		mustStatus(t, l, http.StatusOK)
		var ids []string
		for _, f := range list(l.Body, "_embedded", "flows") {
			ids = append(ids, str(f, "id"))
		}
		if !reflect.DeepEqual(ids, []string{demoFlow, "solo", "solo2"}) || num(l.Body, "count") != 3 {
			t.Errorf("flows = %v, want [%s solo solo2] in id order", ids, demoFlow)
		}

		r := n.admin(http.MethodDelete, flow, "")
		mustStatus(t, r, http.StatusNoContent)
		if len(r.Raw) != 0 {
			t.Errorf("204 with a body: %s", r.Raw)
		}
		mustError(t, n.admin(http.MethodGet, flow, ""), http.StatusNotFound, "NOT_FOUND")
		mustError(t, n.admin(http.MethodDelete, flow, ""), http.StatusNotFound, "NOT_FOUND")
		mustError(t, n.admin(http.MethodPost, execPath, startBody("solo", map[string]any{"id": "x"})),
			http.StatusBadRequest, "INVALID_DATA", detail{"flow.id", "INVALID_VALUE"})
		// The execution that was running finishes its step (it ends there).
		r = n.enrollEmail(running, "solo-user@example.com")
		mustState(t, r, "COMPLETED")
	})
}

func TestPolicies(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		l := n.admin(http.MethodGet, "/environments/demo/deviceAuthenticationPolicies", "")
		mustStatus(t, l, http.StatusOK)
		items := list(l.Body, "_embedded", "deviceAuthenticationPolicies")
		if len(items) != 1 || num(l.Body, "count") != 1 || str(items[0], "id") != "default" || at(items[0], "default") != true {
			t.Fatalf("policies = %s", l.Raw)
		}
		g := n.admin(http.MethodGet, "/environments/demo/deviceAuthenticationPolicies/default", "")
		mustStatus(t, g, http.StatusOK)
		if !reflect.DeepEqual(g.Body, items[0]) {
			t.Errorf("GET policy %s\nwant %v", g.Raw, items[0])
		}
		for p, want := range map[string]any{
			"email.enabled": true, "sms.enabled": true, "voice.enabled": true, "totp.enabled": true,
			"email.otp.otpLength": 6.0, "email.otp.lifeTime.duration": 30.0, "email.otp.lifeTime.timeUnit": "MINUTES",
			"email.otp.failure.count": 3.0, "email.otp.failure.coolDown.duration": 2.0,
			"email.otp.resendCoolDown.duration": 5.0, "sms.otp.resendCoolDown.duration": 30.0, "voice.otp.resendCoolDown.duration": 30.0,
			"totp.passcodeGracePeriod": 1.0, "totp.otp.failure.count": 3.0,
		} {
			if got := at(g.Body, strings.Split(p, ".")...); got != want {
				t.Errorf("%s = %v, want %v", p, got, want)
			}
		}
		mustError(t, n.admin(http.MethodGet, "/environments/demo/deviceAuthenticationPolicies/nope", ""), http.StatusNotFound, "NOT_FOUND")
	})
}

// TestStepWithNamedPolicy: a step may name a policy other than the default;
// its allowed types are that policy's.
func TestStepWithNamedPolicy(t *testing.T) {
	cfg := demoConfig(func(e *config.Environment) {
		totpOnly := mfa.DefaultPolicy("totp-only")
		totpOnly.Default = false
		totpOnly.Email.Enabled, totpOnly.SMS.Enabled, totpOnly.Voice.Enabled = false, false, false
		noSMS := mfa.DefaultPolicy("no-sms-pairing")
		noSMS.Default = false
		noSMS.SMS.PairingDisabled = true
		e.DeviceAuthenticationPolicies = append(e.DeviceAuthenticationPolicies, totpOnly, noSMS)
	})
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{Config: cfg})
		if l := n.admin(http.MethodGet, "/environments/demo/deviceAuthenticationPolicies", ""); num(l.Body, "count") != 3 {
			t.Errorf("policies = %s, want 3", l.Raw)
		}
		for _, tc := range []struct {
			policy  string
			allowed []any
			refused string
		}{
			{"totp-only", []any{"TOTP"}, "EMAIL"},
			{"no-sms-pairing", []any{"EMAIL", "VOICE", "TOTP"}, "SMS"},
		} {
			flow := `{"id":"` + tc.policy + `","trigger":{"next":"s"},"stepDefinitions":{"s":{"type":"MFA_DEVICE_ENROLLMENT",
				"configuration":{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":"` + tc.policy + `"}}}}}`
			mustStatus(t, n.admin(http.MethodPost, "/environments/demo/flows", flow), http.StatusCreated)
			id := n.startFlow(tc.policy, map[string]any{"id": "p", "email": "p@example.com", "mobilePhone": "+12015550000"})
			g := n.get(id)
			if got := list(g.Body, "allowedtypes"); !reflect.DeepEqual(got, tc.allowed) {
				t.Errorf("%s: allowedtypes = %v, want %v", tc.policy, got, tc.allowed)
			}
			n.unchanged(id, func() {
				mustError(t, n.create(id, tc.refused), http.StatusBadRequest, "INVALID_DATA", detail{"type", "POLICY_VIOLATION"})
			})
			mustStatus(t, n.create(id, "TOTP"), http.StatusOK)
		}
	})
}

package hal_test

// Every action and state of the enrollment step through the real router:
// start, GET, device.create (EMAIL, SMS, VOICE, TOTP), device.activate,
// otp.resend, device.delete, device.skipEnrollment, the registry the
// enrolled device lands in, and the exact _links of every state.

import (
	"bytes"
	"encoding/base32"
	"image/png"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/mfa"
)

func TestStartAndGet(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		r := n.admin(http.MethodPost, execPath, startBody(demoFlow,
			map[string]any{"id": "ann", "email": "ann@example.com", "mobilePhone": "+12015554567"}))
		mustStatus(t, r, http.StatusCreated)
		id := str(r.Body, "id")
		if len(id) != 36 {
			t.Fatalf("execution id %q: want 36 hex characters", id)
		}
		self := baseURL + execPath + "/" + id
		if loc := r.Header.Get("Location"); loc != self {
			t.Errorf("Location = %q, want %q", loc, self)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/hal+json" {
			t.Errorf("Content-Type = %q, want application/hal+json", ct)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
		if str(r.Body, "_links", "self", "href") != self {
			t.Errorf("_links.self = %v, want %s", r.Body["_links"], self)
		}
		mustState(t, r, "DEVICE_ENROLLMENT_REQUIRED")
		mustLinks(t, r, actions.DeviceCreate, actions.DeviceSkipEnrollment)
		for path, want := range map[string]any{
			"environment.id": "demo", "flow.id": demoFlow, "step.id": "enroll", "step.type": "MFA_DEVICE_ENROLLMENT",
			"email": "ann@example.com", "mobilePhone": "+12015554567",
			"mfaSettings.pairing.maxAllowedDevices": 5.0,
		} {
			if got := at(r.Body, strings.Split(path, ".")...); got != want {
				t.Errorf("%s = %v, want %v", path, got, want)
			}
		}
		if got := list(r.Body, "allowedtypes"); !reflect.DeepEqual(got, []any{"MOBILE", "EMAIL", "SMS", "VOICE", "TOTP", "PLATFORM", "SECURITY_KEY"}) {
			t.Errorf("allowedtypes = %v", got)
		}
		if got, ok := r.Body["applications"].([]any); !ok || len(got) != 1 || got[0].(map[string]any)["id"] != "demo-authenticator" {
			t.Errorf("applications = %v, want the demo authenticator", r.Body["applications"])
		}
		created, _ := time.Parse(time.RFC3339Nano, str(r.Body, "createdAt"))
		expires, _ := time.Parse(time.RFC3339Nano, str(r.Body, "expiresAt"))
		if !created.Equal(n.Clock.Now()) || expires.Sub(created) != 15*time.Minute {
			t.Errorf("createdAt %v, expiresAt %v: want now (%v) and 15 minutes later", created, expires, n.Clock.Now())
		}

		// GET shows exactly what the start returned, and needs no API key.
		g := n.get(id)
		mustStatus(t, g, http.StatusOK)
		if !reflect.DeepEqual(g.Body, r.Body) {
			t.Errorf("GET differs from the start's body:\nstart %s\nget   %s", r.Raw, g.Raw)
		}
		if len(n.Outbox.Messages()) != 0 {
			t.Errorf("starting sent messages: %v", n.Outbox.Messages())
		}
	})
}

// TestEnrollOTPDevices enrolls EMAIL, SMS and VOICE devices end to end and
// finds each in the registry, masked, from where it can be deleted.
func TestEnrollOTPDevices(t *testing.T) {
	cases := []struct {
		name, user, create   string // device.create body
		typ                  string
		recipient, masked    string // where the passcode goes; how the API shows it
		addressField, method string
	}{
		{"EMAIL from inputs", "emma", `{"type":"EMAIL"}`, "EMAIL", "emma@example.com", "e***@example.com", "email", "EMAIL"},
		{"EMAIL given in the action", "jane", `{"type":"email","email":"jane.doe@example.org","nickname":"Home"}`, "EMAIL", "jane.doe@example.org", "j*******@example.org", "email", "EMAIL"},
		{"SMS from inputs", "sid", `{"type":"SMS"}`, "SMS", "+12015550000", "+1******0000", "phone", "SMS"},
		{"SMS given in the action", "sal", `{"type":"SMS","phone":"+447400900123"}`, "SMS", "+447400900123", "+4*******0123", "phone", "SMS"},
		{"VOICE", "vic", `{"type":"VOICE"}`, "VOICE", "+12015550000", "+1******0000", "phone", "VOICE"},
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := newNode(t, b, apptest.Options{})
				user := tc.user
				id := n.start(user)

				r := n.act(id, ctCreate, tc.create)
				mustStatus(t, r, http.StatusOK)
				mustState(t, r, "ACTIVATION_REQUIRED")
				mustLinks(t, r, actions.DeviceActivate, actions.OTPResend, actions.DeviceDelete)
				dev, _ := r.Body["device"].(map[string]any)
				deviceID := str(dev, "id")
				if !hexID.MatchString(deviceID) || str(dev, "type") != tc.typ {
					t.Errorf("device = %v, want a 32-hex id and type %s", dev, tc.typ)
				}
				if str(dev, tc.addressField) != tc.masked {
					t.Errorf("device.%s = %q, want masked %q", tc.addressField, str(dev, tc.addressField), tc.masked)
				}
				if bytes.Contains(r.Raw, []byte(tc.recipient)) {
					t.Errorf("ACTIVATION_REQUIRED shows the full address %s: %s", tc.recipient, r.Raw)
				}
				if num(dev, "otp", "remainingAttempts") != 3 {
					t.Errorf("device.otp.remainingAttempts = %v, want 3", at(dev, "otp", "remainingAttempts"))
				}
				if want := n.Clock.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339Nano); str(dev, "otp", "expiresAt") != want {
					t.Errorf("device.otp.expiresAt = %v, want %s (30 minutes)", str(dev, "otp", "expiresAt"), want)
				}

				// Exactly one message, on the right channel, carrying the passcode.
				msgs := n.Outbox.Messages()
				if len(msgs) != 1 || string(msgs[0].Method) != tc.method || msgs[0].Recipient != tc.recipient || msgs[0].EnvID != "demo" {
					t.Fatalf("outbox = %+v, want one %s message to %s", msgs, tc.method, tc.recipient)
				}
				code := n.passcode(tc.recipient)
				if len(code) != 6 {
					t.Errorf("passcode %q: want 6 digits", code)
				}

				r = n.activate(id, code)
				mustStatus(t, r, http.StatusOK)
				mustState(t, r, "COMPLETED")
				mustLinks(t, r)
				if _, ok := r.Body["step"]; ok {
					t.Errorf("a COMPLETED execution still names a step: %s", r.Raw)
				}
				if str(r.Body, "steps", "enroll", "result") != "ENROLLED" ||
					str(r.Body, "steps", "enroll", "type") != "MFA_DEVICE_ENROLLMENT" ||
					str(r.Body, "steps", "enroll", "outputs", "device", "id") != deviceID ||
					str(r.Body, "steps", "enroll", "outputs", "device", "type") != tc.typ {
					t.Errorf("steps = %v, want enroll ENROLLED with device %s/%s", r.Body["steps"], deviceID, tc.typ)
				}
				g := n.get(id)
				if !reflect.DeepEqual(g.Body, r.Body) {
					t.Errorf("GET after completion differs from the activate response:\n%s\n%s", r.Raw, g.Raw)
				}

				// The registry has the device, masked and without secrets.
				devices := "/environments/demo/users/" + user + "/devices"
				l := n.admin(http.MethodGet, devices, "")
				mustStatus(t, l, http.StatusOK)
				items := list(l.Body, "_embedded", "devices")
				if len(items) != 1 || num(l.Body, "count") != 1 {
					t.Fatalf("registry = %s, want one device", l.Raw)
				}
				if str(items[0], "id") != deviceID || str(items[0], "type") != tc.typ || str(items[0], "status") != "ACTIVE" ||
					str(items[0], tc.addressField) != tc.masked || str(items[0], "user", "id") != user {
					t.Errorf("registry device = %v", items[0])
				}
				if strings.Contains(tc.create, "nickname") && str(items[0], "nickname") != "Home" {
					t.Errorf("registry nickname = %v, want Home", items[0])
				}
				if bytes.Contains(l.Raw, []byte(tc.recipient)) || bytes.Contains(l.Raw, []byte(code)) {
					t.Errorf("registry shows the full address or the passcode: %s", l.Raw)
				}
				one := n.admin(http.MethodGet, devices+"/"+deviceID, "")
				mustStatus(t, one, http.StatusOK)
				if !reflect.DeepEqual(one.Body, items[0]) {
					t.Errorf("GET device = %s, want the listed %v", one.Raw, items[0])
				}
				if path(str(one.Body, "_links", "self", "href")) != devices+"/"+deviceID {
					t.Errorf("device self link = %v", one.Body["_links"])
				}

				// ... and it can be deleted there.
				mustStatus(t, n.admin(http.MethodDelete, devices+"/"+deviceID, ""), http.StatusNoContent)
				mustError(t, n.admin(http.MethodGet, devices+"/"+deviceID, ""), http.StatusNotFound, "NOT_FOUND")
				mustError(t, n.admin(http.MethodDelete, devices+"/"+deviceID, ""), http.StatusNotFound, "NOT_FOUND")
				if l := n.admin(http.MethodGet, devices, ""); num(l.Body, "count") != 0 {
					t.Errorf("registry after delete = %s", l.Raw)
				}
			})
		}
	})
}

func TestEnrollTOTP(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("tess")
		qr := execPath + "/" + id + "/qrcode.png"
		mustError(t, n.do(http.MethodGet, qr, "", ""), http.StatusNotFound, "NOT_FOUND")

		r := n.create(id, "TOTP")
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "ACTIVATION_REQUIRED")
		mustLinks(t, r, actions.DeviceActivate, actions.DeviceDelete) // nothing to resend
		dev, _ := r.Body["device"].(map[string]any)
		secret := str(dev, "secret")
		if raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret); err != nil || len(raw) != 20 {
			t.Errorf("secret %q: want 160 bits of unpadded base32 (%v)", secret, err)
		}
		uri := str(dev, "keyUri")
		for _, part := range []string{"otpauth://totp/enrollflow:tess@example.com?", "secret=" + secret, "issuer=enrollflow", "period=30", "digits=6", "algorithm=SHA1"} {
			if !strings.Contains(uri, part) {
				t.Errorf("keyUri %q lacks %q", uri, part)
			}
		}
		if num(dev, "period") != 30 || num(dev, "digits") != 6 || str(dev, "algorithm") != "SHA1" || str(dev, "type") != "TOTP" {
			t.Errorf("device = %v", dev)
		}
		if str(dev, "qrCode", "href") != baseURL+qr || str(dev, "qrCode", "type") != "image/png" {
			t.Errorf("qrCode = %v, want %s", dev["qrCode"], baseURL+qr)
		}
		if _, ok := dev["otp"]; ok {
			t.Errorf("a TOTP device shows delivered-passcode state: %v", dev)
		}
		if len(n.Outbox.Messages()) != 0 {
			t.Errorf("TOTP sent messages: %v", n.Outbox.Messages())
		}

		// The QR code is a PNG, never cached.
		img := n.do(http.MethodGet, path(str(dev, "qrCode", "href")), "", "")
		mustStatus(t, img, http.StatusOK)
		if ct := img.Header.Get("Content-Type"); ct != "image/png" {
			t.Errorf("QR Content-Type = %q", ct)
		}
		if cc := img.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("QR Cache-Control = %q, want no-store", cc)
		}
		if !bytes.HasPrefix(img.Raw, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("QR code does not start with the PNG signature: % x", img.Raw[:min(8, len(img.Raw))])
		}
		if p, err := png.Decode(bytes.NewReader(img.Raw)); err != nil || p.Bounds().Dx() != 256 || p.Bounds().Dy() != 256 {
			t.Errorf("QR code: %v; want a 256x256 PNG", err)
		}
		mustError(t, n.do(http.MethodGet, execPath+"/"+id+"/other.png", "", ""), http.StatusNotFound, "NOT_FOUND")

		// The secret is stable across reads.
		if g := n.get(id); str(g.Body, "device", "secret") != secret {
			t.Errorf("GET shows secret %q, want %q", str(g.Body, "device", "secret"), secret)
		}

		code, err := mfa.TOTPCode(secret, n.Clock.Now())
		must(t, err)
		r = n.activate(id, code)
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "COMPLETED")
		deviceID := str(r.Body, "steps", "enroll", "outputs", "device", "id")
		if deviceID != str(dev, "id") || str(r.Body, "steps", "enroll", "outputs", "device", "type") != "TOTP" {
			t.Errorf("outputs = %v", at(r.Body, "steps", "enroll", "outputs"))
		}
		mustError(t, n.do(http.MethodGet, qr, "", ""), http.StatusNotFound, "NOT_FOUND")

		l := n.admin(http.MethodGet, "/environments/demo/users/tess/devices", "")
		mustStatus(t, l, http.StatusOK)
		if items := list(l.Body, "_embedded", "devices"); len(items) != 1 || str(items[0], "id") != deviceID || str(items[0], "type") != "TOTP" {
			t.Errorf("registry = %s", l.Raw)
		}
		for _, leak := range []string{secret, "keyUri", "sealed", "otpauth"} {
			if bytes.Contains(bytes.ToLower(l.Raw), bytes.ToLower([]byte(leak))) {
				t.Errorf("registry shows %q: %s", leak, l.Raw)
			}
		}
	})
}

// TestTOTPGraceWindow: with a grace period of one window, the codes of the
// previous and next 30-second windows are accepted, those two away are not.
func TestTOTPGraceWindow(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		for _, tc := range []struct {
			name   string
			offset time.Duration
			ok     bool
		}{
			{"previous window", -30 * time.Second, true},
			{"next window", 30 * time.Second, true},
			{"two windows back", -60 * time.Second, false},
			{"two windows ahead", 60 * time.Second, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n := newNode(t, b, apptest.Options{})
				id := n.start("grace")
				r := n.create(id, "TOTP")
				mustStatus(t, r, http.StatusOK)
				secret := str(r.Body, "device", "secret")
				now := n.Clock.Now()
				code, err := mfa.TOTPCode(secret, now.Add(tc.offset))
				must(t, err)
				// A code that also happens to be valid nearer now proves nothing.
				for d := -30 * time.Second; d <= 30*time.Second; d += 30 * time.Second {
					if c, _ := mfa.TOTPCode(secret, now.Add(d)); !tc.ok && c == code {
						t.Skip("the code collides with an accepted window")
					}
				}
				r = n.activate(id, code)
				if tc.ok {
					mustStatus(t, r, http.StatusOK)
					mustState(t, r, "COMPLETED")
				} else {
					mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_OTP"})
				}
			})
		}
	})
}

func TestResendReplacesPasscode(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("rhea")
		const to = "rhea@example.com"
		mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
		old := n.passcode(to)

		// A wrong code first, so the resend visibly restores the attempts.
		mustError(t, n.activate(id, wrongCode(old)), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_OTP"})
		if g := n.get(id); num(g.Body, "device", "otp", "remainingAttempts") != 2 {
			t.Fatalf("remainingAttempts after a wrong code = %v, want 2", at(g.Body, "device", "otp"))
		}

		fresh := old
		for fresh == old { // a new random passcode may, rarely, repeat the old one
			n.Clock.Advance(5 * time.Second)
			r := n.act(id, ctResend, "")
			mustStatus(t, r, http.StatusOK)
			mustState(t, r, "ACTIVATION_REQUIRED")
			mustLinks(t, r, actions.DeviceActivate, actions.OTPResend, actions.DeviceDelete)
			if num(r.Body, "device", "otp", "remainingAttempts") != 3 {
				t.Errorf("remainingAttempts after resend = %v, want 3", at(r.Body, "device", "otp"))
			}
			if want := n.Clock.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339Nano); str(r.Body, "device", "otp", "expiresAt") != want {
				t.Errorf("otp.expiresAt after resend = %s, want %s", str(r.Body, "device", "otp", "expiresAt"), want)
			}
			fresh = n.passcode(to)
		}
		if n.sentTo(to) < 2 {
			t.Fatalf("resend sent nothing new: %d messages", n.sentTo(to))
		}
		mustError(t, n.activate(id, old), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_OTP"})
		r := n.activate(id, fresh)
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "COMPLETED")
	})
}

func TestDeleteReturnsToEnrollmentRequired(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("dora")
		r := n.create(id, "EMAIL")
		mustStatus(t, r, http.StatusOK)
		dropped := str(r.Body, "device", "id")
		code := n.passcode("dora@example.com")

		r = n.act(id, ctDelete, "{}")
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "DEVICE_ENROLLMENT_REQUIRED")
		mustLinks(t, r, actions.DeviceCreate, actions.DeviceSkipEnrollment)
		if _, ok := r.Body["device"]; ok {
			t.Errorf("the deleted device is still shown: %s", r.Raw)
		}
		if str(r.Body, "email") != "dora@example.com" {
			t.Errorf("DEVICE_ENROLLMENT_REQUIRED lost its inputs: %s", r.Raw)
		}

		// The deleted device's passcode is worthless now.
		mustError(t, n.activate(id, code), http.StatusConflict, "ACTION_NOT_ALLOWED")

		// Another device can be enrolled instead; only it lands in the registry.
		mustStatus(t, n.create(id, "SMS"), http.StatusOK)
		r = n.activate(id, n.passcode("+12015550000"))
		mustStatus(t, r, http.StatusOK)
		l := n.admin(http.MethodGet, "/environments/demo/users/dora/devices", "")
		items := list(l.Body, "_embedded", "devices")
		if len(items) != 1 || str(items[0], "type") != "SMS" || str(items[0], "id") == dropped {
			t.Errorf("registry = %s, want only the SMS device", l.Raw)
		}
	})
}

func TestSkipEnrollment(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		for _, body := range []string{"", "{}", " { } "} {
			n := newNode(t, b, apptest.Options{})
			id := n.start("skip")
			r := n.act(id, ctSkip, body)
			mustStatus(t, r, http.StatusOK)
			mustState(t, r, "COMPLETED")
			mustLinks(t, r)
			res, _ := at(r.Body, "steps", "enroll").(map[string]any)
			if str(res, "result") != "SKIPPED" || str(res, "type") != "MFA_DEVICE_ENROLLMENT" {
				t.Errorf("steps.enroll = %v, want SKIPPED", res)
			}
			if _, ok := res["outputs"]; ok {
				t.Errorf("SKIPPED has outputs: %v", res)
			}
			if l := n.admin(http.MethodGet, "/environments/demo/users/skip/devices", ""); num(l.Body, "count") != 0 {
				t.Errorf("skipping enrolled a device: %s", l.Raw)
			}
		}
	})
}

// TestLinksMatchAllowedActions: in every state, _links lists exactly the
// actions the state machine allows, and every action not listed is refused
// with 409 ACTION_NOT_ALLOWED naming the status and the allowed actions,
// leaving the execution unchanged.
func TestLinksMatchAllowedActions(t *testing.T) {
	const noSkipFlow = `{"id":"no-skip","trigger":{"next":"enroll"},"stepDefinitions":{"enroll":
		{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true,"allowSkip":false}}}}`
	otpLinks := []string{actions.DeviceActivate, actions.OTPResend, actions.DeviceDelete}
	states := []struct {
		name   string
		flow   string
		setup  func(n *node, id string)
		status string
		links  []string
	}{
		{"enrollment required, skip allowed", demoFlow, func(*node, string) {}, "DEVICE_ENROLLMENT_REQUIRED",
			[]string{actions.DeviceCreate, actions.DeviceSkipEnrollment}},
		{"enrollment required, skip not allowed", "no-skip", func(*node, string) {}, "DEVICE_ENROLLMENT_REQUIRED",
			[]string{actions.DeviceCreate}},
		{"activation EMAIL", demoFlow, func(n *node, id string) { mustStatus(n.t, n.create(id, "EMAIL"), 200) }, "ACTIVATION_REQUIRED", otpLinks},
		{"activation SMS", demoFlow, func(n *node, id string) { mustStatus(n.t, n.create(id, "SMS"), 200) }, "ACTIVATION_REQUIRED", otpLinks},
		{"activation VOICE", demoFlow, func(n *node, id string) { mustStatus(n.t, n.create(id, "VOICE"), 200) }, "ACTIVATION_REQUIRED", otpLinks},
		{"activation TOTP", demoFlow, func(n *node, id string) { mustStatus(n.t, n.create(id, "TOTP"), 200) }, "ACTIVATION_REQUIRED",
			[]string{actions.DeviceActivate, actions.DeviceDelete}},
		{"activation EMAIL, skip not allowed", "no-skip", func(n *node, id string) { mustStatus(n.t, n.create(id, "EMAIL"), 200) }, "ACTIVATION_REQUIRED", otpLinks},
		{"completed enrolled", demoFlow, func(n *node, id string) { n.enrollEmail(id, "done@example.com") }, "COMPLETED", nil},
		{"completed skipped", demoFlow, func(n *node, id string) { mustStatus(n.t, n.act(id, ctSkip, ""), 200) }, "COMPLETED", nil},
	}
	bodies := map[string]string{
		actions.DeviceCreate: `{"type":"EMAIL"}`, actions.DeviceActivate: `{"otp":"123456"}`,
		actions.OTPResend: "", actions.DeviceDelete: "", actions.DeviceSkipEnrollment: "",
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		mustStatus(t, n.admin(http.MethodPost, "/environments/demo/flows", noSkipFlow), http.StatusCreated)
		for _, st := range states {
			t.Run(st.name, func(t *testing.T) {
				n := &node{t: t, API: n.API}
				id := n.startFlow(st.flow, map[string]any{"id": "links", "email": "links@example.com", "mobilePhone": "+12015550000"})
				st.setup(n, id)
				r := n.get(id)
				mustState(t, r, st.status)
				mustLinks(t, r, st.links...)
				for _, a := range actions.Names() {
					if slices.Contains(st.links, a) {
						continue
					}
					n.unchanged(id, func() {
						e := n.act(id, actions.ContentType(a), bodies[a])
						mustError(t, e, http.StatusConflict, "ACTION_NOT_ALLOWED")
						msg := str(e.Body, "message")
						if !strings.Contains(msg, st.status) || (st.status != "COMPLETED" && !strings.Contains(msg, a)) {
							t.Errorf("%s: message %q does not name the action and status %s", a, msg, st.status)
						}
						if st.status == "COMPLETED" {
							return
						}
						if !strings.Contains(msg, strings.Join(st.links, ", ")) {
							t.Errorf("%s: message %q does not name the allowed actions %v", a, msg, st.links)
						}
						allowed := list(e.Body, "details", "0", "innerError", "allowedActions")
						if len(allowed) != len(st.links) {
							t.Errorf("%s: innerError.allowedActions = %v, want %v", a, allowed, st.links)
						}
						if str(e.Body, "details", "0", "innerError", "status") != st.status {
							t.Errorf("%s: innerError.status = %v", a, at(e.Body, "details", "0", "innerError"))
						}
					})
				}
			})
		}
	})
}

package hal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/factor/mobile"
	"github.com/enrollflow/enrollflow/factor/mobile/phone"
	"github.com/enrollflow/enrollflow/mfa"
)

const demoApp = config.DemoApplicationID

// createMobile posts device.create of a MOBILE device for application.
func (n *node) createMobile(id, application string) *resp {
	n.t.Helper()
	return n.act(id, ctCreate, `{"type":"MOBILE","nickname":"Work phone","application":{"id":"`+application+`"}}`)
}

// pairingCode is the key a PAIRING_REQUIRED state shows.
func pairingCode(t *testing.T, r *resp) string {
	t.Helper()
	mustState(t, r, "PAIRING_REQUIRED")
	code := str(r.Body, "pairingKey", "code")
	if code == "" {
		t.Fatalf("no pairingKey.code in %s", r)
	}
	return code
}

// newPhone is a fresh app key pair.
func newPhone(t *testing.T) *phone.Keys {
	t.Helper()
	k, err := phone.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	k.EnvID = "demo"
	return k
}

// pairBody is the app's pairing request.
func pairBody(code, application string, k *phone.Keys, dev map[string]any) string {
	if dev == nil {
		dev = map[string]any{"name": "Pixel", "model": "Pixel 9", "os": "Android", "osVersion": "16", "appVersion": "1.0"}
	}
	b, _ := json.Marshal(map[string]any{"pairingKey": code, "application": map[string]any{"id": application},
		"device": dev, "publicKey": k.PublicJWK()})
	return string(b)
}

// pair posts a pairing from the phone k, recording in k what a success
// answered; header pairs go on the request.
func (n *node) pair(code, application string, k *phone.Keys, header ...string) *resp {
	n.t.Helper()
	r := n.do(http.MethodPost, "/demo/mobile/pairings", "application/json", pairBody(code, application, k, nil), header...)
	if r.Status == http.StatusCreated {
		k.DeviceID, k.UserID, k.Seed = str(r.Body, "device", "id"), str(r.Body, "user", "id"), str(r.Body, "otp", "secret")
	}
	return r
}

// TestMobileEnrollment: the whole MOBILE enrollment through the HTTP API:
// create, the pairing key and its QR code, a long poll that the pairing
// ends, the device in the registry with its key, its offline passcodes,
// and the signed push-token update.
func TestMobileEnrollment(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("mia")
		r := n.createMobile(id, demoApp)
		code := pairingCode(t, r)
		mustLinks(t, r, "device.delete", "device.skipEnrollment")
		if len(code) != 12 || strings.Trim(code, "0123456789") != "" {
			t.Errorf("pairing key %q is not 12 digits", code)
		}
		if got := str(r.Body, "device", "application", "id"); got != demoApp {
			t.Errorf("device.application.id = %q", got)
		}
		server, env, uriCode, err := mobile.ParsePairingURI(str(r.Body, "pairingKey", "uri"))
		if err != nil || server != baseURL || env != "demo" || uriCode != code {
			t.Errorf("pairing URI = %q (%q %q %q, %v)", str(r.Body, "pairingKey", "uri"), server, env, uriCode, err)
		}
		if exp, _ := time.Parse(time.RFC3339, str(r.Body, "pairingKey", "expiresAt")); !exp.Equal(n.Clock.Now().Add(10*time.Minute).Truncate(time.Second)) && exp.Sub(n.Clock.Now()) != 10*time.Minute {
			t.Errorf("pairingKey.expiresAt = %s, want 10 minutes from now", str(r.Body, "pairingKey", "expiresAt"))
		}
		qr := n.do(http.MethodGet, path(str(r.Body, "pairingKey", "qrCode", "href")), "", "")
		mustStatus(t, qr, http.StatusOK)
		if _, err := png.Decode(bytes.NewReader(qr.Raw)); err != nil {
			t.Errorf("QR code is not a PNG: %v", err)
		}

		// The client long-polls; the phone pairs meanwhile.
		polled := make(chan *resp, 1)
		etag := r.Header.Get("ETag")
		go func() {
			polled <- newResp(t, n.Do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=10", "If-None-Match", etag))
		}()
		time.Sleep(50 * time.Millisecond) // let the poll wait
		k := newPhone(t)
		paired := n.pair(code, demoApp, k)
		pairedAt := time.Now()
		mustStatus(t, paired, http.StatusCreated)
		if k.UserID != "mia" || k.DeviceID != str(r.Body, "device", "id") || len(k.Seed) < 32 {
			t.Errorf("pairing answered %s", paired)
		}
		var poll *resp
		select {
		case poll = <-polled:
		case <-time.After(5 * time.Second):
			t.Fatal("the long poll did not return after the pairing")
		}
		if d := time.Since(pairedAt); d > time.Second {
			t.Errorf("the long poll returned %s after the pairing", d)
		}
		mustState(t, poll, "COMPLETED")
		if got := poll.Header.Get("Preference-Applied"); got != "wait=10" {
			t.Errorf("Preference-Applied = %q", got)
		}
		if str(poll.Body, "steps", "enroll", "outputs", "device", "type") != "MOBILE" ||
			str(poll.Body, "steps", "enroll", "outputs", "device", "id") != k.DeviceID {
			t.Errorf("outputs: %s", poll.Raw)
		}

		// The registry has it, with its key, and its offline passcodes work
		// once each.
		dev := n.admin(http.MethodGet, "/environments/demo/users/mia/devices/"+k.DeviceID, "")
		mustStatus(t, dev, http.StatusOK)
		if str(dev.Body, "type") != "MOBILE" || str(dev.Body, "status") != "ACTIVE" || str(dev.Body, "nickname") != "Work phone" {
			t.Errorf("device: %s", dev)
		}
		code6, _ := k.Passcode(n.Clock.Now())
		v, err := n.Registry.Verify(context.Background(), n.Env, "mia", k.DeviceID, code6)
		if err != nil || !v.OK {
			t.Errorf("offline passcode: %+v, %v", v, err)
		}
		if v, err := n.Registry.Verify(context.Background(), n.Env, "mia", k.DeviceID, code6); err == nil && v.OK {
			t.Errorf("the offline passcode was accepted twice")
		}

		// The push token, signed by the device key.
		pushPath := "/demo/mobile/devices/" + k.DeviceID + "/pushToken"
		jws, err := k.Sign(http.MethodPut, pushPath, n.Clock.Now(), map[string]any{"pushToken": "tok-1"})
		if err != nil {
			t.Fatal(err)
		}
		mustStatus(t, n.do(http.MethodPut, pushPath, "application/jose", jws), http.StatusNoContent)
		ent, err := n.Registry.Get(context.Background(), "demo", "mia", k.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if part, _ := mobile.ReadPart(&ent.Device); part.PushToken != "tok-1" || part.Device.Model != "Pixel 9" {
			t.Errorf("device part after the update: %+v", part)
		}
		// The same request again is a replay.
		mustError(t, n.do(http.MethodPut, pushPath, "application/jose", jws), http.StatusUnauthorized, "ACCESS_FAILED", detail{"signature", "REQUEST_REPLAYED"})
		// Another key, another path, an old timestamp: refused.
		other := newPhone(t)
		other.DeviceID, other.UserID = k.DeviceID, k.UserID
		forged, _ := other.Sign(http.MethodPut, pushPath, n.Clock.Now(), map[string]any{"pushToken": "evil"})
		mustError(t, n.do(http.MethodPut, pushPath, "application/jose", forged), http.StatusUnauthorized, "ACCESS_FAILED", detail{"signature", "INVALID_SIGNATURE"})
		elsewhere, _ := k.Sign(http.MethodPut, "/demo/mobile/devices/other/pushToken", n.Clock.Now(), map[string]any{"pushToken": "x"})
		mustError(t, n.do(http.MethodPut, pushPath, "application/jose", elsewhere), http.StatusUnauthorized, "ACCESS_FAILED", detail{"signature", "INVALID_SIGNATURE"})
		stale, _ := k.Sign(http.MethodPut, pushPath, n.Clock.Now().Add(-2*time.Minute), map[string]any{"pushToken": "x"})
		mustError(t, n.do(http.MethodPut, pushPath, "application/jose", stale), http.StatusUnauthorized, "ACCESS_FAILED", detail{"signature", "INVALID_SIGNATURE"})
		mustError(t, n.do(http.MethodPut, pushPath, "application/json", `{"pushToken":"x"}`), http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
		ent2, _ := n.Registry.Get(context.Background(), "demo", "mia", k.DeviceID)
		if part, _ := mobile.ReadPart(&ent2.Device); part.PushToken != "tok-1" {
			t.Errorf("a refused update changed the push token to %q", part.PushToken)
		}
	})
}

// TestMobilePairingWithTheClient: the phone package (what `enrollflow
// pair` runs) pairs over real HTTP, and updates its push token.
func TestMobilePairingWithTheClient(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{Clock: wallClock()})
		srv := httptest.NewServer(n.Handler)
		defer srv.Close()
		id := n.start("otto")
		r := n.createMobile(id, demoApp)
		uri := strings.Replace(str(r.Body, "pairingKey", "uri"), "enrollflow.test", strings.TrimPrefix(srv.URL, "http://"), 1)
		server, env, code, err := phone.ParseCodeOrURI(uri, "", "")
		if err != nil {
			t.Fatal(err)
		}
		k := newPhone(t)
		if err := k.Pair(context.Background(), srv.Client(), server, env, demoApp, code, phone.Device{Name: "cli"}); err != nil {
			t.Fatal(err)
		}
		mustState(t, n.get(id), "COMPLETED")
		if err := k.PutPushToken(context.Background(), srv.Client(), "token-2"); err != nil {
			t.Fatal(err)
		}
		err = k.Pair(context.Background(), srv.Client(), server, env, demoApp, code, phone.Device{})
		if refused, ok := err.(*phone.Refused); !ok || refused.Code != "PAIRING_KEY_USED" {
			t.Fatalf("second pairing: %v", err)
		}
	})
}

// wallClock is a clock that follows the real one (the phone signs with
// time.Now).
func wallClock() *apptest.Clock { return apptest.NewClock() }

// TestPairingFailures: every way pairing fails ends in
// MOBILE_PAIRING_FAILURE with the app's code, and offers a way on.
func TestPairingFailures(t *testing.T) {
	cfg := demoConfig(func(e *config.Environment) {
		strict := mfa.Application{ID: "strict-app", Name: "Needs push"}
		strict.Push.Enabled, strict.PushTokenRequired = true, true
		e.Applications = append(e.Applications, mfa.Application{ID: "other-app", Name: "Other"}, strict)
		e.DeviceAuthenticationPolicies[0].Mobile.Applications = []string{demoApp, "other-app", "strict-app"}
		e.MFASettings.Pairing.MaxAllowedDevices = 1
	})
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{Config: cfg})
		failed := func(id string, r *resp, status int, code string) {
			t.Helper()
			mustError(t, r, status, code)
			s := n.get(id)
			mustState(t, s, "MOBILE_PAIRING_FAILURE")
			if got := str(s.Body, "error", "code"); got != code {
				t.Errorf("error.code = %q, want %q", got, code)
			}
			mustLinks(t, s, "device.create", "device.delete", "device.skipEnrollment")
		}

		t.Run("application mismatch", func(t *testing.T) {
			id := n.start("u-mismatch")
			code := pairingCode(t, n.createMobile(id, demoApp))
			failed(id, n.pair(code, "other-app", newPhone(t)), http.StatusBadRequest, "APPLICATION_MISMATCH")
			// The key is spent, even for the right application.
			mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusConflict, "PAIRING_KEY_USED")
			// Start again from the failure.
			again := n.createMobile(id, demoApp)
			mustStatus(t, n.pair(pairingCode(t, again), demoApp, newPhone(t)), http.StatusCreated)
			mustState(t, n.get(id), "COMPLETED")
		})
		t.Run("push token required", func(t *testing.T) {
			id := n.start("u-push")
			code := pairingCode(t, n.createMobile(id, "strict-app"))
			failed(id, n.pair(code, "strict-app", newPhone(t)), http.StatusBadRequest, "PUSH_TOKEN_REQUIRED")
		})
		t.Run("device limit", func(t *testing.T) {
			id := n.start("u-full")
			other := n.start("u-full")
			first := pairingCode(t, n.createMobile(id, demoApp))
			second := pairingCode(t, n.createMobile(other, demoApp))
			mustStatus(t, n.pair(first, demoApp, newPhone(t)), http.StatusCreated)
			failed(other, n.pair(second, demoApp, newPhone(t)), http.StatusConflict, "DEVICE_LIMIT_REACHED")
		})
		t.Run("expired without any attempt", func(t *testing.T) {
			id := n.start("u-late")
			r := n.createMobile(id, demoApp)
			code := pairingCode(t, r)
			n.Clock.Advance(10*time.Minute + time.Second)
			s := n.get(id) // the first poll after expiresAt shows it, with no write
			mustState(t, s, "MOBILE_PAIRING_FAILURE")
			if str(s.Body, "error", "code") != "PAIRING_KEY_EXPIRED" || s.Header.Get("ETag") == r.Header.Get("ETag") {
				t.Errorf("after expiry: %s (ETag %s)", s, s.Header.Get("ETag"))
			}
			mustLinks(t, s, "device.create", "device.delete", "device.skipEnrollment")
			// The app that comes late hears why, and the failure is kept.
			failed(id, n.pair(code, demoApp, newPhone(t)), http.StatusGone, "PAIRING_KEY_EXPIRED")
			mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusGone, "PAIRING_KEY_EXPIRED")
			// Long after, the key is simply unknown.
			n.Clock.Advance(mobile.IndexGrace)
			mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusNotFound, "PAIRING_KEY_NOT_FOUND")
		})
		t.Run("unknown key", func(t *testing.T) {
			mustError(t, n.pair("000000000000", demoApp, newPhone(t)), http.StatusNotFound, "PAIRING_KEY_NOT_FOUND")
		})
		t.Run("deleted device voids the key", func(t *testing.T) {
			id := n.start("u-del")
			code := pairingCode(t, n.createMobile(id, demoApp))
			mustState(t, n.act(id, ctDelete, ""), "DEVICE_ENROLLMENT_REQUIRED")
			mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusNotFound, "PAIRING_KEY_NOT_FOUND")
			mustState(t, n.get(id), "DEVICE_ENROLLMENT_REQUIRED")
		})
		t.Run("single use across two phones", func(t *testing.T) {
			id := n.start("u-once")
			code := pairingCode(t, n.createMobile(id, demoApp))
			mustStatus(t, n.pair(code, demoApp, newPhone(t)), http.StatusCreated)
			mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusConflict, "PAIRING_KEY_USED")
		})
	})
}

// TestPairingRequestValidation: a malformed request from the app is a 400
// naming the field, and changes nothing (the key still pairs after).
func TestPairingRequestValidation(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("val")
		code := pairingCode(t, n.createMobile(id, demoApp))
		k := newPhone(t)
		priv, _ := json.Marshal(k.PrivateKey)
		cases := []struct {
			name, body, field string
		}{
			{"no key", `{"application":{"id":"demo-authenticator"},"publicKey":` + string(k.PublicJWK()) + `}`, "pairingKey"},
			{"a key of the wrong shape", `{"pairingKey":"12ab","application":{"id":"demo-authenticator"},"publicKey":` + string(k.PublicJWK()) + `}`, "pairingKey"},
			{"no application", `{"pairingKey":"` + code + `","publicKey":` + string(k.PublicJWK()) + `}`, "application.id"},
			{"no public key", `{"pairingKey":"` + code + `","application":{"id":"demo-authenticator"}}`, "publicKey"},
			{"a private key", `{"pairingKey":"` + code + `","application":{"id":"demo-authenticator"},"publicKey":` + string(priv) + `}`, "publicKey"},
			{"an RSA-shaped key", `{"pairingKey":"` + code + `","application":{"id":"demo-authenticator"},"publicKey":{"kty":"oct","k":"AAAA"}}`, "publicKey"},
			{"a long device name", pairBody(code, demoApp, k, map[string]any{"name": strings.Repeat("x", 101)}), "device.name"},
			{"an unknown field", `{"pairingKey":"` + code + `","application":{"id":"demo-authenticator"},"publicKey":` + string(k.PublicJWK()) + `,"extra":1}`, "extra"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n.unchanged(id, func() {
					r := n.do(http.MethodPost, "/demo/mobile/pairings", "application/json", tc.body)
					mustStatus(t, r, http.StatusBadRequest)
					if got := str(list(r.Body, "details")[0], "target"); got != tc.field {
						t.Errorf("target = %q, want %q: %s", got, tc.field, r)
					}
				})
			})
		}
		mustStatus(t, n.pair(code, demoApp, k), http.StatusCreated)
	})
}

// TestPairingKeyLimit: a user holds at most 20 valid keys; the oldest is
// voided, and pairing with it fails PAIRING_KEY_EXPIRED.
func TestPairingKeyLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		var ids, codes []string
		for i := 0; i < 21; i++ {
			id := n.start("collector")
			ids = append(ids, id)
			codes = append(codes, pairingCode(t, n.createMobile(id, demoApp)))
			n.Clock.Advance(time.Second) // the first made expires first
		}
		r := n.pair(codes[0], demoApp, newPhone(t))
		mustError(t, r, http.StatusGone, "PAIRING_KEY_EXPIRED")
		mustState(t, n.get(ids[0]), "MOBILE_PAIRING_FAILURE")
		mustStatus(t, n.pair(codes[1], demoApp, newPhone(t)), http.StatusCreated)
		mustStatus(t, n.pair(codes[20], demoApp, newPhone(t)), http.StatusCreated)
	})
}

// TestPairingGuesses: wrong keys are counted per client (an IPv6 /64) and
// per environment, 429 beyond; a right key costs nothing.
func TestPairingGuesses(t *testing.T) {
	cfg := demoConfig(func(e *config.Environment) {
		e.MFASettings.PairingKeyGuesses.Client = mfa.Rate{Count: 3, Period: mfa.Duration{Duration: 1, TimeUnit: "MINUTES"}}
		e.MFASettings.PairingKeyGuesses.Environment = mfa.Rate{Count: 5, Period: mfa.Duration{Duration: 1, TimeUnit: "MINUTES"}}
	})
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{Config: cfg, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
		from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }
		// Right keys are given back.
		for i := 0; i < 4; i++ {
			id := n.start("guess-ok")
			mustStatus(t, n.pair(pairingCode(t, n.createMobile(id, demoApp)), demoApp, newPhone(t), from("2001:db8:1::1")...), http.StatusCreated)
		}
		for i := 0; i < 3; i++ {
			mustError(t, n.pair("11111111111"+string(rune('0'+i)), demoApp, newPhone(t), from("2001:db8:1::1")...), http.StatusNotFound, "PAIRING_KEY_NOT_FOUND")
		}
		// The same /64 is the same client, even for the right key.
		id := n.start("guess-victim")
		code := pairingCode(t, n.createMobile(id, demoApp))
		mustError(t, n.pair(code, demoApp, newPhone(t), from("2001:db8:1::ffff")...), http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"pairingKey", "GUESS_LIMIT_CLIENT"})
		mustState(t, n.get(id), "PAIRING_REQUIRED")
		// Another client still pairs; the environment's budget then runs out.
		mustError(t, n.pair("222222222222", demoApp, newPhone(t), from("198.51.100.7")...), http.StatusNotFound, "PAIRING_KEY_NOT_FOUND")
		mustError(t, n.pair("222222222223", demoApp, newPhone(t), from("198.51.100.7")...), http.StatusNotFound, "PAIRING_KEY_NOT_FOUND")
		r := n.pair("222222222224", demoApp, newPhone(t), from("198.51.100.8")...)
		mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"pairingKey", "GUESS_LIMIT_ENVIRONMENT"})
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("no Retry-After")
		}
		if b.redis == nil { // Redis keeps budgets on its own clock, which a test cannot advance
			n.Clock.Advance(time.Minute)
			mustStatus(t, n.pair(code, demoApp, newPhone(t), from("198.51.100.9")...), http.StatusCreated)
		}
	})
}

// TestPairingEdges: what an attacker of the mobile side tries.
func TestPairingEdges(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})

		t.Run("one execution makes at most ten pairing keys", func(t *testing.T) {
			id := n.start("looper")
			for i := 0; i < 10; i++ {
				pairingCode(t, n.createMobile(id, demoApp))
				mustState(t, n.act(id, ctDelete, ""), "DEVICE_ENROLLMENT_REQUIRED")
			}
			n.unchanged(id, func() {
				mustError(t, n.createMobile(id, demoApp), http.StatusTooManyRequests, "REQUEST_LIMITED")
			})
		})

		t.Run("an expired key presented again writes nothing", func(t *testing.T) {
			id := n.start("late-again")
			code := pairingCode(t, n.createMobile(id, demoApp))
			n.Clock.Advance(10*time.Minute + time.Second)
			mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusGone, "PAIRING_KEY_EXPIRED")
			n.unchanged(id, func() {
				mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusGone, "PAIRING_KEY_EXPIRED")
			})
		})

		t.Run("a signed request does not tell an unknown device from a bad signature", func(t *testing.T) {
			id := n.start("oracle")
			k := newPhone(t)
			mustStatus(t, n.pair(pairingCode(t, n.createMobile(id, demoApp)), demoApp, k), http.StatusCreated)
			pushPath := "/demo/mobile/devices/" + k.DeviceID + "/pushToken"
			forger := newPhone(t)
			forger.DeviceID, forger.UserID = k.DeviceID, k.UserID
			bad, _ := forger.Sign(http.MethodPut, pushPath, n.Clock.Now(), map[string]any{"pushToken": "x"})
			stranger := newPhone(t)
			stranger.DeviceID, stranger.UserID = k.DeviceID, "nobody"
			unknown, _ := stranger.Sign(http.MethodPut, pushPath, n.Clock.Now(), map[string]any{"pushToken": "x"})
			a := n.do(http.MethodPut, pushPath, "application/jose", bad)
			c := n.do(http.MethodPut, pushPath, "application/jose", unknown)
			mustStatus(t, a, http.StatusUnauthorized)
			mustStatus(t, c, http.StatusUnauthorized)
			if str(a.Body, "message") != str(c.Body, "message") || str(list(a.Body, "details")[0], "message") != str(list(c.Body, "details")[0], "message") {
				t.Errorf("the answers differ:\n%s\n%s", a, c)
			}
		})

	})
}

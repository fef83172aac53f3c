package hal_test

// Time rules, driven by the fake clock only: execution expiry, passcode
// lifetime, attempt limits and their cool-downs, resend cool-downs, TOTP
// lockout.

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/mfa"
)

func TestExecutionExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		t.Run("15 minutes without an action", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("idle")
			n.Clock.Advance(15*time.Minute - time.Millisecond)
			mustStatus(t, n.get(id), http.StatusOK) // a GET does not slide the window
			n.Clock.Advance(time.Millisecond)
			mustError(t, n.get(id), http.StatusNotFound, "NOT_FOUND")
			mustError(t, n.act(id, ctSkip, ""), http.StatusNotFound, "NOT_FOUND")
		})
		t.Run("an action slides expiresAt", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("busy")
			n.Clock.Advance(10 * time.Minute)
			r := n.create(id, "EMAIL")
			mustStatus(t, r, http.StatusOK)
			want := n.Clock.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339Nano)
			if got := str(r.Body, "expiresAt"); got != want {
				t.Errorf("expiresAt after an action = %s, want %s", got, want)
			}
			n.Clock.Advance(10 * time.Minute) // 20 minutes after the start
			g := n.get(id)
			mustStatus(t, g, http.StatusOK)
			mustState(t, g, "ACTIVATION_REQUIRED")
			// A refused action does not slide it.
			n.unchanged(id, func() {
				mustError(t, n.act(id, ctSkip, ""), http.StatusConflict, "ACTION_NOT_ALLOWED")
			})
			n.Clock.Advance(5 * time.Minute)
			mustError(t, n.get(id), http.StatusNotFound, "NOT_FOUND")
			mustError(t, n.activate(id, n.passcode("busy@example.com")), http.StatusNotFound, "NOT_FOUND")
			if l := n.admin(http.MethodGet, "/environments/demo/users/busy/devices", ""); num(l.Body, "count") != 0 {
				t.Errorf("an expired execution enrolled a device: %s", l.Raw)
			}
		})
		t.Run("a COMPLETED execution expires too", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("ended")
			mustStatus(t, n.act(id, ctSkip, ""), http.StatusOK)
			n.Clock.Advance(15 * time.Minute)
			mustError(t, n.get(id), http.StatusNotFound, "NOT_FOUND")
		})
	})
}

// shortOTP is the demo with e-mail passcodes living two minutes.
func shortOTP() *config.File {
	return demoConfig(func(e *config.Environment) {
		e.DeviceAuthenticationPolicies[0].Email.OTP.LifeTime = mfa.Duration{Duration: 2, TimeUnit: "MINUTES"}
	})
}

func TestOTPLifetime(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		t.Run("default 30 minutes, execution kept alive", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("life")
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			code := n.passcode("life@example.com")
			// The execution lives 15 minutes from its last action; two
			// counted wrong attempts keep it alive past the passcode's 30.
			for range 2 {
				n.Clock.Advance(14 * time.Minute)
				mustError(t, n.activate(id, wrongCode(code)), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_OTP"})
			}
			n.Clock.Advance(3 * time.Minute) // 31 minutes after the passcode was sent
			n.unchanged(id, func() {
				mustError(t, n.activate(id, code), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "OTP_EXPIRED"})
			})
			// A new passcode works.
			mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
			r := n.activate(id, n.passcode("life@example.com"))
			mustStatus(t, r, http.StatusOK)
			mustState(t, r, "COMPLETED")
		})
		t.Run("policy lifetime of 2 minutes", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{Config: shortOTP()})
			id := n.start("brief")
			r := n.create(id, "EMAIL")
			mustStatus(t, r, http.StatusOK)
			if want := n.Clock.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339Nano); str(r.Body, "device", "otp", "expiresAt") != want {
				t.Errorf("otp.expiresAt = %s, want %s", str(r.Body, "device", "otp", "expiresAt"), want)
			}
			code := n.passcode("brief@example.com")
			n.Clock.Advance(2 * time.Minute)
			n.unchanged(id, func() {
				mustError(t, n.activate(id, code), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "OTP_EXPIRED"})
			})
			// One millisecond earlier the same code would have worked.
			n2 := newNode(t, b, apptest.Options{Config: shortOTP()})
			id2 := n2.start("brief2")
			mustStatus(t, n2.create(id2, "EMAIL"), http.StatusOK)
			n2.Clock.Advance(2*time.Minute - time.Millisecond)
			mustStatus(t, n2.activate(id2, n2.passcode("brief2@example.com")), http.StatusOK)
		})
	})
}

// retryAfter reads the Retry-After header in seconds.
func retryAfter(t *testing.T, r *resp) int {
	t.Helper()
	s, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After = %q: %v", r.Header.Get("Retry-After"), err)
	}
	return s
}

func TestAttemptLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("limit")
		mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
		const to = "limit@example.com"
		code := n.passcode(to)
		n.Clock.Advance(10 * time.Second) // past the resend cool-down: only the failure cool-down counts

		for _, want := range []string{"INVALID_OTP", "INVALID_OTP", "OTP_ATTEMPTS_EXCEEDED"} {
			mustError(t, n.activate(id, wrongCode(code)), http.StatusBadRequest, "INVALID_DATA", detail{"otp", want})
		}
		// The right code is refused now: the passcode is void.
		n.unchanged(id, func() {
			mustError(t, n.activate(id, code), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "OTP_ATTEMPTS_EXCEEDED"})
		})
		// No new passcode before the 2-minute failure cool-down.
		n.Clock.Advance(time.Minute)
		n.unchanged(id, func() {
			r := n.act(id, ctResend, "")
			mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED")
			if s := retryAfter(t, r); s != 60 {
				t.Errorf("Retry-After = %d, want 60", s)
			}
		})
		sent := n.sentTo(to)
		n.Clock.Advance(time.Minute)
		r := n.act(id, ctResend, "")
		mustStatus(t, r, http.StatusOK)
		if num(r.Body, "device", "otp", "remainingAttempts") != 3 || n.sentTo(to) != sent+1 {
			t.Fatalf("resend after the cool-down: %s, %d messages", r.Raw, n.sentTo(to))
		}
		r = n.activate(id, n.passcode(to))
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "COMPLETED")
	})
}

func TestResendCoolDown(t *testing.T) {
	cases := []struct {
		typ, recipient string
		coolDown       time.Duration
	}{
		{"EMAIL", "cool@example.com", 5 * time.Second},
		{"SMS", "+12015550000", 30 * time.Second},
		{"VOICE", "+12015550000", 30 * time.Second},
	}
	forEachStore(t, func(t *testing.T, b *backend) {
		for _, tc := range cases {
			t.Run(tc.typ, func(t *testing.T) {
				n := newNode(t, b, apptest.Options{})
				id := n.start("cool")
				mustStatus(t, n.create(id, tc.typ), http.StatusOK)

				n.unchanged(id, func() {
					r := n.act(id, ctResend, "")
					mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED")
					if s := retryAfter(t, r); s != int(tc.coolDown.Seconds()) {
						t.Errorf("Retry-After = %d, want %v", s, tc.coolDown.Seconds())
					}
				})
				n.Clock.Advance(tc.coolDown - 2*time.Second)
				n.unchanged(id, func() {
					r := n.act(id, ctResend, "")
					mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED")
					if s := retryAfter(t, r); s != 2 {
						t.Errorf("Retry-After = %d, want 2", s)
					}
				})
				if n.sentTo(tc.recipient) != 1 {
					t.Fatalf("refused resends sent messages: %d", n.sentTo(tc.recipient))
				}
				n.Clock.Advance(2 * time.Second)
				mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
				if n.sentTo(tc.recipient) != 2 {
					t.Errorf("resend after the cool-down sent %d messages in all, want 2", n.sentTo(tc.recipient))
				}
				// The cool-down starts again from the resend.
				mustError(t, n.act(id, ctResend, ""), http.StatusTooManyRequests, "REQUEST_LIMITED")
				mustStatus(t, n.activate(id, n.passcode(tc.recipient)), http.StatusOK)
			})
		}
	})
}

// TestTOTPLockout: three wrong codes lock TOTP activation for the policy's
// two-minute cool-down; even the right code gets 429 until then. There is
// no replay guard to test here: a pending device has accepted no code yet,
// and the first accepted one ends the enrollment.
func TestTOTPLockout(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("locked")
		r := n.create(id, "TOTP")
		mustStatus(t, r, http.StatusOK)
		secret := str(r.Body, "device", "secret")
		bad := func() string {
			valid := map[string]bool{}
			for d := -30 * time.Second; d <= 30*time.Second; d += 30 * time.Second {
				c, _ := mfa.TOTPCode(secret, n.Clock.Now().Add(d))
				valid[c] = true
			}
			for c := 100000; ; c++ {
				if s := strconv.Itoa(c); !valid[s] {
					return s
				}
			}
		}
		for _, remaining := range []float64{2, 1, 0} {
			e := n.activate(id, bad())
			mustError(t, e, http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_OTP"})
			if got := num(e.Body, "details", "0", "innerError", "remainingAttempts"); got != remaining {
				t.Errorf("remainingAttempts = %v, want %v", got, remaining)
			}
		}
		n.Clock.Advance(time.Minute)
		right, err := mfa.TOTPCode(secret, n.Clock.Now())
		must(t, err)
		n.unchanged(id, func() {
			e := n.activate(id, right)
			mustError(t, e, http.StatusTooManyRequests, "REQUEST_LIMITED")
			if s := retryAfter(t, e); s != 60 {
				t.Errorf("Retry-After = %d, want 60", s)
			}
		})
		n.Clock.Advance(time.Minute)
		right, err = mfa.TOTPCode(secret, n.Clock.Now())
		must(t, err)
		r = n.activate(id, right)
		mustStatus(t, r, http.StatusOK)
		mustState(t, r, "COMPLETED")
	})
}

// TestDeleteAndCreateIsNoWayAround: the cool-downs and limits belong to the
// step, not to the pending device, so device.delete + device.create cannot
// reset them.
func TestDeleteAndCreateIsNoWayAround(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		t.Run("resend cool-down to the same address", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("flood")
			const phone = "+12015550000"
			mustStatus(t, n.create(id, "SMS"), http.StatusOK)
			n.Clock.Advance(10 * time.Second)
			mustStatus(t, n.act(id, ctDelete, "{}"), http.StatusOK)
			n.unchanged(id, func() {
				r := n.create(id, "SMS")
				mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED")
				if s := retryAfter(t, r); s != 20 {
					t.Errorf("Retry-After = %d, want 20", s)
				}
				// VOICE to the same number: the same wait.
				mustError(t, n.create(id, "VOICE"), http.StatusTooManyRequests, "REQUEST_LIMITED")
			})
			if got := n.sentTo(phone); got != 1 {
				t.Fatalf("messages to %s = %d, want 1", phone, got)
			}
			// Another address is not held up: a mistyped address can be fixed at once.
			r := n.act(id, ctCreate, `{"type":"SMS","phone":"+12025550000"}`)
			mustStatus(t, r, http.StatusOK)
			mustStatus(t, n.act(id, ctDelete, "{}"), http.StatusOK)
			n.Clock.Advance(20 * time.Second)
			mustStatus(t, n.create(id, "SMS"), http.StatusOK)
			if got := n.sentTo(phone); got != 2 {
				t.Errorf("messages to %s = %d, want 2", phone, got)
			}
		})
		t.Run("failure cool-down", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("guess")
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			code := n.passcode("guess@example.com")
			for range 3 {
				mustStatus(t, n.activate(id, wrongCode(code)), http.StatusBadRequest)
			}
			mustStatus(t, n.act(id, ctDelete, "{}"), http.StatusOK)
			n.Clock.Advance(30 * time.Second)
			for _, typ := range []string{"EMAIL", "TOTP"} {
				n.unchanged(id, func() {
					r := n.create(id, typ)
					mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED")
					if s := retryAfter(t, r); s != 90 {
						t.Errorf("%s: Retry-After = %d, want 90", typ, s)
					}
				})
			}
			n.Clock.Advance(90 * time.Second)
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			mustStatus(t, n.activate(id, n.passcode("guess@example.com")), http.StatusOK)
		})
		t.Run("lockout after mfaSettings.lockout.failureCount wrong passcodes", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("lockout")
			const to = "lockout@example.com"
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			for range 3 { // the passcode's own limit: void, 2-minute cool-down
				mustStatus(t, n.activate(id, wrongCode(n.passcode(to))), http.StatusBadRequest)
			}
			n.Clock.Advance(2 * time.Minute)
			mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
			code := n.passcode(to)
			mustError(t, n.activate(id, wrongCode(code)), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_OTP"})
			// The fifth wrong passcode of the step (demo default) locks it for 600 s.
			e := n.activate(id, wrongCode(code))
			mustError(t, e, http.StatusBadRequest, "INVALID_DATA", detail{"otp", "OTP_ATTEMPTS_EXCEEDED"})
			if got := num(e.Body, "details", "0", "innerError", "remainingAttempts"); got != 0 {
				t.Errorf("remainingAttempts = %v, want 0", got)
			}
			n.Clock.Advance(time.Minute)
			n.unchanged(id, func() {
				for _, r := range []*resp{n.activate(id, code), n.act(id, ctResend, "")} {
					mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED")
					if s := retryAfter(t, r); s != 540 {
						t.Errorf("Retry-After = %d, want 540", s)
					}
				}
			})
			mustStatus(t, n.act(id, ctDelete, "{}"), http.StatusOK)
			n.unchanged(id, func() {
				mustError(t, n.create(id, "TOTP"), http.StatusTooManyRequests, "REQUEST_LIMITED")
			})
			n.Clock.Advance(9 * time.Minute)
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			r := n.activate(id, n.passcode(to))
			mustStatus(t, r, http.StatusOK)
			mustState(t, r, "COMPLETED")
		})
		t.Run("the passcode is void after a lockout", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{})
			id := n.start("void")
			const to = "void@example.com"
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			code := n.passcode(to)
			for range 3 {
				mustStatus(t, n.activate(id, wrongCode(code)), http.StatusBadRequest)
			}
			n.Clock.Advance(2 * time.Minute)
			mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
			code = n.passcode(to)
			for range 2 {
				mustStatus(t, n.activate(id, wrongCode(code)), http.StatusBadRequest)
			}
			n.Clock.Advance(10 * time.Minute)
			// The lockout is over, but the passcode it voided stays void.
			n.unchanged(id, func() {
				mustError(t, n.activate(id, code), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "OTP_ATTEMPTS_EXCEEDED"})
			})
			if r := n.get(id); num(r.Body, "device", "otp", "remainingAttempts") != 0 {
				t.Errorf("remainingAttempts after the lockout = %v, want 0", at(r.Body, "device", "otp"))
			}
			mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
			r := n.activate(id, n.passcode(to))
			mustStatus(t, r, http.StatusOK)
			mustState(t, r, "COMPLETED")
		})
		t.Run("at most 10 passcodes per step", func(t *testing.T) {
			// The step's own cap, below the send budgets (per address 5 an
			// hour by default), which are raised here out of its way.
			n := newNode(t, b, apptest.Options{Config: demoConfig(func(e *config.Environment) {
				e.MFASettings.SendLimits.Address.Count, e.MFASettings.SendLimits.User.Count = 100, 100
			})})
			id := n.start("chatty")
			const to = "chatty@example.com"
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			for range 9 {
				n.Clock.Advance(5 * time.Second)
				mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
			}
			n.Clock.Advance(5 * time.Second)
			n.unchanged(id, func() {
				r := n.act(id, ctResend, "")
				mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED")
				if h := r.Header.Get("Retry-After"); h != "" {
					t.Errorf("Retry-After = %q on a limit no wait lifts", h)
				}
			})
			mustStatus(t, n.act(id, ctDelete, "{}"), http.StatusOK)
			n.unchanged(id, func() {
				mustError(t, n.act(id, ctCreate, `{"type":"EMAIL","email":"other@example.com"}`), http.StatusTooManyRequests, "REQUEST_LIMITED")
			})
			if got := n.sentTo(to); got != 10 {
				t.Errorf("messages = %d, want 10", got)
			}
			// TOTP sends nothing and is still possible.
			mustStatus(t, n.create(id, "TOTP"), http.StatusOK)
		})
	})
}

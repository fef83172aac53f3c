package mfaenroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/otp"
	"github.com/enrollflow/enrollflow/factor/totp"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/storetest"
)

// Delivery failures, driven through the engine: the enrollment step's
// passcode send is an effect, and its failure a Followup.

const (
	userPhone   = "+12015554567"
	smsCoolDown = 30 * time.Second // the default policy's SMS resend cool-down
)

// scriptedMessenger renders "Your code is <otp>" and answers each Send with
// the next scripted reply (success once the script is used up).
type scriptedMessenger struct {
	mu      sync.Mutex
	sent    []delivery.Message
	replies []func(ctx context.Context) error
}

func (m *scriptedMessenger) ComposePairing(_ context.Context, p delivery.Pairing) (delivery.Message, error) {
	return delivery.Message{ID: store.NewID(), EnvID: p.EnvID, Method: p.Method, Recipient: p.Recipient,
		Locale: "en", Body: "Your code is " + p.OTP}, nil
}

func (m *scriptedMessenger) Send(ctx context.Context, msg delivery.Message) error {
	m.mu.Lock()
	m.sent = append(m.sent, msg)
	var reply func(context.Context) error
	if len(m.replies) > 0 {
		reply, m.replies = m.replies[0], m.replies[1:]
	}
	m.mu.Unlock()
	if reply == nil {
		return nil
	}
	return reply(ctx)
}

// script appends replies for the next sends; nil means success.
func (m *scriptedMessenger) script(replies ...func(context.Context) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replies = append(m.replies, replies...)
}

func failWith(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

// blocked is a reply that signals started, then waits for release and
// fails with err (succeeds when err is nil).
func blocked(started chan<- struct{}, release <-chan struct{}, err error) func(context.Context) error {
	return func(context.Context) error {
		close(started)
		<-release
		return err
	}
}

func (m *scriptedMessenger) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sent)
}

var otpInBody = regexp.MustCompile(`\d{6,10}$`)

// otp is the passcode of the n-th message (1-based).
func (m *scriptedMessenger) otp(t *testing.T, n int) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sent) < n {
		t.Fatalf("%d messages sent, want at least %d", len(m.sent), n)
	}
	return otpInBody.FindString(m.sent[n-1].Body)
}

type enrollHarness struct {
	t      *testing.T
	clock  *storetest.Clock
	msgr   *scriptedMessenger
	env    *engine.Environment
	runner *engine.Runner
}

func newEnrollHarness(t *testing.T, effectWait time.Duration) *enrollHarness {
	t.Helper()
	keys, err := mfa.DeriveKeys(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := mfa.NewSealer(keys.SealTOTP)
	if err != nil {
		t.Fatal(err)
	}
	h := &enrollHarness{t: t, clock: storetest.NewClock(), msgr: &scriptedMessenger{}, env: testEnv(t)}
	// The step's own rules are under test, not the send budgets.
	h.env.MFASettings.SendLimits.Address.Count, h.env.MFASettings.SendLimits.User.Count = 1000, 1000
	st := memory.New(h.clock.Now)
	factors := factor.NewRegistry(&otp.Factor{Messenger: h.msgr, Hasher: mfa.NewOTPHasher(keys.OTPHash)}, &totp.Factor{Sealer: sealer})
	step := New(Deps{Devices: st, Factors: factors, Regulator: regulation.New(st, keys.AddressKey), Log: zerolog.Nop()})
	h.runner = engine.NewRunner(st, engine.NewStepRegistry(step), []*engine.Environment{h.env},
		engine.Options{Now: h.clock.Now, EffectWait: effectWait})
	flow := &engine.Flow{ID: "enroll", Trigger: engine.Trigger{Next: "enroll"}, StepDefinitions: map[string]engine.StepDefinition{
		"enroll": {Type: TypeName, Configuration: json.RawMessage(`{"useDefaultPolicy":true,"allowSkip":true}`)}}}
	if _, err := h.runner.SaveFlow(t.Context(), h.env, flow, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.runner.Wait(ctx); err != nil {
			t.Errorf("deliveries still running at the end of the test: %v", err)
		}
	})
	return h
}

func (h *enrollHarness) start() string {
	h.t.Helper()
	x, err := h.runner.Start(h.t.Context(), h.env, "enroll", map[string]any{"user": map[string]any{"id": "u1", "mobilePhone": userPhone}})
	if err != nil {
		h.t.Fatal(err)
	}
	return x.ID
}

func (h *enrollHarness) act(id, name string, payload any) (*engine.Execution, error) {
	return h.runner.Act(h.t.Context(), h.env, id, actions.Action{Name: name, Payload: payload})
}

func (h *enrollHarness) mustAct(id, name string, payload any) *engine.Execution {
	h.t.Helper()
	x, err := h.act(id, name, payload)
	if err != nil {
		h.t.Fatalf("%s: %v", name, err)
	}
	return x
}

func (h *enrollHarness) createSMS(id string) *engine.Execution {
	h.t.Helper()
	return h.mustAct(id, actions.DeviceCreate, &actions.CreateDevice{Type: "SMS"})
}

func (h *enrollHarness) get(id string) *engine.Execution {
	h.t.Helper()
	x, err := h.runner.Get(h.t.Context(), h.env, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return x
}

// waitDeliveries waits until the sends running in the background are over.
func (h *enrollHarness) waitDeliveries() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 5*time.Second)
	defer cancel()
	if err := h.runner.Wait(ctx); err != nil {
		h.t.Fatal(err)
	}
}

func stepState(t *testing.T, x *engine.Execution) state {
	t.Helper()
	var st state
	if err := json.Unmarshal(x.State, &st); err != nil {
		t.Fatalf("state %s: %v", x.State, err)
	}
	return st
}

// viewError is the error the client sees, or nil.
func (h *enrollHarness) viewError(x *engine.Execution) *engine.ErrorDetail {
	h.t.Helper()
	v, err := h.runner.View(context.Background(), h.env, x, "")
	if err != nil {
		h.t.Fatal(err)
	}
	if v.Status != ActivationRequired {
		h.t.Fatalf("status %s, want %s", v.Status, ActivationRequired)
	}
	if !slices.Contains(v.Actions, actions.OTPResend) {
		h.t.Fatalf("actions %v lack %s", v.Actions, actions.OTPResend)
	}
	e, _ := v.Properties["error"].(*engine.ErrorDetail)
	if v.Properties["error"] != nil && e == nil {
		h.t.Fatalf("error property %T %v", v.Properties["error"], v.Properties["error"])
	}
	return e
}

func wantStatus(t *testing.T, err error, status int, code string) *engine.Error {
	t.Helper()
	var e *engine.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
	return e
}

func TestDeliveryFailureShownToTheClient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"refused", delivery.Permanent("http 400", nil), DeliveryFailed},
		{"refused after retries", &delivery.Error{Permanent: true, Reason: "smtp 550", Attempts: 2}, DeliveryFailed},
		// The deployment's fault, not the address's: not "check the address".
		{"no channel", delivery.Misconfigured("no channel", errors.New("environment env1 has no channel for SMS")), DeliveryUnavailable},
		{"credentials refused", &delivery.Error{Permanent: true, Misconfigured: true, Reason: "twilio 401 code 20003", Attempts: 1}, DeliveryUnavailable},
		{"transient", delivery.Transient("http 503", nil), DeliveryUnavailable},
		{"timeout", &delivery.Error{Reason: "timeout", Attempts: 3, Err: context.DeadlineExceeded}, DeliveryUnavailable},
		{"unclassified", errors.New("something broke"), DeliveryUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newEnrollHarness(t, 5*time.Second)
			id := h.start()
			h.msgr.script(failWith(tc.err))
			x := h.createSMS(id)
			// The send failed at once, so the answer already shows it.
			for what, y := range map[string]*engine.Execution{"answer": x, "poll": h.get(id)} {
				e := h.viewError(y)
				if e == nil || e.Code != tc.code {
					t.Fatalf("%s: error %+v, want %s", what, e, tc.code)
				}
				if !strings.Contains(e.Message, mfa.MaskPhone(userPhone)) || strings.Contains(e.Message, userPhone) ||
					!strings.Contains(e.Message, actions.OTPResend) {
					t.Fatalf("%s: message %q: want the masked number and otp.resend, never the number", what, e.Message)
				}
				if checkAddress := strings.Contains(e.Message, "Check the address"); checkAddress != (tc.code == DeliveryFailed) {
					t.Fatalf("%s: message %q: only a refused address is the user's to check", what, e.Message)
				}
			}
			// A failed passcode is still a passcode of the step.
			if st := stepState(t, x); st.Sent != 1 || st.Pending == nil || strings.Contains(string(st.Pending.Data), `"sa"`) || !st.LastSentAt.IsZero() {
				t.Fatalf("state after a failed delivery: %+v %+v", st, st.Pending)
			}
		})
	}
}

func TestResendAfterFailedDelivery(t *testing.T) {
	h := newEnrollHarness(t, 5*time.Second)
	id := h.start()
	h.msgr.script(failWith(delivery.Permanent("http 400", nil)))
	x := h.createSMS(id)
	if e := h.viewError(x); e == nil || e.Code != DeliveryFailed {
		t.Fatalf("error %+v", e)
	}

	// No cool-down: the first passcode never arrived.
	x = h.mustAct(id, actions.OTPResend, nil)
	if e := h.viewError(x); e != nil {
		t.Fatalf("a good resend still shows %+v", e)
	}
	if e := h.viewError(h.get(id)); e != nil {
		t.Fatalf("the next poll still shows %+v", e)
	}
	if h.msgr.count() != 2 {
		t.Fatalf("%d messages, want 2", h.msgr.count())
	}

	// That one arrived: now the cool-down holds.
	_, err := h.act(id, actions.OTPResend, nil)
	e := wantStatus(t, err, http.StatusTooManyRequests, engine.CodeRequestLimited)
	if e.RetryAfter != smsCoolDown {
		t.Fatalf("Retry-After %s, want %s", e.RetryAfter, smsCoolDown)
	}
	// The first passcode is void, the second one enrolls.
	first, second := h.msgr.otp(t, 1), h.msgr.otp(t, 2)
	if first != second {
		_, err = h.act(id, actions.DeviceActivate, &actions.ActivateDevice{OTP: first})
		wantStatus(t, err, http.StatusBadRequest, engine.CodeInvalidData)
	}
	if x = h.mustAct(id, actions.DeviceActivate, &actions.ActivateDevice{OTP: second}); x.Status != engine.StatusCompleted {
		t.Fatalf("activation with the resent passcode: %+v", x)
	}
}

// After a failed delivery a new device for the same number may be created
// at once, and the error goes with the old device.
func TestRecreateAfterFailedDelivery(t *testing.T) {
	h := newEnrollHarness(t, 5*time.Second)
	id := h.start()
	h.msgr.script(failWith(delivery.Transient("http 503", nil)))
	if e := h.viewError(h.createSMS(id)); e == nil || e.Code != DeliveryUnavailable {
		t.Fatalf("error %+v", e)
	}
	x := h.mustAct(id, actions.DeviceDelete, nil)
	if v, _ := h.runner.View(context.Background(), h.env, x, ""); v.Status != DeviceEnrollmentRequired || v.Properties["error"] != nil {
		t.Fatalf("after delete: %+v", v)
	}
	if e := h.viewError(h.createSMS(id)); e != nil {
		t.Fatalf("new device shows %+v", e)
	}
	// Delivered this time: deleting and creating again waits for the cool-down.
	h.mustAct(id, actions.DeviceDelete, nil)
	_, err := h.act(id, actions.DeviceCreate, &actions.CreateDevice{Type: "SMS"})
	wantStatus(t, err, http.StatusTooManyRequests, engine.CodeRequestLimited)
}

func TestPasscodeLimitCountsFailedDeliveries(t *testing.T) {
	h := newEnrollHarness(t, 5*time.Second)
	id := h.start()
	refused := failWith(delivery.Permanent("http 400", nil))
	for range maxPasscodes + 2 {
		h.msgr.script(refused)
	}
	h.createSMS(id)
	for i := 2; i <= maxPasscodes; i++ {
		// Each one failed, so each resend may follow at once.
		x := h.mustAct(id, actions.OTPResend, nil)
		if e := h.viewError(x); e == nil || e.Code != DeliveryFailed {
			t.Fatalf("resend %d: error %+v", i, e)
		}
	}
	if h.msgr.count() != maxPasscodes {
		t.Fatalf("%d messages, want %d", h.msgr.count(), maxPasscodes)
	}
	_, err := h.act(id, actions.OTPResend, nil)
	e := wantStatus(t, err, http.StatusTooManyRequests, engine.CodeRequestLimited)
	if e.RetryAfter != 0 || !strings.Contains(e.Message, "maximum of 10") {
		t.Fatalf("resend past the limit: %+v (no wait lifts it)", e)
	}
	// Nor is a new device a way around it, even after the cool-down.
	h.mustAct(id, actions.DeviceDelete, nil)
	h.clock.Advance(smsCoolDown)
	_, err = h.act(id, actions.DeviceCreate, &actions.CreateDevice{Type: "SMS"})
	wantStatus(t, err, http.StatusTooManyRequests, engine.CodeRequestLimited)
	if h.msgr.count() != maxPasscodes {
		t.Fatalf("%d messages after the limit, want %d", h.msgr.count(), maxPasscodes)
	}
	if st := stepState(t, h.get(id)); st.Sent != maxPasscodes {
		t.Fatalf("sent count %d", st.Sent)
	}
}

// A send that fails after the request answered is recorded for the next
// poll, unless the step has moved on in between: a newer passcode was sent,
// or the device was deleted.
func TestLateDeliveryFailure(t *testing.T) {
	tests := []struct {
		name string
		// meanwhile runs while the first send hangs
		meanwhile func(h *enrollHarness, id string)
		// recorded: the failure shows; else the state is the one meanwhile left
		recorded bool
		sent     int // passcodes the step counts at the end
	}{
		{"current passcode", func(*enrollHarness, string) {}, true, 1},
		{"superseded by a resend", func(h *enrollHarness, id string) {
			h.clock.Advance(smsCoolDown) // the first send had not failed yet: the cool-down holds
			if e := h.viewError(h.mustAct(id, actions.OTPResend, nil)); e != nil {
				h.t.Fatalf("resend shows %+v", e)
			}
		}, false, 2},
		{"device deleted", func(h *enrollHarness, id string) {
			h.mustAct(id, actions.DeviceDelete, nil)
		}, false, 1},
		{"device deleted and created again", func(h *enrollHarness, id string) {
			h.mustAct(id, actions.DeviceDelete, nil)
			h.clock.Advance(smsCoolDown)
			h.createSMS(id)
		}, false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newEnrollHarness(t, 20*time.Millisecond)
			id := h.start()
			started, release := make(chan struct{}), make(chan struct{})
			h.msgr.script(blocked(started, release, delivery.Permanent("http 400", nil)))
			x := h.createSMS(id)
			<-started
			if x.Version != 2 || h.viewError(x) != nil {
				t.Fatalf("answer before the send ended: version %d", x.Version)
			}
			tc.meanwhile(h, id)
			before := h.get(id)

			close(release)
			h.waitDeliveries()
			after := h.get(id)
			st := stepState(t, after)
			if st.Sent != tc.sent {
				t.Fatalf("sent count %d, want %d", st.Sent, tc.sent)
			}
			if !tc.recorded {
				if after.Version != before.Version || !bytes.Equal(after.State, before.State) {
					t.Fatalf("a stale failure was recorded:\nbefore v%d %s\nafter  v%d %s", before.Version, before.State, after.Version, after.State)
				}
				if st.DeliveryError != nil {
					t.Fatalf("error %+v", st.DeliveryError)
				}
				return
			}
			if after.Version != before.Version+1 {
				t.Fatalf("version %d -> %d, want the failure recorded", before.Version, after.Version)
			}
			if e := h.viewError(after); e == nil || e.Code != DeliveryFailed {
				t.Fatalf("error %+v, want %s", e, DeliveryFailed)
			}
			// The failure waives the cool-down.
			if e := h.viewError(h.mustAct(id, actions.OTPResend, nil)); e != nil {
				t.Fatalf("resend shows %+v", e)
			}
		})
	}
}

// The passcode sent by a resend still enrolls after the superseded send
// failed late.
func TestStaleFailureKeepsTheNewPasscode(t *testing.T) {
	h := newEnrollHarness(t, 20*time.Millisecond)
	id := h.start()
	started, release := make(chan struct{}), make(chan struct{})
	h.msgr.script(blocked(started, release, delivery.Transient("http 503", nil)))
	h.createSMS(id)
	<-started
	h.clock.Advance(smsCoolDown)
	h.mustAct(id, actions.OTPResend, nil)
	close(release)
	h.waitDeliveries()
	// The resent passcode arrived: its cool-down holds.
	_, err := h.act(id, actions.OTPResend, nil)
	wantStatus(t, err, http.StatusTooManyRequests, engine.CodeRequestLimited)
	if x := h.mustAct(id, actions.DeviceActivate, &actions.ActivateDevice{OTP: h.msgr.otp(t, 2)}); x.Status != engine.StatusCompleted {
		t.Fatalf("activation: %+v", x)
	}
}

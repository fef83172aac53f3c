package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/storetest"
)

func mfaSettings() mfa.Settings {
	var s mfa.Settings
	s.Pairing.MaxAllowedDevices = 5
	return s
}

// hookStore is the memory store with a hook that runs once before the next
// execution write (to let a competing request in first) and optional
// injected errors.
type hookStore struct {
	*memory.Store
	mu          sync.Mutex
	beforeWrite func()
	getErr      error
}

func (h *hookStore) takeHook() func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.beforeWrite
	h.beforeWrite = nil
	return f
}

func (h *hookStore) setHook(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beforeWrite = f
}

func (h *hookStore) UpdateExecution(ctx context.Context, x store.Execution) error {
	if f := h.takeHook(); f != nil {
		f()
	}
	return h.Store.UpdateExecution(ctx, x)
}

func (h *hookStore) Commit(ctx context.Context, x store.Execution, writes ...store.Write) error {
	if f := h.takeHook(); f != nil {
		f()
	}
	return h.Store.Commit(ctx, x, writes...)
}

func (h *hookStore) GetExecution(ctx context.Context, envID, id string) (store.Execution, error) {
	h.mu.Lock()
	err := h.getErr
	h.mu.Unlock()
	if err != nil {
		return store.Execution{}, err
	}
	return h.Store.GetExecution(ctx, envID, id)
}

type harness struct {
	t      *testing.T
	clock  *storetest.Clock
	store  *hookStore
	env    *engine.Environment
	reg    *engine.StepRegistry
	sender *captureSender
	runner *engine.Runner
}

func newHarness(t *testing.T, settings mfa.Settings) *harness {
	t.Helper()
	h := &harness{t: t, clock: storetest.NewClock(), sender: &captureSender{}}
	h.store = &hookStore{Store: memory.New(h.clock.Now)}
	h.env = testEnv(t, settings)
	h.reg = stepRegistry(t, h.store, h.sender)
	h.runner = h.newRunner()
	for _, name := range []string{"valid-single-enrollment.json", "valid-email-then-totp.json", "valid-skip-branch.json"} {
		data, err := os.ReadFile(filepath.Join(flowsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		f := &engine.Flow{}
		if err := actions.DecodeStrict(data, f); err != nil {
			t.Fatal(err)
		}
		if created, err := h.runner.SaveFlow(context.Background(), h.env, f, false); err != nil || !created {
			t.Fatalf("SaveFlow(%s) = %v, %v", name, created, err)
		}
	}
	return h
}

// newRunner is another node over the same store.
func (h *harness) newRunner() *engine.Runner {
	return engine.NewRunner(h.store, h.reg, []*engine.Environment{h.env}, engine.Options{Now: h.clock.Now})
}

func (h *harness) start(flowID string, inputs map[string]any) *engine.Execution {
	h.t.Helper()
	x, err := h.runner.Start(context.Background(), h.env, flowID, inputs)
	if err != nil {
		h.t.Fatalf("Start(%s): %v", flowID, err)
	}
	return x
}

func (h *harness) act(id, name string, payload any) (*engine.Execution, error) {
	h.t.Helper()
	body := []byte{}
	if payload != nil {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			h.t.Fatal(err)
		}
	}
	a, err := actions.Decode(actions.ContentType(name), body)
	if err != nil {
		h.t.Fatalf("decode %s %s: %v", name, body, err)
	}
	return h.runner.Act(context.Background(), h.env, id, a)
}

func (h *harness) mustAct(id, name string, payload any) *engine.Execution {
	h.t.Helper()
	x, err := h.act(id, name, payload)
	if err != nil {
		h.t.Fatalf("%s: %v", name, err)
	}
	return x
}

func (h *harness) view(x *engine.Execution) engine.View {
	v, err := h.runner.View(context.Background(), h.env, x, "https://example.test/env1/flowExecutions/"+x.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

func wantAPIError(t *testing.T, err error, status int, code string) *engine.Error {
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

var alice = map[string]any{"user": map[string]any{"id": "alice", "email": "alice@example.com"}}

func TestStartValidation(t *testing.T) {
	h := newHarness(t, mfaSettings())
	tests := []struct {
		name   string
		flow   string
		inputs map[string]any
		target string
	}{
		{"nil inputs", "mfa-enrollment", nil, "inputs.user.id"},
		{"no user", "mfa-enrollment", map[string]any{"x": 1.0}, "inputs.user.id"},
		{"empty id", "mfa-enrollment", map[string]any{"user": map[string]any{"id": ""}}, "inputs.user.id"},
		{"blank id", "mfa-enrollment", map[string]any{"user": map[string]any{"id": "  \t"}}, "inputs.user.id"},
		{"numeric id", "mfa-enrollment", map[string]any{"user": map[string]any{"id": 42.0}}, "inputs.user.id"},
		{"user not an object", "mfa-enrollment", map[string]any{"user": "alice"}, "inputs.user.id"},
		{"unknown flow", "nope", alice, "flow.id"},
		{"bad email", "mfa-enrollment", map[string]any{"user": map[string]any{"id": "a", "email": "not-an-email"}}, "inputs.user.email"},
		{"bad phone", "mfa-enrollment", map[string]any{"user": map[string]any{"id": "a", "mobilePhone": "555-1234"}}, "inputs.user.mobilePhone"},
		{"id too long", "mfa-enrollment", map[string]any{"user": map[string]any{"id": strings.Repeat("u", 129)}}, "inputs.user.id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := h.runner.Start(context.Background(), h.env, tc.flow, tc.inputs)
			e := wantAPIError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
			if x != nil {
				t.Errorf("execution returned with an error: %+v", x)
			}
			if len(e.Details) == 0 || e.Details[0].Target != tc.target {
				t.Fatalf("details = %+v, want target %s", e.Details, tc.target)
			}
		})
	}
	if h.sender.count() != 0 {
		t.Fatal("a refused start sent a message")
	}
	// Dotted keys in the inputs are accepted too.
	x := h.start("mfa-enrollment", map[string]any{"user.id": "bob"})
	if x.UserID != "bob" || x.Status != "" || x.StepID != "enroll" {
		t.Fatalf("start with dotted user.id: %+v", x)
	}
}

func TestStartAndView(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("mfa-enrollment", alice)
	if x.Version != 1 || x.FlowID != "mfa-enrollment" || x.Ended() || !x.ExpiresAt.Equal(h.clock.Now().Add(engine.DefaultTTL)) {
		t.Fatalf("execution = %+v", x)
	}
	if p, ok := store.ExecutionPartition(x.ID); !ok || p != store.Partition("env1", "alice") {
		t.Fatalf("execution id %s does not carry the user's partition", x.ID)
	}
	got, err := h.runner.Get(context.Background(), h.env, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	v := h.view(got)
	if v.Status != "DEVICE_ENROLLMENT_REQUIRED" {
		t.Fatalf("status = %s", v.Status)
	}
	if want := []string{actions.DeviceCreate, actions.DeviceSkipEnrollment}; !reflect.DeepEqual(v.Actions, want) {
		t.Fatalf("actions = %v, want %v", v.Actions, want)
	}
	if !reflect.DeepEqual(v.Properties["allowedtypes"], []mfa.DeviceType{mfa.Email, mfa.SMS, mfa.Voice, mfa.TOTP}) {
		t.Fatalf("allowedtypes = %v", v.Properties["allowedtypes"])
	}
	if v.Properties["email"] != "alice@example.com" {
		t.Fatalf("properties = %v", v.Properties)
	}
	// Expiry: after the TTL of inactivity the execution is gone.
	h.clock.Advance(engine.DefaultTTL)
	_, err = h.runner.Get(context.Background(), h.env, x.ID)
	wantAPIError(t, err, http.StatusNotFound, engine.CodeNotFound)
	_, err = h.act(x.ID, actions.DeviceSkipEnrollment, nil)
	wantAPIError(t, err, http.StatusNotFound, engine.CodeNotFound)
}

func TestEmailThenTOTPFlow(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("email-then-totp", map[string]any{"user": map[string]any{"id": "alice", "email": "alice@example.com"}, "locale": "de-DE"})
	v := h.view(x)
	if v.Status != "DEVICE_ENROLLMENT_REQUIRED" || !reflect.DeepEqual(v.Properties["allowedtypes"], []mfa.DeviceType{mfa.Email}) {
		t.Fatalf("first view = %+v", v)
	}
	if want := []string{actions.DeviceCreate}; !reflect.DeepEqual(v.Actions, want) {
		t.Fatalf("actions = %v (skip is not configured on the first step)", v.Actions)
	}
	_, err := h.act(x.ID, actions.DeviceCreate, map[string]any{"type": "TOTP"})
	e := wantAPIError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
	if e.Details[0].Code != engine.DetailPolicyViolation {
		t.Fatalf("TOTP on the e-mail step: %v", e)
	}

	x = h.mustAct(x.ID, actions.DeviceCreate, map[string]any{"type": "EMAIL"})
	if x.Version != 2 || h.sender.count() != 1 {
		t.Fatalf("version %d, %d messages", x.Version, h.sender.count())
	}
	// de-DE was asked for; with no German text the built-in English goes.
	if m := h.sender.msgs[0]; m.Recipient != "alice@example.com" || m.Locale != "en" || m.EnvID != "env1" {
		t.Fatalf("message = %+v", m)
	}
	v = h.view(x)
	if v.Status != "ACTIVATION_REQUIRED" || !reflect.DeepEqual(v.Actions, []string{actions.DeviceActivate, actions.OTPResend, actions.DeviceDelete}) {
		t.Fatalf("view = %+v", v)
	}
	x = h.mustAct(x.ID, actions.DeviceActivate, map[string]any{"otp": h.sender.lastOTP(t)})

	// The e-mail step ended ENROLLED; the TOTP step runs with its mapped input.
	if x.StepID != "totp" || x.Ended() {
		t.Fatalf("after e-mail: step %q status %q error %+v", x.StepID, x.Status, x.Error)
	}
	first := x.Results["email"]
	devID, _ := engine.Lookup(first.Outputs, "device", "id").(string)
	if first.Result != "ENROLLED" || devID == "" {
		t.Fatalf("email result = %+v", first)
	}
	for _, y := range []*engine.Execution{x, reload(t, h, x.ID)} {
		vars, _ := engine.Lookup(y.StepInput, "template", "variables").(map[string]any)
		want := map[string]any{"firstDevice": devID, "firstType": "EMAIL", "note": "after EMAIL comes TOTP"}
		if !reflect.DeepEqual(vars, want) {
			t.Fatalf("totp step input variables = %#v, want %#v", vars, want)
		}
		if engine.Lookup(y.StepInput, "user", "id") != "alice" {
			t.Fatalf("totp step input = %v", y.StepInput)
		}
	}
	v = h.view(x)
	if v.Status != "DEVICE_ENROLLMENT_REQUIRED" || !reflect.DeepEqual(v.Properties["allowedtypes"], []mfa.DeviceType{mfa.TOTP}) ||
		!reflect.DeepEqual(v.Actions, []string{actions.DeviceCreate, actions.DeviceSkipEnrollment}) {
		t.Fatalf("second step view = %+v", v)
	}

	x = h.mustAct(x.ID, actions.DeviceCreate, map[string]any{"type": "TOTP", "nickname": "phone app"})
	v = h.view(x)
	dev, _ := v.Properties["device"].(map[string]any)
	secret, _ := dev["secret"].(string)
	if v.Status != "ACTIVATION_REQUIRED" || secret == "" {
		t.Fatalf("TOTP view = %+v", v)
	}
	if !reflect.DeepEqual(v.Actions, []string{actions.DeviceActivate, actions.DeviceDelete}) {
		t.Fatalf("TOTP actions = %v (no resend for TOTP)", v.Actions)
	}
	code, err := mfa.TOTPCode(secret, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	x = h.mustAct(x.ID, actions.DeviceActivate, map[string]any{"otp": code})
	if !x.Ended() || x.Status != engine.StatusCompleted || x.Error != nil {
		t.Fatalf("end = %+v", x)
	}
	if x.Results["totp"].Result != "ENROLLED" || len(x.Results) != 2 {
		t.Fatalf("results = %+v", x.Results)
	}
	devs, err := h.store.ListDevices(context.Background(), "env1", "alice")
	if err != nil || len(devs) != 2 {
		t.Fatalf("registry = %v, %v", devs, err)
	}
	if h.sender.count() != 1 {
		t.Fatalf("%d messages, want only the e-mail passcode", h.sender.count())
	}
	ev := h.view(reload(t, h, x.ID))
	if ev.Status != engine.StatusCompleted || len(ev.Actions) != 0 || ev.Properties["steps"] == nil {
		t.Fatalf("ended view = %+v", ev)
	}
}

func reload(t *testing.T, h *harness, id string) *engine.Execution {
	t.Helper()
	x, err := h.runner.Get(context.Background(), h.env, id)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestActOnEndedExecution(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("mfa-enrollment", alice)
	x = h.mustAct(x.ID, actions.DeviceSkipEnrollment, nil)
	if x.Status != engine.StatusCompleted || x.Results["enroll"].Result != "SKIPPED" {
		t.Fatalf("after skip: %+v", x)
	}
	for _, name := range actions.Names() {
		var payload any
		switch name {
		case actions.DeviceCreate:
			payload = map[string]any{"type": "EMAIL"}
		case actions.DeviceActivate:
			payload = map[string]any{"otp": "123456"}
		}
		_, err := h.act(x.ID, name, payload)
		e := wantAPIError(t, err, http.StatusConflict, engine.CodeActionNotAllowed)
		if !strings.Contains(e.Message, "COMPLETED") {
			t.Errorf("%s: message %q does not name the status", name, e.Message)
		}
	}
	if got := reload(t, h, x.ID); got.Version != x.Version {
		t.Fatalf("a refused action changed the execution: version %d -> %d", x.Version, got.Version)
	}
}

func TestActionNotAllowedInState(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("email-then-totp", alice)
	for _, name := range []string{actions.DeviceActivate, actions.OTPResend, actions.DeviceDelete, actions.DeviceSkipEnrollment} {
		var payload any
		if name == actions.DeviceActivate {
			payload = map[string]any{"otp": "123456"}
		}
		_, err := h.act(x.ID, name, payload)
		e := wantAPIError(t, err, http.StatusConflict, engine.CodeActionNotAllowed)
		if !strings.Contains(e.Message, "DEVICE_ENROLLMENT_REQUIRED") || !strings.Contains(e.Message, "device.create") {
			t.Errorf("%s: %q", name, e.Message)
		}
	}
	if got := reload(t, h, x.ID); got.Version != 1 {
		t.Fatalf("refused actions were saved: version %d", got.Version)
	}
}

func TestWrongPasscodeIsCountedAndSaved(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("mfa-enrollment", alice)
	x = h.mustAct(x.ID, actions.DeviceCreate, map[string]any{"type": "EMAIL"})
	right := h.sender.lastOTP(t)
	wrong := "000000"
	if wrong == right {
		wrong = "111111"
	}
	y, err := h.act(x.ID, actions.DeviceActivate, map[string]any{"otp": wrong})
	e := wantAPIError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
	if e.Details[0].Code != engine.DetailInvalidOTP || e.Details[0].InnerError["remainingAttempts"] != 2 {
		t.Fatalf("wrong passcode: %+v", e.Details)
	}
	if y == nil || y.Version != x.Version+1 {
		t.Fatalf("the failed attempt was not saved: %+v", y)
	}
	dev := h.view(reload(t, h, x.ID)).Properties["device"].(map[string]any)
	if dev["otp"].(map[string]any)["remainingAttempts"] != 2 {
		t.Fatalf("device view = %v", dev)
	}
	x = h.mustAct(x.ID, actions.DeviceActivate, map[string]any{"otp": right})
	if x.Status != engine.StatusCompleted {
		t.Fatalf("%+v", x)
	}
}

// Two nodes load the same version; the one that writes second loses with
// CONCURRENT_UPDATE and its side effects never run.
func TestConcurrentUpdateTwoRunners(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("mfa-enrollment", alice)
	other := h.newRunner()
	var otherErr error
	var otherX *engine.Execution
	h.store.setHook(func() {
		a, _ := actions.Decode(actions.ContentType(actions.DeviceCreate), []byte(`{"type":"SMS","phone":"+12015554567"}`))
		otherX, otherErr = other.Act(context.Background(), h.env, x.ID, a)
	})
	_, err := h.act(x.ID, actions.DeviceCreate, map[string]any{"type": "EMAIL"})
	wantAPIError(t, err, http.StatusConflict, engine.CodeConcurrentUpdate)
	if otherErr != nil || otherX.Version != 2 {
		t.Fatalf("the competing request: %v %+v", otherErr, otherX)
	}
	if h.sender.count() != 1 || h.sender.msgs[0].Method != "SMS" {
		t.Fatalf("messages = %+v; only the winner's passcode may be sent", h.sender.msgs)
	}
	got := reload(t, h, x.ID)
	dev := h.view(got).Properties["device"].(map[string]any)
	if got.Version != 2 || dev["type"] != mfa.SMS {
		t.Fatalf("stored: version %d device %v", got.Version, dev)
	}
}

// The same race on the enrolling write (Commit): no device is
// added by the loser.
func TestConcurrentUpdateOnEnrollment(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("mfa-enrollment", alice)
	x = h.mustAct(x.ID, actions.DeviceCreate, map[string]any{"type": "EMAIL"})
	otp := h.sender.lastOTP(t)
	h.store.setHook(func() {
		a, _ := actions.Decode(actions.ContentType(actions.DeviceDelete), nil)
		if _, err := h.newRunner().Act(context.Background(), h.env, x.ID, a); err != nil {
			t.Errorf("competing delete: %v", err)
		}
	})
	_, err := h.act(x.ID, actions.DeviceActivate, map[string]any{"otp": otp})
	wantAPIError(t, err, http.StatusConflict, engine.CodeConcurrentUpdate)
	if n, _ := h.store.CountDevices(context.Background(), "env1", "alice"); n != 0 {
		t.Fatalf("the losing enrollment added %d device(s)", n)
	}
	if v := h.view(reload(t, h, x.ID)); v.Status != "DEVICE_ENROLLMENT_REQUIRED" {
		t.Fatalf("status = %s", v.Status)
	}
}

func TestConcurrentActs(t *testing.T) {
	// The compare-and-set is under test, not the send budgets: every racer
	// spends them before it can win, so they are raised out of the way.
	settings := mfaSettings()
	settings.SendLimits.Address.Count, settings.SendLimits.User.Count = 100, 100
	h := newHarness(t, settings)
	x := h.start("mfa-enrollment", alice)
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := h.newRunner()
			a, _ := actions.Decode(actions.ContentType(actions.DeviceCreate), []byte(`{"type":"EMAIL"}`))
			<-startGate
			_, errs[i] = r.Act(context.Background(), h.env, x.ID, a)
		}(i)
	}
	close(startGate)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		var e *engine.Error
		if !errors.As(err, &e) || e.Status != http.StatusConflict ||
			(e.Code != engine.CodeConcurrentUpdate && e.Code != engine.CodeActionNotAllowed) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d acts succeeded, want exactly 1", ok)
	}
	if h.sender.count() != 1 {
		t.Fatalf("%d passcodes sent, want 1", h.sender.count())
	}
	if got := reload(t, h, x.ID); got.Version != 2 {
		t.Fatalf("version = %d", got.Version)
	}
}

func TestDeletedFlowMidRun(t *testing.T) {
	h := newHarness(t, mfaSettings())
	ctx := context.Background()
	x := h.start("skip-branch", alice)
	if err := h.runner.DeleteFlow(ctx, h.env, "skip-branch"); err != nil {
		t.Fatal(err)
	}
	// The running step still works with its copied configuration...
	x = h.mustAct(x.ID, actions.DeviceSkipEnrollment, nil)
	// ...but the transition to the next step needs the definition.
	if x.Status != engine.StatusFailed || !x.Ended() || x.Error == nil {
		t.Fatalf("after transition: %+v", x)
	}
	if x.Error.Code != "FLOW_FAILED" || !strings.Contains(x.Error.Message, "deleted") {
		t.Fatalf("error = %+v", x.Error)
	}
	if x.Results["first"].Result != "SKIPPED" {
		t.Fatalf("results = %+v", x.Results)
	}
	got := reload(t, h, x.ID)
	v := h.view(got)
	if v.Status != engine.StatusFailed || v.Properties["error"] == nil || len(v.Actions) != 0 {
		t.Fatalf("view = %+v", v)
	}
	_, err := h.act(x.ID, actions.DeviceSkipEnrollment, nil)
	e := wantAPIError(t, err, http.StatusConflict, engine.CodeActionNotAllowed)
	if !strings.Contains(e.Message, "FAILED") {
		t.Fatalf("message = %q", e.Message)
	}

	// A flow whose step ends without a next step needs no definition.
	y := h.start("mfa-enrollment", alice)
	if err := h.runner.DeleteFlow(ctx, h.env, "mfa-enrollment"); err != nil {
		t.Fatal(err)
	}
	y = h.mustAct(y.ID, actions.DeviceSkipEnrollment, nil)
	if y.Status != engine.StatusCompleted {
		t.Fatalf("single-step flow after delete: %+v", y)
	}
	// Deleting twice, or starting a deleted flow, is a 404 / 400.
	wantAPIError(t, h.runner.DeleteFlow(ctx, h.env, "mfa-enrollment"), http.StatusNotFound, engine.CodeNotFound)
	_, err = h.runner.Start(ctx, h.env, "mfa-enrollment", alice)
	wantAPIError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
}

// A flow replaced mid-run: the next step is taken from the new definition,
// and a next step that no longer exists fails the execution.
func TestReplacedFlowMidRun(t *testing.T) {
	h := newHarness(t, mfaSettings())
	ctx := context.Background()
	x := h.start("skip-branch", alice)
	f, err := h.runner.GetFlow(ctx, h.env, "skip-branch")
	if err != nil {
		t.Fatal(err)
	}
	first := f.StepDefinitions["first"]
	first.Outlets = map[string]engine.Outlet{"SKIPPED": {Next: "renamed"}}
	f.StepDefinitions = map[string]engine.StepDefinition{"first": first, "renamed": f.StepDefinitions["second"]}
	if _, err := h.runner.SaveFlow(ctx, h.env, f, false); err != nil {
		t.Fatal(err)
	}
	x = h.mustAct(x.ID, actions.DeviceSkipEnrollment, nil)
	if x.Status != engine.StatusFailed || !strings.Contains(x.Error.Message, `no step "second"`) {
		t.Fatalf("execution = %+v %+v", x, x.Error)
	}
}

func TestDeviceLimitOnCommit(t *testing.T) {
	settings := mfaSettings()
	settings.Pairing.MaxAllowedDevices = 1
	h := newHarness(t, settings)
	a := h.start("mfa-enrollment", alice)
	b := h.start("mfa-enrollment", alice)
	a = h.mustAct(a.ID, actions.DeviceCreate, map[string]any{"type": "EMAIL"})
	otpA := h.sender.lastOTP(t)
	b = h.mustAct(b.ID, actions.DeviceCreate, map[string]any{"type": "SMS", "phone": "+12015554567"})
	otpB := h.sender.lastOTP(t)
	if a = h.mustAct(a.ID, actions.DeviceActivate, map[string]any{"otp": otpA}); a.Status != engine.StatusCompleted {
		t.Fatalf("a = %+v", a)
	}
	_, err := h.act(b.ID, actions.DeviceActivate, map[string]any{"otp": otpB})
	e := wantAPIError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
	if e.Details[0].Target != "device" || e.Details[0].Code != engine.DetailLimitExceeded || !strings.Contains(e.Message, "maximum of 1") {
		t.Fatalf("limit error = %+v", e)
	}
	if got := reload(t, h, b.ID); got.Version != b.Version || got.Ended() {
		t.Fatalf("refused enrollment changed the execution: %+v", got)
	}
	// Creating a device once the limit is reached is refused up front.
	c := h.start("mfa-enrollment", alice)
	_, err = h.act(c.ID, actions.DeviceCreate, map[string]any{"type": "EMAIL"})
	e = wantAPIError(t, err, http.StatusBadRequest, engine.CodeInvalidData)
	if e.Details[0].Code != engine.DetailLimitExceeded {
		t.Fatalf("create over the limit: %+v", e)
	}
}

func TestStoreErrorsMapped(t *testing.T) {
	h := newHarness(t, mfaSettings())
	x := h.start("mfa-enrollment", alice)
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{store.ErrNotFound, http.StatusNotFound, engine.CodeNotFound},
		{fmt.Errorf("%w: dial tcp: refused", store.ErrUnavailable), http.StatusServiceUnavailable, engine.CodeServiceUnavailable},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, engine.CodeServiceUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError, engine.CodeUnexpected},
	}
	for _, tc := range tests {
		h.store.mu.Lock()
		h.store.getErr = tc.err
		h.store.mu.Unlock()
		_, err := h.runner.Get(context.Background(), h.env, x.ID)
		e := wantAPIError(t, err, tc.status, tc.code)
		if tc.status >= 500 && strings.Contains(e.Message, tc.err.Error()) {
			t.Errorf("message reveals the cause: %q", e.Message)
		}
		_, err = h.act(x.ID, actions.DeviceSkipEnrollment, nil)
		wantAPIError(t, err, tc.status, tc.code)
	}
}

func TestSaveFlow(t *testing.T) {
	h := newHarness(t, mfaSettings())
	ctx := context.Background()
	h.clock.Advance(time.Hour)
	f, err := h.runner.GetFlow(ctx, h.env, "mfa-enrollment")
	if err != nil {
		t.Fatal(err)
	}
	created := f.CreatedAt
	if created.IsZero() || !f.UpdatedAt.Equal(created) {
		t.Fatalf("timestamps = %v %v", f.CreatedAt, f.UpdatedAt)
	}
	// onlyIfAbsent leaves an existing flow alone.
	f.Name = "changed"
	if ok, err := h.runner.SaveFlow(ctx, h.env, f, true); err != nil || ok {
		t.Fatalf("SaveFlow(onlyIfAbsent) = %v, %v", ok, err)
	}
	if g, _ := h.runner.GetFlow(ctx, h.env, "mfa-enrollment"); g.Name == "changed" {
		t.Fatal("onlyIfAbsent replaced the flow")
	}
	if ok, err := h.runner.SaveFlow(ctx, h.env, f, false); err != nil || ok {
		t.Fatalf("SaveFlow(replace) = %v, %v", ok, err)
	}
	g, _ := h.runner.GetFlow(ctx, h.env, "mfa-enrollment")
	if g.Name != "changed" || !g.CreatedAt.Equal(created) || !g.UpdatedAt.After(created) {
		t.Fatalf("replaced flow = %+v", g)
	}
	// An invalid flow is not saved.
	bad := &engine.Flow{ID: "bad", Trigger: engine.Trigger{Next: "x"}}
	if _, err := h.runner.SaveFlow(ctx, h.env, bad, false); err == nil {
		t.Fatal("invalid flow saved")
	}
	if _, err := h.runner.GetFlow(ctx, h.env, "bad"); err == nil {
		t.Fatal("invalid flow stored")
	}
	list, err := h.runner.ListFlows(ctx, h.env)
	if err != nil || len(list) != 3 || list[0].ID != "email-then-totp" {
		t.Fatalf("ListFlows = %v, %v", list, err)
	}
}

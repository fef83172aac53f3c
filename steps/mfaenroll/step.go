// Package mfaenroll is the MFA_DEVICE_ENROLLMENT step (seed 003): it pairs
// one MFA device with the user, moving through DEVICE_ENROLLMENT_REQUIRED,
// ACTIVATION_REQUIRED (a passcode device) or PAIRING_REQUIRED and
// MOBILE_PAIRING_FAILURE (a device that pairs itself, a phone), and ends
// ENROLLED (outputs device.id and device.type) or SKIPPED.
package mfaenroll

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/store"
)

// TypeName is the step's `type` in flow definitions.
const TypeName = "MFA_DEVICE_ENROLLMENT"

// Deps are the services the step uses.
type Deps struct {
	Devices     store.Devices     // the registry, to count a user's devices
	PairingKeys store.PairingKeys // the user's valid pairing keys
	// Applications lists the mobile applications a policy lets pair (nil:
	// none, and MOBILE is never offered).
	Applications ApplicationLister
	Factors      *factor.Registry      // one factor per kind of device
	Regulator    *regulation.Regulator // attempts per user, send budgets
	Log          zerolog.Logger
}

// ApplicationLister lists the mobile applications a policy lets pair.
type ApplicationLister interface {
	Allowed(ctx context.Context, env *engine.Environment, policy *mfa.Policy) ([]mfa.Application, error)
}

// Step implements engine.StepType.
type Step struct{ deps Deps }

// New returns the step type.
func New(deps Deps) *Step { return &Step{deps: deps} }

var _ engine.StepType = (*Step)(nil)

func (s *Step) Name() string      { return TypeName }
func (s *Step) Results() []string { return []string{Enrolled, Skipped} }

func (s *Step) ValidateConfig(env *engine.Environment, raw json.RawMessage) []engine.ErrorDetail {
	return validateConfig(env, raw)
}

func (s *Step) ValidateInput(in map[string]any) []engine.ErrorDetail { return validateInput(in) }

// state is what the step saves between requests. Short JSON names keep
// Redis memory per execution small.
type state struct {
	Status  string          `json:"s"`
	Pending *factor.Pending `json:"p,omitempty"` // the device being enrolled, not yet in the registry

	// Step-wide guards. They outlive the pending device, so that
	// device.delete followed by device.create is no way around a resend
	// cool-down, a failure cool-down or the attempt limits.
	LastSentTo  string    `json:"lt,omitempty"` // address of the last passcode sent
	LastSentAt  time.Time `json:"ls,omitzero"`
	Sent        int       `json:"n,omitempty"` // passcodes sent by this step, at most maxPasscodes
	CreateAfter time.Time `json:"ca,omitzero"` // a failure cool-down carried over a delete
	// LockoutUntil mirrors the user's mfaSettings.lockout (kept by the
	// regulation, per user) as this execution learned of it: no create,
	// resend or activate before it.
	LockoutUntil time.Time `json:"lo,omitzero"`

	// DeliveryError says why the last passcode did not reach the user; it
	// is shown until the next create, resend or delete.
	DeliveryError *engine.ErrorDetail `json:"de,omitempty"`
	// PairingError is why the pairing failed (MOBILE_PAIRING_FAILURE).
	PairingError *engine.ErrorDetail `json:"pe,omitempty"`
}

// run is one call's working set.
type run struct {
	step   *Step
	sc     *engine.StepContext
	cfg    *Config
	policy *mfa.Policy
	in     input
	st     state
	// keyExpired: the pending pairing key expired since the state was
	// saved (the state shows MOBILE_PAIRING_FAILURE without a write).
	keyExpired bool
}

func (s *Step) load(sc *engine.StepContext) (*run, error) {
	cfg, details := parseConfig(sc.Config)
	if details != nil {
		return nil, engine.AsError(fmt.Errorf("step %s: stored configuration invalid: %v", sc.StepID, details))
	}
	pol, ok := cfg.policy(sc.Env)
	if !ok {
		return nil, &engine.Error{Status: http.StatusInternalServerError, Code: engine.CodeUnexpected,
			Message: "The step's device authentication policy no longer exists; ask the administrator to fix the flow."}
	}
	r := &run{step: s, sc: sc, cfg: cfg, policy: pol, in: readInput(sc.Input), st: state{Status: DeviceEnrollmentRequired}}
	if len(sc.State) > 0 && string(sc.State) != "null" {
		if err := json.Unmarshal(sc.State, &r.st); err != nil {
			return nil, engine.AsError(fmt.Errorf("step %s: decode state: %w", sc.StepID, err))
		}
	}
	// A pairing key that expired while nobody tried it is a failure as
	// soon as it expires, for the poll as for any action, with no write.
	if pr, ok := s.pairer(r.st.Pending); ok && r.st.Status == PairingRequired && !sc.Now.Before(pr.ExpiresAt(*r.st.Pending)) {
		r.st.Status = MobilePairingFailure
		r.st.PairingError = &engine.ErrorDetail{Code: factor.PairingKeyExpired, Message: expiredMessage}
		r.keyExpired = true
	}
	return r, nil
}

func (r *run) machine() machine {
	_, resendable := r.step.reissuer(r.st.Pending)
	return machineAt(r.st.Status, r.cfg.AllowSkip, resendable)
}

// links are the actions the state machine allows, less device.activate
// while no proof can be tried (a void passcode, a cool-down, a lockout):
// posting it then gets the reason (400 or 429), but it is not offered.
func (r *run) links() []string {
	all := r.machine().allowed
	if r.st.Pending == nil || r.usable() {
		return all
	}
	out := all[:0:0]
	for _, a := range all {
		if a != actions.DeviceActivate {
			out = append(out, a)
		}
	}
	return out
}

func (r *run) usable() bool {
	if r.sc.Now.Before(r.st.LockoutUntil) {
		return false
	}
	e, ok := r.step.deps.Factors.Enroller(r.st.Pending.Type)
	return !ok || e.Usable(*r.st.Pending, r.policy, r.sc.Now)
}

// Begin starts in DEVICE_ENROLLMENT_REQUIRED.
func (s *Step) Begin(_ context.Context, sc *engine.StepContext) (*engine.Outcome, error) {
	if _, err := s.load(sc); err != nil {
		return nil, err
	}
	return &engine.Outcome{State: state{Status: DeviceEnrollmentRequired}}, nil
}

// Act checks the action against the state machine, then does its work.
func (s *Step) Act(ctx context.Context, sc *engine.StepContext, a actions.Action) (*engine.Outcome, error) {
	r, err := s.load(sc)
	if err != nil {
		return nil, err
	}
	m := r.machine()
	if a.Name == actions.MobilePair {
		return s.pair(ctx, r, m, a.Payload.(*actions.Pairing))
	}
	if err := m.check(a.Name); err != nil {
		return nil, err
	}
	var out *engine.Outcome
	if a.Name != actions.DeviceActivate {
		// A new passcode, a new device or none: the last delivery's
		// failure is history.
		r.st.DeliveryError = nil
	}
	switch a.Name {
	case actions.DeviceCreate:
		out, err = s.create(ctx, r, a.Payload.(*actions.CreateDevice))
	case actions.DeviceActivate:
		out, err = s.activate(ctx, r, a.Payload.(*actions.ActivateDevice))
	case actions.OTPResend:
		out, err = s.resend(ctx, r)
	case actions.DeviceDelete:
		out = &engine.Outcome{Writes: r.voidPairingKey()}
		r.st.Pending, r.st.PairingError = nil, nil
	case actions.DeviceSkipEnrollment:
		out = &engine.Outcome{Result: Skipped, Writes: r.voidPairingKey()}
	}
	if err != nil {
		return nil, err
	}
	if out.Err != nil {
		// A refused attempt is counted but moves nothing.
		out.State = r.st
		return out, nil
	}
	event := a.Name
	if _, pairs := s.pairer(r.st.Pending); pairs && a.Name == actions.DeviceCreate {
		event = createForPairing
	}
	if r.st.Status, err = m.advance(ctx, event); err != nil {
		return nil, err
	}
	if out.Result == "" {
		out.State = r.st
	}
	return out, nil
}

// View renders the state with its properties and allowed actions.
func (s *Step) View(ctx context.Context, sc *engine.StepContext) (engine.View, error) {
	r, err := s.load(sc)
	if err != nil {
		s.deps.Log.Error().Err(err).Str("execution", engine.LogID(sc.ExecutionID)).Msg("cannot render step")
		return engine.View{Status: engine.StatusFailed, Properties: map[string]any{}, Actions: []string{}}, nil
	}
	props := map[string]any{}
	var changesAt time.Time
	switch r.st.Status {
	case DeviceEnrollmentRequired, MobilePairingFailure:
		types, apps, err := s.offer(ctx, r)
		if err != nil {
			return engine.View{}, err
		}
		props["allowedtypes"] = types
		// The seed's mfaSettings: what a client shows (pairing, lockout);
		// send limits and number rules are the service's business.
		props["mfaSettings"] = map[string]any{"pairing": sc.Env.MFASettings.Pairing, "lockout": sc.Env.MFASettings.Lockout}
		shown := make([]map[string]string, 0, len(apps))
		for _, a := range apps {
			shown = append(shown, map[string]string{"id": a.ID, "name": a.Name})
		}
		props["applications"] = shown
		if r.in.Email != "" {
			props["email"] = r.in.Email
		}
		if r.in.Phone != "" {
			props["mobilePhone"] = r.in.Phone
		}
	case ActivationRequired:
		props["device"] = s.deviceView(r)
		if r.st.DeliveryError != nil {
			props["error"] = r.st.DeliveryError
		}
	case PairingRequired:
		props["device"] = s.deviceView(r)
		if pr, ok := s.pairer(r.st.Pending); ok {
			props["pairingKey"] = pr.PairingView(*r.st.Pending, sc.SelfURL)
			changesAt = pr.ExpiresAt(*r.st.Pending)
		}
	}
	if r.st.Status == MobilePairingFailure {
		if r.st.Pending != nil {
			props["device"] = s.deviceView(r)
		}
		if r.st.PairingError != nil {
			props["error"] = r.st.PairingError
		}
	}
	if r.sc.Now.Before(r.st.LockoutUntil) {
		props["lockedUntil"] = r.st.LockoutUntil.UTC()
		if changesAt.IsZero() || r.st.LockoutUntil.Before(changesAt) {
			changesAt = r.st.LockoutUntil
		}
	}
	return engine.View{Status: r.st.Status, Properties: props, Actions: r.links(), ChangesAt: changesAt}, nil
}

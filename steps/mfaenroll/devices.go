package mfaenroll

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/store"
)

// The step's device actions. What is the same for every kind of device is
// here: the type's policy, the nickname, the device limit, the step-wide
// cool-downs and the lockout, the passcode cap. What a kind of device
// needs of its own (its address, secret, proof, record and view) is its
// factor's (package factor).

const maxNickname = 100

func invalid(target, code, msg string) error { return engine.InvalidField(target, code, msg) }

// enroller is the factor of t; every pairable type has one.
func (s *Step) enroller(t mfa.DeviceType) (factor.Enroller, error) {
	e, ok := s.deps.Factors.Enroller(t)
	if !ok {
		return nil, invalid("type", engine.DetailPolicyViolation, fmt.Sprintf("%s devices cannot be enrolled by this service", t))
	}
	return e, nil
}

// reissuer is the pending device's factor when it can send a new passcode.
func (s *Step) reissuer(p *factor.Pending) (factor.Reissuer, bool) {
	if p == nil {
		return nil, false
	}
	e, ok := s.deps.Factors.Enroller(p.Type)
	if !ok {
		return nil, false
	}
	re, ok := e.(factor.Reissuer)
	return re, ok
}

// begin is the factor's view of this step's request.
func (r *run) begin(ctx context.Context, p *actions.CreateDevice, id string) factor.Begin {
	return factor.Begin{Env: r.sc.Env, EnvID: r.sc.Env.ID, Settings: &r.sc.Env.MFASettings, Policy: r.policy,
		ExecutionID: r.sc.ExecutionID, BaseURL: engine.BaseURL(ctx),
		User:    factor.User{ID: r.in.UserID, Username: r.in.Username, Email: r.in.Email, Phone: r.in.Phone},
		Message: factor.Message{Locale: r.in.Locale, Variant: r.cfg.variant(), Variables: r.in.Variables},
		Action:  p, ID: id, Now: r.sc.Now}
}

// create handles device.create.
func (s *Step) create(ctx context.Context, r *run, p *actions.CreateDevice) (*engine.Outcome, error) {
	if p.Type == "" {
		return nil, invalid("type", engine.DetailRequired, "is required")
	}
	t, ok := mfa.ParseDeviceType(p.Type)
	if !ok {
		return nil, invalid("type", engine.DetailInvalidValue, fmt.Sprintf("unknown device type %q", p.Type))
	}
	if !r.webauthnAllows(t) {
		return nil, invalid("webauthn.compatibility", DetailWebAuthnNotAllowed,
			fmt.Sprintf("%s devices are not allowed by the step's input webauthn.compatibility %s", t, r.compatibility()))
	}
	if !r.policy.Pairable(t) || !s.deps.Factors.Supports(t) {
		allowed, _, err := s.offer(ctx, r)
		if err != nil {
			return nil, err
		}
		return nil, invalid("type", engine.DetailPolicyViolation,
			fmt.Sprintf("%s devices cannot be enrolled here; allowed types: %v", t, allowed))
	}
	if len(p.Nickname) > maxNickname {
		return nil, invalid("nickname", engine.DetailInvalidValue, fmt.Sprintf("must be at most %d characters", maxNickname))
	}
	if p.Application != nil && t != mfa.Mobile {
		return nil, invalid("application.id", engine.DetailInvalidValue, "is only for MOBILE devices")
	}
	if p.RP != nil && t != mfa.Platform && t != mfa.SecurityKey {
		return nil, invalid("rp", engine.DetailInvalidValue, "is only for PLATFORM and SECURITY_KEY devices")
	}
	e, _ := s.deps.Factors.Enroller(t) // Supports said there is one
	normalized := *p
	normalized.Type = string(t)
	b := r.begin(ctx, &normalized, store.NewID())
	address, err := e.Target(b)
	if err != nil {
		return nil, err
	}
	if err := r.createGuard(ctx, t, address); err != nil {
		return nil, err
	}
	if e.Activation() == factor.ByPairing {
		// A pairing key costs no send budget, but each leaves an index
		// entry behind: the step's cap bounds them as it bounds passcodes.
		if err := r.sendLimitGuard(); err != nil {
			return nil, err
		}
	}
	// The device count and the send budgets are two round trips that do
	// not depend on each other: run them at once.
	var n int
	var countErr error
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		n, countErr = s.deps.Devices.CountDevices(ctx, r.sc.Env.ID, r.in.UserID)
	}()
	var hold *regulation.Hold
	var holdErr error
	if address != "" {
		hold, holdErr = s.deps.Regulator.Reserve(ctx, r.sc.Env, r.in.UserID, t, address)
	}
	<-counted
	max := r.sc.Env.MFASettings.Pairing.MaxAllowedDevices
	switch {
	case countErr != nil || n >= max:
		if hold != nil {
			hold.Release(ctx)
		}
		if countErr != nil {
			return nil, engine.Unavailable(countErr)
		}
		return nil, invalid("type", engine.DetailLimitExceeded,
			fmt.Sprintf("the user already has the maximum of %d devices; delete one first", max))
	case holdErr != nil:
		return nil, holdErr
	}
	pending, send, err := e.Begin(ctx, b, address)
	if err != nil {
		return nil, err
	}
	out := &engine.Outcome{Writes: r.voidPairingKey()}
	r.st.Pending, r.st.PairingError = &pending, nil
	if pr, ok := s.pairer(&pending); ok {
		r.st.Sent++
		// The new key joins the user's valid keys with the execution that
		// holds it, in one commit; its index entry was written before.
		key := pr.PairingKey(pending)
		out.Writes = append(out.Writes, store.Write{Op: store.AddPairingKey,
			Device: store.Device{EnvID: r.sc.Env.ID, UserID: r.in.UserID}, PairingKey: &key})
	}
	if send != nil {
		out.After = append(out.After, s.sent(r, send))
	}
	return out, nil
}

// offer is what the step offers now: the policy's pairable types that a
// factor enrolls (MOBILE only when an application it allows exists) and
// the applications that may pair.
func (s *Step) offer(ctx context.Context, r *run) ([]mfa.DeviceType, []mfa.Application, error) {
	apps := []mfa.Application{}
	if r.policy.Pairable(mfa.Mobile) && s.deps.Applications != nil {
		var err error
		if apps, err = s.deps.Applications.Allowed(ctx, r.sc.Env, r.policy); err != nil {
			return nil, nil, err
		}
	}
	out := []mfa.DeviceType{}
	for _, t := range r.policy.PairableTypes() {
		if s.deps.Factors.Supports(t) && (t != mfa.Mobile || len(apps) > 0) && r.webauthnAllows(t) {
			out = append(out, t)
		}
	}
	return out, apps, nil
}

// DetailWebAuthnNotAllowed: device.create of a WebAuthn type the step's
// input webauthn.compatibility excludes.
const DetailWebAuthnNotAllowed = "WEBAUTHN_NOT_ALLOWED"

// compatibility is the step's webauthn.compatibility (FULL by default).
func (r *run) compatibility() string {
	if r.in.Compatibility == "" {
		return "FULL"
	}
	return strings.ToUpper(r.in.Compatibility)
}

// webauthnAllows: FULL allows PLATFORM and SECURITY_KEY, SECURITY_KEY_ONLY
// the latter, NONE neither; other types are not its business.
func (r *run) webauthnAllows(t mfa.DeviceType) bool {
	switch t {
	case mfa.Platform:
		return r.compatibility() == "FULL"
	case mfa.SecurityKey:
		return r.compatibility() != "NONE"
	}
	return true
}

// pairer is the pending device's factor when the device pairs itself.
func (s *Step) pairer(p *factor.Pending) (factor.Pairer, bool) {
	if p == nil {
		return nil, false
	}
	e, ok := s.deps.Factors.Enroller(p.Type)
	if !ok || e.Activation() != factor.ByPairing {
		return nil, false
	}
	pr, ok := e.(factor.Pairer)
	return pr, ok
}

// voidPairingKey is the write that takes the pending device's pairing key
// out of the user's valid keys (none when it has none).
func (r *run) voidPairingKey() []store.Write {
	pr, ok := r.step.pairer(r.st.Pending)
	if !ok {
		return nil
	}
	key := pr.PairingKey(*r.st.Pending)
	return []store.Write{{Op: store.DropPairingKey, Device: store.Device{EnvID: r.sc.Env.ID, UserID: r.in.UserID}, PairingKey: &key}}
}

// sent counts a passcode the factor is about to send and returns the
// effect that sends it once the state is saved, recording a failure.
func (s *Step) sent(r *run, send factor.Send) engine.Effect {
	d := *r.st.Pending
	r.st.LastSentTo, r.st.LastSentAt = d.Address, r.sc.Now
	r.st.Sent++
	ref := sendRef{device: d.ID, seq: r.st.Sent}
	return func(ctx context.Context) engine.Followup {
		err := send(ctx)
		if err == nil {
			return nil
		}
		return s.recordDeliveryFailure(ref, deliveryFailure(err, &d))
	}
}

// sendRef names one passcode send: the device and the step's send count.
type sendRef struct {
	device string
	seq    int
}

// deliveryFailure is the error a client shows when a passcode did not
// arrive. The cause (provider, status) is in the delivery log; the client
// learns whether to fix the address or to try again.
func deliveryFailure(err error, d *factor.Pending) *engine.ErrorDetail {
	to := mfa.MaskPhone(d.Address)
	if d.Type == mfa.Email {
		to = mfa.MaskEmail(d.Address)
	}
	if delivery.IsMisconfigured(err) {
		// Our fault (no channel, credentials or TLS refused): the address
		// may well be right, so the user is not sent to check it.
		return &engine.ErrorDetail{Code: DeliveryUnavailable, Message: fmt.Sprintf(
			"The passcode could not be sent to %s: sending %s passcodes is not available at the moment. Ask for a new passcode (otp.resend) later, or choose another kind of device.", to, d.Type)}
	}
	if delivery.IsPermanent(err) {
		return &engine.ErrorDetail{Code: DeliveryFailed, Message: fmt.Sprintf(
			"The passcode could not be delivered to %s: the message was refused. Check the address and create the device again, or ask for a new passcode (otp.resend).", to)}
	}
	return &engine.ErrorDetail{Code: DeliveryUnavailable, Message: fmt.Sprintf(
		"The passcode could not be delivered to %s right now. Ask for a new passcode (otp.resend) in a moment.", to)}
}

// Delivery error codes, shown as the execution's `error` in
// ACTIVATION_REQUIRED.
const (
	DeliveryFailed      = "DELIVERY_FAILED"      // permanent: the provider refused the message (the address)
	DeliveryUnavailable = "DELIVERY_UNAVAILABLE" // transient failures outlasted the retries, or the channel is misconfigured
)

// recordDeliveryFailure returns the Followup that puts a failed delivery
// into the state, unless the execution has moved on (another passcode was
// sent, the device was deleted, the step ended). A passcode that never
// arrived does not hold the resend cool-down: the user may ask again at
// once (the step's passcode limit still counts it).
func (s *Step) recordDeliveryFailure(sent sendRef, failure *engine.ErrorDetail) engine.Followup {
	return func(sc *engine.StepContext) (any, bool, error) {
		r, err := s.load(sc)
		if err != nil {
			return nil, false, err
		}
		d := r.st.Pending
		if r.st.Status != ActivationRequired || d == nil || d.ID != sent.device || r.st.Sent != sent.seq {
			return nil, false, nil
		}
		r.st.DeliveryError = failure
		if re, ok := s.reissuer(d); ok {
			undelivered := re.Undelivered(*d)
			r.st.Pending = &undelivered
		}
		r.st.LastSentAt = time.Time{}
		return r.st, true, nil
	}
}

// resend handles otp.resend: a fresh passcode replaces the old one, no
// sooner than the factor allows.
func (s *Step) resend(ctx context.Context, r *run) (*engine.Outcome, error) {
	if err := r.lockoutGuard(ctx); err != nil {
		return nil, err
	}
	d := r.st.Pending
	re, ok := s.reissuer(d)
	if !ok {
		return nil, engine.AsError(fmt.Errorf("otp.resend for a %s device", d.Type))
	}
	if err := re.CheckResend(*d, r.policy, r.sc.Now); err != nil {
		return nil, err
	}
	if err := r.sendLimitGuard(); err != nil {
		return nil, err
	}
	if err := s.deps.Regulator.Spend(ctx, r.sc.Env, r.in.UserID, d.Type, d.Address); err != nil {
		return nil, err
	}
	pending, send, err := re.Reissue(ctx, r.begin(ctx, &actions.CreateDevice{Type: string(d.Type), Nickname: d.Nickname}, d.ID), *d)
	if err != nil {
		return nil, err
	}
	r.st.Pending = &pending
	return &engine.Outcome{After: []engine.Effect{s.sent(r, send)}}, nil
}

// activate handles device.activate: the factor judges the proof; a right
// one enrolls the device, a wrong one is counted, by the factor for the
// device and by the step towards mfaSettings.lockout.
func (s *Step) activate(ctx context.Context, r *run, p *actions.ActivateDevice) (*engine.Outcome, error) {
	d := r.st.Pending
	e, err := s.enroller(d.Type)
	if err != nil {
		return nil, err
	}
	// A malformed proof is a 400 even during a lockout.
	switch e.Activation() {
	case factor.ByPasscode:
		if err := factor.CheckPasscodeProof(p); err != nil {
			return nil, err
		}
	case factor.ByCeremony:
		if err := factor.CheckCeremonyProof(p); err != nil {
			return nil, err
		}
	}
	if err := r.lockoutGuard(ctx); err != nil {
		return nil, err
	}
	// Counted before it is judged, for the user, in the store: parallel
	// guesses, other executions and other nodes all count.
	limit := e.Attempts(*d, r.policy)
	attempt, err := s.deps.Regulator.Attempt(ctx, r.sc.Env, r.in.UserID, limit, r.sc.Now)
	if err != nil {
		return nil, err // the user is locked out (429), or the store is down
	}
	if !attempt.Admitted() {
		// Refused unjudged: nothing is written, so that a flood of refused
		// guesses cannot make a right one lose its write.
		return nil, spentAttempts(limit, attempt, r.sc.Now)
	}
	v, err := e.Activate(ctx, factor.Activate{EnvID: r.sc.Env.ID, UserID: r.in.UserID, Policy: r.policy, Pending: *d, Proof: p, Now: r.sc.Now, Attempt: attempt.SubjectAttempts})
	if err != nil {
		return nil, err
	}
	if !v.OK {
		return s.refused(r, e, v, attempt), nil
	}
	v.Device.Policy = r.policy.ID
	data, err := v.Device.Marshal()
	if err != nil {
		return nil, engine.AsError(err)
	}
	return &engine.Outcome{
		Result:  Enrolled,
		Outputs: map[string]any{"device": map[string]any{"id": v.Device.ID, "type": v.Device.Type}},
		Writes: []store.Write{{Op: store.CreateDevice,
			Device:     store.Device{EnvID: r.sc.Env.ID, UserID: r.in.UserID, ID: v.Device.ID, Version: 1, Data: data},
			MaxDevices: r.sc.Env.MFASettings.Pairing.MaxAllowedDevices},
			regulation.Settlement(r.sc.Env.ID, r.in.UserID, limit.Subject)},
	}, nil
}

// spentAttempts is the answer to a proof the regulation did not let be
// judged: the pending device's attempts are spent (a void passcode: 400;
// a cool-down: 429).
func spentAttempts(limit factor.AttemptLimit, attempt store.AttemptResult, now time.Time) error {
	until := attempt.SubjectLockedUntil
	if limit.StaysVoid {
		msg := "the passcode is void; request a new one (otp.resend)"
		if now.Before(until) {
			msg += " after " + until.UTC().Format(time.RFC3339)
		}
		e := engine.InvalidField("otp", engine.DetailOTPVoid, msg)
		e.Details[0].InnerError = map[string]any{"remainingAttempts": 0}
		return e
	}
	return engine.TooSoon("Too many wrong passcodes; try again after the cool-down.", until.Sub(now))
}

// refused answers a wrong proof: the factor's 400 (counted for the device
// and the user by the regulation before it was judged), or the lockout's
// when this attempt reached mfaSettings.lockout.
func (s *Step) refused(r *run, e factor.Enroller, v factor.Verdict, attempt store.AttemptResult) *engine.Outcome {
	deviceID := r.st.Pending.ID
	record := func(st *state, now time.Time) {
		p := e.Counted(*st.Pending, r.policy, attempt.SubjectAttempts, now)
		if until := attempt.UserLockedUntil; !until.IsZero() {
			p = e.LockedOut(p, r.policy, until)
			st.LockoutUntil, st.CreateAfter = until, until
		} else if lim := e.Attempts(p, r.policy); attempt.SubjectAttempts >= lim.Count {
			st.CreateAfter = attempt.SubjectLockedUntil
		}
		st.Pending = &p
	}
	record(&r.st, r.sc.Now)
	out := &engine.Outcome{Err: v.Refusal, OnConflict: func(sc *engine.StepContext) (any, bool, error) {
		now, err := s.load(sc)
		if err != nil || now.st.Pending == nil || now.st.Pending.ID != deviceID {
			return nil, false, err
		}
		record(&now.st, sc.Now)
		return now.st, true, nil
	}}
	if until := attempt.UserLockedUntil; !until.IsZero() {
		lockout := r.sc.Env.MFASettings.Lockout
		field, what := "otp", "passcode"
		if e.Activation() == factor.ByCeremony {
			field, what = "attestation", "attestation"
		}
		err := engine.InvalidField(field, engine.DetailOTPVoid, fmt.Sprintf(
			"the %s is refused; after %d refused attempts the user is locked until %s",
			what, lockout.FailureCount, until.UTC().Format(time.RFC3339)))
		err.Details[0].InnerError = map[string]any{"remainingAttempts": 0, "lockedUntil": until.UTC().Format(time.RFC3339)}
		out.Err = err
	}
	return out
}

// lockoutGuard refuses every passcode action while the user is locked out
// (mfaSettings.lockout). The execution's mirror of the lockout is checked
// first; only while it says locked is the regulation asked, which may have
// lifted it (an administrator) since.
func (r *run) lockoutGuard(ctx context.Context) error {
	now := r.sc.Now
	if !now.Before(r.st.LockoutUntil) {
		return nil
	}
	l, err := r.step.deps.Regulator.Lockout(ctx, r.sc.Env, r.in.UserID, now)
	if err != nil {
		return err
	}
	if l.LockedUntil.IsZero() {
		if r.st.CreateAfter.Equal(r.st.LockoutUntil) {
			r.st.CreateAfter = time.Time{}
		}
		r.st.LockoutUntil = time.Time{}
		return nil
	}
	r.st.LockoutUntil = l.LockedUntil
	return engine.TooSoon("Too many wrong passcodes; enrollment is locked until "+
		l.LockedUntil.UTC().Format(time.RFC3339)+".", l.LockedUntil.Sub(now))
}

// createGuard applies, to a new device, the limits the step has run into:
// a lockout, a failure cool-down of a deleted device, the resend cool-down
// when the passcode would go to the address of the last one (a deleted
// device's), and the number of passcodes one step may send.
func (r *run) createGuard(ctx context.Context, t mfa.DeviceType, address string) error {
	if err := r.lockoutGuard(ctx); err != nil {
		return err
	}
	now := r.sc.Now
	if now.Before(r.st.CreateAfter) {
		return engine.TooSoon("Too many wrong passcodes; a new device can be created after the cool-down.", r.st.CreateAfter.Sub(now))
	}
	if address == "" {
		return nil
	}
	if strings.EqualFold(address, r.st.LastSentTo) {
		cool := r.policy.OTPMethodFor(t).OTP.ResendCoolDown.Std()
		if next := r.st.LastSentAt.Add(cool); now.Before(next) {
			return engine.TooSoon(fmt.Sprintf("A passcode was sent to this address less than %s ago; wait before asking for another.", cool), next.Sub(now))
		}
	}
	return r.sendLimitGuard()
}

// maxPasscodes bounds what one enrollment step can send, whatever the
// addresses, and the pairing keys it makes: an execution id must not
// become a way to spam or to fill the store.
const maxPasscodes = 10

func (r *run) sendLimitGuard() error {
	if r.st.Sent >= maxPasscodes {
		return engine.LimitReached(fmt.Sprintf("This enrollment has sent the maximum of %d passcodes and pairing keys; start a new one.", maxPasscodes))
	}
	return nil
}

// deviceView is the pending device as the client sees it: its factor's view.
func (s *Step) deviceView(r *run) map[string]any {
	d := r.st.Pending
	if d == nil {
		return nil
	}
	e, ok := s.deps.Factors.Enroller(d.Type)
	if !ok {
		return map[string]any{"id": d.ID, "type": d.Type, "createdAt": d.CreatedAt}
	}
	return e.View(*d, r.policy, r.sc.SelfURL)
}

// ResourceNames are the resources the factors serve.
func (s *Step) ResourceNames() []string { return s.deps.Factors.ResourceNames() }

// Resource serves a resource of the pending device's factor (the QR code).
func (s *Step) Resource(_ context.Context, sc *engine.StepContext, name string) (string, []byte, error) {
	r, err := s.load(sc)
	if err != nil {
		return "", nil, err
	}
	notFound := engine.NotFound(strings.TrimSuffix(name, ".png"))
	if (r.st.Status != ActivationRequired && r.st.Status != PairingRequired) || r.st.Pending == nil {
		return "", nil, notFound
	}
	e, _ := s.deps.Factors.Enroller(r.st.Pending.Type)
	rs, ok := e.(factor.Resourcer)
	if !ok {
		return "", nil, notFound
	}
	for _, n := range rs.ResourceNames() {
		if n == name {
			return rs.Resource(*r.st.Pending, name)
		}
	}
	return "", nil, notFound
}

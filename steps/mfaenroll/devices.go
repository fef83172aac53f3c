package mfaenroll

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

const maxNickname = 100

func invalid(target, code, msg string) error { return engine.InvalidField(target, code, msg) }

// create handles device.create for EMAIL, SMS, VOICE and TOTP.
func (s *Step) create(ctx context.Context, r *run, p *actions.CreateDevice) (*engine.Outcome, error) {
	if p.Type == "" {
		return nil, invalid("type", engine.DetailRequired, "is required")
	}
	t, ok := mfa.ParseDeviceType(p.Type)
	if !ok {
		return nil, invalid("type", engine.DetailInvalidValue, fmt.Sprintf("unknown device type %q", p.Type))
	}
	if !r.policy.Pairable(t) {
		return nil, invalid("type", engine.DetailPolicyViolation,
			fmt.Sprintf("%s devices cannot be enrolled here; allowed types: %v", t, r.policy.PairableTypes()))
	}
	if len(p.Nickname) > maxNickname {
		return nil, invalid("nickname", engine.DetailInvalidValue, fmt.Sprintf("must be at most %d characters", maxNickname))
	}
	if p.Application != nil {
		return nil, invalid("application.id", engine.DetailInvalidValue, "is only for MOBILE devices")
	}
	if p.RP != nil {
		return nil, invalid("rp", engine.DetailInvalidValue, "is only for PLATFORM and SECURITY_KEY devices")
	}
	address, err := deviceAddress(t, p, r.in, r.sc.Env, r.policy)
	if err != nil {
		return nil, err
	}
	if err := r.createGuard(t, address); err != nil {
		return nil, err
	}
	max := r.sc.Env.MFASettings.Pairing.MaxAllowedDevices
	n, err := s.deps.Devices.CountDevices(ctx, r.sc.Env.ID, r.in.UserID)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	if n >= max {
		return nil, invalid("type", engine.DetailLimitExceeded,
			fmt.Sprintf("the user already has the maximum of %d devices; delete one first", max))
	}
	now := r.sc.Now
	d := &pending{ID: store.NewID(), Type: t, Nickname: p.Nickname, Address: address, CreatedAt: now}
	out := &engine.Outcome{}
	if t == mfa.TOTP {
		account := r.in.Email
		if account == "" {
			account = r.in.UserID
		}
		key, err := mfa.NewTOTPKey(r.policy.TOTP.URIParameters.Issuer, account)
		if err != nil {
			return nil, engine.AsError(err)
		}
		d.SealedTOTP = s.deps.Sealer.Seal([]byte(key.URI), d.ID)
	} else {
		send, err := s.issueOTP(ctx, r, d)
		if err != nil {
			return nil, err
		}
		out.After = append(out.After, send)
	}
	r.st.Pending = d
	return out, nil
}

// deviceAddress picks the address the passcode goes to: the action's, else
// the step input's, and checks it.
func deviceAddress(t mfa.DeviceType, p *actions.CreateDevice, in input, env *engine.Environment, policy *mfa.Policy) (string, error) {
	switch t {
	case mfa.Email:
		if p.Phone != "" {
			return "", invalid("phone", engine.DetailInvalidValue, "is not used for EMAIL devices")
		}
		addr := p.Email
		if addr == "" {
			addr = in.Email
		}
		if addr == "" {
			return "", invalid("email", engine.DetailRequired, "is required for EMAIL devices (or give user.email in the inputs)")
		}
		if !ValidEmail(addr) {
			return "", invalid("email", engine.DetailInvalidValue, "must be a valid e-mail address such as jane@example.com")
		}
		return addr, nil
	case mfa.SMS, mfa.Voice:
		if p.Email != "" {
			return "", invalid("email", engine.DetailInvalidValue, fmt.Sprintf("is not used for %s devices", t))
		}
		phone := p.Phone
		if phone == "" {
			phone = in.Phone
		}
		if phone == "" {
			return "", invalid("phone", engine.DetailRequired, fmt.Sprintf("is required for %s devices (or give user.mobilePhone in the inputs)", t))
		}
		rules := mfa.PhoneRules{AllowedCountries: env.MFASettings.PhoneNumbers.AllowedCountries,
			AllowedTypes: policy.OTPMethodFor(t).AllowedNumberTypes}
		e164, err := mfa.ParsePhone(phone, rules)
		if err != nil {
			if p.Phone == "" {
				return "", invalid("phone", engine.DetailInvalidValue, "the input user.mobilePhone "+err.Error()+"; give another phone")
			}
			return "", invalid("phone", engine.DetailInvalidValue, err.Error())
		}
		return e164, nil
	}
	if p.Email != "" || p.Phone != "" {
		field := "email"
		if p.Phone != "" {
			field = "phone"
		}
		return "", invalid(field, engine.DetailInvalidValue, fmt.Sprintf("is not used for %s devices", t))
	}
	return "", nil
}

// issueOTP puts a fresh passcode on d, renders its message and returns the
// send to run after the state is saved. The clear passcode lives only in
// the message, which goes nowhere but the channel.
func (s *Step) issueOTP(ctx context.Context, r *run, d *pending) (engine.Effect, error) {
	rules := r.policy.OTPMethodFor(d.Type).OTP
	code := mfa.NewOTP(rules.OTPLength)
	msg, err := s.deps.Messenger.ComposePairing(ctx, delivery.Pairing{
		EnvID: r.sc.Env.ID, Method: delivery.Method(d.Type), Recipient: d.Address,
		Locale: r.in.Locale, Variant: r.cfg.variant(), OTP: code,
		Username: r.in.Username, Email: r.in.Email, MobilePhone: r.in.Phone, Variables: r.in.Variables,
	})
	if err != nil {
		return nil, err
	}
	now := r.sc.Now
	d.OTPHash = s.deps.Hasher.Hash(d.ID, code)
	d.OTPExpiresAt = now.Add(rules.LifeTime.Std())
	d.SentAt = now
	r.st.LastSentTo, r.st.LastSentAt = d.Address, now
	r.st.Sent++
	d.Failures, d.LockedUntil = 0, time.Time{}
	sent := sendRef{device: d.ID, seq: r.st.Sent}
	return func(ctx context.Context) engine.Followup {
		err := s.deps.Messenger.Send(ctx, msg)
		if err == nil {
			return nil
		}
		return s.recordDeliveryFailure(sent, deliveryFailure(err, d))
	}, nil
}

// sendRef names one passcode send: the device and the step's send count.
type sendRef struct {
	device string
	seq    int
}

// deliveryFailure is the error a client shows when a passcode did not
// arrive. The cause (provider, status) is in the delivery log; the client
// learns whether to fix the address or to try again.
func deliveryFailure(err error, d *pending) *engine.ErrorDetail {
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
		d.SentAt = time.Time{}
		r.st.LastSentAt = time.Time{}
		return r.st, true, nil
	}
}

// resend handles otp.resend: a fresh passcode replaces the old one, no
// sooner than the resend cool-down or, after too many failures, the
// failure cool-down.
func (s *Step) resend(ctx context.Context, r *run) (*engine.Outcome, error) {
	d := r.st.Pending
	now := r.sc.Now
	if err := r.lockoutGuard(); err != nil {
		return nil, err
	}
	if now.Before(d.LockedUntil) {
		return nil, engine.TooSoon("Too many wrong passcodes; a new passcode can be sent after the cool-down.", d.LockedUntil.Sub(now))
	}
	cool := r.policy.OTPMethodFor(d.Type).OTP.ResendCoolDown.Std()
	if next := d.SentAt.Add(cool); now.Before(next) {
		return nil, engine.TooSoon(fmt.Sprintf("A passcode was sent less than %s ago; wait before asking again.", cool), next.Sub(now))
	}
	if err := r.sendLimitGuard(); err != nil {
		return nil, err
	}
	send, err := s.issueOTP(ctx, r, d)
	if err != nil {
		return nil, err
	}
	return &engine.Outcome{After: []engine.Effect{send}}, nil
}

// activate handles device.activate: the right passcode enrolls the device.
func (s *Step) activate(r *run, p *actions.ActivateDevice) (*engine.Outcome, error) {
	d := r.st.Pending
	if (len(p.Attestation) > 0 && string(p.Attestation) != "null") || p.Origin != "" {
		return nil, invalid("attestation", engine.DetailInvalidValue, "is only for PLATFORM and SECURITY_KEY devices")
	}
	if p.OTP == "" {
		return nil, invalid("otp", engine.DetailRequired, "is required")
	}
	if !digitsOnly(p.OTP) || len(p.OTP) < 6 || len(p.OTP) > 10 {
		return nil, invalid("otp", engine.DetailInvalidValue, "must be 6 to 10 digits")
	}
	if err := r.lockoutGuard(); err != nil {
		return nil, err
	}
	now := r.sc.Now
	var failure mfa.Failure
	var ok bool
	var totpStep int64
	if d.Type == mfa.TOTP {
		failure = r.policy.TOTP.OTP.Failure
		if now.Before(d.LockedUntil) {
			return nil, engine.TooSoon("Too many wrong passcodes; try again after the cool-down.", d.LockedUntil.Sub(now))
		}
		uri, err := s.deps.Sealer.Open(d.SealedTOTP, d.ID)
		if err != nil {
			return nil, engine.AsError(err)
		}
		secret, err := mfa.SecretFromURI(string(uri))
		if err != nil {
			return nil, engine.AsError(err)
		}
		totpStep, ok, _ = mfa.VerifyTOTP(secret, p.OTP, now, r.policy.TOTP.PasscodeGracePeriod, 0)
	} else {
		failure = r.policy.OTPMethodFor(d.Type).OTP.Failure
		if d.Failures >= failure.Count {
			return nil, invalid("otp", engine.DetailOTPVoid, voidMessage(d, now))
		}
		if !now.Before(d.OTPExpiresAt) {
			return nil, invalid("otp", engine.DetailOTPExpired, "the passcode has expired; request a new one (otp.resend)")
		}
		ok = s.deps.Hasher.Verify(d.ID, p.OTP, d.OTPHash)
	}
	if !ok {
		return s.wrongOTP(r, failure), nil
	}
	dev := mfa.Device{ID: d.ID, Type: d.Type, Status: mfa.StatusActive, Nickname: d.Nickname,
		SealedTOTP: d.SealedTOTP, LastTOTPStep: totpStep, CreatedAt: d.CreatedAt, UpdatedAt: now}
	switch d.Type {
	case mfa.Email:
		dev.Email = d.Address
	case mfa.SMS, mfa.Voice:
		dev.Phone = d.Address
	}
	data, err := json.Marshal(dev)
	if err != nil {
		return nil, engine.AsError(err)
	}
	return &engine.Outcome{
		Result:  Enrolled,
		Outputs: map[string]any{"device": map[string]any{"id": dev.ID, "type": dev.Type}},
		Writes: []store.Write{{Op: store.CreateDevice,
			Device:     store.Device{EnvID: r.sc.Env.ID, UserID: r.in.UserID, ID: dev.ID, Version: 1, Data: data},
			MaxDevices: r.sc.Env.MFASettings.Pairing.MaxAllowedDevices}},
	}, nil
}

// wrongOTP counts a failed attempt; the count is saved and the client gets
// a 400 with what is left.
func (s *Step) wrongOTP(r *run, failure mfa.Failure) *engine.Outcome {
	d := r.st.Pending
	now := r.sc.Now
	if r.countFailure(failure) {
		lockout := r.sc.Env.MFASettings.Lockout
		e := engine.InvalidField("otp", engine.DetailOTPVoid, fmt.Sprintf(
			"the passcode is wrong; after %d wrong passcodes enrollment is locked until %s",
			lockout.FailureCount, r.st.LockoutUntil.UTC().Format(time.RFC3339)))
		e.Details[0].InnerError = map[string]any{"remainingAttempts": 0}
		return &engine.Outcome{Err: e}
	}
	d.Failures++
	remaining := failure.Count - d.Failures
	msg := fmt.Sprintf("the passcode is wrong; %d attempt(s) left", remaining)
	code := engine.DetailInvalidOTP
	if remaining <= 0 {
		d.LockedUntil = now.Add(failure.CoolDown.Std())
		r.st.CreateAfter = d.LockedUntil
		if d.Type == mfa.TOTP {
			// TOTP has nothing to resend: the lock itself is the cool-down,
			// after which the count starts again.
			d.Failures = 0
			msg = fmt.Sprintf("the passcode is wrong and no attempts are left; try again after %s", d.LockedUntil.UTC().Format(time.RFC3339))
		} else {
			d.OTPHash = nil
			code = engine.DetailOTPVoid
			msg = "the passcode is wrong and no attempts are left; " + voidMessage(d, now)
		}
		remaining = 0
	}
	e := engine.InvalidField("otp", code, msg)
	e.Details[0].InnerError = map[string]any{"remainingAttempts": remaining}
	return &engine.Outcome{Err: e}
}

// countFailure counts a wrong passcode towards mfaSettings.lockout and
// reports whether it set the lockout off. The count starts again once a
// lockout has been served.
func (r *run) countFailure(failure mfa.Failure) bool {
	lockout := r.sc.Env.MFASettings.Lockout
	r.st.Failures++
	if r.st.Failures < lockout.FailureCount {
		return false
	}
	r.st.Failures = 0
	r.st.LockoutUntil = r.sc.Now.Add(time.Duration(lockout.DurationSeconds) * time.Second)
	r.st.CreateAfter = r.st.LockoutUntil
	d := r.st.Pending
	if d.Type.SendsOTP() {
		// The passcode is void: after the lockout only a resent one counts.
		d.Failures, d.OTPHash, d.LockedUntil = failure.Count, nil, r.st.LockoutUntil
	} else {
		// TOTP has nothing to resend; after the lockout it counts afresh.
		d.Failures, d.LockedUntil = 0, time.Time{}
	}
	return true
}

// lockoutGuard refuses every passcode action while mfaSettings.lockout is
// in force.
func (r *run) lockoutGuard() error {
	if now := r.sc.Now; now.Before(r.st.LockoutUntil) {
		return engine.TooSoon("Too many wrong passcodes; enrollment is locked until "+
			r.st.LockoutUntil.UTC().Format(time.RFC3339)+".", r.st.LockoutUntil.Sub(now))
	}
	return nil
}

// createGuard applies, to a new device, the limits the step has run into:
// a lockout, a failure cool-down of a deleted device, the resend cool-down
// when the passcode would go to the address of the last one (a deleted
// device's), and the number of passcodes one step may send.
func (r *run) createGuard(t mfa.DeviceType, address string) error {
	if err := r.lockoutGuard(); err != nil {
		return err
	}
	now := r.sc.Now
	if now.Before(r.st.CreateAfter) {
		return engine.TooSoon("Too many wrong passcodes; a new device can be created after the cool-down.", r.st.CreateAfter.Sub(now))
	}
	if !t.SendsOTP() {
		return nil
	}
	if address == r.st.LastSentTo {
		cool := r.policy.OTPMethodFor(t).OTP.ResendCoolDown.Std()
		if next := r.st.LastSentAt.Add(cool); now.Before(next) {
			return engine.TooSoon(fmt.Sprintf("A passcode was sent to this address less than %s ago; wait before asking for another.", cool), next.Sub(now))
		}
	}
	return r.sendLimitGuard()
}

// maxPasscodes bounds what one enrollment step can send, whatever the
// addresses: an execution id must not become a way to spam.
const maxPasscodes = 10

func (r *run) sendLimitGuard() error {
	if r.st.Sent >= maxPasscodes {
		return engine.LimitReached(fmt.Sprintf("This enrollment has sent the maximum of %d passcodes; start a new one.", maxPasscodes))
	}
	return nil
}

func voidMessage(d *pending, now time.Time) string {
	if now.Before(d.LockedUntil) {
		return "the passcode is void; request a new one (otp.resend) after " + d.LockedUntil.UTC().Format(time.RFC3339)
	}
	return "the passcode is void; request a new one (otp.resend)"
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// deviceView is the pending device as the client sees it.
func (s *Step) deviceView(r *run) map[string]any {
	d := r.st.Pending
	if d == nil {
		return nil
	}
	v := map[string]any{"id": d.ID, "type": d.Type, "createdAt": d.CreatedAt}
	if d.Nickname != "" {
		v["nickname"] = d.Nickname
	}
	switch d.Type {
	case mfa.Email:
		v["email"] = mfa.MaskEmail(d.Address)
	case mfa.SMS, mfa.Voice:
		v["phone"] = mfa.MaskPhone(d.Address)
	case mfa.TOTP:
		uri, err := s.deps.Sealer.Open(d.SealedTOTP, d.ID)
		if err != nil {
			s.deps.Log.Error().Err(err).Str("execution", engine.LogID(r.sc.ExecutionID)).Msg("cannot unseal TOTP secret")
			return v
		}
		secret, _ := mfa.SecretFromURI(string(uri))
		v["secret"] = secret
		v["keyUri"] = string(uri)
		v["period"] = mfa.TOTPPeriod
		v["digits"] = mfa.TOTPDigits
		v["algorithm"] = mfa.TOTPAlgorithm
		if r.sc.SelfURL != "" {
			v["qrCode"] = map[string]any{"href": r.sc.SelfURL + "/" + QRCodeResource, "type": "image/png"}
		}
	}
	if d.Type.SendsOTP() {
		v["otp"] = map[string]any{"expiresAt": d.OTPExpiresAt, "remainingAttempts": max(r.policy.OTPMethodFor(d.Type).OTP.Failure.Count-d.Failures, 0)}
	}
	return v
}

// QRCodeResource is the name of the TOTP QR code under the execution URL.
const QRCodeResource = "qrcode.png"

// ResourceNames: the QR code is the step's one resource.
func (s *Step) ResourceNames() []string { return []string{QRCodeResource} }

// Resource serves the PNG QR code of a pending TOTP device.
func (s *Step) Resource(_ context.Context, sc *engine.StepContext, name string) (string, []byte, error) {
	r, err := s.load(sc)
	if err != nil {
		return "", nil, err
	}
	if name != QRCodeResource || r.st.Status != ActivationRequired || r.st.Pending == nil || r.st.Pending.Type != mfa.TOTP {
		return "", nil, engine.NotFound(strings.TrimSuffix(name, ".png"))
	}
	uri, err := s.deps.Sealer.Open(r.st.Pending.SealedTOTP, r.st.Pending.ID)
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	key, err := otp.NewKeyFromURL(string(uri))
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", nil, engine.AsError(err)
	}
	return "image/png", buf.Bytes(), nil
}

// Package otp is the factor of devices that receive a passcode: EMAIL, SMS
// and VOICE. It picks and checks the address, issues passcodes (kept only
// as keyed hashes bound to the device), judges them with the policy's
// attempt limit and lifetime, and makes the device record.
package otp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
)

// Messenger renders and sends passcode messages (delivery/dispatch).
type Messenger interface {
	ComposePairing(ctx context.Context, p delivery.Pairing) (delivery.Message, error)
	Send(ctx context.Context, msg delivery.Message) error
}

// Factor enrolls EMAIL, SMS and VOICE devices.
type Factor struct {
	Messenger Messenger
	Hasher    *mfa.OTPHasher
}

var (
	_ factor.Enroller = (*Factor)(nil)
	_ factor.Reissuer = (*Factor)(nil)
)

// data is the factor's part of a pending device. Short JSON names: it is
// stored in every execution that waits for a passcode.
type data struct {
	Issue     int       `json:"i,omitempty"` // passcodes issued for this device: each is counted apart
	Hash      []byte    `json:"h,omitempty"` // nil: void (spent, or locked out)
	ExpiresAt time.Time `json:"x,omitzero"`
	SentAt    time.Time `json:"sa,omitzero"` // zero: not delivered
	// Failures counts wrong passcodes; at the policy's count the passcode
	// is void, and no new one can be had before LockedUntil.
	Failures    int       `json:"f,omitempty"`
	LockedUntil time.Time `json:"l,omitzero"`
}

func decode(p factor.Pending) (data, error) {
	var d data
	if len(p.Data) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return d, fmt.Errorf("otp: pending device %s: %w", p.ID, err)
	}
	return d, nil
}

func with(p factor.Pending, d data) factor.Pending {
	raw, _ := json.Marshal(d) // plain fields: cannot fail
	p.Data = raw
	return p
}

func (f *Factor) Types() []mfa.DeviceType       { return []mfa.DeviceType{mfa.Email, mfa.SMS, mfa.Voice} }
func (f *Factor) Activation() factor.Activation { return factor.ByPasscode }

// Target picks the address: the action's, else the step input's; e-mail
// addresses must parse, phone numbers must be ones the environment and the
// policy accept (mfa.ParsePhone), kept in E.164.
func (f *Factor) Target(b factor.Begin) (string, error) {
	t, a := mfa.DeviceType(b.Action.Type), b.Action
	if t == mfa.Email {
		if a.Phone != "" {
			return "", factor.Invalid("phone", engine.DetailInvalidValue, "is not used for EMAIL devices")
		}
		addr := a.Email
		if addr == "" {
			addr = b.User.Email
		}
		if addr == "" {
			return "", factor.Invalid("email", engine.DetailRequired, "is required for EMAIL devices (or give user.email in the inputs)")
		}
		if !mfa.ValidEmail(addr) {
			return "", factor.Invalid("email", engine.DetailInvalidValue, "must be a valid e-mail address such as jane@example.com")
		}
		return addr, nil
	}
	if a.Email != "" {
		return "", factor.Invalid("email", engine.DetailInvalidValue, fmt.Sprintf("is not used for %s devices", t))
	}
	phone := a.Phone
	if phone == "" {
		phone = b.User.Phone
	}
	if phone == "" {
		return "", factor.Invalid("phone", engine.DetailRequired, fmt.Sprintf("is required for %s devices (or give user.mobilePhone in the inputs)", t))
	}
	rules := mfa.PhoneRules{AllowedCountries: b.Settings.PhoneNumbers.AllowedCountries, AllowedTypes: b.Policy.OTPMethodFor(t).AllowedNumberTypes}
	e164, err := mfa.ParsePhone(phone, rules)
	if err != nil {
		if a.Phone == "" {
			return "", factor.Invalid("phone", engine.DetailInvalidValue, "the input user.mobilePhone "+err.Error()+"; give another phone")
		}
		return "", factor.Invalid("phone", engine.DetailInvalidValue, err.Error())
	}
	return e164, nil
}

func (f *Factor) Begin(ctx context.Context, b factor.Begin, address string) (factor.Pending, factor.Send, error) {
	p := factor.Pending{ID: b.ID, Type: mfa.DeviceType(b.Action.Type), Nickname: b.Action.Nickname, Address: address, CreatedAt: b.Now}
	return f.issue(ctx, b, p)
}

// issue puts a fresh passcode on p and returns the send of its message.
// The clear passcode lives only in the message, which goes nowhere but the
// channel.
func (f *Factor) issue(ctx context.Context, b factor.Begin, p factor.Pending) (factor.Pending, factor.Send, error) {
	rules := b.Policy.OTPMethodFor(p.Type).OTP
	code, send, err := f.compose(ctx, b.EnvID, p.Type, p.Address, rules.OTPLength, b.User, b.Message)
	if err != nil {
		return factor.Pending{}, nil, err
	}
	old, _ := decode(p)
	p = with(p, data{Issue: old.Issue + 1, Hash: f.Hasher.Hash(p.ID, code), ExpiresAt: b.Now.Add(rules.LifeTime.Std()), SentAt: b.Now})
	return p, send, nil
}

// compose makes a fresh passcode of length and its message to recipient,
// and returns the passcode and the send of the message.
func (f *Factor) compose(ctx context.Context, envID string, t mfa.DeviceType, recipient string, length int, u factor.User, m factor.Message) (string, factor.Send, error) {
	code := mfa.NewOTP(length)
	msg, err := f.Messenger.ComposePairing(ctx, delivery.Pairing{
		EnvID: envID, Method: delivery.Method(t), Recipient: recipient,
		Locale: m.Locale, Variant: m.Variant, OTP: code,
		Username: u.Username, Email: u.Email, MobilePhone: u.Phone, Variables: m.Variables,
	})
	if err != nil {
		return "", nil, err
	}
	return code, func(ctx context.Context) error { return f.Messenger.Send(ctx, msg) }, nil
}

// CheckResend: no sooner than the failure cool-down after the attempts
// ran out, nor than the method's resend cool-down after the last send.
func (f *Factor) CheckResend(p factor.Pending, policy *mfa.Policy, now time.Time) error {
	d, err := decode(p)
	if err != nil {
		return engine.AsError(err)
	}
	if now.Before(d.LockedUntil) {
		return engine.TooSoon("Too many wrong passcodes; a new passcode can be sent after the cool-down.", d.LockedUntil.Sub(now))
	}
	cool := policy.OTPMethodFor(p.Type).OTP.ResendCoolDown.Std()
	if next := d.SentAt.Add(cool); now.Before(next) {
		return engine.TooSoon(fmt.Sprintf("A passcode was sent less than %s ago; wait before asking again.", cool), next.Sub(now))
	}
	return nil
}

func (f *Factor) Reissue(ctx context.Context, b factor.Begin, p factor.Pending) (factor.Pending, factor.Send, error) {
	return f.issue(ctx, b, p)
}

func (f *Factor) Undelivered(p factor.Pending) factor.Pending {
	d, err := decode(p)
	if err != nil {
		return p
	}
	d.SentAt = time.Time{}
	return with(p, d)
}

// LockedOut voids the passcode: after the lockout only a new one counts.
// The lockout itself is the regulation's (a lifted one lets a new passcode
// be sent at once), not the passcode's cool-down.
func (f *Factor) LockedOut(p factor.Pending, policy *mfa.Policy, _ time.Time) factor.Pending {
	d, _ := decode(p)
	d.Failures, d.Hash = policy.OTPMethodFor(p.Type).OTP.Failure.Count, nil
	return with(p, d)
}

// Attempts: the policy's count per passcode; a spent passcode stays void
// until a new one is sent, which is not before the cool-down.
func (f *Factor) Attempts(p factor.Pending, policy *mfa.Policy) factor.AttemptLimit {
	d, _ := decode(p)
	failure := policy.OTPMethodFor(p.Type).OTP.Failure
	return factor.AttemptLimit{Subject: fmt.Sprintf("%s#%d", p.ID, d.Issue), Count: failure.Count,
		CoolDown: failure.CoolDown.Std(), StaysVoid: true}
}

func (f *Factor) Activate(_ context.Context, a factor.Activate) (factor.Verdict, error) {
	if err := factor.CheckPasscodeProof(a.Proof); err != nil {
		return factor.Verdict{}, err
	}
	d, err := decode(a.Pending)
	if err != nil {
		return factor.Verdict{}, engine.AsError(err)
	}
	failure := a.Policy.OTPMethodFor(a.Pending.Type).OTP.Failure
	if d.Failures >= failure.Count || d.Hash == nil {
		return factor.Verdict{}, factor.Invalid("otp", engine.DetailOTPVoid, voidMessage(d, a.Now))
	}
	if !a.Now.Before(d.ExpiresAt) {
		return factor.Verdict{}, factor.Invalid("otp", engine.DetailOTPExpired, "the passcode has expired; request a new one (otp.resend)")
	}
	if f.Hasher.Verify(a.Pending.ID, a.Proof.OTP, d.Hash) {
		p := a.Pending
		dev := &mfa.Device{ID: p.ID, Type: p.Type, Status: mfa.StatusActive, Nickname: p.Nickname, CreatedAt: p.CreatedAt, UpdatedAt: a.Now}
		if p.Type == mfa.Email {
			dev.Email = p.Address
		} else {
			dev.Phone = p.Address
		}
		return factor.Verdict{OK: true, Device: dev}, nil
	}
	p := f.Counted(a.Pending, a.Policy, max(a.Attempt, d.Failures+1), a.Now)
	d, _ = decode(p)
	remaining := max(failure.Count-d.Failures, 0)
	v := factor.Verdict{Pending: p}
	msg, code := fmt.Sprintf("the passcode is wrong; %d attempt(s) left", remaining), engine.DetailInvalidOTP
	if remaining == 0 {
		v.Exhausted, v.CoolDownUntil = true, d.LockedUntil
		code, msg = engine.DetailOTPVoid, "the passcode is wrong and no attempts are left; "+voidMessage(d, a.Now)
	}
	e := factor.Invalid("otp", code, msg)
	e.Details[0].InnerError = map[string]any{"remainingAttempts": remaining}
	v.Refusal, v.Pending = e, with(a.Pending, d)
	return v, nil
}

// Counted: at the policy's count the passcode is void, and no new one can
// be had before the cool-down.
func (f *Factor) Counted(p factor.Pending, policy *mfa.Policy, attempt int, now time.Time) factor.Pending {
	d, _ := decode(p)
	if attempt <= d.Failures {
		return p
	}
	failure := policy.OTPMethodFor(p.Type).OTP.Failure
	d.Failures = attempt
	if d.Failures >= failure.Count && d.Hash != nil {
		d.Hash, d.LockedUntil = nil, now.Add(failure.CoolDown.Std())
	}
	return with(p, d)
}

// Usable: a passcode with attempts left, not void.
func (f *Factor) Usable(p factor.Pending, policy *mfa.Policy, _ time.Time) bool {
	d, _ := decode(p)
	return d.Hash != nil && d.Failures < policy.OTPMethodFor(p.Type).OTP.Failure.Count
}

func voidMessage(d data, now time.Time) string {
	if now.Before(d.LockedUntil) {
		return "the passcode is void; request a new one (otp.resend) after " + d.LockedUntil.UTC().Format(time.RFC3339)
	}
	return "the passcode is void; request a new one (otp.resend)"
}

func (f *Factor) View(p factor.Pending, policy *mfa.Policy, _ string) map[string]any {
	v := map[string]any{"id": p.ID, "type": p.Type, "createdAt": p.CreatedAt}
	if p.Nickname != "" {
		v["nickname"] = p.Nickname
	}
	if p.Type == mfa.Email {
		v["email"] = mfa.MaskEmail(p.Address)
	} else {
		v["phone"] = mfa.MaskPhone(p.Address)
	}
	d, _ := decode(p)
	v["otp"] = map[string]any{"expiresAt": d.ExpiresAt, "remainingAttempts": max(policy.OTPMethodFor(p.Type).OTP.Failure.Count-d.Failures, 0)}
	return v
}

var (
	_ factor.Verifier       = (*Factor)(nil)
	_ factor.Issuer         = (*Factor)(nil)
	_ factor.AttemptLimiter = (*Factor)(nil)
)

func devicePart(dev *mfa.Device) mfa.OTPPart {
	var part mfa.OTPPart
	_ = json.Unmarshal(dev.Factor, &part) // an enrolled device without one has none issued
	return part
}

// Issue sends a new passcode to an enrolled device; it replaces any
// passcode issued before.
func (f *Factor) Issue(ctx context.Context, dev *mfa.Device, b factor.Issue) (factor.Send, error) {
	address := dev.Email
	if dev.Type != mfa.Email {
		address = dev.Phone
	}
	rules := b.Policy.OTPMethodFor(dev.Type).OTP
	code, send, err := f.compose(ctx, b.EnvID, dev.Type, address, rules.OTPLength, b.User, b.Message)
	if err != nil {
		return nil, err
	}
	part := devicePart(dev)
	part = mfa.OTPPart{Issue: part.Issue + 1, Hash: f.Hasher.Hash(dev.ID+"#issued", code),
		ExpiresAt: b.Now.Add(rules.LifeTime.Std()), SentAt: b.Now}
	dev.Factor, _ = json.Marshal(part)
	dev.UpdatedAt = b.Now
	return send, nil
}

// DeviceAttempts: the policy's count per issued passcode, void after it.
func (f *Factor) DeviceAttempts(dev *mfa.Device, policy *mfa.Policy) factor.AttemptLimit {
	failure := policy.OTPMethodFor(dev.Type).OTP.Failure
	return factor.AttemptLimit{Subject: fmt.Sprintf("%s#issued#%d", dev.ID, devicePart(dev).Issue), Count: failure.Count,
		CoolDown: failure.CoolDown.Std(), StaysVoid: true}
}

// Verify checks a passcode issued to an enrolled device. A right one is
// used up in the same write that accepts it.
func (f *Factor) Verify(_ context.Context, dev *mfa.Device, _ *mfa.Policy, proof string, now time.Time) (factor.Checked, error) {
	part := devicePart(dev)
	if part.Hash == nil || !now.Before(part.ExpiresAt) || !f.Hasher.Verify(dev.ID+"#issued", proof, part.Hash) {
		return factor.Checked{}, nil
	}
	part.Hash, part.ExpiresAt = nil, time.Time{}
	dev.Factor, _ = json.Marshal(part)
	dev.UpdatedAt = now
	return factor.Checked{OK: true, Changed: true}, nil
}

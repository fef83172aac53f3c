// Package totp is the factor of authenticator apps (TOTP, RFC 6238): a
// fresh 160-bit secret per device, sealed at rest and bound to the device,
// shown once as a secret, an otpauth:// URI and a QR code, and activated by
// a code from the app within the policy's grace windows.
package totp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
)

// QRCodeResource is the QR code's name under the execution URL.
const QRCodeResource = "qrcode.png"

// Factor enrolls TOTP devices.
type Factor struct {
	Sealer *mfa.Sealer
}

var (
	_ factor.Enroller  = (*Factor)(nil)
	_ factor.Resourcer = (*Factor)(nil)
)

// data is the factor's part of a pending device.
type data struct {
	SealedURI string `json:"k"` // the otpauth:// URI, sealed and bound to the device id
	// Wrong codes: at the policy's count the device is refused until
	// LockedUntil, and then counted afresh.
	factor.Refusals
}

func decode(p factor.Pending) (data, error) {
	var d data
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return d, fmt.Errorf("totp: pending device %s: %w", p.ID, err)
	}
	return d, nil
}

func with(p factor.Pending, d data) factor.Pending {
	raw, _ := json.Marshal(d)
	p.Data = raw
	return p
}

func (f *Factor) Types() []mfa.DeviceType       { return []mfa.DeviceType{mfa.TOTP} }
func (f *Factor) Activation() factor.Activation { return factor.ByPasscode }

// Target: a TOTP device has no address.
func (f *Factor) Target(b factor.Begin) (string, error) {
	if b.Action.Email != "" || b.Action.Phone != "" {
		field := "email"
		if b.Action.Phone != "" {
			field = "phone"
		}
		return "", factor.Invalid(field, engine.DetailInvalidValue, "is not used for TOTP devices")
	}
	return "", nil
}

// Begin makes the secret. The account name in the app is the user's
// e-mail address, else the user id.
func (f *Factor) Begin(_ context.Context, b factor.Begin, _ string) (factor.Pending, factor.Send, error) {
	account := b.User.Email
	if account == "" {
		account = b.User.ID
	}
	key, err := mfa.NewTOTPKey(b.Policy.TOTP.URIParameters.Issuer, account)
	if err != nil {
		return factor.Pending{}, nil, engine.AsError(err)
	}
	p := factor.Pending{ID: b.ID, Type: mfa.TOTP, Nickname: b.Action.Nickname, CreatedAt: b.Now}
	return with(p, data{SealedURI: f.Sealer.Seal([]byte(key.URI), p.ID)}), nil, nil
}

func (f *Factor) uri(p factor.Pending) (string, error) {
	d, err := decode(p)
	if err != nil {
		return "", err
	}
	uri, err := f.Sealer.Open(d.SealedURI, p.ID)
	if err != nil {
		return "", err
	}
	return string(uri), nil
}

// Attempts: the policy's count, then a cool-down after which the count
// starts again (there is nothing to resend).
func (f *Factor) Attempts(p factor.Pending, policy *mfa.Policy) factor.AttemptLimit {
	failure := policy.TOTP.OTP.Failure
	return factor.AttemptLimit{Subject: p.ID, Count: failure.Count, CoolDown: failure.CoolDown.Std()}
}

func (f *Factor) Activate(_ context.Context, a factor.Activate) (factor.Verdict, error) {
	if err := factor.CheckPasscodeProof(a.Proof); err != nil {
		return factor.Verdict{}, err
	}
	d, err := decode(a.Pending)
	if err != nil {
		return factor.Verdict{}, engine.AsError(err)
	}
	if a.Now.Before(d.LockedUntil) {
		return factor.Verdict{}, engine.TooSoon("Too many wrong passcodes; try again after the cool-down.", d.LockedUntil.Sub(a.Now))
	}
	uri, err := f.uri(a.Pending)
	if err != nil {
		return factor.Verdict{}, engine.AsError(err)
	}
	secret, err := mfa.SecretFromURI(uri)
	if err != nil {
		return factor.Verdict{}, engine.AsError(err)
	}
	step, ok, _ := mfa.VerifyTOTP(secret, a.Proof.OTP, a.Now, a.Policy.TOTP.PasscodeGracePeriod, 0)
	if ok {
		p := a.Pending
		part, _ := json.Marshal(mfa.TOTPPart{Sealed: d.SealedURI, LastStep: step})
		return factor.Verdict{OK: true, Device: &mfa.Device{ID: p.ID, Type: mfa.TOTP, Status: mfa.StatusActive, Nickname: p.Nickname,
			Factor: part, CreatedAt: p.CreatedAt, UpdatedAt: a.Now}}, nil
	}
	p := f.Counted(a.Pending, a.Policy, max(a.Attempt, d.Count+1), a.Now)
	after, _ := decode(p)
	v := factor.Verdict{Pending: p}
	remaining := a.Policy.TOTP.OTP.Failure.Count - after.Count
	msg := fmt.Sprintf("the passcode is wrong; %d attempt(s) left", remaining)
	if after.LockedUntil.After(a.Now) {
		v.Exhausted, v.CoolDownUntil = true, after.LockedUntil
		msg = fmt.Sprintf("the passcode is wrong and no attempts are left; try again after %s", after.LockedUntil.UTC().Format(time.RFC3339))
		remaining = 0
	}
	e := factor.Invalid("otp", engine.DetailInvalidOTP, msg)
	e.Details[0].InnerError = map[string]any{"remainingAttempts": remaining}
	v.Refusal = e
	return v, nil
}

// Counted: at the policy's count the device is refused for the cool-down
// (TOTP has nothing to resend), after which the count starts again.
func (f *Factor) Counted(p factor.Pending, policy *mfa.Policy, attempt int, now time.Time) factor.Pending {
	d, _ := decode(p)
	failure := policy.TOTP.OTP.Failure
	d.Refusals = d.Refusals.Counted(attempt, failure.Count, failure.CoolDown.Std(), now)
	return with(p, d)
}

// Usable: outside a cool-down.
func (f *Factor) Usable(p factor.Pending, _ *mfa.Policy, now time.Time) bool {
	d, _ := decode(p)
	return d.Usable(now)
}

// LockedOut: TOTP has nothing to resend; after the lockout it counts
// afresh.
func (f *Factor) LockedOut(p factor.Pending, _ *mfa.Policy, _ time.Time) factor.Pending {
	d, _ := decode(p)
	d.Refusals = factor.Refusals{}
	return with(p, d)
}

func (f *Factor) View(p factor.Pending, _ *mfa.Policy, selfURL string) map[string]any {
	v := map[string]any{"id": p.ID, "type": p.Type, "createdAt": p.CreatedAt}
	if p.Nickname != "" {
		v["nickname"] = p.Nickname
	}
	uri, err := f.uri(p)
	if err != nil {
		return v // the caller logs a view it cannot complete
	}
	secret, _ := mfa.SecretFromURI(uri)
	v["secret"] = secret
	v["keyUri"] = uri
	v["period"] = mfa.TOTPPeriod
	v["digits"] = mfa.TOTPDigits
	v["algorithm"] = mfa.TOTPAlgorithm
	if selfURL != "" {
		v["qrCode"] = map[string]any{"href": selfURL + "/" + QRCodeResource, "type": "image/png"}
	}
	return v
}

func (f *Factor) ResourceNames() []string { return []string{QRCodeResource} }

// Resource is the QR code of the otpauth:// URI, as a PNG.
func (f *Factor) Resource(p factor.Pending, name string) (string, []byte, error) {
	if name != QRCodeResource {
		return "", nil, engine.NotFound("resource")
	}
	uri, err := f.uri(p)
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	png, err := factor.QRCodePNG(uri)
	if err != nil {
		return "", nil, engine.AsError(err)
	}
	return "image/png", png, nil
}

var _ factor.Verifier = (*Factor)(nil)

// Verify checks a code of an enrolled device and advances its last accepted
// time step, so that the code and every older one are refused from then on.
func (f *Factor) Verify(_ context.Context, dev *mfa.Device, policy *mfa.Policy, proof string, now time.Time) (factor.Checked, error) {
	var part mfa.TOTPPart
	if err := json.Unmarshal(dev.Factor, &part); err != nil {
		return factor.Checked{}, fmt.Errorf("totp: device %s: %w", dev.ID, err)
	}
	uri, err := f.Sealer.Open(part.Sealed, dev.ID)
	if err != nil {
		return factor.Checked{}, err
	}
	secret, err := mfa.SecretFromURI(string(uri))
	if err != nil {
		return factor.Checked{}, err
	}
	step, ok, replayed := mfa.VerifyTOTP(secret, proof, now, policy.TOTP.PasscodeGracePeriod, part.LastStep)
	if !ok {
		return factor.Checked{Replayed: replayed}, nil
	}
	part.LastStep = step
	dev.Factor, _ = json.Marshal(part)
	dev.UpdatedAt = now
	return factor.Checked{OK: true, Changed: true}, nil
}

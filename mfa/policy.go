// Package mfa holds what every front door onto the device registry shares:
// device types and records, device authentication policies, environment MFA
// settings, one-time passcodes, TOTP and the sealing of secrets at rest.
// It sits beside engine and steps because the enrollment step, the external
// MFA webhook and the self-service API all need the same rules.
package mfa

import (
	"fmt"
	"strings"
	"time"
)

// DeviceType is one of the seed's device types.
type DeviceType string

const (
	Mobile      DeviceType = "MOBILE"
	Email       DeviceType = "EMAIL"
	SMS         DeviceType = "SMS"
	Voice       DeviceType = "VOICE"
	TOTP        DeviceType = "TOTP"
	Platform    DeviceType = "PLATFORM"
	SecurityKey DeviceType = "SECURITY_KEY"
)

// AllDeviceTypes in the order the seed lists them.
var AllDeviceTypes = []DeviceType{Mobile, Email, SMS, Voice, TOTP, Platform, SecurityKey}

// ParseDeviceType accepts the seed's names, case-insensitively.
func ParseDeviceType(s string) (DeviceType, bool) {
	for _, t := range AllDeviceTypes {
		if strings.EqualFold(s, string(t)) {
			return t, true
		}
	}
	return "", false
}

// Duration is the {duration, timeUnit} shape policies use.
type Duration struct {
	Duration int    `json:"duration" yaml:"duration"`
	TimeUnit string `json:"timeUnit" yaml:"timeUnit"` // SECONDS, MINUTES, HOURS
}

// Std converts to a time.Duration; an unknown unit is caught by Validate.
func (d Duration) Std() time.Duration {
	switch strings.ToUpper(d.TimeUnit) {
	case "SECONDS":
		return time.Duration(d.Duration) * time.Second
	case "MINUTES":
		return time.Duration(d.Duration) * time.Minute
	case "HOURS":
		return time.Duration(d.Duration) * time.Hour
	}
	return 0
}

func (d Duration) validate(field string, min, max time.Duration) error {
	switch strings.ToUpper(d.TimeUnit) {
	case "SECONDS", "MINUTES", "HOURS":
	default:
		return fmt.Errorf("%s.timeUnit: must be SECONDS, MINUTES or HOURS", field)
	}
	if v := d.Std(); v < min || v > max {
		return fmt.Errorf("%s: must be between %s and %s", field, min, max)
	}
	return nil
}

func seconds(n int) Duration { return Duration{Duration: n, TimeUnit: "SECONDS"} }
func minutes(n int) Duration { return Duration{Duration: n, TimeUnit: "MINUTES"} }

// Failure is the attempt limit: after Count wrong passcodes the passcode is
// void, and nothing new can be had for CoolDown.
type Failure struct {
	Count    int      `json:"count" yaml:"count"`
	CoolDown Duration `json:"coolDown" yaml:"coolDown"`
}

// OTPSettings are the passcode rules of a delivered-OTP method.
type OTPSettings struct {
	LifeTime  Duration `json:"lifeTime" yaml:"lifeTime"`
	Failure   Failure  `json:"failure" yaml:"failure"`
	OTPLength int      `json:"otpLength" yaml:"otpLength"`
	// ResendCoolDown is the least time between two passcodes sent to one
	// device. Not in the peer's policy schema (there it is a fixed rate);
	// ours lets an operator tighten or relax it.
	ResendCoolDown Duration `json:"resendCoolDown" yaml:"resendCoolDown"`
}

// OTPMethod is the policy of EMAIL, SMS or VOICE.
type OTPMethod struct {
	Enabled                    bool        `json:"enabled" yaml:"enabled"`
	PairingDisabled            bool        `json:"pairingDisabled" yaml:"pairingDisabled"`
	PromptForNicknameOnPairing bool        `json:"promptForNicknameOnPairing" yaml:"promptForNicknameOnPairing"`
	OTP                        OTPSettings `json:"otp" yaml:"otp"`
	// AllowedNumberTypes (SMS and VOICE) accepts phone numbers of these
	// restricted types too: PREMIUM_RATE, SHARED_COST, UAN, PAGER,
	// VOICEMAIL, UNKNOWN. None by default.
	AllowedNumberTypes []string `json:"allowedNumberTypes,omitempty" yaml:"allowedNumberTypes"`
}

// TOTPMethod is the policy of authenticator apps.
type TOTPMethod struct {
	Enabled                    bool `json:"enabled" yaml:"enabled"`
	PairingDisabled            bool `json:"pairingDisabled" yaml:"pairingDisabled"`
	PromptForNicknameOnPairing bool `json:"promptForNicknameOnPairing" yaml:"promptForNicknameOnPairing"`
	OTP                        struct {
		Failure Failure `json:"failure" yaml:"failure"`
	} `json:"otp" yaml:"otp"`
	// PasscodeGracePeriod is how many 30-second windows either side of now
	// a code is still accepted (clock skew), 1 to 10.
	PasscodeGracePeriod int `json:"passcodeGracePeriod" yaml:"passcodeGracePeriod"`
	URIParameters       struct {
		Issuer string `json:"issuer,omitempty" yaml:"issuer"`
	} `json:"uriParameters" yaml:"uriParameters"`
}

// Policy is a device authentication policy.
type Policy struct {
	ID      string       `json:"id" yaml:"id"`
	Name    string       `json:"name" yaml:"name"`
	Default bool         `json:"default" yaml:"default"`
	SMS     OTPMethod    `json:"sms" yaml:"sms"`
	Voice   OTPMethod    `json:"voice" yaml:"voice"`
	Email   OTPMethod    `json:"email" yaml:"email"`
	TOTP    TOTPMethod   `json:"totp" yaml:"totp"`
	Mobile  MobileMethod `json:"mobile" yaml:"mobile"`
	// Platform (passkeys on the user's device) and SecurityKey (roaming
	// keys): WebAuthn, with the environment's webauthn settings.
	Platform    FIDOMethod `json:"platform" yaml:"platform"`
	SecurityKey FIDOMethod `json:"securityKey" yaml:"securityKey"`
}

// OTPMethodFor returns the policy section of an OTP-sending type.
func (p *Policy) OTPMethodFor(t DeviceType) *OTPMethod {
	switch t {
	case Email:
		return &p.Email
	case SMS:
		return &p.SMS
	case Voice:
		return &p.Voice
	}
	return nil
}

// Pairable reports whether users may enroll devices of type t now: the type
// is supported by this build, enabled, and pairing is not disabled.
func (p *Policy) Pairable(t DeviceType) bool {
	if m := p.OTPMethodFor(t); m != nil {
		return m.Enabled && !m.PairingDisabled
	}
	switch t {
	case TOTP:
		return p.TOTP.Enabled && !p.TOTP.PairingDisabled
	case Mobile:
		return p.Mobile.Enabled && !p.Mobile.PairingDisabled && len(p.Mobile.Applications) > 0
	case Platform:
		return p.Platform.Enabled && !p.Platform.PairingDisabled
	case SecurityKey:
		return p.SecurityKey.Enabled && !p.SecurityKey.PairingDisabled
	}
	return false
}

// PairableTypes lists the pairable types in seed order.
func (p *Policy) PairableTypes() []DeviceType {
	out := []DeviceType{}
	for _, t := range AllDeviceTypes {
		if p.Pairable(t) {
			out = append(out, t)
		}
	}
	return out
}

// DefaultPolicy is the policy of the built-in demo environment, and the
// source of every default ApplyDefaults fills in.
func DefaultPolicy(id string) Policy {
	p := Policy{ID: id, Name: "Default MFA policy", Default: true}
	p.Email.Enabled, p.SMS.Enabled, p.Voice.Enabled, p.TOTP.Enabled = true, true, true, true
	p.ApplyDefaults()
	return p
}

// ApplyDefaults fills every unset rule with the documented default.
func (p *Policy) ApplyDefaults() {
	for _, t := range []DeviceType{Email, SMS, Voice} {
		o := &p.OTPMethodFor(t).OTP
		if o.LifeTime.Duration == 0 {
			o.LifeTime = minutes(30)
		}
		if o.Failure.Count == 0 {
			o.Failure.Count = 3
		}
		if o.Failure.CoolDown.Duration == 0 {
			o.Failure.CoolDown = minutes(2)
		}
		if o.OTPLength == 0 {
			o.OTPLength = 6
		}
		if o.ResendCoolDown.Duration == 0 {
			o.ResendCoolDown = seconds(30)
			if t == Email {
				o.ResendCoolDown = seconds(5)
			}
		}
	}
	if p.TOTP.OTP.Failure.Count == 0 {
		p.TOTP.OTP.Failure.Count = 3
	}
	if p.TOTP.OTP.Failure.CoolDown.Duration == 0 {
		p.TOTP.OTP.Failure.CoolDown = minutes(2)
	}
	if p.TOTP.PasscodeGracePeriod == 0 {
		p.TOTP.PasscodeGracePeriod = 1
	}
	if p.TOTP.URIParameters.Issuer == "" {
		p.TOTP.URIParameters.Issuer = "enrollflow"
	}
	p.Mobile.applyDefaults()
}

// Validate checks the ranges of every rule; the error names the field.
func (p *Policy) Validate() error {
	if strings.TrimSpace(p.ID) == "" {
		return fmt.Errorf("id: required")
	}
	// In a fixed order, so that a policy with several problems always
	// reports the same one.
	for _, m := range []struct {
		name string
		t    DeviceType
	}{{"sms", SMS}, {"voice", Voice}, {"email", Email}} {
		name, o := m.name, p.OTPMethodFor(m.t).OTP
		if o.OTPLength < 6 || o.OTPLength > 10 {
			return fmt.Errorf("%s.otp.otpLength: must be between 6 and 10", name)
		}
		if err := o.LifeTime.validate(name+".otp.lifeTime", time.Minute, 24*time.Hour); err != nil {
			return err
		}
		if o.Failure.Count < 1 || o.Failure.Count > 7 {
			return fmt.Errorf("%s.otp.failure.count: must be between 1 and 7", name)
		}
		if err := o.Failure.CoolDown.validate(name+".otp.failure.coolDown", 0, 30*time.Minute); err != nil {
			return err
		}
		if err := o.ResendCoolDown.validate(name+".otp.resendCoolDown", time.Second, 10*time.Minute); err != nil {
			return err
		}
		for i, t := range p.OTPMethodFor(m.t).AllowedNumberTypes {
			if _, ok := RestrictedNumberTypes[t]; !ok || m.t == Email {
				return fmt.Errorf("%s.allowedNumberTypes[%d]: must be PREMIUM_RATE, SHARED_COST, UAN, PAGER, VOICEMAIL or UNKNOWN (SMS and VOICE only)", name, i)
			}
		}
	}
	if c := p.TOTP.OTP.Failure.Count; c < 1 || c > 7 {
		return fmt.Errorf("totp.otp.failure.count: must be between 1 and 7")
	}
	if err := p.TOTP.OTP.Failure.CoolDown.validate("totp.otp.failure.coolDown", 0, 30*time.Minute); err != nil {
		return err
	}
	if g := p.TOTP.PasscodeGracePeriod; g < 1 || g > 10 {
		return fmt.Errorf("totp.passcodeGracePeriod: must be between 1 and 10")
	}
	return p.Mobile.validate()
}

// Settings are an environment's MFA settings.
type Settings struct {
	Pairing struct {
		MaxAllowedDevices int    `json:"maxAllowedDevices" yaml:"maxAllowedDevices"`
		PairingKeyFormat  string `json:"pairingKeyFormat" yaml:"pairingKeyFormat"`
	} `json:"pairing" yaml:"pairing"`
	Lockout struct {
		FailureCount    int `json:"failureCount" yaml:"failureCount"`
		DurationSeconds int `json:"durationSeconds" yaml:"durationSeconds"`
	} `json:"lockout" yaml:"lockout"`
	// SendLimits bound the passcodes sent, whatever the front door.
	SendLimits SendLimits `json:"sendLimits" yaml:"sendLimits"`
	// PairingKeyGuesses bound the unknown pairing keys presented, per
	// client address and per environment (the mobile side's guessing).
	PairingKeyGuesses struct {
		Client      Rate `json:"client" yaml:"client"`
		Environment Rate `json:"environment" yaml:"environment"`
	} `json:"pairingKeyGuesses" yaml:"pairingKeyGuesses"`
	// PhoneNumbers restricts the numbers SMS and VOICE devices may have.
	PhoneNumbers struct {
		AllowedCountries []string `json:"allowedCountries,omitempty" yaml:"allowedCountries"`
	} `json:"phoneNumbers" yaml:"phoneNumbers"`
}

// SendLimits are the send budgets against pumping.
type SendLimits struct {
	User    Rate `json:"user" yaml:"user"`       // per user, every method
	Address Rate `json:"address" yaml:"address"` // per destination address, across users
	SMS     Rate `json:"sms" yaml:"sms"`         // per environment
	Voice   Rate `json:"voice" yaml:"voice"`     // per environment
	Email   Rate `json:"email" yaml:"email"`     // per environment
}

// Rate is Count sends per Period, all of them available at once.
type Rate struct {
	Count  int      `json:"count" yaml:"count"`
	Period Duration `json:"period" yaml:"period"`
}

// For returns the environment budget of a method.
func (l *SendLimits) For(t DeviceType) Rate {
	switch t {
	case SMS:
		return l.SMS
	case Voice:
		return l.Voice
	}
	return l.Email
}

func (r *Rate) applyDefault(count int, period Duration) {
	if r.Count == 0 {
		r.Count = count
	}
	if r.Period.Duration == 0 {
		r.Period = period
	}
}

func (r Rate) validate(field string) error {
	if r.Count < 1 || r.Count > 1_000_000 {
		return fmt.Errorf("%s.count: must be between 1 and 1000000", field)
	}
	return r.Period.validate(field+".period", time.Second, 24*time.Hour)
}

// ApplyDefaults fills the documented defaults.
func (s *Settings) ApplyDefaults() {
	if s.Pairing.MaxAllowedDevices == 0 {
		s.Pairing.MaxAllowedDevices = 5
	}
	if s.Pairing.PairingKeyFormat == "" {
		s.Pairing.PairingKeyFormat = "NUMERIC"
	}
	if s.Lockout.FailureCount == 0 {
		s.Lockout.FailureCount = 5
	}
	if s.Lockout.DurationSeconds == 0 {
		s.Lockout.DurationSeconds = 600
	}
	hour := Duration{Duration: 1, TimeUnit: "HOURS"}
	s.SendLimits.User.applyDefault(10, hour)
	s.SendLimits.Address.applyDefault(5, hour)
	s.SendLimits.SMS.applyDefault(300, minutes(1))
	s.SendLimits.Voice.applyDefault(300, minutes(1))
	s.SendLimits.Email.applyDefault(1000, minutes(1))
	s.PairingKeyGuesses.Client.applyDefault(10, minutes(1))
	s.PairingKeyGuesses.Environment.applyDefault(600, minutes(1))
}

// Validate checks the ranges; the error names the field.
func (s *Settings) Validate() error {
	if m := s.Pairing.MaxAllowedDevices; m < 1 || m > 15 {
		return fmt.Errorf("pairing.maxAllowedDevices: must be between 1 and 15")
	}
	if f := s.Pairing.PairingKeyFormat; f != PairingKeyNumeric && f != PairingKeyAlphanumeric {
		return fmt.Errorf("pairing.pairingKeyFormat: must be NUMERIC or ALPHANUMERIC")
	}
	if c := s.Lockout.FailureCount; c < 1 || c > 100 {
		return fmt.Errorf("lockout.failureCount: must be between 1 and 100")
	}
	if d := s.Lockout.DurationSeconds; d < 1 || d > 86400 {
		return fmt.Errorf("lockout.durationSeconds: must be between 1 and 86400 (24 hours)")
	}
	l := &s.SendLimits
	for _, r := range []struct {
		field string
		rate  Rate
	}{{"user", l.User}, {"address", l.Address}, {"sms", l.SMS}, {"voice", l.Voice}, {"email", l.Email}} {
		if err := r.rate.validate("sendLimits." + r.field); err != nil {
			return err
		}
	}
	if err := s.PairingKeyGuesses.Client.validate("pairingKeyGuesses.client"); err != nil {
		return err
	}
	if err := s.PairingKeyGuesses.Environment.validate("pairingKeyGuesses.environment"); err != nil {
		return err
	}
	for i, c := range s.PhoneNumbers.AllowedCountries {
		if !ValidRegion(c) {
			return fmt.Errorf("phoneNumbers.allowedCountries[%d]: %q is not an ISO 3166-1 alpha-2 country code such as US or ES", i, c)
		}
	}
	return nil
}

// LockoutDuration is the lockout as a time.Duration.
func (s *Settings) LockoutDuration() time.Duration {
	return time.Duration(s.Lockout.DurationSeconds) * time.Second
}

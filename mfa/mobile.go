package mfa

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Application is a mobile application of an environment: the authenticator
// app (or an app with the SDK inside) that pairs MOBILE devices.
type Application struct {
	ID   string `json:"id" yaml:"id"`
	Name string `json:"name" yaml:"name"`
	// PairingKeyLifetime is how long a pairing key made for this
	// application stays valid: 1 minute to 48 hours, 10 minutes by default.
	PairingKeyLifetime Duration `json:"pairingKeyLifetime" yaml:"pairingKeyLifetime"`
	Push               struct {
		Enabled bool `json:"enabled" yaml:"enabled"`
	} `json:"push" yaml:"push"`
	// PushTokenRequired refuses a pairing that brings no push token
	// (PUSH_TOKEN_REQUIRED).
	PushTokenRequired bool `json:"pushTokenRequired" yaml:"pushTokenRequired"`
}

var applicationID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidApplicationID reports whether id may name an application.
func ValidApplicationID(id string) bool { return applicationID.MatchString(id) }

// ApplyDefaults fills the documented defaults.
func (a *Application) ApplyDefaults() {
	if a.PairingKeyLifetime.Duration == 0 {
		a.PairingKeyLifetime = minutes(10)
	}
}

// Validate checks the application; the error names the field.
func (a *Application) Validate() error {
	if !ValidApplicationID(a.ID) {
		return fmt.Errorf("id: must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	if n := len(strings.TrimSpace(a.Name)); n == 0 || len(a.Name) > 100 {
		return fmt.Errorf("name: required, at most 100 characters")
	}
	if a.PushTokenRequired && !a.Push.Enabled {
		return fmt.Errorf("pushTokenRequired: needs push.enabled")
	}
	return a.PairingKeyLifetime.validate("pairingKeyLifetime", time.Minute, 48*time.Hour)
}

// MobileMethod is the policy of MOBILE devices.
type MobileMethod struct {
	Enabled                    bool `json:"enabled" yaml:"enabled"`
	PairingDisabled            bool `json:"pairingDisabled" yaml:"pairingDisabled"`
	PromptForNicknameOnPairing bool `json:"promptForNicknameOnPairing" yaml:"promptForNicknameOnPairing"`
	// Applications are the ids of the applications that may pair; MOBILE
	// is offered only when at least one of them exists.
	Applications []string `json:"applications" yaml:"applications"`
	// OTP is the rule for the phone's offline passcodes.
	OTP struct {
		Failure Failure `json:"failure" yaml:"failure"`
	} `json:"otp" yaml:"otp"`
}

// Allows reports whether the policy lets application id pair.
func (m *MobileMethod) Allows(id string) bool {
	for _, a := range m.Applications {
		if a == id {
			return true
		}
	}
	return false
}

func (m *MobileMethod) applyDefaults() {
	if m.Applications == nil {
		m.Applications = []string{}
	}
	if m.OTP.Failure.Count == 0 {
		m.OTP.Failure.Count = 3
	}
	if m.OTP.Failure.CoolDown.Duration == 0 {
		m.OTP.Failure.CoolDown = minutes(2)
	}
}

func (m *MobileMethod) validate() error {
	for i, id := range m.Applications {
		if !ValidApplicationID(id) {
			return fmt.Errorf("mobile.applications[%d]: %q is not an application id", i, id)
		}
	}
	if c := m.OTP.Failure.Count; c < 1 || c > 7 {
		return fmt.Errorf("mobile.otp.failure.count: must be between 1 and 7")
	}
	return m.OTP.Failure.CoolDown.validate("mobile.otp.failure.coolDown", 0, 30*time.Minute)
}

// Pairing-key formats (mfaSettings.pairing.pairingKeyFormat).
const (
	PairingKeyNumeric      = "NUMERIC"      // 12 digits
	PairingKeyAlphanumeric = "ALPHANUMERIC" // 16 characters of PairingKeyAlphabet
)

// PairingKeyAlphabet has no look-alike characters: no 0/O, 1/I/L, 2/Z,
// 5/S, 8/B, U/V.
const PairingKeyAlphabet = "34679ACDEFGHJKMNPQRTWXY"

package mfa

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// FIDOMethod is the policy of PLATFORM or SECURITY_KEY devices.
type FIDOMethod struct {
	Enabled                    bool `json:"enabled" yaml:"enabled"`
	PairingDisabled            bool `json:"pairingDisabled" yaml:"pairingDisabled"`
	PromptForNicknameOnPairing bool `json:"promptForNicknameOnPairing" yaml:"promptForNicknameOnPairing"`
}

// WebAuthn is an environment's WebAuthn settings: the relying parties
// credentials are made for, and what the ceremonies require.
type WebAuthn struct {
	RelyingParties []RelyingParty `json:"relyingParties" yaml:"relyingParties"`
	// UserVerification: required, preferred (the default) or discouraged.
	UserVerification string `json:"userVerification" yaml:"userVerification"`
	// ResidentKey: required, preferred (the default) or discouraged.
	ResidentKey string `json:"residentKey" yaml:"residentKey"`
	// Attestation: none (the default), indirect or direct.
	Attestation string `json:"attestation" yaml:"attestation"`
	// AllowedAAGUIDs, when set, are the only authenticator models accepted,
	// and only from an attestation with a certificate (attestation must be
	// direct or indirect): without one an AAGUID is anyone's claim. The
	// certificate is not chained to vendor roots (no metadata service is
	// configured), so this keeps honest authenticators of other models
	// out rather than stopping a forged attestation.
	AllowedAAGUIDs []string `json:"allowedAaguids,omitempty" yaml:"allowedAaguids"`
	// Failure: count 1 to 7 refused ceremonies, then coolDown 2 to 30 minutes.
	Failure Failure `json:"failure" yaml:"failure"`
	// Timeout is how long a ceremony may take (30 seconds to 10 minutes,
	// 5 minutes by default); the challenge expires with it.
	Timeout Duration `json:"timeout" yaml:"timeout"`
}

// RelyingParty is one WebAuthn relying party: its id (a registrable domain
// of the origins), name, and the origins its pages are served from.
type RelyingParty struct {
	ID      string   `json:"id" yaml:"id"`
	Name    string   `json:"name" yaml:"name"`
	Origins []string `json:"origins" yaml:"origins"`
}

var aaguidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ApplyDefaults fills the documented defaults.
func (w *WebAuthn) ApplyDefaults() {
	if w.UserVerification == "" {
		w.UserVerification = "preferred"
	}
	if w.ResidentKey == "" {
		w.ResidentKey = "preferred"
	}
	if w.Attestation == "" {
		w.Attestation = "none"
	}
	if w.Failure.Count == 0 {
		w.Failure.Count = 3
	}
	if w.Failure.CoolDown.Duration == 0 {
		w.Failure.CoolDown = minutes(2)
	}
	if w.Timeout.Duration == 0 {
		w.Timeout = minutes(5)
	}
	if w.RelyingParties == nil {
		w.RelyingParties = []RelyingParty{}
	}
	for i := range w.AllowedAAGUIDs {
		w.AllowedAAGUIDs[i] = strings.ToLower(w.AllowedAAGUIDs[i])
	}
}

// Validate checks the settings; the error names the field (below webauthn).
func (w *WebAuthn) Validate() error {
	seen := map[string]bool{}
	for i, rp := range w.RelyingParties {
		field := fmt.Sprintf("relyingParties[%d]", i)
		if !validRPID(rp.ID) {
			return fmt.Errorf("%s.id: %q is not a domain name (such as example.com or localhost)", field, rp.ID)
		}
		if seen[rp.ID] {
			return fmt.Errorf("%s.id: %q is used twice", field, rp.ID)
		}
		seen[rp.ID] = true
		if n := len(strings.TrimSpace(rp.Name)); n == 0 || len(rp.Name) > 100 {
			return fmt.Errorf("%s.name: required, at most 100 characters", field)
		}
		if len(rp.Origins) == 0 {
			return fmt.Errorf("%s.origins: at least one origin (https://%s) is required", field, rp.ID)
		}
		for j, o := range rp.Origins {
			if err := checkOrigin(o, rp.ID); err != nil {
				return fmt.Errorf("%s.origins[%d]: %v", field, j, err)
			}
		}
	}
	for _, f := range []struct{ name, value string }{{"userVerification", w.UserVerification}, {"residentKey", w.ResidentKey}} {
		if f.value != "required" && f.value != "preferred" && f.value != "discouraged" {
			return fmt.Errorf("%s: must be required, preferred or discouraged", f.name)
		}
	}
	if a := w.Attestation; a != "none" && a != "indirect" && a != "direct" {
		return fmt.Errorf("attestation: must be none, indirect or direct")
	}
	if len(w.AllowedAAGUIDs) > 0 && w.Attestation == "none" {
		return fmt.Errorf("allowedAaguids: needs attestation direct or indirect (with none, authenticators send no certificate to back their AAGUID)")
	}
	for i, a := range w.AllowedAAGUIDs {
		if !aaguidPattern.MatchString(a) {
			return fmt.Errorf("allowedAaguids[%d]: %q is not an AAGUID (a UUID such as ee882879-721c-4913-9775-3dfcce97072a)", i, a)
		}
	}
	if c := w.Failure.Count; c < 1 || c > 7 {
		return fmt.Errorf("failure.count: must be between 1 and 7")
	}
	if err := w.Failure.CoolDown.validate("failure.coolDown", 2*time.Minute, 30*time.Minute); err != nil {
		return err
	}
	return w.Timeout.validate("timeout", 30*time.Second, 10*time.Minute)
}

// RelyingParty finds a relying party by id; "" is the first one.
func (w *WebAuthn) RelyingParty(id string) (RelyingParty, bool) {
	for _, rp := range w.RelyingParties {
		if id == "" || rp.ID == id {
			return rp, true
		}
	}
	return RelyingParty{}, false
}

var domainLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validRPID(id string) bool {
	if id == "" || len(id) > 253 || id != strings.ToLower(id) {
		return false
	}
	for _, l := range strings.Split(id, ".") {
		if !domainLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// checkOrigin: scheme://host[:port], https unless the host is localhost
// or loopback, and the host the RP id or below it.
func checkOrigin(o, rpID string) error {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin (scheme://host[:port])", o)
	}
	host := u.Hostname()
	local := host == "localhost" || host == "127.0.0.1" || host == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && local) {
		return fmt.Errorf("%q: an origin must be https (http only for localhost)", o)
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) && !(local && rpID == "localhost") {
		return fmt.Errorf("%q is not on the relying party's domain %s", o, rpID)
	}
	return nil
}

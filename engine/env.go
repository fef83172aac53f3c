package engine

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sort"

	"github.com/enrollflow/enrollflow/mfa"
)

// reservedEnvironmentID is the first segment of the management API's
// paths; an environment of that name would make /environments/... ambiguous.
const reservedEnvironmentID = "environments"

// Environment is one tenant: its credential, policies and settings. It is
// configuration, identical on every node, so it is not kept in the store.
type Environment struct {
	ID          string
	apiKeyHash  [32]byte
	Policies    map[string]*mfa.Policy
	DefaultID   string // id of the default device authentication policy
	MFASettings mfa.Settings
	// Applications are the configured mobile applications (the management
	// API may save more, or override these, in the store).
	Applications []mfa.Application
	// WebAuthn is how PLATFORM and SECURITY_KEY devices are enrolled.
	WebAuthn mfa.WebAuthn
}

// NewEnvironment validates the policies and settings and picks the default
// policy (the one marked default, else the only one).
func NewEnvironment(id, apiKey string, policies []mfa.Policy, settings mfa.Settings, apps []mfa.Application) (*Environment, error) {
	if id == "" {
		return nil, fmt.Errorf("environment id: required")
	}
	if !idPattern.MatchString(id) || id == reservedEnvironmentID {
		return nil, fmt.Errorf("environment id %q: must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit, and not %q (the management API's path)", id, reservedEnvironmentID)
	}
	if len(apiKey) < 16 {
		return nil, fmt.Errorf("environment %s: apiKey: must be at least 16 characters", id)
	}
	env := &Environment{ID: id, apiKeyHash: sha256.Sum256([]byte(apiKey)),
		Policies: map[string]*mfa.Policy{}, Applications: []mfa.Application{}}
	env.WebAuthn.ApplyDefaults()
	seenApp := map[string]bool{}
	for i, a := range apps {
		a.ApplyDefaults()
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("environment %s: applications[%d].%v", id, i, err)
		}
		if seenApp[a.ID] {
			return nil, fmt.Errorf("environment %s: applications[%d].id: %q is used twice", id, i, a.ID)
		}
		seenApp[a.ID] = true
		env.Applications = append(env.Applications, a)
	}
	for i := range policies {
		p := policies[i]
		p.ApplyDefaults()
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("environment %s: deviceAuthenticationPolicies[%d].%v", id, i, err)
		}
		if _, dup := env.Policies[p.ID]; dup {
			return nil, fmt.Errorf("environment %s: deviceAuthenticationPolicies[%d].id: %q is used twice", id, i, p.ID)
		}
		env.Policies[p.ID] = &p
		if p.Default {
			if env.DefaultID != "" {
				return nil, fmt.Errorf("environment %s: deviceAuthenticationPolicies[%d].default: only one policy may be the default", id, i)
			}
			env.DefaultID = p.ID
		}
	}
	if env.DefaultID == "" && len(policies) == 1 {
		env.DefaultID = policies[0].ID
		env.Policies[env.DefaultID].Default = true
	}
	if env.DefaultID == "" {
		return nil, fmt.Errorf("environment %s: deviceAuthenticationPolicies: exactly one policy must have default: true", id)
	}
	settings.ApplyDefaults()
	if err := settings.Validate(); err != nil {
		return nil, fmt.Errorf("environment %s: mfaSettings.%v", id, err)
	}
	env.MFASettings = settings
	return env, nil
}

// WithWebAuthn sets the environment's WebAuthn settings, validated.
func (e *Environment) WithWebAuthn(w mfa.WebAuthn) error {
	w.ApplyDefaults()
	if err := w.Validate(); err != nil {
		return fmt.Errorf("environment %s: webauthn.%v", e.ID, err)
	}
	e.WebAuthn = w
	return nil
}

// CheckAPIKey compares in constant time (hashing first makes the compare
// independent of the presented key's length).
func (e *Environment) CheckAPIKey(presented string) bool {
	h := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(h[:], e.apiKeyHash[:]) == 1
}

// Policy returns a policy by id.
func (e *Environment) Policy(id string) (*mfa.Policy, bool) {
	p, ok := e.Policies[id]
	return p, ok
}

// Application returns a configured application by id.
func (e *Environment) Application(id string) (mfa.Application, bool) {
	for _, a := range e.Applications {
		if a.ID == id {
			return a, true
		}
	}
	return mfa.Application{}, false
}

// DefaultPolicy returns the environment's default policy.
func (e *Environment) DefaultPolicy() *mfa.Policy { return e.Policies[e.DefaultID] }

// SortedPolicies lists the policies by id.
func (e *Environment) SortedPolicies() []*mfa.Policy {
	out := make([]*mfa.Policy, 0, len(e.Policies))
	for _, p := range e.Policies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Package config reads enrollflow's configuration: one YAML (or JSON) file
// whose field names are those of the API's JSON, plus ENROLLFLOW_*
// environment variables and flags applied by the caller. Without a file it
// yields the built-in demo environment.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
)

// File is the configuration file.
type File struct {
	Environments []Environment `json:"environments"`
}

// Environment is one environment in the file.
type Environment struct {
	ID string `json:"id"`
	// APIKey, or the name of an environment variable holding it (APIKeyEnv),
	// so that keys need not be written into the file.
	APIKey                       string            `json:"apiKey,omitempty"`
	APIKeyEnv                    string            `json:"apiKeyEnv,omitempty"`
	DeviceAuthenticationPolicies []mfa.Policy      `json:"deviceAuthenticationPolicies"`
	MFASettings                  mfa.Settings      `json:"mfaSettings"`
	Applications                 []mfa.Application `json:"applications,omitempty"`
	// WebAuthn: the relying parties and rules of PLATFORM and SECURITY_KEY.
	WebAuthn      *mfa.WebAuthn `json:"webauthn,omitempty"`
	Flows         []engine.Flow `json:"flows,omitempty"`
	Notifications Notifications `json:"notifications,omitzero"`
}

// Notifications is how an environment's passcodes reach users: a channel
// per delivery method and the device-pairing template contents.
type Notifications struct {
	// DefaultLocale is where template selection falls back to before the
	// built-in English ("en" when empty).
	DefaultLocale string `json:"defaultLocale,omitempty"`
	// Channels by delivery method: EMAIL, SMS, VOICE. A method without a
	// channel cannot deliver passcodes (the step shows DELIVERY_UNAVAILABLE).
	Channels map[delivery.Method]dispatch.Channel `json:"channels,omitempty"`
	// Templates by name; device_pairing is the one there is.
	Templates map[string][]templates.Content `json:"templates,omitempty"`
}

// DemoEnvironmentID and DemoFlowID name the built-in demo.
const (
	DemoEnvironmentID = "demo"
	DemoFlowID        = "mfa-enrollment"
)

// DemoApplicationID is the demo environment's authenticator app, which
// `enrollflow pair` plays.
const DemoApplicationID = "demo-authenticator"

// Demo is the built-in environment: the default policy with EMAIL, SMS,
// VOICE, TOTP and MOBILE (the application demo-authenticator) enabled, and
// one flow of one enrollment step that may be skipped.
func Demo(apiKey string) File {
	flow := engine.Flow{
		ID: DemoFlowID, Name: "MFA device enrollment",
		Trigger: engine.Trigger{Next: "enroll"},
		StepDefinitions: map[string]engine.StepDefinition{
			"enroll": {Type: "MFA_DEVICE_ENROLLMENT",
				Configuration: json.RawMessage(`{"useDefaultPolicy":true,"allowSkip":true}`)},
		},
	}
	outbox := dispatch.Channel{Type: dispatch.TypeOutbox}
	app := mfa.Application{ID: DemoApplicationID, Name: "Demo authenticator"}
	app.Push.Enabled = true
	policy := mfa.DefaultPolicy("default")
	policy.Mobile.Enabled, policy.Mobile.Applications = true, []string{DemoApplicationID}
	policy.Platform.Enabled, policy.SecurityKey.Enabled = true, true
	webauthn := &mfa.WebAuthn{RelyingParties: []mfa.RelyingParty{{ID: "localhost", Name: "enrollflow demo",
		Origins: []string{"http://localhost:8080", "http://127.0.0.1:8080"}}}}
	return File{Environments: []Environment{{
		ID: DemoEnvironmentID, APIKey: apiKey,
		Notifications: Notifications{Channels: map[delivery.Method]dispatch.Channel{
			delivery.Email: outbox, delivery.SMS: outbox, delivery.Voice: outbox}},
		DeviceAuthenticationPolicies: []mfa.Policy{policy},
		Applications:                 []mfa.Application{app},
		WebAuthn:                     webauthn,
		Flows:                        []engine.Flow{flow},
	}}}
}

// DemoServedAt lets the demo's passkeys be made on the pages of the
// server's public URL: its origin joins the localhost relying party when it
// is local, else it becomes the first relying party (the one device.create
// uses by default), with its host as the id.
func DemoServedAt(f *File, publicURL string) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" || len(f.Environments) == 0 || f.Environments[0].WebAuthn == nil {
		return
	}
	w := f.Environments[0].WebAuthn
	origin := u.Scheme + "://" + u.Host
	switch host := u.Hostname(); host {
	case "localhost", "127.0.0.1", "::1":
		if !slices.Contains(w.RelyingParties[0].Origins, origin) {
			w.RelyingParties[0].Origins = append(w.RelyingParties[0].Origins, origin)
		}
	default:
		w.RelyingParties = append([]mfa.RelyingParty{{ID: host, Name: "enrollflow demo", Origins: []string{origin}}}, w.RelyingParties...)
	}
}

// Load reads a YAML or JSON file strictly: an unknown field is an error that
// names it.
func Load(path string) (File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	return Parse(raw)
}

// Parse decodes YAML (JSON is YAML) into File through JSON, so the file
// uses exactly the API's field names and strictness.
func Parse(raw []byte) (File, error) {
	var tree any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	js, err := json.Marshal(normalize(tree))
	if err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	var f File
	if err := actions.DecodeStrict(js, &f); err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	if len(f.Environments) == 0 {
		return File{}, fmt.Errorf("config: environments: at least one environment is required")
	}
	return f, nil
}

// normalize turns yaml's map[string]any trees into JSON-encodable ones
// (yaml.v3 already uses string keys for mappings with string keys; other
// keys are rendered as text).
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []any:
		for i, x := range v {
			v[i] = normalize(x)
		}
	}
	return v
}

// Build validates the file and returns the environments and their flows.
func (f File) Build() ([]*engine.Environment, map[string][]engine.Flow, error) {
	var envs []*engine.Environment
	flows := map[string][]engine.Flow{}
	seen := map[string]bool{}
	for i, e := range f.Environments {
		if seen[e.ID] {
			return nil, nil, fmt.Errorf("environments[%d].id: %q is used twice", i, e.ID)
		}
		seen[e.ID] = true
		key := e.APIKey
		if e.APIKeyEnv != "" {
			key = os.Getenv(e.APIKeyEnv)
			if key == "" {
				return nil, nil, fmt.Errorf("environments[%d].apiKeyEnv: environment variable %s is empty", i, e.APIKeyEnv)
			}
		}
		env, err := engine.NewEnvironment(e.ID, key, e.DeviceAuthenticationPolicies, e.MFASettings, e.Applications)
		if err != nil {
			return nil, nil, fmt.Errorf("environments[%d]: %w", i, err)
		}
		if e.WebAuthn != nil {
			if err := env.WithWebAuthn(*e.WebAuthn); err != nil {
				return nil, nil, fmt.Errorf("environments[%d]: %w", i, err)
			}
		}
		envs = append(envs, env)
		flows[e.ID] = e.Flows
	}
	return envs, flows, nil
}

// Delivery returns each environment's channels and templates, for
// dispatch.New to validate.
func (f File) Delivery() (map[string]dispatch.Environment, error) {
	out := make(map[string]dispatch.Environment, len(f.Environments))
	for i, e := range f.Environments {
		n := e.Notifications
		for name := range n.Templates {
			if name != templates.DevicePairing {
				return nil, fmt.Errorf("environments[%d].notifications.templates.%s: unknown template (known: %s)", i, name, templates.DevicePairing)
			}
		}
		for method := range n.Channels {
			if method != delivery.Email && method != delivery.SMS && method != delivery.Voice {
				return nil, fmt.Errorf("environments[%d].notifications.channels.%s: must be EMAIL, SMS or VOICE", i, method)
			}
		}
		out[e.ID] = dispatch.Environment{DefaultLocale: n.DefaultLocale, Channels: n.Channels,
			Templates: n.Templates[templates.DevicePairing]}
	}
	return out, nil
}

// ParseSecret reads the master secret: base64 (standard or URL) or hex, at
// least 32 bytes once decoded.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	tooShort := fmt.Errorf("must be at least 32 random bytes, base64 or hex encoded (try: openssl rand -base64 32)")
	// Text that is hex is read as hex only: a hex secret that is too short
	// must be refused, not reread as base64 (which would turn its 62
	// characters into 46 bytes that are not the secret the operator meant).
	if b, err := hex.DecodeString(s); err == nil {
		if len(b) < 32 {
			return nil, tooShort
		}
		return b, nil
	}
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) >= 32 {
			return b, nil
		}
	}
	return nil, tooShort
}

// RandomToken returns n random bytes, URL-safe base64 encoded.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

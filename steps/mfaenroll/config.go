package mfaenroll

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
)

// Config is the step's configuration in a flow definition (seed 003).
type Config struct {
	UseDefaultPolicy           *bool `json:"useDefaultPolicy"`
	DeviceAuthenticationPolicy *struct {
		ID string `json:"id"`
	} `json:"deviceAuthenticationPolicy,omitempty"`
	Template *struct {
		Variant string `json:"variant"`
	} `json:"template,omitempty"`
	// AllowSkip offers device.skipEnrollment in DEVICE_ENROLLMENT_REQUIRED.
	// The seed leaves the name open; it is off unless the designer says so.
	AllowSkip bool `json:"allowSkip"`
}

// variant is the template variant the designer chose ("" for the default).
func (c *Config) variant() string {
	if c.Template == nil {
		return ""
	}
	return c.Template.Variant
}

func parseConfig(raw json.RawMessage) (*Config, []engine.ErrorDetail) {
	c := &Config{}
	if len(raw) == 0 {
		return nil, []engine.ErrorDetail{{Code: engine.DetailRequired, Target: "useDefaultPolicy", Message: "is required"}}
	}
	if err := actions.DecodeStrict(raw, c); err != nil {
		return nil, []engine.ErrorDetail{decodeDetail(err)}
	}
	return c, nil
}

func decodeDetail(err error) engine.ErrorDetail {
	if de, ok := err.(*actions.DecodeError); ok && de.Field != "" {
		code := engine.DetailInvalidValue
		if de.Problem == "unknown field" {
			code = engine.DetailUnknownField
		}
		return engine.ErrorDetail{Code: code, Target: de.Field, Message: de.Problem}
	}
	return engine.ErrorDetail{Code: engine.DetailInvalidValue, Message: err.Error()}
}

// policy resolves the configured policy in env.
func (c *Config) policy(env *engine.Environment) (*mfa.Policy, bool) {
	if c.UseDefaultPolicy != nil && *c.UseDefaultPolicy {
		return env.DefaultPolicy(), true
	}
	if c.DeviceAuthenticationPolicy == nil {
		return nil, false
	}
	return env.Policy(c.DeviceAuthenticationPolicy.ID)
}

func validateConfig(env *engine.Environment, raw json.RawMessage) []engine.ErrorDetail {
	c, details := parseConfig(raw)
	if details != nil {
		return details
	}
	if c.UseDefaultPolicy == nil {
		return []engine.ErrorDetail{{Code: engine.DetailRequired, Target: "useDefaultPolicy", Message: "is required (true or false)"}}
	}
	if !*c.UseDefaultPolicy {
		if c.DeviceAuthenticationPolicy == nil || c.DeviceAuthenticationPolicy.ID == "" {
			return []engine.ErrorDetail{{Code: engine.DetailRequired, Target: "deviceAuthenticationPolicy.id",
				Message: "is required when useDefaultPolicy is false"}}
		}
		if _, ok := env.Policy(c.DeviceAuthenticationPolicy.ID); !ok {
			return []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "deviceAuthenticationPolicy.id",
				Message: fmt.Sprintf("no device authentication policy %q in environment %s", c.DeviceAuthenticationPolicy.ID, env.ID)}}
		}
	}
	if c.Template != nil && c.Template.Variant != "" {
		if err := templates.CheckVariant(c.Template.Variant); err != nil {
			return []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "template.variant", Message: err.Error()}}
		}
	}
	return nil
}

var (
	localePattern = regexp.MustCompile(`^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$`)
)

// input is the step's view of its resolved inputs.
type input struct {
	UserID, Username, Email, Phone, Compatibility, Locale string
	Variables                                             map[string]string
}

func readInput(m map[string]any) input {
	str := func(path ...string) string { s, _ := engine.Lookup(m, path...).(string); return s }
	vars, _ := engine.Lookup(m, "template", "variables").(map[string]any)
	return input{
		UserID: str("user", "id"), Username: str("user", "username"), Email: str("user", "email"), Phone: str("user", "mobilePhone"),
		Compatibility: str("webauthn", "compatibility"), Locale: str("template", "locale"), Variables: variablesText(vars),
	}
}

// variablesText turns the integrator's template.variables (strings,
// numbers, booleans: validateInput allows nothing else) into text.
func variablesText(vars map[string]any) map[string]string {
	if len(vars) == 0 {
		return nil
	}
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		switch v := v.(type) {
		case string:
			out[k] = v
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(v)
		case json.Number:
			out[k] = v.String()
		}
	}
	return out
}

// knownInputs are the step's input fields (seed 003, plus user.username
// for message templates). template.variables is the integrator's own
// object and stays open.
var knownInputs = []string{"user.id", "user.email", "user.mobilePhone", "user.username",
	"webauthn.compatibility", "template.locale", "template.variables"}

const openInput = "template.variables"

// unknownInputs names every input field the step does not know, so that a
// typo such as user.emial is an error rather than a silently missing
// address. Keys may be nested objects or dotted paths ("user.id"), as
// engine.Lookup reads them.
func unknownInputs(m map[string]any) []engine.ErrorDetail {
	var details []engine.ErrorDetail
	var walk func(path string, v any)
	walk = func(path string, v any) {
		if slices.Contains(knownInputs, path) || strings.HasPrefix(path, openInput+".") {
			return // a leaf: its value is checked by validateInput
		}
		if obj, ok := v.(map[string]any); ok {
			for _, k := range sortedKeys(obj) {
				walk(joinPath(path, k), obj[k])
			}
			return
		}
		for _, known := range knownInputs {
			if strings.HasPrefix(known, path+".") {
				if v != nil {
					details = append(details, engine.ErrorDetail{Code: engine.DetailInvalidValue, Target: path, Message: "must be an object"})
				}
				return
			}
		}
		details = append(details, engine.ErrorDetail{Code: engine.DetailUnknownField, Target: path,
			Message: "is not an input of this step (known: " + strings.Join(knownInputs, ", ") + ")"})
	}
	walk("", m)
	return details
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Bounds on template.variables: they end up in every message the step
// sends and in the execution's state.
const (
	maxVariables   = 20
	maxVariableLen = 500
)

func validateInput(m map[string]any) []engine.ErrorDetail {
	details := unknownInputs(m)
	bad := func(target, code, msg string) {
		details = append(details, engine.ErrorDetail{Code: code, Target: target, Message: msg})
	}
	optionalString := func(target string, path ...string) (string, bool) {
		v := engine.Lookup(m, path...)
		if v == nil {
			return "", false
		}
		s, ok := v.(string)
		if !ok {
			bad(target, engine.DetailInvalidValue, "must be a string")
			return "", false
		}
		return s, true
	}
	switch id := engine.Lookup(m, "user", "id").(type) {
	case nil:
		bad("user.id", engine.DetailRequired, "is required")
	case string:
		if id == "" {
			bad("user.id", engine.DetailRequired, "is required")
		} else if len(id) > 128 {
			bad("user.id", engine.DetailInvalidValue, "must be at most 128 characters")
		}
	default:
		bad("user.id", engine.DetailInvalidValue, "must be a string")
	}
	if s, ok := optionalString("user.email", "user", "email"); ok && !mfa.ValidEmail(s) {
		bad("user.email", engine.DetailInvalidValue, "must be a valid e-mail address such as jane@example.com")
	}
	if s, ok := optionalString("user.mobilePhone", "user", "mobilePhone"); ok {
		// Whether the environment and the policy accept it (countries,
		// types) is checked when a device is created with it.
		if _, err := mfa.ParsePhone(s, mfa.PhoneRules{}); err != nil {
			bad("user.mobilePhone", engine.DetailInvalidValue, err.Error())
		}
	}
	if s, ok := optionalString("user.username", "user", "username"); ok && len(s) > 128 {
		bad("user.username", engine.DetailInvalidValue, "must be at most 128 characters")
	}
	if s, ok := optionalString("webauthn.compatibility", "webauthn", "compatibility"); ok &&
		s != "FULL" && s != "SECURITY_KEY_ONLY" && s != "NONE" {
		bad("webauthn.compatibility", engine.DetailInvalidValue, "must be FULL, SECURITY_KEY_ONLY or NONE")
	}
	if s, ok := optionalString("template.locale", "template", "locale"); ok && !localePattern.MatchString(s) {
		bad("template.locale", engine.DetailInvalidValue, "must be a language tag such as en or es-ES")
	}
	if v := engine.Lookup(m, "template", "variables"); v != nil {
		vars, ok := v.(map[string]any)
		if !ok {
			bad("template.variables", engine.DetailInvalidValue, "must be an object")
		}
		if len(vars) > maxVariables {
			bad("template.variables", engine.DetailLimitExceeded, fmt.Sprintf("must have at most %d entries", maxVariables))
		}
		for _, k := range sortedKeys(vars) {
			switch x := vars[k].(type) {
			case string:
				if len(x) > maxVariableLen {
					bad("template.variables."+k, engine.DetailLimitExceeded, fmt.Sprintf("must be at most %d bytes", maxVariableLen))
				}
			case float64, bool, json.Number:
			default:
				bad("template.variables."+k, engine.DetailInvalidValue, "must be a string, number or boolean")
			}
		}
	}
	return details
}

package mfaenroll

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
)

func TestValidEmail(t *testing.T) {
	tests := map[string]bool{
		"jane@example.com":                  true,
		"jane.doe+mfa@sub.example.co.uk":    true,
		"j@x":                               true,
		"élodie@example.fr":                 true,
		`"jane doe"@example.com`:            false, // quoted local parts are refused (ParseAddress unquotes them)
		"":                                  false,
		"jane":                              false,
		"jane@":                             false,
		"@example.com":                      false,
		"jane@@example.com":                 false,
		"Jane <jane@example.com>":           false, // display name
		"<jane@example.com>":                false, // angle brackets
		" jane@example.com":                 false,
		"jane@example.com ":                 false,
		"jane@example.com, bob@example.com": false,
		"jane@exa mple.com":                 false,
		"jane@example.com\n":                false,
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com": true,  // 254
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com": false, // 255
	}
	for in, want := range tests {
		if got := mfa.ValidEmail(in); got != want {
			t.Errorf("ValidEmail(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestValidateInput(t *testing.T) {
	user := func(extra map[string]any) map[string]any {
		u := map[string]any{"id": "u1"}
		for k, v := range extra {
			u[k] = v
		}
		return map[string]any{"user": u}
	}
	type want struct{ target, code string }
	tests := []struct {
		name string
		in   map[string]any
		want []want
	}{
		{"minimal", user(nil), nil},
		{"everything", map[string]any{
			"user":     map[string]any{"id": "u1", "email": "jane@example.com", "mobilePhone": "+12015554567"},
			"webauthn": map[string]any{"compatibility": "SECURITY_KEY_ONLY"},
			"template": map[string]any{"locale": "es-ES", "variables": map[string]any{"a": "x", "b": 1.0, "c": true, "d": json.Number("2")}},
		}, nil},
		{"dotted keys", map[string]any{"user.id": "u1", "user.email": "jane@example.com", "template.locale": "en"}, nil},
		{"nil input", nil, []want{{"user.id", engine.DetailRequired}}},
		{"no user", map[string]any{}, []want{{"user.id", engine.DetailRequired}}},
		{"unknown top-level input", map[string]any{"user": map[string]any{"id": "u"}, "x": 1.0}, []want{{"x", engine.DetailUnknownField}}},
		{"unknown nested input", user(map[string]any{"emial": "jane@example.com"}), []want{{"user.emial", engine.DetailUnknownField}}},
		{"unknown dotted input", map[string]any{"user.id": "u", "template.lang": "en"}, []want{{"template.lang", engine.DetailUnknownField}}},
		{"unknown under a known leaf is its bad value", user(map[string]any{"email": map[string]any{"a": 1.0}}), []want{{"user.email", engine.DetailInvalidValue}}},
		{"user not an object", map[string]any{"user": "u"}, []want{{"user", engine.DetailInvalidValue}, {"user.id", engine.DetailRequired}}},
		{"username", user(map[string]any{"username": "jane"}), nil},
		{"variables are open", map[string]any{"user.id": "u", "template.variables.brand": "Acme"}, nil},
		{"empty id", map[string]any{"user": map[string]any{"id": ""}}, []want{{"user.id", engine.DetailRequired}}},
		{"numeric id", map[string]any{"user": map[string]any{"id": 7.0}}, []want{{"user.id", engine.DetailInvalidValue}}},
		{"long id", map[string]any{"user": map[string]any{"id": strings.Repeat("x", 129)}}, []want{{"user.id", engine.DetailInvalidValue}}},
		{"128-char id", map[string]any{"user": map[string]any{"id": strings.Repeat("x", 128)}}, nil},
		{"bad email", user(map[string]any{"email": "jane"}), []want{{"user.email", engine.DetailInvalidValue}}},
		{"email not a string", user(map[string]any{"email": 5.0}), []want{{"user.email", engine.DetailInvalidValue}}},
		{"bad phone", user(map[string]any{"mobilePhone": "5551234"}), []want{{"user.mobilePhone", engine.DetailInvalidValue}}},
		{"phone not a string", user(map[string]any{"mobilePhone": []any{}}), []want{{"user.mobilePhone", engine.DetailInvalidValue}}},
		{"null email is absent", user(map[string]any{"email": nil}), nil},
		{"bad compatibility", map[string]any{"user": map[string]any{"id": "u"}, "webauthn": map[string]any{"compatibility": "full"}},
			[]want{{"webauthn.compatibility", engine.DetailInvalidValue}}},
		{"bad locale", map[string]any{"user": map[string]any{"id": "u"}, "template": map[string]any{"locale": "english please"}},
			[]want{{"template.locale", engine.DetailInvalidValue}}},
		{"variables not an object", map[string]any{"user": map[string]any{"id": "u"}, "template": map[string]any{"variables": "x"}},
			[]want{{"template.variables", engine.DetailInvalidValue}}},
		{"variable of a bad type", map[string]any{"user": map[string]any{"id": "u"}, "template": map[string]any{"variables": map[string]any{"nested": map[string]any{}}}},
			[]want{{"template.variables.nested", engine.DetailInvalidValue}}},
		{"null variable", map[string]any{"user": map[string]any{"id": "u"}, "template": map[string]any{"variables": map[string]any{"n": nil}}},
			[]want{{"template.variables.n", engine.DetailInvalidValue}}},
		{"several problems in order", map[string]any{
			"user":     map[string]any{"email": "x", "mobilePhone": "y"},
			"webauthn": map[string]any{"compatibility": 1.0},
			"template": map[string]any{"locale": "?"},
		}, []want{
			{"user.id", engine.DetailRequired}, {"user.email", engine.DetailInvalidValue}, {"user.mobilePhone", engine.DetailInvalidValue},
			{"webauthn.compatibility", engine.DetailInvalidValue}, {"template.locale", engine.DetailInvalidValue},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := validateInput(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("details = %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				if got[i].Target != w.target || got[i].Code != w.code || got[i].Message == "" {
					t.Errorf("detail %d = %+v, want %+v", i, got[i], w)
				}
			}
		})
	}
	// The step's ValidateInput is the same function.
	if d := New(Deps{}).ValidateInput(map[string]any{}); len(d) != 1 || d[0].Target != "user.id" {
		t.Fatalf("Step.ValidateInput = %+v", d)
	}
}

func TestReadInput(t *testing.T) {
	in := readInput(map[string]any{
		"user":             map[string]any{"id": "u1", "email": "jane@example.com"},
		"user.mobilePhone": "+12015554567",
		"webauthn":         map[string]any{"compatibility": "NONE"},
		"template":         map[string]any{"locale": "fr", "variables": map[string]any{"a": "b"}},
	})
	if in.UserID != "u1" || in.Email != "jane@example.com" || in.Phone != "+12015554567" ||
		in.Compatibility != "NONE" || in.Locale != "fr" || in.Variables["a"] != "b" {
		t.Fatalf("readInput = %+v", in)
	}
	if z := readInput(nil); z.UserID != "" || z.Variables != nil {
		t.Fatalf("readInput(nil) = %+v", z)
	}
}

func testEnv(t *testing.T) *engine.Environment {
	t.Helper()
	other := mfa.Policy{ID: "strict"}
	other.TOTP.Enabled = true
	env, err := engine.NewEnvironment("env1", "0123456789abcdef0123", []mfa.Policy{mfa.DefaultPolicy("default"), other}, mfa.Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestValidateConfig(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		name   string
		raw    string
		target string // "" with code "": valid
		code   string
	}{
		{"default policy", `{"useDefaultPolicy":true}`, "", ""},
		{"default policy and skip", `{"useDefaultPolicy":true,"allowSkip":true,"template":{"variant":"v1"}}`, "", ""},
		{"named policy", `{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":"strict"}}`, "", ""},
		{"default wins over a named policy", `{"useDefaultPolicy":true,"deviceAuthenticationPolicy":{"id":"nope"}}`, "", ""},
		{"100-char variant", `{"useDefaultPolicy":true,"template":{"variant":"` + strings.Repeat("v", 100) + `"}}`, "", ""},
		{"absent", ``, "useDefaultPolicy", engine.DetailRequired},
		{"empty object", `{}`, "useDefaultPolicy", engine.DetailRequired},
		{"null useDefaultPolicy", `{"useDefaultPolicy":null}`, "useDefaultPolicy", engine.DetailRequired},
		{"wrong type", `{"useDefaultPolicy":"true"}`, "useDefaultPolicy", engine.DetailInvalidValue},
		{"allowSkip wrong type", `{"useDefaultPolicy":true,"allowSkip":1}`, "allowSkip", engine.DetailInvalidValue},
		{"unknown field", `{"useDefaultPolicy":true,"skip":true}`, "skip", engine.DetailUnknownField},
		{"policy id required", `{"useDefaultPolicy":false}`, "deviceAuthenticationPolicy.id", engine.DetailRequired},
		{"policy id empty", `{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":""}}`, "deviceAuthenticationPolicy.id", engine.DetailRequired},
		{"policy id wrong type", `{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":5}}`, "deviceAuthenticationPolicy.id", engine.DetailInvalidValue},
		{"unknown policy", `{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":"nope"}}`, "deviceAuthenticationPolicy.id", engine.DetailInvalidValue},
		{"variant too long", `{"useDefaultPolicy":true,"template":{"variant":"` + strings.Repeat("v", 101) + `"}}`, "template.variant", engine.DetailInvalidValue},
		// No content could be saved under such a name: it would never match.
		{"variant with a dot", `{"useDefaultPolicy":true,"template":{"variant":"black.friday"}}`, "template.variant", engine.DetailInvalidValue},
		{"not an object", `[]`, "", engine.DetailInvalidValue},
		{"malformed", `{"useDefaultPolicy":`, "", engine.DetailInvalidValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var raw json.RawMessage
			if tc.raw != "" {
				raw = json.RawMessage(tc.raw)
			}
			got := validateConfig(env, raw)
			if tc.code == "" {
				if len(got) != 0 {
					t.Fatalf("details = %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Target != tc.target || got[0].Code != tc.code || got[0].Message == "" {
				t.Fatalf("details = %+v, want target %q code %s", got, tc.target, tc.code)
			}
		})
	}
}

func TestConfigPolicy(t *testing.T) {
	env := testEnv(t)
	yes, no := true, false
	c := &Config{UseDefaultPolicy: &yes}
	if p, ok := c.policy(env); !ok || p.ID != "default" {
		t.Fatalf("default: %v %v", p, ok)
	}
	c = &Config{UseDefaultPolicy: &no, DeviceAuthenticationPolicy: &struct {
		ID string `json:"id"`
	}{ID: "strict"}}
	if p, ok := c.policy(env); !ok || p.ID != "strict" {
		t.Fatalf("named: %v %v", p, ok)
	}
	c.DeviceAuthenticationPolicy.ID = "gone"
	if _, ok := c.policy(env); ok {
		t.Fatal("a missing policy resolved")
	}
	if _, ok := (&Config{UseDefaultPolicy: &no}).policy(env); ok {
		t.Fatal("no policy resolved")
	}
}

package config_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/otp"
	"github.com/enrollflow/enrollflow/factor/totp"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/steps/mfaenroll"
	"github.com/enrollflow/enrollflow/store/memory"
)

var configFile = filepath.Join("..", "..", "..", "testdata", "config", "enrollflow.yaml")

const prodKey = "prod-key-0123456789abcdef"

func registry(t *testing.T) *engine.StepRegistry {
	t.Helper()
	keys, err := mfa.DeriveKeys(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := mfa.NewSealer(keys.SealTOTP)
	if err != nil {
		t.Fatal(err)
	}
	factors := factor.NewRegistry(&otp.Factor{Hasher: mfa.NewOTPHasher(keys.OTPHash)}, &totp.Factor{Sealer: sealer})
	st := memory.New(nil)
	return engine.NewStepRegistry(mfaenroll.New(mfaenroll.Deps{Devices: st, Factors: factors, Regulator: regulation.New(st, keys.AddressKey), Log: zerolog.Nop()}))
}

func TestLoadAndBuildFile(t *testing.T) {
	f, err := config.Load(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Environments) != 2 {
		t.Fatalf("%d environments", len(f.Environments))
	}
	prod := f.Environments[0]
	if prod.ID != "prod" || prod.APIKeyEnv != "ENROLLFLOW_TEST_PROD_KEY" || prod.APIKey != "" {
		t.Fatalf("prod = %+v", prod)
	}
	if len(prod.DeviceAuthenticationPolicies) != 2 || len(prod.Applications) != 2 || len(prod.Flows) != 2 {
		t.Fatalf("prod contents: %d policies, %d apps, %d flows",
			len(prod.DeviceAuthenticationPolicies), len(prod.Applications), len(prod.Flows))
	}
	std := prod.DeviceAuthenticationPolicies[0]
	if std.ID != "standard" || !std.Default || std.Email.OTP.OTPLength != 8 ||
		std.Email.OTP.LifeTime != (mfa.Duration{Duration: 10, TimeUnit: "MINUTES"}) ||
		std.Email.OTP.Failure.Count != 5 || !std.Voice.PairingDisabled || !std.SMS.PromptForNicknameOnPairing ||
		std.TOTP.PasscodeGracePeriod != 2 || std.TOTP.URIParameters.Issuer != "Acme Corp" {
		t.Fatalf("standard policy = %+v", std)
	}
	strong := prod.Flows[1]
	if strong.ID != "strong-enrollment" || strong.Trigger.Next != "email" || len(strong.StepDefinitions) != 2 {
		t.Fatalf("strong flow = %+v", strong)
	}
	if got := strong.StepDefinitions["email"].Input["user.id"]; got != "${flow.inputs.user.id}" {
		t.Fatalf("expression read as %#v", got)
	}
	var cfg map[string]any
	if err := json.Unmarshal(strong.StepDefinitions["totp"].Configuration, &cfg); err != nil ||
		cfg["useDefaultPolicy"] != false || engine.Lookup(cfg, "deviceAuthenticationPolicy", "id") != "totp-only" {
		t.Fatalf("configuration = %s (%v)", strong.StepDefinitions["totp"].Configuration, err)
	}

	t.Setenv("ENROLLFLOW_TEST_PROD_KEY", prodKey)
	envs, flows, err := f.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 2 || envs[0].ID != "prod" || envs[1].ID != "staging" {
		t.Fatalf("envs = %v", envs)
	}
	pe := envs[0]
	if !pe.CheckAPIKey(prodKey) || pe.CheckAPIKey("staging-key-0123456789abcdef") {
		t.Fatal("prod key not taken from the environment variable")
	}
	if !envs[1].CheckAPIKey("staging-key-0123456789abcdef") {
		t.Fatal("staging key from the file not used")
	}
	if pe.DefaultID != "standard" || pe.DefaultPolicy().SMS.OTP.OTPLength != 6 || pe.DefaultPolicy().Email.OTP.ResendCoolDown.Std() != 15*time.Second {
		t.Fatalf("prod default policy = %+v", pe.DefaultPolicy())
	}
	if got := pe.DefaultPolicy().PairableTypes(); !reflect.DeepEqual(got, []mfa.DeviceType{mfa.Email, mfa.SMS, mfa.TOTP}) {
		t.Fatalf("pairable = %v", got)
	}
	totpOnly, ok := pe.Policy("totp-only")
	if !ok || totpOnly.TOTP.OTP.Failure.CoolDown.Std() != 5*time.Minute || totpOnly.TOTP.URIParameters.Issuer != "enrollflow" {
		t.Fatalf("totp-only = %+v", totpOnly)
	}
	if s := pe.MFASettings; s.Pairing.MaxAllowedDevices != 3 || s.Pairing.PairingKeyFormat != "ALPHANUMERIC" || s.Lockout.FailureCount != 4 || s.Lockout.DurationSeconds != 900 {
		t.Fatalf("settings = %+v", s)
	}
	if s := envs[1].MFASettings; s.Pairing.MaxAllowedDevices != 5 || s.Pairing.PairingKeyFormat != "NUMERIC" {
		t.Fatalf("staging settings not defaulted: %+v", s)
	}
	if len(envs[1].Applications) != 0 || envs[1].Applications == nil {
		t.Fatalf("staging applications = %#v, want an empty list", envs[1].Applications)
	}
	if len(flows["prod"]) != 2 || len(flows["staging"]) != 0 {
		t.Fatalf("flows = %v", flows)
	}
	reg := registry(t)
	for _, fl := range flows["prod"] {
		if err := fl.Validate(pe, reg); err != nil {
			t.Errorf("flow %s: %v", fl.ID, err)
		}
	}
}

func TestParseJSON(t *testing.T) {
	f, err := config.Parse([]byte(`{"environments":[{"id":"e","apiKey":"0123456789abcdef0","deviceAuthenticationPolicies":[{"id":"p"}],"mfaSettings":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	envs, _, err := f.Build()
	if err != nil || envs[0].DefaultID != "p" {
		t.Fatalf("Build = %v, %v", envs, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown top-level field", "environment:\n  - id: x\n", []string{"environment", "unknown field"}},
		{"unknown environment field", "environments:\n  - id: x\n    apikey_env: K\n", []string{"apikey_env", "unknown field"}},
		{"unknown policy field", "environments:\n  - id: x\n    deviceAuthenticationPolicies:\n      - id: p\n        email:\n          otp:\n            otpLenght: 8\n", []string{"otpLenght", "unknown field"}},
		{"unknown flow field", "environments:\n  - id: x\n    flows:\n      - id: f\n        stepDefinition: {}\n", []string{"stepDefinition", "unknown field"}},
		{"wrong type", "environments:\n  - id: x\n    mfaSettings:\n      pairing:\n        maxAllowedDevices: three\n", []string{"maxAllowedDevices", "number"}},
		{"wrong type in a policy", "environments:\n  - id: x\n    deviceAuthenticationPolicies:\n      - id: p\n        default: maybe\n", []string{"default", "boolean"}},
		{"no environments", "environments: []\n", []string{"at least one environment"}},
		{"empty file", "", []string{"config:"}},
		{"not a mapping", "- a\n- b\n", []string{"JSON object"}},
		{"bad yaml", "environments: [\n", []string{"config:"}},
		{"duplicate key", "environments:\n  - id: a\n    id: b\n", []string{"config:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func env(id string, policies ...mfa.Policy) config.Environment {
	if len(policies) == 0 {
		policies = []mfa.Policy{{ID: "p"}}
	}
	return config.Environment{ID: id, APIKey: "0123456789abcdef-" + id, DeviceAuthenticationPolicies: policies}
}

func TestBuildErrors(t *testing.T) {
	badLength := mfa.Policy{ID: "p"}
	badLength.Email.OTP.OTPLength = 12
	badSettings := env("e")
	badSettings.MFASettings.Pairing.MaxAllowedDevices = 20
	negativeLockout := env("e")
	negativeLockout.MFASettings.Lockout.DurationSeconds = -1
	hugeLockout := env("e")
	hugeLockout.MFASettings.Lockout.FailureCount = 1000000
	badBudget := env("e")
	badBudget.MFASettings.SendLimits.Address.Count = -5
	premium := mfa.Policy{ID: "p"}
	premium.Voice.AllowedNumberTypes = []string{"SATELLITE"}
	emptyVar := env("e")
	emptyVar.APIKeyEnv = "ENROLLFLOW_TEST_EMPTY_KEY"
	unsetVar := env("e")
	unsetVar.APIKeyEnv = "ENROLLFLOW_TEST_UNSET_KEY_9f3a"
	shortKey := env("e")
	shortKey.APIKey = "short"
	t.Setenv("ENROLLFLOW_TEST_EMPTY_KEY", "")
	tests := []struct {
		name string
		envs []config.Environment
		want string
	}{
		{"duplicate id", []config.Environment{env("a"), env("b"), env("a")}, `environments[2].id: "a" is used twice`},
		{"negative lockout", []config.Environment{negativeLockout}, "environments[0]: environment e: mfaSettings.lockout.durationSeconds: must be between 1 and 86400"},
		{"huge lockout count", []config.Environment{hugeLockout}, "mfaSettings.lockout.failureCount: must be between 1 and 100"},
		{"negative budget", []config.Environment{badBudget}, "mfaSettings.sendLimits.address.count: must be between 1 and 1000000"},
		{"unknown number type", []config.Environment{env("e", premium)}, "deviceAuthenticationPolicies[0].voice.allowedNumberTypes[0]"},
		{"empty apiKeyEnv variable", []config.Environment{env("ok"), emptyVar}, "environments[1].apiKeyEnv: environment variable ENROLLFLOW_TEST_EMPTY_KEY is empty"},
		{"unset apiKeyEnv variable", []config.Environment{unsetVar}, "environments[0].apiKeyEnv"},
		{"short api key", []config.Environment{shortKey}, "environments[0]: environment e: apiKey: must be at least 16 characters"},
		{"empty id", []config.Environment{env("")}, "environments[0]: environment id: required"},
		{"id with a slash", []config.Environment{env("a/b")}, `environments[0]: environment id "a/b": must be 1 to 64 letters`},
		{"the management API's path", []config.Environment{env("environments")}, `environment id "environments"`},
		{"two default policies", []config.Environment{env("e", mfa.Policy{ID: "a", Default: true}, mfa.Policy{ID: "b", Default: true})},
			"environments[0]: environment e: deviceAuthenticationPolicies[1].default: only one policy may be the default"},
		{"no default among two", []config.Environment{env("e", mfa.Policy{ID: "a"}, mfa.Policy{ID: "b"})},
			"deviceAuthenticationPolicies: exactly one policy must have default: true"},
		{"duplicate policy id", []config.Environment{env("e", mfa.Policy{ID: "a", Default: true}, mfa.Policy{ID: "a"})},
			`deviceAuthenticationPolicies[1].id: "a" is used twice`},
		{"policy without id", []config.Environment{env("e", mfa.Policy{})}, "deviceAuthenticationPolicies[0].id: required"},
		{"bad policy range", []config.Environment{env("e", badLength)},
			"environments[0]: environment e: deviceAuthenticationPolicies[0].email.otp.otpLength: must be between 6 and 10"},
		{"bad settings", []config.Environment{badSettings}, "environments[0]: environment e: mfaSettings.pairing.maxAllowedDevices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			envs, flows, err := config.File{Environments: tc.envs}.Build()
			if err == nil {
				t.Fatalf("Build succeeded: %v", envs)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
			if envs != nil || flows != nil {
				t.Fatalf("partial result returned with the error")
			}
		})
	}
}

func TestBuildAPIKeyEnvWins(t *testing.T) {
	e := env("e")
	e.APIKeyEnv = "ENROLLFLOW_TEST_KEY_WINS"
	t.Setenv("ENROLLFLOW_TEST_KEY_WINS", "from-the-environment-0123")
	envs, _, err := config.File{Environments: []config.Environment{e}}.Build()
	if err != nil {
		t.Fatal(err)
	}
	if !envs[0].CheckAPIKey("from-the-environment-0123") || envs[0].CheckAPIKey(e.APIKey) {
		t.Fatal("apiKeyEnv does not take precedence over apiKey")
	}
}

func TestParseSecret(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(200 + i) // high bytes: the base64 forms contain + / - _
	}
	std := base64.StdEncoding.EncodeToString(key)
	url := base64.URLEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") || !strings.ContainsAny(url, "-_") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test key does not exercise the alphabets: %s %s", std, url)
	}
	key48 := bytes.Repeat([]byte{0xAB, 0xCD, 0xEF}, 16)
	tests := []struct {
		name, in string
		want     []byte
	}{
		{"hex", hex.EncodeToString(key), key},
		{"hex upper-case", strings.ToUpper(hex.EncodeToString(key)), key},
		{"base64 std", std, key},
		{"base64 raw std", base64.RawStdEncoding.EncodeToString(key), key},
		{"base64 url", url, key},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(key), key},
		{"surrounding whitespace", "  " + std + "\n", key},
		{"longer secret", base64.StdEncoding.EncodeToString(key48), key48},
	}
	for _, tc := range tests {
		got, err := config.ParseSecret(tc.in)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: ParseSecret(%q) = %x, %v", tc.name, tc.in, got, err)
		}
	}
	for _, bad := range []string{
		"", "   ", hex.EncodeToString(key[:31]), hex.EncodeToString(key[:16]),
		base64.StdEncoding.EncodeToString(key[:31]), base64.RawURLEncoding.EncodeToString(key[:16]),
		"not a secret at all, not at all!", "openssl rand -base64 32",
	} {
		if got, err := config.ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) = %x, want an error", bad, got)
		} else if !strings.Contains(err.Error(), "32") {
			t.Errorf("error %q does not say how long", err)
		}
	}
}

func TestRandomToken(t *testing.T) {
	a, b := config.RandomToken(24), config.RandomToken(24)
	if len(a) != 32 || a == b {
		t.Fatalf("RandomToken = %q, %q", a, b)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(a); err != nil || len(raw) != 24 {
		t.Fatalf("not base64url of 24 bytes: %v", err)
	}
	// A generated master secret passes ParseSecret.
	if _, err := config.ParseSecret(config.RandomToken(32)); err != nil {
		t.Fatal(err)
	}
}

func TestDemo(t *testing.T) {
	f := config.Demo("demo-api-key-0123456789")
	envs, flows, err := f.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 1 || envs[0].ID != config.DemoEnvironmentID || !envs[0].CheckAPIKey("demo-api-key-0123456789") {
		t.Fatalf("demo envs = %+v", envs)
	}
	e := envs[0]
	if got := e.DefaultPolicy().PairableTypes(); !reflect.DeepEqual(got, []mfa.DeviceType{mfa.Mobile, mfa.Email, mfa.SMS, mfa.Voice, mfa.TOTP, mfa.Platform, mfa.SecurityKey}) {
		t.Fatalf("demo pairable types = %v", got)
	}
	if rp, ok := e.WebAuthn.RelyingParty(""); !ok || rp.ID != "localhost" || len(rp.Origins) != 2 {
		t.Fatalf("demo relying party = %+v", rp)
	}
	served := config.Demo("demo-api-key-0123456789")
	config.DemoServedAt(&served, "https://mfa.example.com/base")
	config.DemoServedAt(&f, "http://localhost:9000")
	if rps := served.Environments[0].WebAuthn.RelyingParties; len(rps) != 2 || rps[0].ID != "mfa.example.com" || rps[0].Origins[0] != "https://mfa.example.com" {
		t.Fatalf("demo served at a public URL: %+v", rps)
	}
	if o := f.Environments[0].WebAuthn.RelyingParties[0].Origins; len(o) != 3 || o[2] != "http://localhost:9000" {
		t.Fatalf("demo served at localhost:9000: origins %v", o)
	}
	if _, _, err := served.Build(); err != nil {
		t.Fatal(err)
	}
	if a, ok := e.Application(config.DemoApplicationID); !ok || !a.Push.Enabled || a.PushTokenRequired || a.PairingKeyLifetime.Std() != 10*time.Minute {
		t.Fatalf("demo application = %+v, %v", a, ok)
	}
	fl := flows[config.DemoEnvironmentID]
	if len(fl) != 1 || fl[0].ID != config.DemoFlowID {
		t.Fatalf("demo flows = %+v", fl)
	}
	if err := fl[0].Validate(e, registry(t)); err != nil {
		t.Fatalf("demo flow invalid: %v", err)
	}
	// The demo survives a trip through its own file format.
	js, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Parse(js)
	if err != nil {
		t.Fatalf("demo as a file: %v\n%s", err, js)
	}
	if _, _, err := again.Build(); err != nil {
		t.Fatal(err)
	}
	// A short key is refused rather than silently accepted.
	if _, _, err := config.Demo("short").Build(); err == nil {
		t.Fatal("demo with a 5-character key built")
	}
}

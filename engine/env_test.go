package engine_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
)

func TestNewEnvironment(t *testing.T) {
	env := testEnv(t, mfa.Settings{})
	if env.DefaultID != "default" || env.DefaultPolicy().ID != "default" {
		t.Fatalf("default = %q", env.DefaultID)
	}
	var ids []string
	for _, p := range env.SortedPolicies() {
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "default,email-only,totp-only" {
		t.Fatalf("SortedPolicies = %v", ids)
	}
	// Policies are defaulted copies: the caller's slice is not aliased.
	if p, _ := env.Policy("email-only"); p.Email.OTP.OTPLength != 6 || p.Default {
		t.Fatalf("email-only = %+v", p)
	}
	if env.MFASettings.Pairing.MaxAllowedDevices != 5 {
		t.Fatalf("settings not defaulted: %+v", env.MFASettings)
	}
	if !env.CheckAPIKey(testAPIKey) || env.CheckAPIKey(testAPIKey+"x") || env.CheckAPIKey("") || env.CheckAPIKey(testAPIKey[:len(testAPIKey)-1]) {
		t.Fatal("CheckAPIKey")
	}
	// A single policy becomes the default even without default: true.
	one, err := engine.NewEnvironment("e", testAPIKey, []mfa.Policy{{ID: "only"}}, mfa.Settings{}, nil)
	if err != nil || one.DefaultID != "only" || !one.DefaultPolicy().Default || one.Applications == nil {
		t.Fatalf("single policy: %+v %v", one, err)
	}

	bad := mfa.Policy{ID: "p"}
	bad.TOTP.PasscodeGracePeriod = 11
	var badSettings mfa.Settings
	badSettings.Pairing.PairingKeyFormat = "HEX"
	tests := []struct {
		name     string
		id, key  string
		policies []mfa.Policy
		settings mfa.Settings
		want     string
	}{
		{"no id", "", testAPIKey, []mfa.Policy{{ID: "p"}}, mfa.Settings{}, "environment id: required"},
		{"short key", "e", "0123456789abcde", []mfa.Policy{{ID: "p"}}, mfa.Settings{}, "apiKey: must be at least 16"},
		{"no policies", "e", testAPIKey, nil, mfa.Settings{}, "exactly one policy must have default: true"},
		{"bad policy", "e", testAPIKey, []mfa.Policy{bad}, mfa.Settings{}, "deviceAuthenticationPolicies[0].totp.passcodeGracePeriod"},
		{"bad settings", "e", testAPIKey, []mfa.Policy{{ID: "p"}}, badSettings, "mfaSettings.pairing.pairingKeyFormat"},
	}
	for _, tc := range tests {
		if _, err := engine.NewEnvironment(tc.id, tc.key, tc.policies, tc.settings, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestRunnerAccessorsAndResource(t *testing.T) {
	h := newHarness(t, mfaSettings())
	if e, ok := h.runner.Environment("env1"); !ok || e != h.env {
		t.Fatal("Environment(env1)")
	}
	if _, ok := h.runner.Environment("nope"); ok {
		t.Fatal("Environment(nope)")
	}
	if h.runner.Steps() != h.reg || !h.runner.Now().Equal(h.clock.Now()) {
		t.Fatal("Steps/Now")
	}
	ctx := context.Background()
	x := h.start("mfa-enrollment", alice)
	if _, _, err := h.runner.Resource(ctx, h.env, x.ID, "qrcode.png"); err == nil {
		t.Fatal("QR code before a TOTP device exists")
	}
	h.mustAct(x.ID, actions.DeviceCreate, map[string]any{"type": "TOTP"})
	ct, body, err := h.runner.Resource(ctx, h.env, x.ID, "qrcode.png")
	if err != nil || ct != "image/png" || !bytes.HasPrefix(body, []byte("\x89PNG")) {
		t.Fatalf("Resource = %q, %d bytes, %v", ct, len(body), err)
	}
	_, _, err = h.runner.Resource(ctx, h.env, x.ID, "other.png")
	wantAPIError(t, err, http.StatusNotFound, engine.CodeNotFound)
	_, _, err = h.runner.Resource(ctx, h.env, "0123", "qrcode.png")
	wantAPIError(t, err, http.StatusNotFound, engine.CodeNotFound)
	h.mustAct(x.ID, actions.DeviceDelete, nil)
	h.mustAct(x.ID, actions.DeviceSkipEnrollment, nil)
	_, _, err = h.runner.Resource(ctx, h.env, x.ID, "qrcode.png")
	wantAPIError(t, err, http.StatusNotFound, engine.CodeNotFound)
}

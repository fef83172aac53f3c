package hal_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
)

// TestPhoneNumbersAreChecked: numbers are parsed with libphonenumber's
// metadata; invalid ones, premium-rate and other costly types, and
// countries the environment does not accept are refused naming the field,
// and accepted numbers are kept in E.164 whatever their formatting.
func TestPhoneNumbersAreChecked(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{Config: demoConfig(func(e *config.Environment) {
			e.MFASettings.PhoneNumbers.AllowedCountries = []string{"US", "ES"}
		})})
		r := n.admin(http.MethodPost, execPath, startBody(demoFlow, map[string]any{"id": "p1", "mobilePhone": "+15551234567"}))
		mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"inputs.user.mobilePhone", "INVALID_VALUE"})

		id := n.startFlow(demoFlow, map[string]any{"id": "p2"})
		for _, c := range []struct{ phone, says string }{
			{"+19005550123", "premium-rate"},
			{"+447400123456", "numbers of GB are not accepted"},
			{"+1555123456", "not a valid phone number"},
			{"+1 201 555 0123 ext 4", "only digits"},
		} {
			n.unchanged(id, func() {
				r := n.act(id, ctCreate, `{"type":"SMS","phone":"`+c.phone+`"}`)
				mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"phone", "INVALID_VALUE"})
				if msg := str(r.Body, "message"); !strings.Contains(msg, c.says) {
					t.Errorf("%s: message %q does not say %q", c.phone, msg, c.says)
				}
			})
		}
		if n.sentTo("+19005550123") != 0 {
			t.Fatal("a passcode went to a premium-rate number")
		}

		// A formatted number is accepted and used in E.164.
		r = n.act(id, ctCreate, `{"type":"VOICE","phone":"+1 (201) 555-4567"}`)
		mustStatus(t, r, http.StatusOK)
		if got := str(r.Body, "device", "phone"); got != "+1******4567" {
			t.Errorf("device.phone = %q", got)
		}
		mustState(t, n.activate(id, n.passcode("+12015554567")), "COMPLETED")
	})
}

// TestPolicyAllowsANumberType: a policy may accept a restricted type.
func TestPolicyAllowsANumberType(t *testing.T) {
	n := newNode(t, &backend{t: t, name: "memory"}, apptest.Options{Config: demoConfig(func(e *config.Environment) {
		p := &e.DeviceAuthenticationPolicies[0]
		p.SMS.AllowedNumberTypes = []string{"PREMIUM_RATE"}
	})})
	id := n.startFlow(demoFlow, map[string]any{"id": "p3"})
	mustStatus(t, n.act(id, ctCreate, `{"type":"SMS","phone":"+19005550123"}`), http.StatusOK)
	id = n.startFlow(demoFlow, map[string]any{"id": "p4"})
	mustError(t, n.act(id, ctCreate, `{"type":"VOICE","phone":"+19005550123"}`), http.StatusBadRequest, "INVALID_DATA", detail{"phone", "INVALID_VALUE"})
}

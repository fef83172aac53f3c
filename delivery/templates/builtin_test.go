package templates_test

import (
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
)

func TestBuiltinContentsAreValid(t *testing.T) {
	for _, m := range []delivery.Method{delivery.Email, delivery.SMS, delivery.Voice} {
		c := templates.Builtin(m)
		if c.Method != m || c.Locale != "en" || c.Variant != "" {
			t.Errorf("Builtin(%s) = %+v", m, c)
		}
		if errs := c.Validate(); errs != nil {
			t.Errorf("Builtin(%s) is invalid: %v", m, errs)
		}
	}
	if c := templates.Builtin("FAX"); c != (templates.Content{}) {
		t.Errorf("Builtin(FAX) = %+v; want the zero Content", c)
	}
}

func TestBuiltinRendering(t *testing.T) {
	render := func(m delivery.Method) templates.Rendered {
		t.Helper()
		r, err := (*templates.Set)(nil).Render(templates.Request{Method: m, OTP: testOTP})
		if err != nil || !r.Builtin || r.Locale != "en" {
			t.Fatalf("Render(%s) = %+v, %v", m, r, err)
		}
		return r
	}
	if r := render(delivery.Email); r.Subject != "Your verification code" ||
		!strings.Contains(r.Text, "123456") || !strings.Contains(r.HTML, ">123456<") {
		t.Errorf("e-mail = %+v", r)
	}
	if r := render(delivery.SMS); r.Text != "Your verification code is 123456." {
		t.Errorf("SMS = %q", r.Text)
	}
	// The voice content says the code twice: a listener cannot read back.
	if r := render(delivery.Voice); strings.Count(r.Text, "1, 2, 3, 4, 5, 6") != 2 {
		t.Errorf("voice = %q", r.Text)
	}
}

// TestBuiltinMatchesDeliveryPairingMessage keeps the built-in texts equal to
// those delivery sends before templates are configured.
func TestBuiltinMatchesDeliveryPairingMessage(t *testing.T) {
	for _, m := range []delivery.Method{delivery.Email, delivery.SMS, delivery.Voice} {
		r, err := (*templates.Set)(nil).Render(templates.Request{Method: m, OTP: testOTP})
		if err != nil {
			t.Fatal(err)
		}
		msg := delivery.PairingMessage("env", m, "to", "en", testOTP)
		if r.Subject != msg.Subject || r.Text != msg.Body {
			t.Errorf("%s: templates render %q / %q; delivery %q / %q", m, r.Subject, r.Text, msg.Subject, msg.Body)
		}
	}
}

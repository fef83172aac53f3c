package templates_test

import (
	"strings"
	"testing"
	"unicode/utf8"

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

// TestBuiltinTextsWithLongestPasscode checks what users receive before any
// content is configured, with a passcode of 10 digits, the longest a policy
// can ask for.
func TestBuiltinTextsWithLongestPasscode(t *testing.T) {
	const code = "1234567890"
	const spokenCode = "1, 2, 3, 4, 5, 6, 7, 8, 9, 0"
	for _, m := range []delivery.Method{delivery.Email, delivery.SMS, delivery.Voice} {
		r, err := (*templates.Set)(nil).Render(templates.Request{Method: m, OTP: code})
		if err != nil || !r.Builtin || r.Locale != "en" || r.Variant != "" || r.Missing != nil {
			t.Fatalf("Render(%s) = %+v, %v", m, r, err)
		}
		for _, s := range []string{r.Subject, r.Text, r.HTML} {
			if strings.Contains(s, "${") {
				t.Errorf("%s: placeholder left in %q", m, s)
			}
		}
		if m != delivery.Email && (r.Subject != "" || r.HTML != "") {
			t.Errorf("%s: subject %q, HTML %q; want neither", m, r.Subject, r.HTML)
		}
		switch m {
		case delivery.Email:
			if r.Subject == "" || strings.Count(r.Text, code) != 1 || strings.Count(r.HTML, code) != 1 {
				t.Errorf("e-mail = %+v; want a subject and the code once in each body", r)
			}
		case delivery.SMS:
			// One GSM-7 segment: 160 characters of the default alphabet.
			if n := utf8.RuneCountInString(r.Text); n > 160 || !strings.Contains(r.Text, code) {
				t.Errorf("SMS = %q (%d characters); want the code in at most 160", r.Text, n)
			}
			for _, c := range r.Text {
				if !isGSM7Basic(c) {
					t.Errorf("SMS %q: %q is not in the GSM-7 default alphabet", r.Text, c)
				}
			}
		case delivery.Voice:
			// Digit by digit, twice: a listener cannot scroll back.
			if strings.Contains(r.Text, code) || strings.Count(r.Text, spokenCode) != 2 {
				t.Errorf("voice = %q; want %q twice and never the code as one number", r.Text, spokenCode)
			}
		}
	}
}

// isGSM7Basic reports whether c is an ASCII character that GSM 03.38's
// default alphabet holds (the rest of ASCII is in its extension table, or
// missing, and takes more room).
func isGSM7Basic(c rune) bool {
	return c == '\n' || ' ' <= c && c <= '~' && !strings.ContainsRune("`[\\]^{|}~", c)
}

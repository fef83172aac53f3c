package mfa_test

import (
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/mfa"
)

func TestParsePhone(t *testing.T) {
	us := mfa.PhoneRules{AllowedCountries: []string{"US", "ES"}}
	cases := []struct {
		in    string
		rules mfa.PhoneRules
		want  string // E.164, or "" when refused
		err   string // part of the refusal
	}{
		{"+12015550123", mfa.PhoneRules{}, "+12015550123", ""},
		{" +1 (201) 555-0123 ", mfa.PhoneRules{}, "+12015550123", ""},
		{"+34 600 12 34 56", us, "+34600123456", ""},
		{"+447400123456", us, "", "numbers of GB are not accepted here (accepted countries: US, ES)"},
		{"+19005550123", mfa.PhoneRules{}, "", "premium-rate numbers are not accepted"},
		{"+19005550123", mfa.PhoneRules{AllowedTypes: []string{"PREMIUM_RATE"}}, "+19005550123", ""},
		{"+15551234567", mfa.PhoneRules{}, "", "is not a valid phone number"},
		{"2015550123", mfa.PhoneRules{}, "", "must be an international phone number"},
		{"+1201555012345678", mfa.PhoneRules{}, "", "is not a valid phone number"},
		{"+12015550123x", mfa.PhoneRules{}, "", "not a valid"},
		{"", mfa.PhoneRules{}, "", "international"},
		{"++12015550123", mfa.PhoneRules{}, "", "not a valid"},
		{"+١٢٠١٥٥٥٠١٢٣", mfa.PhoneRules{}, "", "not a valid"}, // non-ASCII digits
		{"+1 201 555 0123\n", mfa.PhoneRules{}, "+12015550123", ""},
	}
	for _, c := range cases {
		got, err := mfa.ParsePhone(c.in, c.rules)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ParsePhone(%q) = %q, %v; want %q", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParsePhone(%q) = %q, %v; want a refusal saying %q", c.in, got, err, c.err)
		}
	}
}

func TestSettingsLimitsAreValidated(t *testing.T) {
	cases := []struct {
		set  func(s *mfa.Settings)
		want string
	}{
		{func(s *mfa.Settings) { s.Lockout.DurationSeconds = -1 }, "lockout.durationSeconds: must be between 1 and 86400"},
		{func(s *mfa.Settings) { s.Lockout.FailureCount = 1000000 }, "lockout.failureCount: must be between 1 and 100"},
		{func(s *mfa.Settings) { s.Lockout.FailureCount = -3 }, "lockout.failureCount"},
		{func(s *mfa.Settings) { s.SendLimits.User.Count = -1 }, "sendLimits.user.count"},
		{func(s *mfa.Settings) { s.SendLimits.SMS.Period = mfa.Duration{Duration: 2, TimeUnit: "DAYS"} }, "sendLimits.sms.period.timeUnit"},
		{func(s *mfa.Settings) { s.SendLimits.Address.Period = mfa.Duration{Duration: 25, TimeUnit: "HOURS"} }, "sendLimits.address.period: must be between"},
		{func(s *mfa.Settings) { s.PhoneNumbers.AllowedCountries = []string{"US", "XX"} }, "phoneNumbers.allowedCountries[1]"},
	}
	for _, c := range cases {
		var s mfa.Settings
		c.set(&s)
		s.ApplyDefaults()
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want an error naming %q", err, c.want)
		}
	}
	var ok mfa.Settings
	ok.ApplyDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if ok.SendLimits.User.Count != 10 || ok.SendLimits.Address.Count != 5 || ok.SendLimits.SMS.Count != 300 {
		t.Errorf("default send limits %+v", ok.SendLimits)
	}
}

func TestPolicyNumberTypesAreValidated(t *testing.T) {
	p := mfa.DefaultPolicy("p")
	p.SMS.AllowedNumberTypes = []string{"PREMIUM_RATE", "SATELLITE"}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "sms.allowedNumberTypes[1]") {
		t.Errorf("Validate() = %v", err)
	}
	p = mfa.DefaultPolicy("p")
	p.Email.AllowedNumberTypes = []string{"PAGER"}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "email.allowedNumberTypes[0]") {
		t.Errorf("Validate() = %v", err)
	}
}

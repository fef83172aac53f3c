package mfa_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/enrollflow/enrollflow/mfa"
)

func TestMaskEmail(t *testing.T) {
	tests := map[string]string{
		"jane.doe@example.com": "j*******@example.com",
		"j@example.com":        "j@example.com",
		"jo@example.com":       "j*@example.com",
		"a@b@example.com":      "a**@example.com", // the last @ separates the domain
		"élodie@example.com":   "é*****@example.com",
		"日本語@example.jp":       "日**@example.jp",
		"@example.com":         "************",
		"no-at-sign":           "**********",
		"":                     "",
	}
	for in, want := range tests {
		got := mfa.MaskEmail(in)
		if got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("MaskEmail(%q) = %q is not valid UTF-8", in, got)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	tests := map[string]string{
		"+12015554567":     "+1******4567",
		"+447911123456":    "+4*******3456",
		"+1234567":         "+1**4567",
		"+123456":          "+1*3456",
		"123456":           "******",
		"+12345":           "******",
		"":                 "",
		"+123456789012345": "+1**********2345",
	}
	for in, want := range tests {
		if got := mfa.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDeviceType(t *testing.T) {
	for _, dt := range mfa.AllDeviceTypes {
		for _, s := range []string{string(dt), strings.ToLower(string(dt))} {
			if got, ok := mfa.ParseDeviceType(s); !ok || got != dt {
				t.Errorf("ParseDeviceType(%q) = %q %v", s, got, ok)
			}
		}
	}
	for _, s := range []string{"", "PHONE", "E-MAIL", " EMAIL"} {
		if got, ok := mfa.ParseDeviceType(s); ok {
			t.Errorf("ParseDeviceType(%q) = %q", s, got)
		}
	}
}

func TestDurationStd(t *testing.T) {
	tests := []struct {
		d    mfa.Duration
		want time.Duration
	}{
		{mfa.Duration{Duration: 30, TimeUnit: "SECONDS"}, 30 * time.Second},
		{mfa.Duration{Duration: 2, TimeUnit: "minutes"}, 2 * time.Minute},
		{mfa.Duration{Duration: 1, TimeUnit: "HOURS"}, time.Hour},
		{mfa.Duration{Duration: 1, TimeUnit: "DAYS"}, 0},
		{mfa.Duration{Duration: 5}, 0},
	}
	for _, tc := range tests {
		if got := tc.d.Std(); got != tc.want {
			t.Errorf("%+v.Std() = %v, want %v", tc.d, got, tc.want)
		}
	}
}

func TestApplyDefaults(t *testing.T) {
	p := mfa.Policy{ID: "p"}
	p.ApplyDefaults()
	for _, m := range []struct {
		name   string
		method mfa.OTPMethod
		resend time.Duration
	}{{"email", p.Email, 5 * time.Second}, {"sms", p.SMS, 30 * time.Second}, {"voice", p.Voice, 30 * time.Second}} {
		o := m.method.OTP
		if o.LifeTime.Std() != 30*time.Minute || o.Failure.Count != 3 || o.Failure.CoolDown.Std() != 2*time.Minute ||
			o.OTPLength != 6 || o.ResendCoolDown.Std() != m.resend {
			t.Errorf("%s defaults = %+v", m.name, o)
		}
		if m.method.Enabled {
			t.Errorf("%s enabled by ApplyDefaults", m.name)
		}
	}
	if p.TOTP.OTP.Failure.Count != 3 || p.TOTP.OTP.Failure.CoolDown.Std() != 2*time.Minute ||
		p.TOTP.PasscodeGracePeriod != 1 || p.TOTP.URIParameters.Issuer != "enrollflow" || p.TOTP.Enabled {
		t.Errorf("totp defaults = %+v", p.TOTP)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}

	// Set values are kept.
	q := mfa.Policy{ID: "q"}
	q.SMS.OTP.OTPLength = 8
	q.SMS.OTP.LifeTime = mfa.Duration{Duration: 10, TimeUnit: "MINUTES"}
	q.Email.OTP.ResendCoolDown = mfa.Duration{Duration: 1, TimeUnit: "MINUTES"}
	q.TOTP.PasscodeGracePeriod = 3
	q.TOTP.URIParameters.Issuer = "Acme"
	q.ApplyDefaults()
	if q.SMS.OTP.OTPLength != 8 || q.SMS.OTP.LifeTime.Std() != 10*time.Minute || q.Email.OTP.ResendCoolDown.Std() != time.Minute ||
		q.TOTP.PasscodeGracePeriod != 3 || q.TOTP.URIParameters.Issuer != "Acme" || q.Voice.OTP.OTPLength != 6 {
		t.Errorf("ApplyDefaults overwrote set values: %+v", q)
	}
	// Idempotent.
	r := q
	r.ApplyDefaults()
	if !reflect.DeepEqual(q, r) {
		t.Error("ApplyDefaults is not idempotent")
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := mfa.DefaultPolicy("d")
	if p.ID != "d" || !p.Default || p.Name == "" {
		t.Fatalf("DefaultPolicy = %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := p.PairableTypes(); !reflect.DeepEqual(got, []mfa.DeviceType{mfa.Email, mfa.SMS, mfa.Voice, mfa.TOTP}) {
		t.Fatalf("PairableTypes = %v", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *mfa.Policy)
		field  string // "" means valid
	}{
		{"defaults", func(*mfa.Policy) {}, ""},
		{"id missing", func(p *mfa.Policy) { p.ID = " " }, "id"},
		{"otpLength 5", func(p *mfa.Policy) { p.Email.OTP.OTPLength = 5 }, "email.otp.otpLength"},
		{"otpLength 6", func(p *mfa.Policy) { p.Email.OTP.OTPLength = 6 }, ""},
		{"otpLength 10", func(p *mfa.Policy) { p.SMS.OTP.OTPLength = 10 }, ""},
		{"otpLength 11", func(p *mfa.Policy) { p.SMS.OTP.OTPLength = 11 }, "sms.otp.otpLength"},
		{"otpLength negative", func(p *mfa.Policy) { p.Voice.OTP.OTPLength = -1 }, "voice.otp.otpLength"},
		{"lifeTime 59s", func(p *mfa.Policy) { p.Email.OTP.LifeTime = mfa.Duration{Duration: 59, TimeUnit: "SECONDS"} }, "email.otp.lifeTime"},
		{"lifeTime 1m", func(p *mfa.Policy) { p.Email.OTP.LifeTime = mfa.Duration{Duration: 1, TimeUnit: "MINUTES"} }, ""},
		{"lifeTime 24h", func(p *mfa.Policy) { p.SMS.OTP.LifeTime = mfa.Duration{Duration: 24, TimeUnit: "HOURS"} }, ""},
		{"lifeTime 25h", func(p *mfa.Policy) { p.SMS.OTP.LifeTime = mfa.Duration{Duration: 25, TimeUnit: "HOURS"} }, "sms.otp.lifeTime"},
		{"lifeTime unit", func(p *mfa.Policy) { p.Voice.OTP.LifeTime = mfa.Duration{Duration: 1, TimeUnit: "DAYS"} }, "voice.otp.lifeTime.timeUnit"},
		{"lifeTime lower-case unit", func(p *mfa.Policy) { p.Voice.OTP.LifeTime = mfa.Duration{Duration: 5, TimeUnit: "minutes"} }, ""},
		{"failure count 0 after defaults", func(p *mfa.Policy) { p.Email.OTP.Failure.Count = -1 }, "email.otp.failure.count"},
		{"failure count 7", func(p *mfa.Policy) { p.Email.OTP.Failure.Count = 7 }, ""},
		{"failure count 8", func(p *mfa.Policy) { p.Email.OTP.Failure.Count = 8 }, "email.otp.failure.count"},
		{"coolDown 31m", func(p *mfa.Policy) { p.SMS.OTP.Failure.CoolDown = mfa.Duration{Duration: 31, TimeUnit: "MINUTES"} }, "sms.otp.failure.coolDown"},
		{"coolDown negative", func(p *mfa.Policy) { p.SMS.OTP.Failure.CoolDown = mfa.Duration{Duration: -1, TimeUnit: "SECONDS"} }, "sms.otp.failure.coolDown"},
		{"coolDown unit", func(p *mfa.Policy) { p.SMS.OTP.Failure.CoolDown = mfa.Duration{Duration: 1, TimeUnit: ""} }, "sms.otp.failure.coolDown.timeUnit"},
		{"resend 11m", func(p *mfa.Policy) { p.Email.OTP.ResendCoolDown = mfa.Duration{Duration: 11, TimeUnit: "MINUTES"} }, "email.otp.resendCoolDown"},
		{"resend 10m", func(p *mfa.Policy) { p.Email.OTP.ResendCoolDown = mfa.Duration{Duration: 10, TimeUnit: "MINUTES"} }, ""},
		{"totp failure count", func(p *mfa.Policy) { p.TOTP.OTP.Failure.Count = 9 }, "totp.otp.failure.count"},
		{"totp coolDown", func(p *mfa.Policy) { p.TOTP.OTP.Failure.CoolDown = mfa.Duration{Duration: 1, TimeUnit: "HOURS"} }, "totp.otp.failure.coolDown"},
		{"grace 10", func(p *mfa.Policy) { p.TOTP.PasscodeGracePeriod = 10 }, ""},
		{"grace 11", func(p *mfa.Policy) { p.TOTP.PasscodeGracePeriod = 11 }, "totp.passcodeGracePeriod"},
		{"grace negative", func(p *mfa.Policy) { p.TOTP.PasscodeGracePeriod = -1 }, "totp.passcodeGracePeriod"},
	}
	for _, tc := range tests {
		p := mfa.DefaultPolicy("p")
		tc.mutate(&p)
		err := p.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: Validate = %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
}

// With several bad methods the same one is reported every time.
func TestPolicyValidateDeterministic(t *testing.T) {
	p := mfa.DefaultPolicy("p")
	p.Email.OTP.OTPLength, p.SMS.OTP.OTPLength, p.Voice.OTP.OTPLength = 1, 2, 3
	first := p.Validate().Error()
	for i := 0; i < 50; i++ {
		if got := p.Validate().Error(); got != first {
			t.Fatalf("Validate reports %q, then %q", first, got)
		}
	}
}

func TestPairableTypes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *mfa.Policy)
		want   []mfa.DeviceType
	}{
		{"nothing enabled", func(p *mfa.Policy) {}, []mfa.DeviceType{}},
		{"email", func(p *mfa.Policy) { p.Email.Enabled = true }, []mfa.DeviceType{mfa.Email}},
		{"email pairing disabled", func(p *mfa.Policy) { p.Email.Enabled, p.Email.PairingDisabled = true, true }, []mfa.DeviceType{}},
		{"disabled but pairing allowed", func(p *mfa.Policy) { p.SMS.PairingDisabled = false }, []mfa.DeviceType{}},
		{"all four", func(p *mfa.Policy) {
			p.Email.Enabled, p.SMS.Enabled, p.Voice.Enabled, p.TOTP.Enabled = true, true, true, true
		}, []mfa.DeviceType{mfa.Email, mfa.SMS, mfa.Voice, mfa.TOTP}},
		{"totp pairing disabled", func(p *mfa.Policy) {
			p.TOTP.Enabled, p.TOTP.PairingDisabled, p.Voice.Enabled = true, true, true
		}, []mfa.DeviceType{mfa.Voice}},
		{"sms and totp", func(p *mfa.Policy) { p.TOTP.Enabled, p.SMS.Enabled = true, true }, []mfa.DeviceType{mfa.SMS, mfa.TOTP}},
	}
	for _, tc := range tests {
		p := mfa.Policy{ID: "p"}
		p.ApplyDefaults()
		tc.mutate(&p)
		got := p.PairableTypes()
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: PairableTypes = %v, want %v", tc.name, got, tc.want)
		}
		for _, dt := range []mfa.DeviceType{mfa.Mobile, mfa.Platform, mfa.SecurityKey} {
			if p.Pairable(dt) {
				t.Errorf("%s: %s is pairable in this build", tc.name, dt)
			}
		}
	}
	// An empty list renders as [] in JSON, not null.
	p := mfa.Policy{}
	if b, _ := json.Marshal(p.PairableTypes()); string(b) != "[]" {
		t.Errorf("no pairable types marshal as %s", b)
	}
	if (&mfa.Policy{}).OTPMethodFor(mfa.TOTP) != nil {
		t.Error("OTPMethodFor(TOTP) is not nil")
	}
}

func TestSettings(t *testing.T) {
	var s mfa.Settings
	s.ApplyDefaults()
	if s.Pairing.MaxAllowedDevices != 5 || s.Pairing.PairingKeyFormat != "NUMERIC" || s.Lockout.FailureCount != 5 || s.Lockout.DurationSeconds != 600 {
		t.Fatalf("defaults = %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(s *mfa.Settings)
		field  string
	}{
		{"max 1", func(s *mfa.Settings) { s.Pairing.MaxAllowedDevices = 1 }, ""},
		{"max 15", func(s *mfa.Settings) { s.Pairing.MaxAllowedDevices = 15 }, ""},
		{"max 16", func(s *mfa.Settings) { s.Pairing.MaxAllowedDevices = 16 }, "pairing.maxAllowedDevices"},
		{"max -1", func(s *mfa.Settings) { s.Pairing.MaxAllowedDevices = -1 }, "pairing.maxAllowedDevices"},
		{"alphanumeric", func(s *mfa.Settings) { s.Pairing.PairingKeyFormat = "ALPHANUMERIC" }, ""},
		{"format", func(s *mfa.Settings) { s.Pairing.PairingKeyFormat = "numeric" }, "pairing.pairingKeyFormat"},
	}
	for _, tc := range tests {
		s := mfa.Settings{}
		s.ApplyDefaults()
		tc.mutate(&s)
		err := s.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		} else if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: Validate = %v, want %s", tc.name, err, tc.field)
		}
	}
	// Without defaults the zero value is invalid (max 0).
	var zero mfa.Settings
	if err := zero.Validate(); err == nil {
		t.Error("zero settings validate")
	}
}

func TestDevicePublicView(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d := mfa.Device{ID: "d1", Type: mfa.Email, Status: mfa.StatusActive, Nickname: "work", Email: "jane@example.com",
		Factor: json.RawMessage(`{"sealed":"sealed-secret","lastStep":7}`), CreatedAt: at, UpdatedAt: at}
	v := d.PublicView()
	if v["email"] != "j***@example.com" || v["nickname"] != "work" || v["id"] != "d1" || v["type"] != mfa.Email {
		t.Fatalf("view = %v", v)
	}
	b, _ := json.Marshal(v)
	for _, secret := range []string{"sealed", "jane@", "lastStep"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("public view contains %q: %s", secret, b)
		}
	}
	p := mfa.Device{ID: "d2", Type: mfa.SMS, Phone: "+12015554567"}
	if got := p.PublicView()["phone"]; got != "+1******4567" {
		t.Errorf("phone = %v", got)
	}
	if _, ok := p.PublicView()["email"]; ok {
		t.Error("empty email shown")
	}
}

// TestParseDeviceSchemas: a version-1 record (TOTP fields at the top level,
// no schema) reads into the current layout; a record from a newer build is
// refused rather than misread.
func TestParseDeviceSchemas(t *testing.T) {
	old := []byte(`{"id":"d1","type":"TOTP","status":"ACTIVE","sealedTotp":"s3aled","lastTotpStep":42,"createdAt":"2030-01-01T00:00:00Z","updatedAt":"2030-01-01T00:00:00Z"}`)
	d, err := mfa.ParseDevice(old)
	if err != nil || d.Schema != mfa.DeviceSchema {
		t.Fatalf("ParseDevice(v1) = %+v, %v", d, err)
	}
	var part mfa.TOTPPart
	if err := json.Unmarshal(d.Factor, &part); err != nil || part.Sealed != "s3aled" || part.LastStep != 42 {
		t.Fatalf("TOTP part %s: %+v %v", d.Factor, part, err)
	}
	raw, _ := d.Marshal()
	again, err := mfa.ParseDevice(raw)
	if err != nil || string(again.Factor) != string(d.Factor) || again.ID != "d1" {
		t.Fatalf("round trip: %s → %+v, %v", raw, again, err)
	}
	if _, err := mfa.ParseDevice([]byte(`{"schema":99,"id":"x"}`)); err == nil {
		t.Fatal("a record of a newer schema was read")
	}
}

package templates_test

import (
	"testing"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
)

func TestKeyStringParseKeyRoundTrip(t *testing.T) {
	tests := []struct {
		key  templates.Key
		text string
	}{
		{templates.Key{Method: delivery.SMS, Locale: "es-ES"}, "SMS/es-ES"},
		{templates.Key{Method: delivery.SMS, Locale: "es-ES", Variant: "holiday"}, "SMS/es-ES/holiday"},
		{templates.Key{Method: delivery.Email, Locale: "zh-Hant-TW", Variant: "black_friday-2"}, "EMAIL/zh-Hant-TW/black_friday-2"},
		{templates.Key{Method: delivery.Voice, Locale: "en"}, "VOICE/en"},
	}
	for _, tt := range tests {
		if got := tt.key.String(); got != tt.text {
			t.Errorf("%#v.String() = %q; want %q", tt.key, got, tt.text)
		}
		got, err := templates.ParseKey(tt.text)
		if err != nil || got != tt.key {
			t.Errorf("ParseKey(%q) = %#v, %v; want %#v", tt.text, got, err, tt.key)
		}
	}
}

func TestParseKeyCanonicalises(t *testing.T) {
	got, err := templates.ParseKey("sms/es_es/HOLIDAY")
	if err != nil {
		t.Fatal(err)
	}
	if want := "SMS/es-ES/holiday"; got.String() != want {
		t.Fatalf("ParseKey(...).String() = %q; want %q", got, want)
	}
}

func TestParseKeyRefuses(t *testing.T) {
	for _, s := range []string{
		"", "SMS", "SMS/", "FAX/en", "SMS/english", "SMS/en/", "SMS/en/holi day",
		"SMS/en/holiday/extra", "/en",
	} {
		if k, err := templates.ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) = %#v; want an error", s, k)
		}
	}
}

func TestContentKeyAndNormalize(t *testing.T) {
	c := templates.Content{Method: "sms", Locale: "pt_br", Variant: "Holiday", Body: "x ${otp}"}
	want := templates.Key{Method: delivery.SMS, Locale: "pt-BR", Variant: "holiday"}
	if got := c.Key(); got != want {
		t.Fatalf("Key() = %#v; want %#v", got, want)
	}
	if c.Method != "sms" {
		t.Fatal("Key() changed the content")
	}
	c.Normalize()
	if c.Method != delivery.SMS || c.Locale != "pt-BR" || c.Variant != "holiday" {
		t.Fatalf("Normalize() = %+v", c)
	}
	bad := templates.Content{Method: "sms", Locale: "not a tag"}
	bad.Normalize()
	if bad.Locale != "not a tag" {
		t.Fatalf("Normalize() changed an invalid locale to %q; Validate must see it as written", bad.Locale)
	}
}

package templates_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/delivery/templates"
)

func TestNewSetRefusesDuplicateKeys(t *testing.T) {
	tests := []struct {
		name     string
		contents []templates.Content
		want     string
	}{
		{"same key", []templates.Content{sms("es-ES", "", "a ${otp}"), sms("en", "", "${otp}"), sms("es-ES", "", "b ${otp}")},
			"contents[2]: duplicate content: SMS/es-ES is also contents[0]"},
		{"same key once normalised", []templates.Content{sms("es-ES", "holiday", "a ${otp}"), sms("ES_es", "HOLIDAY", "b ${otp}")},
			"contents[1]: duplicate content: SMS/es-ES/holiday is also contents[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := templates.NewSet("en", tt.contents)
			if !errors.Is(err, templates.ErrDuplicateKey) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSet() = %v; want %q wrapping ErrDuplicateKey", err, tt.want)
			}
		})
	}
}

func TestNewSetAcceptsSameLocaleForOtherMethodsAndVariants(t *testing.T) {
	mustSet(t, "en",
		sms("en", "", "${otp}"), sms("en", "holiday", "${otp}"), voice("${otp}"),
		email("Code", "${otp}", ""))
}

func TestNewSetNamesTheInvalidContent(t *testing.T) {
	_, err := templates.NewSet("en", []templates.Content{sms("en", "", "${otp}"), sms("en", "x", "no code")})
	var ce *templates.ContentError
	if !errors.As(err, &ce) {
		t.Fatalf("NewSet() = %v; want a *ContentError", err)
	}
	if ce.Index != 1 || len(ce.Errors) != 1 || ce.Errors[0].Field != "content" {
		t.Fatalf("ContentError = %+v", ce)
	}
	if want := "contents[1].content: must contain ${otp}"; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Error() = %q; want it to start with %q", err, want)
	}
}

func TestNewSetDefaultLocale(t *testing.T) {
	if _, err := templates.NewSet("not a tag", nil); err == nil {
		t.Fatal("NewSet accepted an invalid default locale")
	}
	// "" means English; a non-canonical default locale is canonicalised.
	for _, locale := range []string{"", "EN"} {
		set := mustSet(t, locale, sms("en", "", "en ${otp}"))
		got, err := set.Render(templates.Request{Method: "SMS", OTP: testOTP, Locale: "fr"})
		if err != nil || got.Text != "en 123456" {
			t.Errorf("default locale %q: Render() = %+v, %v", locale, got, err)
		}
	}
}

func TestNewSetDoesNotShareTheCallersSlice(t *testing.T) {
	contents := []templates.Content{sms("en", "", "before ${otp}")}
	set := mustSet(t, "en", contents...)
	contents[0].Body = "after ${otp}"
	got, _ := set.Render(templates.Request{Method: "SMS", OTP: testOTP})
	if got.Text != "before 123456" {
		t.Fatalf("Text = %q after the caller changed its slice", got.Text)
	}
}

package templates_test

import (
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
)

const testOTP = "123456"

func sms(locale, variant, body string) templates.Content {
	return templates.Content{Method: delivery.SMS, Locale: locale, Variant: variant, Body: body}
}

func mustSet(t testing.TB, defaultLocale string, contents ...templates.Content) *templates.Set {
	t.Helper()
	s, err := templates.NewSet(defaultLocale, contents)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRenderSelection(t *testing.T) {
	// An environment whose default locale is English. It has no VOICE
	// content in its default locale and only a French e-mail.
	env := mustSet(t, "en",
		sms("en", "", "en ${otp}"),
		sms("en", "holiday", "en holiday ${otp}"),
		sms("es", "", "es ${otp}"),
		sms("es", "holiday", "es holiday ${otp}"),
		sms("zh", "", "zh ${otp}"),
		sms("pt-BR", "", "pt-BR ${otp}"),
		templates.Content{Method: delivery.Email, Locale: "fr", Subject: "Code", Text: "fr ${otp}"},
		templates.Content{Method: delivery.Voice, Locale: "de", Body: "de ${otp}"},
	)
	// An environment whose default locale has a region, with content only
	// in its parent language.
	brazil := mustSet(t, "pt-BR", sms("pt", "", "pt ${otp}"))

	tests := []struct {
		name    string
		set     *templates.Set
		req     templates.Request
		locale  string
		variant string
		builtin bool
		text    string
	}{
		{"exact locale and variant", env,
			templates.Request{Method: delivery.SMS, Locale: "es", Variant: "holiday"},
			"es", "holiday", false, "es holiday 123456"},
		{"variant is case-insensitive", env,
			templates.Request{Method: delivery.SMS, Locale: "es", Variant: "HOLIDAY"},
			"es", "holiday", false, "es holiday 123456"},
		{"requested locale is canonicalised", env,
			templates.Request{Method: delivery.SMS, Locale: "ES_es"},
			"es", "", false, "es 123456"},
		{"es-ES missing: es", env,
			templates.Request{Method: delivery.SMS, Locale: "es-ES"},
			"es", "", false, "es 123456"},
		{"es-ES missing: es with the variant", env,
			templates.Request{Method: delivery.SMS, Locale: "es-ES", Variant: "holiday"},
			"es", "holiday", false, "es holiday 123456"},
		{"language missing: environment default", env,
			templates.Request{Method: delivery.SMS, Locale: "it"},
			"en", "", false, "en 123456"},
		{"language missing: environment default with the variant", env,
			templates.Request{Method: delivery.SMS, Locale: "it", Variant: "holiday"},
			"en", "holiday", false, "en holiday 123456"},
		{"no locale requested: environment default", env,
			templates.Request{Method: delivery.SMS},
			"en", "", false, "en 123456"},
		{"requested locale not a tag: environment default", env,
			templates.Request{Method: delivery.SMS, Locale: "español"},
			"en", "", false, "en 123456"},
		{"default locale missing: parent of the default locale", brazil,
			templates.Request{Method: delivery.SMS, Locale: "it"},
			"pt", "", false, "pt 123456"},
		{"default locale missing: built-in English", env,
			templates.Request{Method: delivery.Voice, Locale: "it"},
			"en", "", true, "Your verification code is: 1, 2, 3, 4, 5, 6. Again, your code is: 1, 2, 3, 4, 5, 6."},
		{"variant missing in the locale: the locale's default", env,
			templates.Request{Method: delivery.SMS, Locale: "es", Variant: "spring"},
			"es", "", false, "es 123456"},
		{"language beats variant", env,
			templates.Request{Method: delivery.SMS, Locale: "pt-BR", Variant: "holiday"},
			"pt-BR", "", false, "pt-BR 123456"},
		{"three subtags fall back two levels", env,
			templates.Request{Method: delivery.SMS, Locale: "zh-Hant-TW"},
			"zh", "", false, "zh 123456"},
		{"three subtags fall back two levels, language beats variant", env,
			templates.Request{Method: delivery.SMS, Locale: "zh-Hant-TW", Variant: "holiday"},
			"zh", "", false, "zh 123456"},
		{"SMS never picks an EMAIL content", env,
			templates.Request{Method: delivery.SMS, Locale: "fr"},
			"en", "", false, "en 123456"},
		{"EMAIL never picks an SMS content", env,
			templates.Request{Method: delivery.Email, Locale: "es"},
			"en", "", true, "Use this code to finish setting up your e-mail address for sign-in: 123456\n\n" +
				"If you did not ask for it, ignore this message."},
		{"method is case-insensitive", env,
			templates.Request{Method: "sms", Locale: "es"},
			"es", "", false, "es 123456"},
		{"nil Set: built-in", nil,
			templates.Request{Method: delivery.SMS, Locale: "es", Variant: "holiday"},
			"en", "", true, "Your verification code is 123456."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.OTP = testOTP
			got, err := tt.set.Render(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Locale != tt.locale || got.Variant != tt.variant || got.Builtin != tt.builtin {
				t.Errorf("chose %q/%q builtin=%v; want %q/%q builtin=%v",
					got.Locale, got.Variant, got.Builtin, tt.locale, tt.variant, tt.builtin)
			}
			if got.Text != tt.text {
				t.Errorf("Text = %q; want %q", got.Text, tt.text)
			}
		})
	}
}

func TestRenderRefusesBadRequests(t *testing.T) {
	for _, req := range []templates.Request{
		{Method: "FAX", OTP: testOTP},
		{Method: "", OTP: testOTP},
		{Method: delivery.SMS, OTP: "12345"},
		{Method: delivery.SMS, OTP: "12345678901"},
		{Method: delivery.SMS, OTP: "12345a"},
		{Method: delivery.SMS, OTP: ""},
	} {
		_, err := (*templates.Set)(nil).Render(req)
		if err == nil {
			t.Errorf("Render(%+v) succeeded; want an error", req)
			continue
		}
		if req.OTP != "" && strings.Contains(err.Error(), req.OTP) {
			t.Errorf("Render error %q repeats the passcode", err)
		}
	}
}

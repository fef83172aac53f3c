package templates_test

import (
	"testing"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
)

func BenchmarkRender(b *testing.B) {
	set := mustSet(b, "en",
		sms("en", "", "${brand}: your code is ${otp}."),
		sms("es", "", "${brand}: su código es ${otp}."),
		voice("Your ${brand} code is: ${otp}. Again: ${otp}."),
		email("Your ${brand} code", "Hello ${user.username}, your code is ${otp}.",
			"<p>Hello ${user.username},</p><p>your code is <b>${otp}</b>.</p>"),
	)
	user := templates.User{Username: "jane", Email: "jane@example.com"}
	vars := map[string]string{"brand": "Acme"}
	for _, bm := range []struct {
		name string
		set  *templates.Set
		req  templates.Request
	}{
		{"SMS/exact", set, templates.Request{Method: delivery.SMS, Locale: "es"}},
		{"SMS/fallback", set, templates.Request{Method: delivery.SMS, Locale: "es-MX", Variant: "Holiday"}},
		{"VOICE", set, templates.Request{Method: delivery.Voice, Locale: "en"}},
		{"EMAIL/html", set, templates.Request{Method: delivery.Email, Locale: "en-US"}},
		{"builtin", nil, templates.Request{Method: delivery.SMS, Locale: "en"}},
	} {
		req := bm.req
		req.OTP, req.User, req.Vars = "12345678", user, vars
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.set.Render(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

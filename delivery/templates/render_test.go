package templates_test

import (
	"slices"
	"testing"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
)

var testUser = templates.User{Username: "jane", Email: "jane@example.com", MobilePhone: "+12015554567"}

func TestRenderVariables(t *testing.T) {
	const hostile = `<script>&"'`
	tests := []struct {
		name    string
		content templates.Content
		user    templates.User
		vars    map[string]string
		want    templates.Rendered // Locale, Variant and Builtin are not compared
	}{
		{
			name:    "every built-in variable",
			content: sms("en", "", "${otp} ${user.username} ${user.email} ${user.mobilePhone}"),
			user:    testUser,
			want:    templates.Rendered{Text: "123456 jane jane@example.com +12015554567"},
		},
		{
			name:    "built-in variables the request lacks render empty and are not missing",
			content: sms("en", "", "[${user.username}][${user.email}][${user.mobilePhone}] ${otp}"),
			want:    templates.Rendered{Text: "[][][] 123456"},
		},
		{
			name:    "integrator variables",
			content: sms("en", "", "${brand}: ${otp} (${order.id}, ${_x1})"),
			vars:    map[string]string{"brand": "Acme", "order.id": "42", "_x1": "y", "unused": "z"},
			want:    templates.Rendered{Text: "Acme: 123456 (42, y)"},
		},
		{
			name:    "an integrator variable given empty is not missing",
			content: sms("en", "", "${brand}${otp}"),
			vars:    map[string]string{"brand": ""},
			want:    templates.Rendered{Text: "123456"},
		},
		{
			name: "missing integrator variables render empty and are reported once each",
			content: templates.Content{Method: delivery.Email, Locale: "en",
				Subject: "${brand} code", Text: "${brand}: ${otp} ${order.id}", HTML: "<b>${brand}</b> ${otp}"},
			vars: map[string]string{"other": "x"},
			want: templates.Rendered{Subject: " code", Text: ": 123456 ", HTML: "<b></b> 123456",
				Missing: []string{"brand", "order.id"}},
		},
		{
			name:    "a value containing ${otp} is not expanded",
			content: sms("en", "", "${brand} ${otp}"),
			user:    testUser,
			vars:    map[string]string{"brand": "${otp}${user.email}"},
			want:    templates.Rendered{Text: "${otp}${user.email} 123456"},
		},
		{
			name: "values are HTML-escaped in the HTML body only",
			content: templates.Content{Method: delivery.Email, Locale: "en",
				Subject: "${brand}", Text: "${brand} ${user.username} ${otp}", HTML: "<p>${brand} ${user.username}</p>${otp}"},
			user: templates.User{Username: hostile},
			vars: map[string]string{"brand": hostile},
			want: templates.Rendered{Subject: hostile, Text: hostile + " " + hostile + " 123456",
				HTML: "<p>&lt;script&gt;&amp;&#34;&#39; &lt;script&gt;&amp;&#34;&#39;</p>123456"},
		},
		{
			name: "CR and LF in subject values become spaces",
			content: templates.Content{Method: delivery.Email, Locale: "en",
				Subject: "Code for ${user.username} at ${brand}", Text: "${brand}\n${otp}"},
			user: templates.User{Username: "jane\r\nBcc: evil@example.com"},
			vars: map[string]string{"brand": "Acme\nInc"},
			want: templates.Rendered{Subject: "Code for jane  Bcc: evil@example.com at Acme Inc", Text: "Acme\nInc\n123456"},
		},
		{
			name:    "an e-mail without HTML has only the text",
			content: templates.Content{Method: delivery.Email, Locale: "en", Subject: "Code", Text: "${otp}"},
			want:    templates.Rendered{Subject: "Code", Text: "123456"},
		},
		{
			name:    "voice speaks the passcode digit by digit, other values as they are",
			content: templates.Content{Method: delivery.Voice, Locale: "en", Body: "${brand} code: ${otp}. ${user.username}"},
			user:    templates.User{Username: "12"},
			vars:    map[string]string{"brand": "Acme 7"},
			want:    templates.Rendered{Text: "Acme 7 code: 1, 2, 3, 4, 5, 6. 12"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := mustSet(t, "en", tt.content)
			got, err := set.Render(templates.Request{Method: tt.content.Method, OTP: testOTP, User: tt.user, Vars: tt.vars})
			if err != nil {
				t.Fatal(err)
			}
			if got.Builtin {
				t.Fatal("rendered the built-in content")
			}
			if got.Subject != tt.want.Subject || got.Text != tt.want.Text || got.HTML != tt.want.HTML {
				t.Errorf("got\n subject %q\n text    %q\n html    %q\nwant\n subject %q\n text    %q\n html    %q",
					got.Subject, got.Text, got.HTML, tt.want.Subject, tt.want.Text, tt.want.HTML)
			}
			if !slices.Equal(got.Missing, tt.want.Missing) {
				t.Errorf("Missing = %q; want %q", got.Missing, tt.want.Missing)
			}
		})
	}
}

func TestRenderVoiceLongestPasscode(t *testing.T) {
	got, err := (*templates.Set)(nil).Render(templates.Request{Method: delivery.Voice, OTP: "0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	const spoken = "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
	if want := "Your verification code is: " + spoken + ". Again, your code is: " + spoken + "."; got.Text != want {
		t.Fatalf("Text = %q; want %q", got.Text, want)
	}
}

func TestRenderConcurrently(t *testing.T) {
	set := mustSet(t, "en", sms("en", "", "${brand} ${otp}"))
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				r, err := set.Render(templates.Request{Method: delivery.SMS, OTP: testOTP})
				if err != nil || r.Text != " 123456" || len(r.Missing) != 1 {
					t.Errorf("Render = %+v, %v", r, err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

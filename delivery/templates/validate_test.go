package templates_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
)

func email(subject, text, html string) templates.Content {
	return templates.Content{Method: delivery.Email, Locale: "en", Subject: subject, Text: text, HTML: html}
}

func voice(body string) templates.Content {
	return templates.Content{Method: delivery.Voice, Locale: "en", Body: body}
}

// gsmLetters are non-ASCII characters of the GSM 03.38 default alphabet.
const gsmLetters = "éñüöàèùìòÇØøÅåΔÄÖÑÜßÉæÆ¿¡§£¥¤ΦΓΛΩΠΨΣΘΞ"

// problem is a FieldError as the tables write it: "field CODE".
func problem(fe templates.FieldError) string { return fe.Field + " " + fe.Code }

func TestValidate(t *testing.T) {
	const otp = "${otp}"
	tests := []struct {
		name    string
		content templates.Content
		want    []string // "field CODE", in order
		message string   // a part of the first message, when it matters
	}{
		// Valid contents.
		{name: "valid SMS", content: sms("en", "", "Code: ${otp}")},
		{name: "valid VOICE", content: voice("Code: ${otp}")},
		{name: "valid e-mail with HTML", content: email("Code for ${user.username}", "Code: ${otp}", "<b>${otp}</b>")},
		{name: "valid e-mail without HTML", content: email("Code", "Code: ${otp}", "")},
		{name: "method, locale and variant in any case", content: templates.Content{
			Method: "sms", Locale: "es_es", Variant: "Black_Friday-2", Body: otp}},
		{name: "integrator variables", content: sms("en", "", "${brand} ${order.id} ${_a1.b_2} ${otpHint} ${username} ${otp}")},
		{name: "a lone $ and braces are text", content: sms("en", "", "$5 {x} $ {otp} }{ ${otp}")},

		// ${otp} required in every body.
		{name: "SMS without ${otp}", content: sms("en", "", "Your code"),
			want: []string{"content REQUIRED_VALUE"}, message: "must contain ${otp}"},
		{name: "VOICE without ${otp}", content: voice("Your code"),
			want: []string{"content REQUIRED_VALUE"}, message: "must contain ${otp}"},
		{name: "e-mail text without ${otp}", content: email("Code", "Your code", ""),
			want: []string{"text REQUIRED_VALUE"}, message: "must contain ${otp}"},
		{name: "e-mail HTML without ${otp}", content: email("Code", otp, "<p>Your code</p>"),
			want: []string{"html REQUIRED_VALUE"}, message: "must contain ${otp}"},
		{name: "${otp} in the subject", content: email("Code ${otp}", otp, ""),
			want:    []string{"subject INVALID_VALUE"},
			message: "must not contain ${otp}: subjects are shown in notification previews"},

		// Unknown variables in our namespaces.
		{name: "${user.phone}", content: sms("en", "", "${user.phone} ${otp}"),
			want:    []string{"content UNKNOWN_VARIABLE"},
			message: "uses unknown variable ${user.phone}: the built-in variables are ${otp}, ${user.username}, ${user.email} and ${user.mobilePhone}"},
		{name: "${otp.x}", content: sms("en", "", "${otp.x} ${otp}"),
			want: []string{"content UNKNOWN_VARIABLE"}, message: "${otp.x}"},
		{name: "${user}", content: sms("en", "", "${user} ${otp}"),
			want: []string{"content UNKNOWN_VARIABLE"}},
		{name: "${OTP} is not ${otp}", content: sms("en", "", "${OTP}"),
			want: []string{"content UNKNOWN_VARIABLE", "content REQUIRED_VALUE"}, message: "did you mean ${otp}?"},
		{name: "${User.Email} is not ${user.email}", content: email("${User.Email}", otp, ""),
			want: []string{"subject UNKNOWN_VARIABLE"}, message: "did you mean ${user.email}?"},

		// Malformed placeholders.
		{name: "unterminated ${", content: sms("en", "", "${otp} ${"),
			want: []string{"content INVALID_VALUE"}, message: `unterminated placeholder "${"`},
		{name: "unterminated ${otp", content: sms("en", "", "Code ${otp"),
			want: []string{"content INVALID_VALUE", "content REQUIRED_VALUE"}, message: `unterminated placeholder "${otp"`},
		{name: "unterminated before the next placeholder", content: sms("en", "", "${brand ${otp}"),
			want: []string{"content INVALID_VALUE"}, message: `unterminated placeholder "${brand "`},
		{name: "empty ${}", content: sms("en", "", "${} ${otp}"),
			want: []string{"content INVALID_VALUE"}, message: "empty placeholder"},
		{name: "spaces ${ otp }", content: sms("en", "", "${ otp }"),
			want: []string{"content INVALID_VALUE", "content REQUIRED_VALUE"}, message: "write ${otp}"},
		{name: "spaces inside a name", content: sms("en", "", "${my var} ${otp}"),
			want: []string{"content INVALID_VALUE"}},
		{name: "hyphen in a name", content: sms("en", "", "${a-b} ${otp}"),
			want: []string{"content INVALID_VALUE"}, message: `invalid placeholder "${a-b}"`},
		{name: "name starting with a digit", content: sms("en", "", "${1a} ${otp}"),
			want: []string{"content INVALID_VALUE"}},
		{name: "empty name part", content: sms("en", "", "${a..b} ${a.} ${otp}"),
			want: []string{"content INVALID_VALUE", "content INVALID_VALUE"}},
		{name: "malformed in the HTML", content: email("Code", otp, "<p>${otp}</p><p>${}</p>"),
			want: []string{"html INVALID_VALUE"}},

		// Fields per method.
		{name: "e-mail with content", content: templates.Content{Method: delivery.Email, Locale: "en",
			Subject: "Code", Text: otp, Body: otp},
			want: []string{"content INVALID_VALUE"}, message: "is for SMS and VOICE"},
		{name: "e-mail without subject and text", content: email("", "", ""),
			want: []string{"subject REQUIRED_VALUE", "text REQUIRED_VALUE"}},
		{name: "e-mail with a blank subject", content: email("  ", otp, ""),
			want: []string{"subject REQUIRED_VALUE"}},
		{name: "SMS with e-mail fields", content: templates.Content{Method: delivery.SMS, Locale: "en",
			Body: otp, Subject: "s", Text: "t", HTML: "h"},
			want: []string{"subject INVALID_VALUE", "text INVALID_VALUE", "html INVALID_VALUE"}, message: "is for EMAIL"},
		{name: "SMS without content", content: sms("en", "", ""),
			want: []string{"content REQUIRED_VALUE"}},
		{name: "VOICE with a subject", content: templates.Content{Method: delivery.Voice, Locale: "en",
			Body: otp, Subject: "s"},
			want: []string{"subject INVALID_VALUE"}},

		// Method, locale, variant.
		{name: "no method", content: templates.Content{Locale: "en", Body: otp},
			want: []string{"deliveryMethod REQUIRED_VALUE"}},
		{name: "unknown method, faulty placeholder still reported", content: templates.Content{
			Method: "FAX", Locale: "en", Body: "${}"},
			want: []string{"deliveryMethod INVALID_VALUE", "content INVALID_VALUE"}},
		{name: "no locale", content: sms("", "", otp),
			want: []string{"locale REQUIRED_VALUE"}},
		{name: "bad locale", content: sms("english", "", otp),
			want: []string{"locale INVALID_VALUE"}},
		{name: "variant of 100 characters", content: sms("en", strings.Repeat("v", 100), otp)},
		{name: "variant of 101 characters", content: sms("en", strings.Repeat("v", 101), otp),
			want: []string{"variant INVALID_VALUE"}, message: "at most 100"},
		{name: "variant with a space", content: sms("en", "holi day", otp),
			want: []string{"variant INVALID_VALUE"}},
		{name: "variant with a slash", content: sms("en", "a/b", otp),
			want: []string{"variant INVALID_VALUE"}},

		// Subject.
		{name: "subject of 256 characters", content: email(strings.Repeat("é", 256), otp, "")},
		{name: "subject of 257 characters", content: email(strings.Repeat("é", 257), otp, ""),
			want: []string{"subject LIMIT_EXCEEDED"}, message: "is 257 characters; at most 256"},
		{name: "subject on two lines", content: email("Code\r\nBcc: x@example.com", otp, ""),
			want: []string{"subject INVALID_VALUE"}, message: "single line"},

		// E-mail bodies.
		{name: "text of 100 kB", content: email("Code", otp+strings.Repeat("x", 102400-len(otp)), "")},
		{name: "text over 100 kB", content: email("Code", otp+strings.Repeat("x", 102401-len(otp)), ""),
			want: []string{"text LIMIT_EXCEEDED"}, message: "is 102401 bytes; at most 102400"},
		{name: "HTML over 100 kB", content: email("Code", otp, otp+strings.Repeat("x", 102401-len(otp))),
			want: []string{"html LIMIT_EXCEEDED"}},

		// SMS length with a 10-digit passcode.
		{name: "SMS of 153 GSM-7 characters", content: sms("en", "", otp+strings.Repeat("a", 143))},
		{name: "SMS of 154 GSM-7 characters", content: sms("en", "", otp+strings.Repeat("a", 144)),
			want:    []string{"content LIMIT_EXCEEDED"},
			message: "is 154 GSM-7 characters with a 10-digit passcode; at most 153"},
		{name: "GSM-7 accented letters are one character", content: sms("en", "",
			otp+gsmLetters+strings.Repeat("a", 143-utf8.RuneCountInString(gsmLetters)))},
		{name: "GSM-7 accented letters are one character, one more", content: sms("en", "",
			otp+gsmLetters+strings.Repeat("a", 144-utf8.RuneCountInString(gsmLetters))),
			want: []string{"content LIMIT_EXCEEDED"}, message: "is 154 GSM-7"},
		{name: "GSM-7 extension characters count twice", content: sms("en", "", otp+strings.Repeat("a", 142)+"€"),
			want: []string{"content LIMIT_EXCEEDED"}, message: "is 154 GSM-7 characters"},
		{name: "every GSM-7 extension character counts twice (9 of them: 18)", content: sms("en", "", otp+"^{}\\[~]|€"+strings.Repeat("a", 125))},
		{name: "every GSM-7 extension character counts twice, one more", content: sms("en", "", otp+"^{}\\[~]|€"+strings.Repeat("a", 126)),
			want: []string{"content LIMIT_EXCEEDED"}, message: "is 154 GSM-7"},
		{name: "UCS-2 SMS of 67 units", content: sms("en", "", otp+"ó"+strings.Repeat("a", 56))},
		{name: "UCS-2 SMS of 68 units", content: sms("en", "", otp+"ó"+strings.Repeat("a", 57)),
			want:    []string{"content LIMIT_EXCEEDED"},
			message: `is 68 UCS-2 characters (UTF-16 units) with a 10-digit passcode; at most 67, because 'ó' is not in the GSM-7 alphabet`},
		{name: "lower-case ç needs UCS-2", content: sms("en", "", otp+"ç"+strings.Repeat("a", 57)),
			want: []string{"content LIMIT_EXCEEDED"}, message: "'ç'"},
		{name: "an emoji is two UTF-16 units", content: sms("en", "", otp+"😀"+strings.Repeat("a", 55))},
		{name: "an emoji is two UTF-16 units, one more", content: sms("en", "", otp+"😀"+strings.Repeat("a", 56)),
			want: []string{"content LIMIT_EXCEEDED"}, message: "is 68 UCS-2"},
		{name: "other variables count as empty", content: sms("en", "", otp+strings.Repeat("a", 143)+"${brand}${user.email}")},

		// VOICE length with a 10-digit passcode spoken (28 characters).
		{name: "VOICE of 4000 characters", content: voice(otp + strings.Repeat("a", 3972))},
		{name: "VOICE of 4001 characters", content: voice(otp + strings.Repeat("a", 3973)),
			want:    []string{"content LIMIT_EXCEEDED"},
			message: "is 4001 characters with a 10-digit passcode spoken digit by digit; at most 4000"},

		// Every problem at once.
		{name: "every problem is reported", content: templates.Content{Method: delivery.Email, Locale: "en_",
			Variant: "x y", Subject: "${otp} ${user.phone}", Text: "no code", HTML: "${", Body: "b"},
			want: []string{"locale INVALID_VALUE", "variant INVALID_VALUE", "subject UNKNOWN_VARIABLE",
				"subject INVALID_VALUE", "text REQUIRED_VALUE", "html INVALID_VALUE", "html REQUIRED_VALUE", "content INVALID_VALUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.content.Validate()
			var got []string
			for _, fe := range errs {
				got = append(got, problem(fe))
				if fe.Field == "" || fe.Message == "" {
					t.Errorf("FieldError %+v does not name its field or say what is wrong", fe)
				}
				if !strings.HasPrefix(fe.Error(), fe.Field+" ") {
					t.Errorf("Error() = %q does not start with the field", fe.Error())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Validate() = %q\nwant %q\n%v", got, tt.want, errs)
			}
			if tt.message != "" && !strings.Contains(errs[0].Message, tt.message) {
				t.Errorf("message %q does not contain %q", errs[0].Message, tt.message)
			}
		})
	}
}

// TestValidateAgreesWithNewSet checks that what Validate accepts a Set
// renders, and what it refuses NewSet refuses with the same problems.
func TestValidateAgreesWithNewSet(t *testing.T) {
	for _, c := range []templates.Content{sms("en", "", "${otp}"), sms("en", "", "no code"), voice("${user.x}")} {
		errs := c.Validate()
		_, err := templates.NewSet("en", []templates.Content{c})
		if (errs == nil) != (err == nil) {
			t.Errorf("%+v: Validate() = %v but NewSet() = %v", c, errs, err)
		}
		if err != nil && !strings.Contains(err.Error(), errs[0].Message) {
			t.Errorf("NewSet error %q does not repeat %q", err, errs[0].Message)
		}
	}
}

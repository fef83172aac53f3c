package templates

import (
	"fmt"
	"strings"

	"github.com/enrollflow/enrollflow/delivery"
)

// JSON names of the Content fields, which FieldError.Field uses.
const (
	fieldMethod  = "deliveryMethod"
	fieldLocale  = "locale"
	fieldVariant = "variant"
	fieldSubject = "subject"
	fieldText    = "text"
	fieldHTML    = "html"
	fieldBody    = "content"
)

// compiledContent is a content that passed validation, its fields parsed
// for rendering.
type compiledContent struct {
	key Key
	// body is the e-mail's text or the SMS or VOICE content; subject and
	// html are nil except for EMAIL, html also when the e-mail has none.
	subject, body, html fieldTemplate
}

// Validate checks c against every rule of the package documentation and
// returns all the problems found, in field order; none means c can be
// saved. c need not be normalised first.
func (c Content) Validate() []FieldError {
	_, errs := compile(c)
	return errs
}

// compile validates c and, when it is valid, parses it for rendering. It is
// the one place where the rules are applied, so that what Validate accepts
// is exactly what a Set can render.
func compile(c Content) (*compiledContent, []FieldError) {
	var v validator
	method := v.method(c.Method)
	locale := v.locale(c.Locale)
	v.variant(c.Variant)
	compiled := &compiledContent{key: Key{Method: method, Locale: locale, Variant: strings.ToLower(c.Variant)}}
	switch method {
	case delivery.Email:
		compiled.subject = v.subject(c.Subject)
		if v.required(fieldText, c.Text, "the e-mail's text body, with ${otp}") {
			compiled.body = v.emailBody(fieldText, c.Text)
		}
		if c.HTML != "" { // optional: without it the e-mail is text only
			compiled.html = v.emailBody(fieldHTML, c.HTML)
		}
		v.forbid(fieldBody, c.Body, "is for SMS and VOICE; an e-mail has subject, text and html")
	case delivery.SMS, delivery.Voice:
		compiled.body = v.message(method, c.Body)
		onlyBody := fmt.Sprintf("is for EMAIL; %s has content only", method)
		v.forbid(fieldSubject, c.Subject, onlyBody)
		v.forbid(fieldText, c.Text, onlyBody)
		v.forbid(fieldHTML, c.HTML, onlyBody)
	default:
		// Which fields belong is unknown without a method, but faulty
		// placeholders can still be reported.
		for _, f := range []struct{ name, value string }{
			{fieldSubject, c.Subject}, {fieldText, c.Text}, {fieldHTML, c.HTML}, {fieldBody, c.Body},
		} {
			if f.value != "" {
				v.parse(f.name, f.value)
			}
		}
	}
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return compiled, nil
}

// validator collects the problems of one content.
type validator struct {
	errs []FieldError
}

func (v *validator) report(field string, p *problem) {
	if p != nil {
		v.errs = append(v.errs, FieldError{Field: field, Code: p.code, Message: p.message})
	}
}

// required reports an empty or blank value and tells whether there is one.
func (v *validator) required(field, value, what string) bool {
	if strings.TrimSpace(value) == "" {
		v.report(field, &problem{CodeRequired, "is required: " + what})
		return false
	}
	return true
}

func (v *validator) method(m delivery.Method) delivery.Method {
	if !v.required(fieldMethod, string(m), "EMAIL, SMS or VOICE") {
		return ""
	}
	method, ok := canonicalMethod(m)
	if !ok {
		v.report(fieldMethod, &problem{CodeInvalidValue, "must be EMAIL, SMS or VOICE"})
	}
	return method
}

func (v *validator) locale(s string) string {
	if !v.required(fieldLocale, s, "a language tag such as en or es-ES") {
		return ""
	}
	locale, ok := CanonicalLocale(s)
	if !ok {
		v.report(fieldLocale, &problem{CodeInvalidValue, "must be a language tag such as en, es-ES or zh-Hant-TW"})
	}
	return locale
}

func (v *validator) variant(s string) {
	if s == "" {
		return // the locale's default content
	}
	if err := CheckVariant(s); err != nil {
		v.report(fieldVariant, &problem{CodeInvalidValue, err.Error()})
	}
}

func (v *validator) forbid(field, value, why string) {
	if value != "" {
		v.report(field, &problem{CodeInvalidValue, why})
	}
}

// parse parses one field, reporting its faulty placeholders.
func (v *validator) parse(field, value string) fieldTemplate {
	t, problems := parseField(value)
	for i := range problems {
		v.report(field, &problems[i])
	}
	return t
}

// requireOTP reports a body that would not carry the passcode.
func (v *validator) requireOTP(field string, t fieldTemplate) {
	if !t.uses(otpVar) {
		v.report(field, &problem{CodeRequired, "must contain ${otp}, the passcode"})
	}
}

func (v *validator) subject(s string) fieldTemplate {
	if !v.required(fieldSubject, s, "the e-mail subject") {
		return nil
	}
	t := v.parse(fieldSubject, s)
	if t.uses(otpVar) {
		v.report(fieldSubject, &problem{CodeInvalidValue,
			"must not contain ${otp}: subjects are shown in notification previews"})
	}
	if strings.ContainsAny(s, "\r\n") {
		v.report(fieldSubject, &problem{CodeInvalidValue, "must be a single line"})
	}
	v.report(fieldSubject, checkSubjectLength(s))
	return t
}

// emailBody checks the text or the HTML body of an e-mail.
func (v *validator) emailBody(field, s string) fieldTemplate {
	v.report(field, checkEmailBodySize(s))
	t := v.parse(field, s)
	v.requireOTP(field, t)
	return t
}

// message checks the content of an SMS or a VOICE call.
func (v *validator) message(method delivery.Method, s string) fieldTemplate {
	if !v.required(fieldBody, s, "the message, with ${otp}") {
		return nil
	}
	t := v.parse(fieldBody, s)
	v.requireOTP(fieldBody, t)
	if method == delivery.SMS {
		v.report(fieldBody, checkSMSLength(t))
	} else {
		v.report(fieldBody, checkVoiceLength(t))
	}
	return t
}

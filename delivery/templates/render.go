package templates

import (
	"errors"

	"github.com/enrollflow/enrollflow/delivery"
)

// Request is what one passcode message is rendered from.
type Request struct {
	Method delivery.Method
	// Locale is the step input template.locale; "" for none.
	Locale string
	// Variant is the step configuration's template.variant; "" for the
	// default content.
	Variant string
	// OTP is the passcode: 6 to 10 digits.
	OTP  string
	User User
	// Vars are the integrator's template.variables, already turned into
	// strings.
	Vars map[string]string
}

// User holds the user's attributes that contents may show.
type User struct {
	Username, Email, MobilePhone string
}

// Rendered is one message, ready for a delivery.Sender.
type Rendered struct {
	// Locale and Variant are those of the content chosen ("en" and "" for
	// the built-in one).
	Locale, Variant string
	// Subject and HTML are set for EMAIL only (HTML when the content has
	// one). Text is the e-mail's text body or the SMS or VOICE message.
	Subject, Text, HTML string
	// Builtin reports that no content of the set fitted and the built-in
	// English content was used.
	Builtin bool
	// Missing names, once each, the integrator variables the content uses
	// that the request did not carry; they were rendered empty. The caller
	// should log them: they are the integrator's mistake.
	Missing []string
}

// Errors of Render. Neither repeats the passcode.
var (
	ErrBadMethod = errors.New("templates: delivery method must be EMAIL, SMS or VOICE")
	ErrBadOTP    = errors.New("templates: the passcode must be 6 to 10 digits")
)

// Render picks the content for req (see the package documentation) and
// renders it. A nil Set renders the built-in content. It fails only for a
// request that no content could carry: an unknown method or a passcode
// that is not 6 to 10 digits.
func (s *Set) Render(req Request) (Rendered, error) {
	method, ok := canonicalMethod(req.Method)
	if !ok {
		return Rendered{}, ErrBadMethod
	}
	if !isPasscode(req.OTP) {
		return Rendered{}, ErrBadOTP
	}
	c := s.choose(method, req.Locale, req.Variant)
	builtin := c == nil
	if builtin {
		c = builtinContents[method]
	}
	r := Rendered{Locale: c.key.Locale, Variant: c.key.Variant, Builtin: builtin}
	switch method {
	case delivery.Email:
		r.Subject = c.subject.render(req, inSubject, &r.Missing)
		r.Text = c.body.render(req, asIs, &r.Missing)
		r.HTML = c.html.render(req, inHTML, &r.Missing)
	case delivery.Voice:
		r.Text = c.body.render(req, spoken, &r.Missing)
	default:
		r.Text = c.body.render(req, asIs, &r.Missing)
	}
	return r, nil
}

// isPasscode checks the passcode, whose length the SMS and voice limits
// assume and whose digits VOICE reads one by one.
func isPasscode(otp string) bool {
	return len(otp) >= 6 && len(otp) <= longestOTP && isDigits(otp, len(otp))
}

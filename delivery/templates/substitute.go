package templates

import (
	"html"
	"slices"
	"strings"
)

// destination is where a rendered field goes; it decides how values are
// written into it.
type destination uint8

const (
	asIs      destination = iota // text body, SMS: values as they are
	inSubject                    // an e-mail header: no line breaks
	inHTML                       // HTML body: values escaped
	spoken                       // VOICE: the passcode read digit by digit
)

// render substitutes the request's values into t. Each integrator variable
// the request lacks is rendered empty and added to *missing once.
func (t fieldTemplate) render(req Request, dest destination, missing *[]string) string {
	if len(t) == 1 && t[0].variable == literalText {
		return t[0].text // nothing to substitute: no copy
	}
	var b strings.Builder
	b.Grow(t.estimateLen(req, dest))
	for _, seg := range t {
		switch seg.variable {
		case literalText:
			b.WriteString(seg.text)
		case otpVar:
			if dest == spoken {
				writeSpoken(&b, req.OTP)
			} else {
				b.WriteString(req.OTP) // digits only: nothing to escape
			}
		default:
			value, ok := seg.value(req)
			if !ok && !slices.Contains(*missing, seg.text) {
				*missing = append(*missing, seg.text)
			}
			writeValue(&b, value, dest)
		}
	}
	return b.String()
}

// estimateLen is the output length before HTML escaping, so that one
// allocation is enough in the common case.
func (t fieldTemplate) estimateLen(req Request, dest destination) int {
	n := 0
	for _, seg := range t {
		switch {
		case seg.variable == literalText:
			n += len(seg.text)
		case seg.variable == otpVar && dest == spoken:
			n += spokenOTPChars(len(req.OTP))
		default:
			v, _ := seg.value(req)
			n += len(v)
		}
	}
	return n
}

// value is the request's value of the segment's variable; ok is false for
// an integrator variable the request does not carry.
func (seg segment) value(req Request) (value string, ok bool) {
	switch seg.variable {
	case otpVar:
		return req.OTP, true
	case usernameVar:
		return req.User.Username, true
	case emailVar:
		return req.User.Email, true
	case mobilePhoneVar:
		return req.User.MobilePhone, true
	case integratorVar:
		value, ok = req.Vars[seg.text]
		return value, ok
	}
	return seg.text, true
}

func writeValue(b *strings.Builder, value string, dest destination) {
	switch {
	case dest == inHTML:
		b.WriteString(html.EscapeString(value)) // returns value itself when there is nothing to escape
	case dest == inSubject && strings.ContainsAny(value, "\r\n"):
		// A line break in a header would let the value add headers.
		for i := 0; i < len(value); i++ {
			if c := value[i]; c == '\r' || c == '\n' {
				b.WriteByte(' ')
			} else {
				b.WriteByte(c)
			}
		}
	default:
		b.WriteString(value)
	}
}

// writeSpoken writes "1, 2, 3": text-to-speech engines pause at each comma,
// so the digits are heard one by one rather than as a number.
func writeSpoken(b *strings.Builder, otp string) {
	for i := 0; i < len(otp); i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte(otp[i])
	}
}

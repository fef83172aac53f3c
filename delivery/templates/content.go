package templates

import (
	"errors"
	"fmt"
	"strings"

	"github.com/enrollflow/enrollflow/delivery"
)

// Content is one content of the template: what one delivery method says in
// one locale, optionally as a named variant. Its JSON form is the one of the
// configuration file and of the management API.
type Content struct {
	// Method is EMAIL, SMS or VOICE.
	Method delivery.Method `json:"deliveryMethod"`
	// Locale is a language tag such as "en", "es-ES" or "zh-Hant-TW",
	// stored in canonical form (see CanonicalLocale).
	Locale string `json:"locale"`
	// Variant names an alternative content that a flow can ask for
	// ("holiday"); "" is the locale's default content. Variants are
	// compared case-insensitively and stored lower-case.
	Variant string `json:"variant,omitempty"`
	// Subject is the e-mail subject (EMAIL only).
	Subject string `json:"subject,omitempty"`
	// Text is the e-mail's text/plain body (EMAIL only).
	Text string `json:"text,omitempty"`
	// HTML is the e-mail's optional text/html body (EMAIL only); without it
	// the e-mail has only the text part.
	HTML string `json:"html,omitempty"`
	// Body is the message of an SMS or a VOICE call.
	Body string `json:"content,omitempty"`
}

// Key identifies a content within a template: method, canonical locale and
// lower-case variant. Two contents with the same Key cannot coexist.
type Key struct {
	Method  delivery.Method
	Locale  string
	Variant string
}

// Key returns the content's Key, in canonical form whether or not c was
// normalised. A locale that is not a valid tag is kept as written.
func (c Content) Key() Key {
	c.Normalize()
	return Key{Method: c.Method, Locale: c.Locale, Variant: c.Variant}
}

// Normalize puts the fields that identify c in canonical form: method
// upper-case, locale canonical (left as written when it is not a valid tag,
// for Validate to report) and variant lower-case.
func (c *Content) Normalize() {
	c.Method = delivery.Method(strings.ToUpper(strings.TrimSpace(string(c.Method))))
	if locale, ok := CanonicalLocale(c.Locale); ok {
		c.Locale = locale
	}
	c.Variant = strings.ToLower(c.Variant)
}

// keySeparator cannot occur in a method, a locale or a variant, which keeps
// Key.String unambiguous.
const keySeparator = "/"

// String is "METHOD/locale" or "METHOD/locale/variant", for example
// "SMS/es-ES" or "SMS/es-ES/holiday". It is usable as a storage id and in
// a URL path, and ParseKey reads it back.
func (k Key) String() string {
	s := string(k.Method) + keySeparator + k.Locale
	if k.Variant != "" {
		s += keySeparator + k.Variant
	}
	return s
}

// ParseKey reads a Key written by Key.String. Case is not significant: the
// Key returned is canonical, so ParseKey("sms/es-es").String() is
// "SMS/es-ES".
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, keySeparator)
	if len(parts) < 2 || len(parts) > 3 {
		return Key{}, fmt.Errorf("templates: content key %q: want METHOD/locale or METHOD/locale/variant", s)
	}
	method, ok := canonicalMethod(delivery.Method(parts[0]))
	if !ok {
		return Key{}, fmt.Errorf("templates: content key %q: method must be EMAIL, SMS or VOICE", s)
	}
	locale, ok := CanonicalLocale(parts[1])
	if !ok {
		return Key{}, fmt.Errorf("templates: content key %q: %q is not a language tag", s, parts[1])
	}
	k := Key{Method: method, Locale: locale}
	if len(parts) == 3 {
		if err := CheckVariant(parts[2]); err != nil {
			return Key{}, fmt.Errorf("templates: content key %q: variant %w", s, err)
		}
		k.Variant = strings.ToLower(parts[2])
	}
	return k, nil
}

// canonicalMethod accepts a delivery method in any case.
func canonicalMethod(m delivery.Method) (delivery.Method, bool) {
	switch delivery.Method(strings.ToUpper(string(m))) {
	case delivery.Email:
		return delivery.Email, true
	case delivery.SMS:
		return delivery.SMS, true
	case delivery.Voice:
		return delivery.Voice, true
	}
	return "", false
}

// maxVariantLen is the limit the step configuration already puts on
// template.variant.
const maxVariantLen = 100

// CheckVariant accepts a non-empty variant name of letters, digits, "_" and
// "-"; the error reads after the word "variant". The enrollment step checks
// its template.variant with it, so a designer cannot name a variant no
// content could ever have.
func CheckVariant(v string) error {
	if v == "" {
		return errors.New("is empty")
	}
	if len(v) > maxVariantLen {
		return fmt.Errorf("must be at most %d characters", maxVariantLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return errors.New(`must contain only letters, digits, "_" and "-"`)
		}
	}
	return nil
}

package templates

import (
	"strings"

	"github.com/enrollflow/enrollflow/delivery"
)

// choose returns the content for a message, following the selection order
// of the package documentation, or nil when only the built-in content fits.
// method must be canonical.
func (s *Set) choose(method delivery.Method, locale, variant string) *compiledContent {
	if s == nil {
		return nil
	}
	requested, ok := CanonicalLocale(locale)
	if !ok {
		requested = "" // not a tag: the default locale still serves
	}
	variant = strings.ToLower(variant)
	for l := requested; l != ""; l = parentLocale(l) {
		if c := s.inLocale(method, l, variant); c != nil {
			return c
		}
	}
	for l := s.defaultLocale; l != ""; l = parentLocale(l) {
		if requested != "" && isSelfOrParent(l, requested) {
			continue // tried above
		}
		if c := s.inLocale(method, l, variant); c != nil {
			return c
		}
	}
	return nil
}

// inLocale returns the requested variant in locale, else the locale's
// default content, else nil.
func (s *Set) inLocale(method delivery.Method, locale, variant string) *compiledContent {
	if variant != "" {
		if c, ok := s.contents[Key{Method: method, Locale: locale, Variant: variant}]; ok {
			return c
		}
	}
	return s.contents[Key{Method: method, Locale: locale}]
}

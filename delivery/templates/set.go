package templates

import (
	"errors"
	"fmt"
	"strings"
)

// Set is the contents of the template in one environment, validated and
// parsed. It does not change once built, so any number of goroutines may
// render with it.
type Set struct {
	defaultLocale string
	contents      map[Key]*compiledContent
}

// ErrDuplicateKey is wrapped by the error NewSet returns when two contents
// have the same Key.
var ErrDuplicateKey = errors.New("duplicate content")

// ContentError is NewSet's error for an invalid content: contents[Index]
// and every problem Validate found in it.
type ContentError struct {
	Index  int
	Errors []FieldError
}

// Error reads as paths, like the service's other configuration errors, so
// that a caller can prefix where the contents came from:
// "contents[1].content: must contain ${otp}, the passcode".
func (e *ContentError) Error() string {
	var b strings.Builder
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "contents[%d].%s: %s", e.Index, fe.Field, fe.Message)
	}
	return b.String()
}

// defaultDefaultLocale is the default locale of an environment that has
// none: the language of the built-in contents.
const defaultDefaultLocale = "en"

// NewSet validates contents and builds the Set of an environment whose
// default locale is defaultLocale ("" means "en"). It refuses the first
// invalid content with a *ContentError, and a content whose Key another one
// already has with an error wrapping ErrDuplicateKey; both name
// contents[i] first in their text.
func NewSet(defaultLocale string, contents []Content) (*Set, error) {
	if defaultLocale == "" {
		defaultLocale = defaultDefaultLocale
	}
	locale, ok := CanonicalLocale(defaultLocale)
	if !ok {
		return nil, fmt.Errorf("default locale %q is not a language tag", defaultLocale)
	}
	s := &Set{defaultLocale: locale, contents: make(map[Key]*compiledContent, len(contents))}
	firstIndex := make(map[Key]int, len(contents))
	for i, c := range contents {
		compiled, errs := compile(c)
		if errs != nil {
			return nil, &ContentError{Index: i, Errors: errs}
		}
		if j, taken := firstIndex[compiled.key]; taken {
			return nil, fmt.Errorf("contents[%d]: %w: %s is also contents[%d]", i, ErrDuplicateKey, compiled.key, j)
		}
		firstIndex[compiled.key] = i
		s.contents[compiled.key] = compiled
	}
	return s, nil
}

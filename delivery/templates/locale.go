package templates

import "strings"

// maxLocaleLen bounds a locale; 35 characters is the length RFC 5646 asks
// implementations to accommodate, far more than language-script-region.
const maxLocaleLen = 35

// CanonicalLocale returns s in the form contents are stored and matched in:
// subtags joined by "-", language lower-case ("es"), script title-case
// ("Hant"), region upper-case ("ES", or three digits such as "419") and
// variants lower-case ("valencia"). "_" is accepted as a separator because
// some platforms write es_ES. ok is false when s is not such a tag.
//
// When s is already canonical, s itself is returned, without allocating:
// Render canonicalises the requested locale of every message.
func CanonicalLocale(s string) (canonical string, ok bool) {
	if s == "" || len(s) > maxLocaleLen {
		return "", false
	}
	var buf [maxLocaleLen]byte
	out := buf[:0]
	// Subtags must come in the order language, script, region, variants.
	const (
		afterLanguage = iota
		afterScript
		afterRegion
		afterVariant
	)
	position := -1
	for start := 0; ; {
		end := start
		for end < len(s) && s[end] != '-' && s[end] != '_' {
			end++
		}
		sub := s[start:end]
		switch {
		case position < 0:
			if !isLetters(sub, 2, 3) {
				return "", false
			}
			out = appendLower(out, sub)
			position = afterLanguage
		case position < afterScript && isLetters(sub, 4, 4):
			out = append(out, '-', upper(sub[0]))
			out = appendLower(out, sub[1:])
			position = afterScript
		case position < afterRegion && (isLetters(sub, 2, 2) || isDigits(sub, 3)):
			out = append(out, '-')
			out = appendUpper(out, sub)
			position = afterRegion
		case isVariantSubtag(sub):
			out = append(out, '-')
			out = appendLower(out, sub)
			position = afterVariant
		default:
			return "", false
		}
		if end == len(s) {
			break
		}
		start = end + 1
	}
	if string(out) == s {
		return s, true
	}
	return string(out), true
}

// parentLocale drops the last subtag: "zh-Hant-TW" → "zh-Hant" → "zh" → "".
// locale must be canonical.
func parentLocale(locale string) string {
	i := strings.LastIndexByte(locale, '-')
	if i < 0 {
		return ""
	}
	return locale[:i]
}

// isSelfOrParent reports whether candidate is locale or one of its parents,
// that is, a locale already tried when locale was requested.
func isSelfOrParent(candidate, locale string) bool {
	return candidate == locale ||
		strings.HasPrefix(locale, candidate) && locale[len(candidate)] == '-'
}

// isVariantSubtag matches a BCP 47 variant: 5 to 8 letters or digits, or 4
// starting with a digit ("valencia", "1996").
func isVariantSubtag(s string) bool {
	if !isAlphanumeric(s) {
		return false
	}
	return len(s) >= 5 && len(s) <= 8 || len(s) == 4 && isDigit(s[0])
}

func isLetters(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) {
			return false
		}
	}
	return true
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isAlphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

func appendUpper(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, upper(s[i]))
	}
	return dst
}

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, lower(s[i]))
	}
	return dst
}

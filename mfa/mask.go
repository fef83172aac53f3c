package mfa

import (
	"net/mail"
	"strings"
	"unicode/utf8"
)

// MaskEmail keeps the first character of the local part and the domain:
// "jane.doe@example.com" -> "j*******@example.com".
// Characters, not bytes, are kept and counted: a local part may be UTF-8
// ("élodie@..."), and cutting a character in half would make the result
// invalid UTF-8.
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return strings.Repeat("*", utf8.RuneCountInString(addr))
	}
	_, first := utf8.DecodeRuneInString(addr)
	return addr[:first] + strings.Repeat("*", utf8.RuneCountInString(addr[first:at])) + addr[at:]
}

// MaskPhone keeps the leading "+" and country digit and the last four digits.
func MaskPhone(phone string) string {
	if len(phone) <= 6 {
		return strings.Repeat("*", len(phone))
	}
	return phone[:2] + strings.Repeat("*", len(phone)-6) + phone[len(phone)-4:]
}

// ValidEmail accepts a bare address (no display name) of at most 254 bytes.
func ValidEmail(s string) bool {
	if len(s) > 254 {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

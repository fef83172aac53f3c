package mfa

import "strings"

// MaskEmail keeps the first character of the local part and the domain:
// "jane.doe@example.com" -> "j*******@example.com".
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return strings.Repeat("*", len(addr))
	}
	return addr[:1] + strings.Repeat("*", at-1) + addr[at:]
}

// MaskPhone keeps the leading "+" and country digit and the last four digits.
func MaskPhone(phone string) string {
	if len(phone) <= 6 {
		return strings.Repeat("*", len(phone))
	}
	return phone[:2] + strings.Repeat("*", len(phone)-6) + phone[len(phone)-4:]
}

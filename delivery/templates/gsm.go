package templates

import (
	"strings"
	"unicode/utf16"
)

// gsmBasic is the GSM 03.38 default alphabet, in code order, less the
// escape code 0x1B that introduces the extension table. Each of these
// characters takes one septet in a GSM-7 SMS.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅå" +
	"Δ_ΦΓΛΩΠΨΣΘΞ" + "ÆæßÉ" +
	" !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExtension is the GSM 03.38 extension table: each character is sent as
// the escape code plus one septet, so it counts twice.
const gsmExtension = "\f^{}\\[~]|€"

// smsSize is the length of an SMS text in both encodings a carrier may use.
type smsSize struct {
	septets    int // length in GSM-7, meaningful unless ucs2
	utf16Units int // length in UCS-2 (UTF-16 code units)
	// ucs2 is set by the first character outside the GSM 03.38 alphabet,
	// firstNonGSM, which the error message names.
	ucs2        bool
	firstNonGSM rune
}

// add accounts for the characters of s.
func (z *smsSize) add(s string) {
	for _, r := range s {
		z.utf16Units += utf16.RuneLen(r)
		switch {
		case strings.ContainsRune(gsmBasic, r):
			z.septets++
		case strings.ContainsRune(gsmExtension, r):
			z.septets += 2
		default:
			if !z.ucs2 {
				z.ucs2, z.firstNonGSM = true, r
			}
		}
	}
}

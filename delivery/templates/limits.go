package templates

import (
	"fmt"
	"unicode/utf8"
)

// Limits checked when a content is saved; the package documentation says
// why each is what it is.
const (
	maxSubjectChars   = 256
	maxEmailBodyBytes = 100 << 10
	maxSMSSeptets     = 153 // GSM-7 characters in one part of a concatenated SMS
	maxSMSUTF16Units  = 67  // UCS-2 characters in one part of a concatenated SMS
	maxVoiceChars     = 4000
	// longestOTP is the number of digits of the longest passcode a policy
	// can ask for: the SMS and voice limits hold for it.
	longestOTP = 10
)

// spokenOTPChars is the length of a passcode of n digits spoken digit by
// digit: the digits and a ", " between each two.
func spokenOTPChars(n int) int { return n + 2*(n-1) }

// checkSubjectLength counts the subject's characters as written.
func checkSubjectLength(subject string) *problem {
	if n := utf8.RuneCountInString(subject); n > maxSubjectChars {
		return &problem{CodeLimitExceeded, fmt.Sprintf("is %d characters; at most %d", n, maxSubjectChars)}
	}
	return nil
}

// checkEmailBodySize bounds the text and the HTML body.
func checkEmailBodySize(body string) *problem {
	if len(body) > maxEmailBodyBytes {
		return &problem{CodeLimitExceeded, fmt.Sprintf("is %d bytes; at most %d (100 kB)", len(body), maxEmailBodyBytes)}
	}
	return nil
}

// checkSMSLength measures the SMS as sent with the longest passcode and
// every other variable empty.
func checkSMSLength(t fieldTemplate) *problem {
	var size smsSize
	for _, seg := range t {
		switch seg.variable {
		case literalText:
			size.add(seg.text)
		case otpVar:
			// Digits are in both alphabets, one unit each.
			size.septets += longestOTP
			size.utf16Units += longestOTP
		}
	}
	if !size.ucs2 && size.septets > maxSMSSeptets {
		return &problem{CodeLimitExceeded, fmt.Sprintf(
			"is %d GSM-7 characters with a %d-digit passcode; at most %d",
			size.septets, longestOTP, maxSMSSeptets)}
	}
	if size.ucs2 && size.utf16Units > maxSMSUTF16Units {
		return &problem{CodeLimitExceeded, fmt.Sprintf(
			"is %d UCS-2 characters (UTF-16 units) with a %d-digit passcode; at most %d, because %q is not in the GSM-7 alphabet",
			size.utf16Units, longestOTP, maxSMSUTF16Units, size.firstNonGSM)}
	}
	return nil
}

// checkVoiceLength measures the call's text as spoken with the longest
// passcode and every other variable empty.
func checkVoiceLength(t fieldTemplate) *problem {
	n := 0
	for _, seg := range t {
		switch seg.variable {
		case literalText:
			n += utf8.RuneCountInString(seg.text)
		case otpVar:
			n += spokenOTPChars(longestOTP)
		}
	}
	if n > maxVoiceChars {
		return &problem{CodeLimitExceeded, fmt.Sprintf(
			"is %d characters with a %d-digit passcode spoken digit by digit; at most %d",
			n, longestOTP, maxVoiceChars)}
	}
	return nil
}

package mfa

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Phone number types that can receive a passcode without surprises. The
// others (premium rate, shared cost, UAN, pager, voicemail, unknown) are
// refused unless a policy names them in allowedNumberTypes: they cost the
// sender more, or reach no person (SMS and voice pumping live on them).
var acceptedNumberTypes = map[phonenumbers.PhoneNumberType]bool{
	phonenumbers.FIXED_LINE: true, phonenumbers.MOBILE: true, phonenumbers.FIXED_LINE_OR_MOBILE: true,
	phonenumbers.TOLL_FREE: true, phonenumbers.VOIP: true, phonenumbers.PERSONAL_NUMBER: true,
}

// RestrictedNumberTypes are the type names a policy may allow on top.
var RestrictedNumberTypes = map[string]phonenumbers.PhoneNumberType{
	"PREMIUM_RATE": phonenumbers.PREMIUM_RATE, "SHARED_COST": phonenumbers.SHARED_COST, "UAN": phonenumbers.UAN,
	"PAGER": phonenumbers.PAGER, "VOICEMAIL": phonenumbers.VOICEMAIL, "UNKNOWN": phonenumbers.UNKNOWN,
}

var numberTypeNames = map[phonenumbers.PhoneNumberType]string{
	phonenumbers.PREMIUM_RATE: "premium-rate", phonenumbers.SHARED_COST: "shared-cost", phonenumbers.UAN: "UAN",
	phonenumbers.PAGER: "pager", phonenumbers.VOICEMAIL: "voicemail", phonenumbers.UNKNOWN: "unknown-type",
}

var phoneChars = regexp.MustCompile(`^\+[0-9 ().-]+$`)

// PhoneRules say which numbers an environment and a policy accept.
type PhoneRules struct {
	AllowedCountries []string // ISO 3166-1 alpha-2; empty: any
	AllowedTypes     []string // RestrictedNumberTypes names accepted on top
}

// ParsePhone checks a phone number and returns it in E.164. The number
// must be international (a leading "+"); spaces, dots, dashes and
// parentheses are allowed and dropped. The error reads after the field's
// name: "phone: is not a valid phone number".
func ParsePhone(raw string, rules PhoneRules) (string, error) {
	s := strings.TrimSpace(raw)
	if !strings.HasPrefix(s, "+") || len(s) > 32 {
		return "", fmt.Errorf("must be an international phone number starting with + and its country code, such as +12015550123")
	}
	if !phoneChars.MatchString(s) {
		// libphonenumber would read letters as vanity digits or an
		// extension: a passcode must go to exactly the number typed.
		return "", fmt.Errorf("is not a valid phone number: only digits, spaces, dots, dashes and parentheses may follow the +")
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", fmt.Errorf("is not a valid phone number")
	}
	region := phonenumbers.GetRegionCodeForNumber(n)
	if len(rules.AllowedCountries) > 0 && !slices.Contains(rules.AllowedCountries, region) {
		return "", fmt.Errorf("numbers of %s are not accepted here (accepted countries: %s)", region, strings.Join(rules.AllowedCountries, ", "))
	}
	t := phonenumbers.GetNumberType(n)
	if !acceptedNumberTypes[t] && !allowsType(rules.AllowedTypes, t) {
		return "", fmt.Errorf("%s numbers are not accepted here", numberTypeNames[t])
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

func allowsType(names []string, t phonenumbers.PhoneNumberType) bool {
	for _, name := range names {
		if RestrictedNumberTypes[name] == t {
			return true
		}
	}
	return false
}

// ValidRegion reports whether code is an ISO 3166-1 alpha-2 region that
// phone numbers are known for.
func ValidRegion(code string) bool {
	return phonenumbers.GetSupportedRegions()[code]
}

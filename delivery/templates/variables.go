package templates

import "strings"

// variable says what a segment of a parsed field stands for.
type variable uint8

const (
	literalText    variable = iota // the segment is text of the template itself
	otpVar                         // ${otp}
	usernameVar                    // ${user.username}
	emailVar                       // ${user.email}
	mobilePhoneVar                 // ${user.mobilePhone}
	integratorVar                  // ${<name>}: one of the request's template.variables
)

// builtinVariables are the variables the service provides, by name.
var builtinVariables = map[string]variable{
	"otp":              otpVar,
	"user.username":    usernameVar,
	"user.email":       emailVar,
	"user.mobilePhone": mobilePhoneVar,
}

// knownVariablesText lists the built-in variables for error messages.
const knownVariablesText = "${otp}, ${user.username}, ${user.email} and ${user.mobilePhone}"

// reservedNamespaces are the first name parts that belong to the service:
// a name under them that is not built in is a mistake, not an integrator
// variable. Compared case-insensitively so that ${OTP} is caught too.
var reservedNamespaces = []string{"otp", "user"}

// isReservedName reports whether name lies in one of reservedNamespaces.
func isReservedName(name string) bool {
	first, _, _ := strings.Cut(name, ".")
	for _, ns := range reservedNamespaces {
		if strings.EqualFold(first, ns) {
			return true
		}
	}
	return false
}

// suggestBuiltin returns the built-in variable that name differs from only
// in case, or "".
func suggestBuiltin(name string) string {
	for known := range builtinVariables {
		if strings.EqualFold(name, known) {
			return known
		}
	}
	return ""
}

// isVariableName matches [A-Za-z_][A-Za-z0-9_]* parts joined by ".".
func isVariableName(name string) bool {
	for part := range strings.SplitSeq(name, ".") {
		if part == "" || isDigit(part[0]) {
			return false
		}
		for i := 0; i < len(part); i++ {
			if c := part[i]; !isLetter(c) && !isDigit(c) && c != '_' {
				return false
			}
		}
	}
	return true
}

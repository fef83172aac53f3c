package templates

import (
	"fmt"
	"strings"
)

// segment is one piece of a parsed field: literal text or a variable.
type segment struct {
	variable variable
	// text is the literal text, or the name of an integrator variable.
	text string
}

// fieldTemplate is a content field parsed once, when the content is
// validated, so that rendering is a walk over segments rather than a scan
// of the text for every message.
type fieldTemplate []segment

// uses reports whether the field contains the variable v.
func (t fieldTemplate) uses(v variable) bool {
	for _, seg := range t {
		if seg.variable == v {
			return true
		}
	}
	return false
}

// problem is a fault found in one field; the caller adds the field name.
type problem struct {
	code, message string
}

// maxQuoted bounds how much of a faulty placeholder an error message
// repeats, since an unterminated one runs to the end of the field.
const maxQuoted = 40

// parseField splits s into literal text and placeholders. It reports every
// malformed placeholder and every name in our namespaces that is not a
// built-in variable.
func parseField(s string) (fieldTemplate, []problem) {
	var (
		t        fieldTemplate
		problems []problem
	)
	for rest := s; rest != ""; {
		open := strings.Index(rest, "${")
		if open < 0 {
			t = append(t, segment{text: rest})
			break
		}
		if open > 0 {
			t = append(t, segment{text: rest[:open]})
		}
		rest = rest[open:]
		closing := strings.IndexByte(rest, '}')
		next := strings.Index(rest[2:], "${")
		if closing < 0 || next >= 0 && next+2 < closing {
			// Not closed before the end or before the next placeholder:
			// report it and go on with the next one, so that one missing
			// brace does not hide the faults after it.
			end := len(rest)
			if next >= 0 {
				end = next + 2
			}
			problems = append(problems, problem{CodeInvalidValue,
				fmt.Sprintf("has an unterminated placeholder %s: close it with }", quote(rest[:end]))})
			rest = rest[end:]
			continue
		}
		name, placeholder := rest[2:closing], rest[:closing+1]
		rest = rest[closing+1:]
		v, p := classify(name, placeholder)
		if p != nil {
			problems = append(problems, *p)
			continue
		}
		seg := segment{variable: v}
		if v == integratorVar {
			seg.text = name
		}
		t = append(t, seg)
	}
	return t, problems
}

// classify tells which variable a placeholder's name stands for, or what is
// wrong with it.
func classify(name, placeholder string) (variable, *problem) {
	if v, ok := builtinVariables[name]; ok {
		return v, nil
	}
	switch {
	case name == "":
		return 0, &problem{CodeInvalidValue, "has an empty placeholder ${}"}
	case strings.TrimSpace(name) != name || strings.ContainsAny(name, " \t\r\n"):
		trimmed := strings.TrimSpace(name)
		if isVariableName(trimmed) {
			return 0, &problem{CodeInvalidValue, fmt.Sprintf(
				"has a placeholder with spaces %s: write ${%s}", quote(placeholder), trimmed)}
		}
		return 0, &problem{CodeInvalidValue, fmt.Sprintf(
			"has a placeholder with spaces %s: a variable name has no spaces", quote(placeholder))}
	case !isVariableName(name):
		return 0, &problem{CodeInvalidValue, fmt.Sprintf(
			`has an invalid placeholder %s: a variable name is letters, digits and "_", in parts joined by "."`,
			quote(placeholder))}
	case isReservedName(name):
		hint := "the built-in variables are " + knownVariablesText
		if known := suggestBuiltin(name); known != "" {
			hint = "did you mean ${" + known + "}?"
		}
		return 0, &problem{CodeUnknownVariable, fmt.Sprintf("uses unknown variable %s: %s", placeholder, hint)}
	}
	return integratorVar, nil
}

// quote repeats a piece of the template in an error message, shortened.
func quote(s string) string {
	if r := []rune(s); len(r) > maxQuoted {
		s = string(r[:maxQuoted]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

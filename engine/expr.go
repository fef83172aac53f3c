package engine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// Step input values may refer to the flow's inputs or to an earlier step's
// outputs: ${flow.inputs.<path>} or ${steps.<id>.outputs.<path>}. A string
// that is exactly one expression takes the referenced value with its type;
// expressions inside longer strings are interpolated as text.
var exprPattern = regexp.MustCompile(`\$\{([^}]*)\}`)

type exprError struct{ path, msg string }

// stepRef is one ${steps.<id>.outputs...} reference in a step's input, kept
// so that Validate can check, once the outlets are known to be acyclic, that
// the referenced step always runs first.
type stepRef struct{ path, expr, stepID string }

// checkExpressions validates the syntax of every expression in a step's
// input, at save time, and returns the step references it found.
func checkExpressions(input map[string]any) ([]stepRef, *exprError) {
	var refs []stepRef
	var walk func(path string, v any) *exprError
	walk = func(path string, v any) *exprError {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(v) {
				if err := walk(join(path, k), v[k]); err != nil {
					return err
				}
			}
		case []any:
			for i, x := range v {
				if err := walk(fmt.Sprintf("%s[%d]", path, i), x); err != nil {
					return err
				}
			}
		case string:
			if strings.Count(v, "${") != len(exprPattern.FindAllString(v, -1)) {
				return &exprError{path, "unterminated ${ expression"}
			}
			for _, m := range exprPattern.FindAllStringSubmatch(v, -1) {
				root, stepID, _, err := parseExpr(m[1])
				if err != nil {
					return &exprError{path, err.Error()}
				}
				if root == "steps" {
					refs = append(refs, stepRef{path: path, expr: m[1], stepID: stepID})
				}
			}
		}
		return nil
	}
	if err := walk("", input); err != nil {
		return nil, err
	}
	return refs, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parseExpr splits "flow.inputs.a.b" or "steps.s1.outputs.a.b".
func parseExpr(expr string) (root, stepID string, path []string, err error) {
	parts := strings.Split(strings.TrimSpace(expr), ".")
	switch {
	case len(parts) >= 3 && parts[0] == "flow" && parts[1] == "inputs":
		return "flow", "", parts[2:], nil
	case len(parts) >= 4 && parts[0] == "steps" && parts[2] == "outputs":
		return "steps", parts[1], parts[3:], nil
	}
	return "", "", nil, fmt.Errorf("${%s} must be ${flow.inputs.<path>} or ${steps.<id>.outputs.<path>}", expr)
}

// resolveInput evaluates a step's input against the flow inputs and the
// outputs of the steps that have run. Without an input mapping the step
// receives the flow inputs unchanged.
func resolveInput(input map[string]any, flowInputs map[string]any, outputs map[string]StepResult) map[string]any {
	if input == nil {
		return flowInputs
	}
	var eval func(v any) any
	eval = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(v))
			// Dotted keys ("user.id") mean the same as nesting. Keys are
			// taken in order so that a dotted key and an object naming the
			// same place merge the same way every time (the more specific
			// "user.id" after "user").
			for _, k := range sortedKeys(v) {
				setPath(out, strings.Split(k, "."), eval(v[k]))
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = eval(x)
			}
			return out
		case string:
			if m := exprPattern.FindStringSubmatchIndex(v); m != nil && m[0] == 0 && m[1] == len(v) {
				return lookupExpr(v[m[2]:m[3]], flowInputs, outputs)
			}
			return exprPattern.ReplaceAllStringFunc(v, func(e string) string {
				return text(lookupExpr(e[2:len(e)-1], flowInputs, outputs))
			})
		}
		return v
	}
	return eval(input).(map[string]any)
}

// lookupExpr returns a copy of the referenced value, so that the resolved
// input never shares maps or slices with the flow inputs or a step's
// outputs (a mapping that sets "user.id" after taking "user" whole must not
// write through into the inputs).
func lookupExpr(expr string, flowInputs map[string]any, outputs map[string]StepResult) any {
	root, stepID, path, err := parseExpr(expr)
	if err != nil {
		return nil
	}
	if root == "flow" {
		return deepCopy(Lookup(flowInputs, path...))
	}
	return deepCopy(Lookup(outputs[stepID].Outputs, path...))
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

// text renders a value interpolated into a string as its JSON text
// (12345678, not 1.2345678e+07; {"a":"b"}, not map[a:b]); strings, and
// string-kinded types, as themselves; a missing value as "".
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return rv.String()
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// Lookup follows a path through nested maps, accepting both nesting
// ({"user":{"id":..}}) and dotted keys ({"user.id":..}) at any level.
func Lookup(m map[string]any, path ...string) any {
	if len(path) == 0 {
		return m
	}
	for i := len(path); i >= 1; i-- {
		v, ok := m[strings.Join(path[:i], ".")]
		if !ok {
			continue
		}
		if i == len(path) {
			return v
		}
		if sub, ok := v.(map[string]any); ok {
			if r := Lookup(sub, path[i:]...); r != nil {
				return r
			}
		}
	}
	return nil
}

// setPath sets v at path, creating objects on the way; an object set where
// an object already is merges into it.
func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	last := path[len(path)-1]
	if old, ok := m[last].(map[string]any); ok {
		if nv, ok := v.(map[string]any); ok {
			for _, k := range sortedKeys(nv) {
				setPath(old, []string{k}, nv[k])
			}
			return
		}
	}
	m[last] = v
}

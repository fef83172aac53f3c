package engine

import (
	"reflect"
	"testing"
)

func TestResolveInput(t *testing.T) {
	flowInputs := map[string]any{
		"user": map[string]any{
			"id":    "u1",
			"email": "jane@example.com",
			"name":  map[string]any{"given": "Jane"},
		},
		"contact.phone": "+12015554567", // a dotted key in the inputs
		"count":         3.0,
		"big":           12345678.0,
		"flag":          true,
		"list":          []any{"a", 1.0},
		"nothing":       nil,
	}
	outputs := map[string]StepResult{
		"s1": {Type: "FAKE", Result: "DONE", Outputs: map[string]any{
			"device": map[string]any{"id": "d1", "type": "EMAIL"},
		}},
		"s0": {Type: "FAKE", Result: "ALT"},
	}
	tests := []struct {
		name  string
		input map[string]any
		want  map[string]any
	}{
		{name: "whole-value string", input: map[string]any{"id": "${flow.inputs.user.id}"},
			want: map[string]any{"id": "u1"}},
		{name: "whole-value keeps number type", input: map[string]any{"n": "${flow.inputs.count}"},
			want: map[string]any{"n": 3.0}},
		{name: "whole-value keeps bool type", input: map[string]any{"b": "${flow.inputs.flag}"},
			want: map[string]any{"b": true}},
		{name: "whole-value keeps objects", input: map[string]any{"u": "${flow.inputs.user.name}"},
			want: map[string]any{"u": map[string]any{"given": "Jane"}}},
		{name: "whole-value keeps arrays", input: map[string]any{"l": "${flow.inputs.list}"},
			want: map[string]any{"l": []any{"a", 1.0}}},
		{name: "whole-value with spaces inside", input: map[string]any{"id": "${ flow.inputs.user.id }"},
			want: map[string]any{"id": "u1"}},
		{name: "whole-value missing is nil", input: map[string]any{"x": "${flow.inputs.user.age}"},
			want: map[string]any{"x": nil}},
		{name: "whole-value null is nil", input: map[string]any{"x": "${flow.inputs.nothing}"},
			want: map[string]any{"x": nil}},
		{name: "whole-value through a non-object is nil", input: map[string]any{"x": "${flow.inputs.count.value}"},
			want: map[string]any{"x": nil}},
		{name: "interpolation", input: map[string]any{"greet": "Hello ${flow.inputs.user.name.given}!"},
			want: map[string]any{"greet": "Hello Jane!"}},
		{name: "interpolation of numbers and bools", input: map[string]any{"s": "n=${flow.inputs.count} big=${flow.inputs.big} f=${flow.inputs.flag}"},
			want: map[string]any{"s": "n=3 big=12345678 f=true"}},
		{name: "interpolation of missing is empty", input: map[string]any{"s": "<${flow.inputs.user.age}>"},
			want: map[string]any{"s": "<>"}},
		{name: "interpolation of two expressions", input: map[string]any{"s": "${flow.inputs.user.id}${flow.inputs.user.id}"},
			want: map[string]any{"s": "u1u1"}},
		{name: "invalid expression at run time is empty", input: map[string]any{"s": "[${nope}]", "w": "${nope}"},
			want: map[string]any{"s": "[]", "w": nil}},
		{name: "plain strings and other values unchanged", input: map[string]any{"s": "costs $5", "n": 1.5, "b": false, "z": nil},
			want: map[string]any{"s": "costs $5", "n": 1.5, "b": false, "z": nil}},
		{name: "dotted keys mean nesting", input: map[string]any{"user.id": "${flow.inputs.user.id}", "template.variables.x": "y"},
			want: map[string]any{"user": map[string]any{"id": "u1"}, "template": map[string]any{"variables": map[string]any{"x": "y"}}}},
		{name: "dotted keys inside nesting", input: map[string]any{"user": map[string]any{"name.given": "${flow.inputs.user.name.given}"}},
			want: map[string]any{"user": map[string]any{"name": map[string]any{"given": "Jane"}}}},
		{name: "dotted key in the flow inputs", input: map[string]any{"phone": "${flow.inputs.contact.phone}"},
			want: map[string]any{"phone": "+12015554567"}},
		{name: "dotted keys merge with a nested object", input: map[string]any{
			"user":    map[string]any{"email": "${flow.inputs.user.email}"},
			"user.id": "${flow.inputs.user.id}",
		}, want: map[string]any{"user": map[string]any{"id": "u1", "email": "jane@example.com"}}},
		{name: "step outputs", input: map[string]any{"d": "${steps.s1.outputs.device.id}", "t": "type ${steps.s1.outputs.device.type}"},
			want: map[string]any{"d": "d1", "t": "type EMAIL"}},
		{name: "step outputs whole object", input: map[string]any{"d": "${steps.s1.outputs.device}"},
			want: map[string]any{"d": map[string]any{"id": "d1", "type": "EMAIL"}}},
		{name: "outputs of a step without outputs or not yet run", input: map[string]any{"a": "${steps.s0.outputs.x}", "b": "${steps.s9.outputs.x}", "c": "-${steps.s9.outputs.x}-"},
			want: map[string]any{"a": nil, "b": nil, "c": "--"}},
		{name: "expressions inside lists", input: map[string]any{"l": []any{"${flow.inputs.user.id}", "x${flow.inputs.count}", []any{"${flow.inputs.flag}"}}},
			want: map[string]any{"l": []any{"u1", "x3", []any{true}}}},
		{name: "empty input mapping", input: map[string]any{}, want: map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resolveInput(tc.input, flowInputs, outputs)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("resolveInput(%v)\n got %#v\nwant %#v", tc.input, got, tc.want)
			}
		})
	}
}

func TestResolveInputWithoutMappingPassesInputs(t *testing.T) {
	in := map[string]any{"user": map[string]any{"id": "u1"}}
	got := resolveInput(nil, in, nil)
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("got %v", got)
	}
}

// Dotted keys and nesting that name the same place must resolve the same
// way every time, whatever Go's map iteration order.
func TestResolveInputDottedKeysDeterministic(t *testing.T) {
	input := map[string]any{
		"user":       map[string]any{"id": "nested", "email": "a@example.com"},
		"user.id":    "dotted",
		"user.phone": "+12015554567",
		"a":          "scalar",
		"a.b":        "deeper",
	}
	first := resolveInput(input, nil, nil)
	for i := 0; i < 200; i++ {
		if got := resolveInput(input, nil, nil); !reflect.DeepEqual(got, first) {
			t.Fatalf("resolution depends on map order:\n%v\n%v", first, got)
		}
	}
	want := map[string]any{
		"user": map[string]any{"id": "dotted", "email": "a@example.com", "phone": "+12015554567"},
		"a":    map[string]any{"b": "deeper"},
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("got %#v\nwant %#v", first, want)
	}
}

func TestResolveInputInterpolatesJSONText(t *testing.T) {
	in := map[string]any{"half": 0.5, "neg": -2.0, "obj": map[string]any{"a": "b"}, "arr": []any{1.0, "x"}, "huge": 1e21}
	got := resolveInput(map[string]any{"s": "${flow.inputs.half}|${flow.inputs.neg}|${flow.inputs.obj}|${flow.inputs.arr}|${flow.inputs.huge}"}, in, nil)
	if want := `0.5|-2|{"a":"b"}|[1,"x"]|1e+21`; got["s"] != want {
		t.Fatalf("got %q, want %q", got["s"], want)
	}
}

// A mapping that takes an object whole and then sets a field inside it must
// not write through into the flow inputs (or a step's outputs).
func TestResolveInputDoesNotAliasSources(t *testing.T) {
	in := map[string]any{"user": map[string]any{"id": "u1", "tags": []any{"a"}}}
	outputs := map[string]StepResult{"s1": {Outputs: map[string]any{"device": map[string]any{"id": "d1"}}}}
	got := resolveInput(map[string]any{
		"user":        "${flow.inputs.user}",
		"user.id":     "override",
		"device":      "${steps.s1.outputs.device}",
		"device.type": "EMAIL",
	}, in, outputs)
	if id := Lookup(got, "user", "id"); id != "override" {
		t.Fatalf("override not applied: %v", got)
	}
	if Lookup(got, "device", "type") != "EMAIL" || Lookup(got, "device", "id") != "d1" {
		t.Fatalf("device not merged: %v", got)
	}
	if id := Lookup(in, "user", "id"); id != "u1" {
		t.Fatalf("flow inputs were modified through the mapping: user.id = %v", id)
	}
	if _, ok := outputs["s1"].Outputs["device"].(map[string]any)["type"]; ok {
		t.Fatalf("step outputs were modified through the mapping: %v", outputs["s1"].Outputs)
	}
	got["user"].(map[string]any)["tags"].([]any)[0] = "changed"
	if in["user"].(map[string]any)["tags"].([]any)[0] != "a" {
		t.Fatal("lists are shared with the flow inputs")
	}
}

func TestLookup(t *testing.T) {
	m := map[string]any{
		"user": map[string]any{
			"id":            "u1",
			"contact.email": "jane@example.com",
			"name":          map[string]any{"given": "Jane"},
		},
		"user.mobilePhone": "+12015554567",
		"a.b":              map[string]any{"c": "via dotted prefix"},
		"x":                "scalar",
		"n":                nil,
	}
	tests := []struct {
		path []string
		want any
	}{
		{[]string{"user", "id"}, "u1"},
		{[]string{"user", "name", "given"}, "Jane"},
		{[]string{"user", "contact", "email"}, "jane@example.com"},
		{[]string{"user", "mobilePhone"}, "+12015554567"},
		{[]string{"a", "b", "c"}, "via dotted prefix"},
		{[]string{"x"}, "scalar"},
		{[]string{"x", "y"}, nil},
		{[]string{"n"}, nil},
		{[]string{"user", "missing"}, nil},
		{[]string{"missing"}, nil},
		{[]string{"user", "id", "deeper"}, nil},
	}
	for _, tc := range tests {
		if got := Lookup(m, tc.path...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%v) = %#v, want %#v", tc.path, got, tc.want)
		}
	}
	if got := Lookup(m); !reflect.DeepEqual(got, m) {
		t.Errorf("Lookup() without path = %v, want the map", got)
	}
	if got := Lookup(nil, "a"); got != nil {
		t.Errorf("Lookup(nil) = %v", got)
	}
	// The longer dotted key wins over nesting when both exist.
	both := map[string]any{"user.id": "dotted", "user": map[string]any{"id": "nested"}}
	if got := Lookup(both, "user", "id"); got != "dotted" {
		t.Errorf("Lookup with both spellings = %v", got)
	}
	// When the dotted key leads nowhere, nesting is still tried.
	partial := map[string]any{"a.b": map[string]any{}, "a": map[string]any{"b": map[string]any{"c": 1.0}}}
	if got := Lookup(partial, "a", "b", "c"); got != 1.0 {
		t.Errorf("Lookup falls back to nesting: %v", got)
	}
}

func TestParseExpr(t *testing.T) {
	tests := []struct {
		expr       string
		root, step string
		path       []string
		ok         bool
	}{
		{"flow.inputs.user.id", "flow", "", []string{"user", "id"}, true},
		{" flow.inputs.x ", "flow", "", []string{"x"}, true},
		{"steps.s1.outputs.device.id", "steps", "s1", []string{"device", "id"}, true},
		{"flow.inputs", "", "", nil, false},
		{"flow.inputz.x", "", "", nil, false},
		{"steps.s1.outputs", "", "", nil, false},
		{"steps.s1.output.x", "", "", nil, false},
		{"", "", "", nil, false},
		{"user.id", "", "", nil, false},
	}
	for _, tc := range tests {
		root, step, path, err := parseExpr(tc.expr)
		if (err == nil) != tc.ok || root != tc.root || step != tc.step || !reflect.DeepEqual(path, tc.path) {
			t.Errorf("parseExpr(%q) = %q %q %v %v", tc.expr, root, step, path, err)
		}
	}
}

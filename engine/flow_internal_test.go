package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
)

// fakeStep is a minimal step type for validating flow structure; the step
// itself is not under test here. Its configuration may be {"bad": ...} to
// produce a configuration detail.
type fakeStep struct{ name string }

func (f fakeStep) Name() string      { return f.name }
func (f fakeStep) Results() []string { return []string{"DONE", "ALT"} }
func (f fakeStep) ValidateConfig(_ *Environment, raw json.RawMessage) []ErrorDetail {
	if len(raw) == 0 {
		return nil
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		return []ErrorDetail{{Code: DetailInvalidValue, Message: "not an object"}}
	}
	if _, ok := c["bad"]; ok {
		return []ErrorDetail{{Code: DetailInvalidValue, Target: "bad", Message: "is bad"}}
	}
	return nil
}
func (f fakeStep) ValidateInput(map[string]any) []ErrorDetail { return nil }
func (f fakeStep) Begin(context.Context, *StepContext) (*Outcome, error) {
	return &Outcome{}, nil
}
func (f fakeStep) Act(context.Context, *StepContext, actions.Action) (*Outcome, error) {
	return &Outcome{Result: "DONE"}, nil
}
func (f fakeStep) View(context.Context, *StepContext) (View, error) { return View{Status: "FAKE"}, nil }

func fakeRegistry() *StepRegistry { return NewStepRegistry(fakeStep{"FAKE"}, fakeStep{"OTHER"}) }

// baseFlow is valid: s1 -DONE-> s2, s1 -ALT-> end, s2 ends.
func baseFlow() *Flow {
	return &Flow{
		ID:      "f1",
		Trigger: Trigger{Next: "s1"},
		StepDefinitions: map[string]StepDefinition{
			"s1": {Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s2"}, "ALT": {Next: ""}},
				Input: map[string]any{"user": map[string]any{"id": "${flow.inputs.user.id}"}}},
			"s2": {Type: "OTHER", Input: map[string]any{
				"user.id":  "${flow.inputs.user.id}",
				"previous": "device ${steps.s1.outputs.device.id} of type ${ steps.s1.outputs.device.type }",
				"list":     []any{"${flow.inputs.a}", 1.0, true, nil, map[string]any{"x": "${flow.inputs.b}"}},
			}},
		},
	}
}

func TestFlowValidateWithFakeStep(t *testing.T) {
	type want struct{ target, code, msg string }
	tests := []struct {
		name   string
		mutate func(f *Flow)
		want   []want // nil: valid
	}{
		{name: "valid", mutate: func(*Flow) {}},
		{name: "single step without outlets", mutate: func(f *Flow) {
			f.StepDefinitions = map[string]StepDefinition{"only": {Type: "FAKE"}}
			f.Trigger.Next = "only"
		}},
		{name: "empty outlet ends the flow", mutate: func(f *Flow) {
			f.StepDefinitions["s2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {}}}
		}},
		{name: "id empty", mutate: func(f *Flow) { f.ID = "" },
			want: []want{{"id", DetailInvalidValue, "1 to 64"}}},
		{name: "id starts with dash", mutate: func(f *Flow) { f.ID = "-f" },
			want: []want{{"id", DetailInvalidValue, ""}}},
		{name: "id too long", mutate: func(f *Flow) { f.ID = strings.Repeat("a", 65) },
			want: []want{{"id", DetailInvalidValue, ""}}},
		{name: "id 64 chars ok", mutate: func(f *Flow) { f.ID = strings.Repeat("a", 64) }},
		{name: "no steps", mutate: func(f *Flow) { f.StepDefinitions = nil },
			want: []want{{"stepDefinitions", DetailRequired, "at least one"}, {"trigger.next", DetailInvalidValue, `"s1"`}}},
		{name: "missing trigger", mutate: func(f *Flow) { f.Trigger.Next = "" },
			want: []want{{"trigger.next", DetailRequired, "first step"}}},
		{name: "unknown trigger", mutate: func(f *Flow) { f.Trigger.Next = "s9" },
			want: []want{{"trigger.next", DetailInvalidValue, `names no step: "s9"`}}},
		{name: "bad step id", mutate: func(f *Flow) {
			f.StepDefinitions["bad id"] = StepDefinition{Type: "FAKE"}
		}, want: []want{{"stepDefinitions.bad id", DetailInvalidValue, "step ids"}}},
		{name: "unknown type", mutate: func(f *Flow) {
			sd := f.StepDefinitions["s2"]
			sd.Type = "NOPE"
			// outlets of an unknown type are not checked further
			sd.Outlets = map[string]Outlet{"WHATEVER": {Next: "nowhere"}}
			f.StepDefinitions["s2"] = sd
		}, want: []want{{"stepDefinitions.s2.type", DetailInvalidValue, `unknown step type "NOPE" (known: [FAKE OTHER])`}}},
		{name: "bad outlet result", mutate: func(f *Flow) {
			f.StepDefinitions["s1"].Outlets["FAILED"] = Outlet{Next: "s2"}
		}, want: []want{{"stepDefinitions.s1.outlets.FAILED", DetailInvalidValue, `no result "FAILED"`}}},
		{name: "outlet to unknown step", mutate: func(f *Flow) {
			f.StepDefinitions["s1"].Outlets["DONE"] = Outlet{Next: "s3"}
		}, want: []want{{"stepDefinitions.s1.outlets.DONE.next", DetailInvalidValue, `names no step: "s3"`}}},
		{name: "bad result and unknown step", mutate: func(f *Flow) {
			f.StepDefinitions["s1"].Outlets["X"] = Outlet{Next: "s3"}
		}, want: []want{
			{"stepDefinitions.s1.outlets.X", DetailInvalidValue, ""},
			{"stepDefinitions.s1.outlets.X.next", DetailInvalidValue, ""},
		}},
		{name: "two-step cycle", mutate: func(f *Flow) {
			f.StepDefinitions["s2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"ALT": {Next: "s1"}}}
		}, want: []want{{"stepDefinitions", DetailInvalidValue, "cycle through step s1"}}},
		{name: "self loop", mutate: func(f *Flow) {
			f.StepDefinitions["s2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s2"}}}
		}, want: []want{{"stepDefinitions", DetailInvalidValue, "cycle through step s2"}}},
		{name: "cycle in unreachable steps", mutate: func(f *Flow) {
			f.StepDefinitions["x1"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "x2"}}}
			f.StepDefinitions["x2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"ALT": {Next: "x1"}}}
		}, want: []want{{"stepDefinitions", DetailInvalidValue, "cycle"}}},
		{name: "diamond is not a cycle", mutate: func(f *Flow) {
			f.StepDefinitions["s1"].Outlets["ALT"] = Outlet{Next: "s3"}
			f.StepDefinitions["s2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s4"}}}
			f.StepDefinitions["s3"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s4"}}}
			f.StepDefinitions["s4"] = StepDefinition{Type: "FAKE"}
		}},
		{name: "cycle not reported alongside other errors", mutate: func(f *Flow) {
			f.ID = ""
			f.StepDefinitions["s2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"ALT": {Next: "s1"}}}
		}, want: []want{{"id", DetailInvalidValue, ""}}},
		{name: "expression with bad root", mutate: func(f *Flow) {
			f.StepDefinitions["s1"].Input["user"] = map[string]any{"id": "${flow.inputz.x}"}
		}, want: []want{{"stepDefinitions.s1.input.user.id", DetailInvalidValue, "${flow.inputz.x} must be"}}},
		{name: "expression to unknown step", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["user.id"] = "${steps.nope.outputs.x}"
		}, want: []want{{"stepDefinitions.s2.input.user.id", DetailInvalidValue, `unknown step "nope"`}}},
		{name: "unreachable step", mutate: func(f *Flow) {
			f.StepDefinitions["orphan"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s2"}}}
		}, want: []want{{"stepDefinitions.orphan", DetailInvalidValue, "no outlet and not trigger.next leads to this step"}}},
		{name: "expression to a later step", mutate: func(f *Flow) {
			f.StepDefinitions["s1"].Input["prev"] = "${steps.s2.outputs.device.id}"
		}, want: []want{{"stepDefinitions.s1.input.prev", DetailInvalidValue, `step "s2", which does not run before step "s1"`}}},
		{name: "expression to the step itself", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["prev"] = "${steps.s2.outputs.device.id}"
		}, want: []want{{"stepDefinitions.s2.input.prev", DetailInvalidValue, `step "s2", which does not run before step "s2"`}}},
		{name: "diamond: the join may read the fork, not one branch", mutate: func(f *Flow) {
			f.StepDefinitions["s1"].Outlets["ALT"] = Outlet{Next: "s3"}
			f.StepDefinitions["s2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s4"}}}
			f.StepDefinitions["s3"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s4"}}}
			f.StepDefinitions["s4"] = StepDefinition{Type: "FAKE", Input: map[string]any{
				"fork":   "${steps.s1.outputs.device.id}",
				"branch": "${steps.s3.outputs.device.id}",
			}}
		}, want: []want{{"stepDefinitions.s4.input.branch", DetailInvalidValue, `step "s3", which does not run before step "s4" on every path`}}},
		{name: "chain: the last step may read every earlier one", mutate: func(f *Flow) {
			f.StepDefinitions["s2"] = StepDefinition{Type: "FAKE", Outlets: map[string]Outlet{"DONE": {Next: "s3"}, "ALT": {Next: "s3"}}}
			f.StepDefinitions["s3"] = StepDefinition{Type: "FAKE", Input: map[string]any{
				"a": "${steps.s1.outputs.x}", "b": "${steps.s2.outputs.y}",
			}}
		}},
		{name: "unterminated expression", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["user.id"] = "${flow.inputs.user.id"
		}, want: []want{{"stepDefinitions.s2.input.user.id", DetailInvalidValue, "unterminated"}}},
		{name: "unterminated after a good one", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["user.id"] = "${flow.inputs.a} and ${flow.inputs.b"
		}, want: []want{{"stepDefinitions.s2.input.user.id", DetailInvalidValue, "unterminated"}}},
		{name: "nested open brace", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["user.id"] = "${flow.inputs.${flow.inputs.a}}"
		}, want: []want{{"stepDefinitions.s2.input.user.id", DetailInvalidValue, ""}}},
		{name: "empty expression", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["user.id"] = "${}"
		}, want: []want{{"stepDefinitions.s2.input.user.id", DetailInvalidValue, "must be ${flow.inputs.<path>}"}}},
		{name: "flow.inputs without path", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["user.id"] = "${flow.inputs}"
		}, want: []want{{"stepDefinitions.s2.input.user.id", DetailInvalidValue, ""}}},
		{name: "steps without outputs", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["user.id"] = "${steps.s1.results.x}"
		}, want: []want{{"stepDefinitions.s2.input.user.id", DetailInvalidValue, ""}}},
		{name: "bad expression in interpolation", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["previous"] = "Hello ${user.name}!"
		}, want: []want{{"stepDefinitions.s2.input.previous", DetailInvalidValue, ""}}},
		{name: "bad expression in a list", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["list"] = []any{"ok", map[string]any{"deep": []any{"${nope}"}}}
		}, want: []want{{"stepDefinitions.s2.input.list[1].deep[0]", DetailInvalidValue, ""}}},
		{name: "dollar without brace is text", mutate: func(f *Flow) {
			f.StepDefinitions["s2"].Input["previous"] = "costs $5 {not an expression}"
		}},
		{name: "config error is prefixed", mutate: func(f *Flow) {
			sd := f.StepDefinitions["s1"]
			sd.Configuration = json.RawMessage(`{"bad":true}`)
			f.StepDefinitions["s1"] = sd
		}, want: []want{{"stepDefinitions.s1.configuration.bad", DetailInvalidValue, "is bad"}}},
		{name: "config error without target names the configuration", mutate: func(f *Flow) {
			sd := f.StepDefinitions["s1"]
			sd.Configuration = json.RawMessage(`[1]`)
			f.StepDefinitions["s1"] = sd
		}, want: []want{{"stepDefinitions.s1.configuration", DetailInvalidValue, "not an object"}}},
		{name: "every problem reported in order", mutate: func(f *Flow) {
			f.ID = "?"
			f.Trigger.Next = ""
			f.StepDefinitions["s1"].Outlets["DONE"] = Outlet{Next: "zz"}
			f.StepDefinitions["s2"].Input["user.id"] = "${x}"
			f.StepDefinitions["s0"] = StepDefinition{Type: "NOPE"}
		}, want: []want{
			{"id", DetailInvalidValue, ""},
			{"trigger.next", DetailRequired, ""},
			{"stepDefinitions.s0.type", DetailInvalidValue, ""},
			{"stepDefinitions.s1.outlets.DONE.next", DetailInvalidValue, ""},
			{"stepDefinitions.s2.input.user.id", DetailInvalidValue, ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := baseFlow()
			tc.mutate(f)
			err := f.Validate(nil, fakeRegistry())
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate = %v (%T), want *Error", err, err)
			}
			if e.Status != http.StatusBadRequest || e.Code != CodeInvalidData {
				t.Errorf("status/code = %d %s", e.Status, e.Code)
			}
			if len(e.Details) != len(tc.want) {
				t.Fatalf("details = %+v, want %d: %+v", e.Details, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				d := e.Details[i]
				if d.Target != w.target || d.Code != w.code || !strings.Contains(d.Message, w.msg) {
					t.Errorf("detail %d = %+v, want %+v", i, d, w)
				}
			}
		})
	}
}

func TestValidateIsDeterministic(t *testing.T) {
	f := baseFlow()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		f.StepDefinitions[id] = StepDefinition{Type: "NOPE" + id}
	}
	first := f.Validate(nil, fakeRegistry()).Error()
	for i := 0; i < 20; i++ {
		if got := f.Validate(nil, fakeRegistry()).Error(); got != first {
			t.Fatalf("Validate is not deterministic:\n%s\n%s", first, got)
		}
	}
}

func TestFindCycleLongChain(t *testing.T) {
	f := &Flow{ID: "long", Trigger: Trigger{Next: stepName(0)}, StepDefinitions: map[string]StepDefinition{}}
	const n = 2000
	for i := 0; i < n; i++ {
		sd := StepDefinition{Type: "FAKE"}
		if i+1 < n {
			sd.Outlets = map[string]Outlet{"DONE": {Next: stepName(i + 1)}}
		}
		f.StepDefinitions[stepName(i)] = sd
	}
	if c := f.findCycle(); c != "" {
		t.Fatalf("chain reported as cycle through %s", c)
	}
	last := f.StepDefinitions[stepName(n-1)]
	last.Outlets = map[string]Outlet{"ALT": {Next: stepName(0)}}
	f.StepDefinitions[stepName(n-1)] = last
	if c := f.findCycle(); c == "" {
		t.Fatal("ring not reported as cycle")
	}
}

func stepName(i int) string { return fmt.Sprintf("s%04d", i) }

func TestRegistry(t *testing.T) {
	r := NewStepRegistry(fakeStep{"B"}, fakeStep{"A"})
	if got := r.Names(); !reflect.DeepEqual(got, []string{"A", "B"}) {
		t.Fatalf("Names = %v", got)
	}
	if _, ok := r.Lookup("A"); !ok {
		t.Fatal("Lookup(A) failed")
	}
	if _, ok := r.Lookup("a"); ok {
		t.Fatal("Lookup is case-sensitive")
	}
}

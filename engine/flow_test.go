package engine_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/store/memory"
)

const flowsDir = "../testdata/flows"

func mustFlow(t testing.TB, js string) *engine.Flow {
	t.Helper()
	f := &engine.Flow{}
	if err := actions.DecodeStrict([]byte(js), f); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	return f
}

func TestFlowValidateWithEnrollmentStep(t *testing.T) {
	env := defaultOnlyEnv(t)
	reg := stepRegistry(t, memory.New(nil), nil)
	// one builds a one-step flow around a step definition.
	one := func(step string) string {
		return `{"id":"f","trigger":{"next":"s1"},"stepDefinitions":{"s1":` + step + `}}`
	}
	type want struct{ target, code, msg string }
	tests := []struct {
		name string
		js   string
		want []want
	}{
		{name: "default policy", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}`)},
		{name: "named policy", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":"default"}}}`)},
		{name: "skip and template", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true,"allowSkip":true,"template":{"variant":"v"}},"outlets":{"ENROLLED":{"next":""},"SKIPPED":{"next":""}}}`)},
		{name: "missing trigger", js: `{"id":"f","trigger":{},"stepDefinitions":{"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`,
			want: []want{{"trigger.next", engine.DetailRequired, ""}}},
		{name: "unknown next", js: `{"id":"f","trigger":{"next":"s2"},"stepDefinitions":{"s1":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`,
			want: []want{{"trigger.next", engine.DetailInvalidValue, `"s2"`}}},
		{name: "unknown type", js: one(`{"type":"MFA_DEVICE_AUTHENTICATION","configuration":{"useDefaultPolicy":true}}`),
			want: []want{{"stepDefinitions.s1.type", engine.DetailInvalidValue, "known: [MFA_DEVICE_ENROLLMENT]"}}},
		{name: "bad outlet result", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"outlets":{"COMPLETED":{"next":""}}}`),
			want: []want{{"stepDefinitions.s1.outlets.COMPLETED", engine.DetailInvalidValue, "[ENROLLED SKIPPED]"}}},
		{name: "outlet to unknown step", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"outlets":{"ENROLLED":{"next":"s9"}}}`),
			want: []want{{"stepDefinitions.s1.outlets.ENROLLED.next", engine.DetailInvalidValue, `"s9"`}}},
		{name: "cycle", js: `{"id":"f","trigger":{"next":"a"},"stepDefinitions":{
			"a":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true,"allowSkip":true},"outlets":{"SKIPPED":{"next":"b"}}},
			"b":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"outlets":{"ENROLLED":{"next":"a"}}}}}`,
			want: []want{{"stepDefinitions", engine.DetailInvalidValue, "cycle"}}},
		{name: "expression inputz", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"input":{"user":{"id":"${flow.inputz.x}"}}}`),
			want: []want{{"stepDefinitions.s1.input.user.id", engine.DetailInvalidValue, "${flow.inputz.x}"}}},
		{name: "expression unknown step", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"input":{"user.id":"${steps.nope.outputs.x}"}}`),
			want: []want{{"stepDefinitions.s1.input.user.id", engine.DetailInvalidValue, `unknown step "nope"`}}},
		{name: "expression unterminated", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"input":{"template":{"locale":"${flow.inputs.locale"}}}`),
			want: []want{{"stepDefinitions.s1.input.template.locale", engine.DetailInvalidValue, "unterminated"}}},
		{name: "config missing", js: one(`{"type":"MFA_DEVICE_ENROLLMENT"}`),
			want: []want{{"stepDefinitions.s1.configuration.useDefaultPolicy", engine.DetailRequired, ""}}},
		{name: "config without useDefaultPolicy", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"allowSkip":true}}`),
			want: []want{{"stepDefinitions.s1.configuration.useDefaultPolicy", engine.DetailRequired, ""}}},
		{name: "config useDefaultPolicy wrong type", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":"yes"}}`),
			want: []want{{"stepDefinitions.s1.configuration.useDefaultPolicy", engine.DetailInvalidValue, "boolean"}}},
		{name: "config policy id required", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":false}}`),
			want: []want{{"stepDefinitions.s1.configuration.deviceAuthenticationPolicy.id", engine.DetailRequired, ""}}},
		{name: "config unknown policy", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":false,"deviceAuthenticationPolicy":{"id":"strict"}}}`),
			want: []want{{"stepDefinitions.s1.configuration.deviceAuthenticationPolicy.id", engine.DetailInvalidValue, `"strict"`}}},
		{name: "config unknown field", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true,"allowSkipping":true}}`),
			want: []want{{"stepDefinitions.s1.configuration.allowSkipping", engine.DetailUnknownField, ""}}},
		{name: "config variant too long", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true,"template":{"variant":"` + strings.Repeat("v", 101) + `"}}}`),
			want: []want{{"stepDefinitions.s1.configuration.template.variant", engine.DetailInvalidValue, ""}}},
		{name: "config not an object", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":[true]}`),
			want: []want{{"stepDefinitions.s1.configuration", engine.DetailInvalidValue, "JSON object"}}},
		{name: "config null", js: one(`{"type":"MFA_DEVICE_ENROLLMENT","configuration":null}`),
			want: []want{{"stepDefinitions.s1.configuration", engine.DetailInvalidValue, "JSON object"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := mustFlow(t, tc.js).Validate(env, reg)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			var e *engine.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("Validate = %v, want a 400 *engine.Error", err)
			}
			if len(e.Details) != len(tc.want) {
				t.Fatalf("details = %+v, want %+v", e.Details, tc.want)
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

// wantFlowFile is what each invalid flow file must report first.
var wantFlowFile = map[string]string{
	"invalid-config.json":          "stepDefinitions.s1.configuration.useDefaultPolicy",
	"invalid-cycle.json":           "stepDefinitions",
	"invalid-expression.json":      "stepDefinitions.s1.input.user.id",
	"invalid-missing-trigger.json": "trigger.next",
	"invalid-outlets.json":         "stepDefinitions.s1.outlets.ENROLLED.next",
	"invalid-unknown-policy.json":  "stepDefinitions.s1.configuration.deviceAuthenticationPolicy.id",
	"invalid-unknown-type.json":    "stepDefinitions.s1.type",
	"valid-email-then-totp.json":   "",
	"valid-single-enrollment.json": "",
	"valid-skip-branch.json":       "",
}

func flowFiles(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(flowsDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no flow files in %s: %v", flowsDir, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestFlowFiles(t *testing.T) {
	env := testEnv(t, mfaSettings())
	reg := stepRegistry(t, memory.New(nil), nil)
	files := flowFiles(t)
	for name := range wantFlowFile {
		if _, ok := files[name]; !ok {
			t.Errorf("missing %s", name)
		}
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			want, known := wantFlowFile[name]
			if !known {
				t.Fatalf("add %s to wantFlowFile", name)
			}
			f := &engine.Flow{}
			if err := actions.DecodeStrict(data, f); err != nil {
				t.Fatalf("decode: %v", err)
			}
			err := f.Validate(env, reg)
			if want == "" {
				if err != nil {
					t.Fatalf("valid flow rejected: %v", err)
				}
				// A valid flow survives a JSON round trip unchanged.
				js, _ := json.Marshal(f)
				g := &engine.Flow{}
				if err := actions.DecodeStrict(js, g); err != nil {
					t.Fatal(err)
				}
				js2, _ := json.Marshal(g)
				if !reflect.DeepEqual(js, js2) {
					t.Fatalf("round trip changed the flow:\n%s\n%s", js, js2)
				}
				return
			}
			var e *engine.Error
			if !errors.As(err, &e) || len(e.Details) == 0 {
				t.Fatalf("Validate = %v, want details", err)
			}
			if e.Details[0].Target != want {
				t.Fatalf("first target = %q, want %q (%v)", e.Details[0].Target, want, err)
			}
		})
	}
}

// The seeded flow files are valid only with their policies: with the
// default policy alone the two-step flow names unknown policies.
func TestEmailThenTOTPNeedsItsPolicies(t *testing.T) {
	f := &engine.Flow{}
	if err := actions.DecodeStrict(flowFiles(t)["valid-email-then-totp.json"], f); err != nil {
		t.Fatal(err)
	}
	err := f.Validate(defaultOnlyEnv(t), stepRegistry(t, memory.New(nil), nil))
	var e *engine.Error
	if !errors.As(err, &e) || len(e.Details) != 2 ||
		e.Details[0].Target != "stepDefinitions.email.configuration.deviceAuthenticationPolicy.id" ||
		e.Details[1].Target != "stepDefinitions.totp.configuration.deviceAuthenticationPolicy.id" {
		t.Fatalf("Validate = %v", err)
	}
}

func FuzzFlowDefinition(f *testing.F) {
	for _, data := range flowFiles(f) {
		f.Add(data)
	}
	for _, s := range []string{
		`{}`, `{"id":"x"}`, `{"id":"x","trigger":{"next":"a"},"stepDefinitions":{"a":{"type":"MFA_DEVICE_ENROLLMENT"}}}`,
		`{"id":"x","trigger":{"next":"a"},"stepDefinitions":{"a":{"type":"MFA_DEVICE_ENROLLMENT","configuration":null,"input":{"":"${}","a..b":["${steps..outputs.x}"]},"outlets":{"":{"next":""}}}}}`,
		`{"id":"x","trigger":{"next":"a"},"stepDefinitions":{"a":{"type":"MFA_DEVICE_ENROLLMENT","configuration":"str","outlets":{"ENROLLED":{"next":"a"}}}}}`,
		`{"id":"x","trigger":{"next":"a"},"stepDefinitions":{"a":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true},"input":{"x":"${${flow.inputs.a}"}}}}`,
	} {
		f.Add([]byte(s))
	}
	env := testEnv(f, mfaSettings())
	reg := stepRegistry(f, memory.New(nil), nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fl engine.Flow
		if err := actions.DecodeStrict(data, &fl); err != nil {
			return
		}
		err := fl.Validate(env, reg)
		if err == nil {
			// A valid flow stays valid after a JSON round trip.
			js, mErr := json.Marshal(&fl)
			if mErr != nil {
				t.Fatalf("marshal valid flow: %v", mErr)
			}
			var again engine.Flow
			if dErr := actions.DecodeStrict(js, &again); dErr != nil {
				t.Fatalf("re-decode %s: %v", js, dErr)
			}
			if vErr := again.Validate(env, reg); vErr != nil {
				t.Fatalf("valid flow invalid after round trip: %v\n%s", vErr, js)
			}
			return
		}
		e, ok := err.(*engine.Error)
		if !ok {
			t.Fatalf("Validate returned %T %v, want *engine.Error", err, err)
		}
		if e.Status != http.StatusBadRequest || e.Code != engine.CodeInvalidData {
			t.Fatalf("Validate returned %d %s, want 400 INVALID_DATA", e.Status, e.Code)
		}
		if len(e.Details) == 0 {
			t.Fatalf("400 without details: %v", e)
		}
		for _, d := range e.Details {
			if d.Target == "" || d.Code == "" || d.Message == "" {
				t.Fatalf("incomplete detail %+v in %v", d, e)
			}
			// (Empty outlet names or input keys legitimately end a
			// target with a dot; a configuration problem never does.)
			if strings.HasSuffix(d.Target, ".configuration.") && !strings.Contains(d.Target, ".input.") {
				t.Fatalf("configuration detail target %q ends with a dot", d.Target)
			}
		}
	})
}

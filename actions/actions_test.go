package actions_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
)

func TestNamesAndContentTypes(t *testing.T) {
	want := []string{"device.activate", "device.create", "device.delete", "device.skipEnrollment", "otp.resend"}
	if got := actions.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	cts := actions.ContentTypes()
	if len(cts) != len(want) {
		t.Fatalf("ContentTypes() = %v", cts)
	}
	for i, n := range want {
		if ct := "application/vnd.pingidentity." + n + "+json"; cts[i] != ct || actions.ContentType(n) != ct {
			t.Errorf("content type of %s: list %q, ContentType %q, want %q", n, cts[i], actions.ContentType(n), ct)
		}
	}
}

func TestNameFromContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want string // "" means ErrUnsupportedType
	}{
		{"application/vnd.pingidentity.device.create+json", actions.DeviceCreate},
		{"application/vnd.pingidentity.device.create+json; charset=utf-8", actions.DeviceCreate},
		{"application/vnd.pingidentity.device.create+json;charset=UTF-8", actions.DeviceCreate},
		{"Application/VND.PingIdentity.Device.Create+JSON", actions.DeviceCreate},
		{"APPLICATION/VND.PINGIDENTITY.DEVICE.SKIPENROLLMENT+JSON", actions.DeviceSkipEnrollment},
		{"application/vnd.pingidentity.otp.resend+json", actions.OTPResend},
		{"  application/vnd.pingidentity.device.delete+json  ", actions.DeviceDelete},
		{"", ""},
		{"application/json", ""},
		{"text/plain", ""},
		{"application/vnd.pingidentity.device.create", ""},
		{"application/vnd.pingidentity.device.create+xml", ""},
		{"application/vnd.pingidentity.device.unknown+json", ""},
		{"application/vnd.pingidentity.+json", ""},
		{"application/vnd.pingidentity+json", ""},
		{"application/vnd.other.device.create+json", ""},
		{"application/vnd.pingidentity.device.create+json; charset", ""}, // malformed parameter
		{"application/vnd.pingidentity.device.create+json;;", ""},
		{"/", ""},
		{";", ""},
	}
	for _, tc := range tests {
		got, err := actions.NameFromContentType(tc.ct)
		if tc.want == "" {
			if !errors.Is(err, actions.ErrUnsupportedType) || got != "" {
				t.Errorf("NameFromContentType(%q) = %q, %v; want ErrUnsupportedType", tc.ct, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NameFromContentType(%q) = %q, %v; want %q", tc.ct, got, err, tc.want)
		}
	}
}

func strPtrApp(id string) *struct {
	ID string `json:"id"`
} {
	return &struct {
		ID string `json:"id"`
	}{ID: id}
}

func TestDecode(t *testing.T) {
	ct := actions.ContentType
	type errWant struct {
		field  string // expected DecodeError.Field
		syntax bool
		substr string // expected in the message
	}
	tests := []struct {
		name    string
		ct      string
		body    string
		want    actions.Action
		wantErr *errWant
		unsupp  bool
	}{
		// Every action with a minimal valid body.
		{name: "create minimal", ct: ct(actions.DeviceCreate), body: `{"type":"EMAIL"}`,
			want: actions.Action{Name: actions.DeviceCreate, Payload: &actions.CreateDevice{Type: "EMAIL"}}},
		{name: "create full", ct: ct(actions.DeviceCreate),
			body: `{"type":"MOBILE","nickname":"n","email":"a@b.c","phone":"+12015554567","application":{"id":"app"},"rp":{"id":"example.com","name":"Ex"}}`,
			want: actions.Action{Name: actions.DeviceCreate, Payload: &actions.CreateDevice{Type: "MOBILE", Nickname: "n", Email: "a@b.c",
				Phone: "+12015554567", Application: strPtrApp("app"), RP: &struct {
					ID   string `json:"id,omitempty"`
					Name string `json:"name,omitempty"`
				}{ID: "example.com", Name: "Ex"}}}},
		{name: "create charset", ct: ct(actions.DeviceCreate) + "; charset=utf-8", body: `{"type":"SMS"}`,
			want: actions.Action{Name: actions.DeviceCreate, Payload: &actions.CreateDevice{Type: "SMS"}}},
		{name: "create upper-case media type", ct: strings.ToUpper(ct(actions.DeviceCreate)), body: `{"type":"SMS"}`,
			want: actions.Action{Name: actions.DeviceCreate, Payload: &actions.CreateDevice{Type: "SMS"}}},
		{name: "create surrounding whitespace", ct: ct(actions.DeviceCreate), body: " \n\t{\"type\":\"TOTP\"}\r\n ",
			want: actions.Action{Name: actions.DeviceCreate, Payload: &actions.CreateDevice{Type: "TOTP"}}},
		{name: "create empty object", ct: ct(actions.DeviceCreate), body: `{}`,
			want: actions.Action{Name: actions.DeviceCreate, Payload: &actions.CreateDevice{}}},
		{name: "activate otp", ct: ct(actions.DeviceActivate), body: `{"otp":"123456"}`,
			want: actions.Action{Name: actions.DeviceActivate, Payload: &actions.ActivateDevice{OTP: "123456"}}},
		{name: "activate attestation", ct: ct(actions.DeviceActivate) + ";charset=UTF-8", body: `{"attestation":{"a":[1,2]},"origin":"https://x"}`,
			want: actions.Action{Name: actions.DeviceActivate, Payload: &actions.ActivateDevice{Attestation: json.RawMessage(`{"a":[1,2]}`), Origin: "https://x"}}},
		{name: "activate empty object", ct: ct(actions.DeviceActivate), body: `{}`,
			want: actions.Action{Name: actions.DeviceActivate, Payload: &actions.ActivateDevice{}}},
		// Parameterless actions: empty body, whitespace, {}.
		{name: "skip empty", ct: ct(actions.DeviceSkipEnrollment), body: ``, want: actions.Action{Name: actions.DeviceSkipEnrollment}},
		{name: "skip whitespace", ct: ct(actions.DeviceSkipEnrollment), body: " \n ", want: actions.Action{Name: actions.DeviceSkipEnrollment}},
		{name: "skip {}", ct: ct(actions.DeviceSkipEnrollment), body: `{}`, want: actions.Action{Name: actions.DeviceSkipEnrollment}},
		{name: "skip charset", ct: ct(actions.DeviceSkipEnrollment) + "; charset=utf-8", body: `{ }`, want: actions.Action{Name: actions.DeviceSkipEnrollment}},
		{name: "skip case-insensitive", ct: "application/vnd.pingidentity.device.skipenrollment+json", body: ``, want: actions.Action{Name: actions.DeviceSkipEnrollment}},
		{name: "delete empty", ct: ct(actions.DeviceDelete), body: ``, want: actions.Action{Name: actions.DeviceDelete}},
		{name: "delete {}", ct: ct(actions.DeviceDelete), body: `{}`, want: actions.Action{Name: actions.DeviceDelete}},
		{name: "resend empty", ct: ct(actions.OTPResend), body: ``, want: actions.Action{Name: actions.OTPResend}},
		{name: "resend {}", ct: ct(actions.OTPResend), body: "{}\n", want: actions.Action{Name: actions.OTPResend}},
		{name: "resend upper", ct: "APPLICATION/VND.PINGIDENTITY.OTP.RESEND+JSON; CHARSET=UTF-8", body: ``, want: actions.Action{Name: actions.OTPResend}},

		// Unknown fields name the field.
		{name: "create unknown field", ct: ct(actions.DeviceCreate), body: `{"type":"EMAIL","colour":"red"}`,
			wantErr: &errWant{field: "colour", substr: "unknown field"}},
		{name: "activate unknown field", ct: ct(actions.DeviceActivate), body: `{"passcode":"123456"}`,
			wantErr: &errWant{field: "passcode", substr: "unknown field"}},
		{name: "skip unknown field", ct: ct(actions.DeviceSkipEnrollment), body: `{"reason":"later"}`,
			wantErr: &errWant{field: "reason", substr: "unknown field"}},
		{name: "delete unknown field", ct: ct(actions.DeviceDelete), body: `{"id":"x"}`,
			wantErr: &errWant{field: "id", substr: "unknown field"}},
		{name: "resend unknown field", ct: ct(actions.OTPResend), body: `{"otp":"1"}`,
			wantErr: &errWant{field: "otp", substr: "unknown field"}},

		// Wrong JSON types name the field (with its path).
		{name: "create type number", ct: ct(actions.DeviceCreate), body: `{"type":1}`,
			wantErr: &errWant{field: "type", substr: "must be of JSON type string, not number"}},
		{name: "create nickname bool", ct: ct(actions.DeviceCreate), body: `{"type":"EMAIL","nickname":true}`,
			wantErr: &errWant{field: "nickname", substr: "string, not bool"}},
		{name: "create application string", ct: ct(actions.DeviceCreate), body: `{"type":"MOBILE","application":"app"}`,
			wantErr: &errWant{field: "application", substr: "JSON type object, not string"}},
		{name: "create application.id number", ct: ct(actions.DeviceCreate), body: `{"type":"MOBILE","application":{"id":7}}`,
			wantErr: &errWant{field: "application.id", substr: "string, not number"}},
		{name: "create rp array", ct: ct(actions.DeviceCreate), body: `{"type":"PLATFORM","rp":[]}`,
			wantErr: &errWant{field: "rp", substr: "object, not array"}},
		{name: "activate otp number", ct: ct(actions.DeviceActivate), body: `{"otp":123456}`,
			wantErr: &errWant{field: "otp", substr: "string, not number"}},
		{name: "activate origin object", ct: ct(actions.DeviceActivate), body: `{"origin":{}}`,
			wantErr: &errWant{field: "origin", substr: "string, not object"}},

		// Trailing data.
		{name: "create trailing object", ct: ct(actions.DeviceCreate), body: `{"type":"EMAIL"}{"type":"SMS"}`,
			wantErr: &errWant{syntax: true, substr: "after the JSON object"}},
		{name: "create trailing garbage", ct: ct(actions.DeviceCreate), body: `{"type":"EMAIL"} x`,
			wantErr: &errWant{syntax: true}},
		{name: "skip trailing", ct: ct(actions.DeviceSkipEnrollment), body: `{} {}`,
			wantErr: &errWant{syntax: true, substr: "after the JSON object"}},
		{name: "resend trailing bracket", ct: ct(actions.OTPResend), body: `{}]`,
			wantErr: &errWant{syntax: true}},

		// Non-objects.
		{name: "create array", ct: ct(actions.DeviceCreate), body: `[{"type":"EMAIL"}]`,
			wantErr: &errWant{syntax: true, substr: "must be a JSON object"}},
		{name: "create string", ct: ct(actions.DeviceCreate), body: `"EMAIL"`,
			wantErr: &errWant{syntax: true, substr: "must be a JSON object"}},
		{name: "create null", ct: ct(actions.DeviceCreate), body: `null`,
			wantErr: &errWant{syntax: true, substr: "must be a JSON object"}},
		{name: "activate number", ct: ct(actions.DeviceActivate), body: `123456`,
			wantErr: &errWant{syntax: true, substr: "must be a JSON object"}},
		{name: "skip array", ct: ct(actions.DeviceSkipEnrollment), body: `[]`,
			wantErr: &errWant{syntax: true, substr: "must be a JSON object"}},
		{name: "delete null", ct: ct(actions.DeviceDelete), body: `null`,
			wantErr: &errWant{syntax: true, substr: "must be a JSON object"}},

		// Malformed JSON.
		{name: "create truncated", ct: ct(actions.DeviceCreate), body: `{"type":"EMAIL"`,
			wantErr: &errWant{syntax: true, substr: "unexpected end"}},
		{name: "create bad token", ct: ct(actions.DeviceCreate), body: `{"type":EMAIL}`,
			wantErr: &errWant{syntax: true, substr: "malformed JSON"}},
		{name: "create single quotes", ct: ct(actions.DeviceCreate), body: `{'type':'EMAIL'}`,
			wantErr: &errWant{syntax: true, substr: "malformed JSON"}},
		{name: "resend truncated", ct: ct(actions.OTPResend), body: `{`,
			wantErr: &errWant{syntax: true}},

		// Empty bodies where parameters are needed.
		{name: "create empty body", ct: ct(actions.DeviceCreate), body: ``,
			wantErr: &errWant{syntax: true, substr: "empty"}},
		{name: "create whitespace body", ct: ct(actions.DeviceCreate), body: "  \n",
			wantErr: &errWant{syntax: true, substr: "empty"}},
		{name: "activate empty body", ct: ct(actions.DeviceActivate), body: ``,
			wantErr: &errWant{syntax: true, substr: "empty"}},

		// Unknown content types, whatever the body.
		{name: "json", ct: "application/json", body: `{"type":"EMAIL"}`, unsupp: true},
		{name: "empty content type", ct: "", body: ``, unsupp: true},
		{name: "unknown action", ct: ct("device.rename"), body: `{}`, unsupp: true},
		{name: "unknown action garbage body", ct: ct("nope"), body: `not json`, unsupp: true},
		{name: "malformed media type", ct: "application/vnd.pingidentity.device.create+json; =x", body: `{}`, unsupp: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := actions.Decode(tc.ct, []byte(tc.body))
			switch {
			case tc.unsupp:
				if !errors.Is(err, actions.ErrUnsupportedType) {
					t.Fatalf("err = %v, want ErrUnsupportedType", err)
				}
				var de *actions.DecodeError
				if errors.As(err, &de) {
					t.Fatalf("unsupported type must not be a DecodeError: %v", err)
				}
			case tc.wantErr != nil:
				var de *actions.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("err = %#v (%v), want *DecodeError", err, err)
				}
				if de.Field != tc.wantErr.field {
					t.Errorf("Field = %q, want %q (%v)", de.Field, tc.wantErr.field, err)
				}
				if de.Syntax != tc.wantErr.syntax {
					t.Errorf("Syntax = %v, want %v (%v)", de.Syntax, tc.wantErr.syntax, err)
				}
				if !strings.Contains(err.Error(), tc.wantErr.substr) {
					t.Errorf("message %q does not contain %q", err.Error(), tc.wantErr.substr)
				}
				if tc.wantErr.field != "" && !strings.HasPrefix(err.Error(), tc.wantErr.field+": ") {
					t.Errorf("message %q does not start with the field", err.Error())
				}
				if got.Name != "" || got.Payload != nil {
					t.Errorf("action on error = %+v, want zero", got)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %#v\nwant %#v", got, tc.want)
				}
			}
		})
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	if got := (&actions.DecodeError{Problem: "bad"}).Error(); got != "bad" {
		t.Errorf("no field: %q", got)
	}
	if got := (&actions.DecodeError{Field: "a.b", Problem: "bad"}).Error(); got != "a.b: bad" {
		t.Errorf("with field: %q", got)
	}
}

func TestDecodeStrict(t *testing.T) {
	var v struct {
		A int `json:"a"`
	}
	if err := actions.DecodeStrict([]byte(" {\"a\":3} \n"), &v); err != nil || v.A != 3 {
		t.Fatalf("DecodeStrict = %v, %+v", err, v)
	}
	for _, body := range []string{``, `[]`, `{"a":1,"b":2}`, `{"a":"x"}`, `{"a":1} 2`} {
		if err := actions.DecodeStrict([]byte(body), &v); err == nil {
			t.Errorf("DecodeStrict(%q) accepted", body)
		} else if _, ok := err.(*actions.DecodeError); !ok {
			t.Errorf("DecodeStrict(%q) = %T, want *DecodeError", body, err)
		}
	}
}

// activateValue is an ActivateDevice with its raw attestation decoded, so
// that payloads compare by JSON value: re-encoding compacts raw JSON and
// escapes <, > and & inside its strings (found by FuzzDecode, see
// testdata/fuzz/FuzzDecode), which changes the bytes but not the value.
type activateValue struct {
	OTP, Origin string
	Attestation any
}

func normalizePayload(t *testing.T, p any) any {
	a, ok := p.(*actions.ActivateDevice)
	if !ok {
		return p
	}
	v := activateValue{OTP: a.OTP, Origin: a.Origin}
	if len(a.Attestation) > 0 {
		dec := json.NewDecoder(bytes.NewReader(a.Attestation))
		dec.UseNumber()
		if err := dec.Decode(&v.Attestation); err != nil {
			t.Fatalf("attestation is not valid JSON after a successful decode: %q: %v", a.Attestation, err)
		}
	}
	return v
}

func FuzzDecode(f *testing.F) {
	cts := append(actions.ContentTypes(),
		"application/vnd.pingidentity.device.create+json; charset=utf-8",
		"APPLICATION/VND.PINGIDENTITY.DEVICE.ACTIVATE+JSON",
		"application/json", "", "application/vnd.pingidentity.+json")
	bodies := []string{
		``, `{}`, ` { } `, `{"type":"EMAIL"}`, `{"type":"SMS","phone":"+12015554567","nickname":"n"}`,
		`{"type":"MOBILE","application":{"id":"a"},"rp":{"id":"x","name":"y"}}`,
		`{"otp":"123456"}`, `{"attestation":{"a":[1, 2 ,{"b":null}]},"origin":"o"}`, `{"attestation":null}`,
		`{"attestation":"\u00e9\ud800"}`, `{"attestation":["<&>"]}`, `{"TYPE":"EMAIL"}`, `{"type":"a","type":"b"}`,
		`{"x":1}`, `{"type":1}`, `{"application":{"id":1}}`, `{} {}`, `[]`, `null`, `"s"`, `{`, `{"type":"EMAIL"`,
		"{\"type\":\"\xff\"}", `{"nickname":"\u0000"}`,
	}
	for _, ct := range cts {
		for _, b := range bodies {
			f.Add(ct, []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		a, err := actions.Decode(ct, body)
		if err != nil {
			var de *actions.DecodeError
			if !errors.Is(err, actions.ErrUnsupportedType) && !errors.As(err, &de) {
				t.Fatalf("Decode(%q, %q): error %T %v is neither ErrUnsupportedType nor *DecodeError", ct, body, err, err)
			}
			if de != nil && de.Error() == "" {
				t.Fatalf("empty DecodeError message")
			}
			if a.Name != "" || a.Payload != nil {
				t.Fatalf("Decode returned both an action and an error: %+v %v", a, err)
			}
			return
		}
		if !contains(actions.Names(), a.Name) {
			t.Fatalf("decoded unknown action name %q", a.Name)
		}
		// Round trip: the re-encoded payload decodes again to the same value.
		var enc []byte
		if a.Payload != nil {
			if enc, err = json.Marshal(a.Payload); err != nil {
				t.Fatalf("re-encode %#v: %v", a.Payload, err)
			}
		}
		again, err := actions.Decode(actions.ContentType(a.Name), enc)
		if err != nil {
			t.Fatalf("re-decoding %q as %s: %v (original %q)", enc, a.Name, err, body)
		}
		if again.Name != a.Name {
			t.Fatalf("name %q became %q", a.Name, again.Name)
		}
		if want, got := normalizePayload(t, a.Payload), normalizePayload(t, again.Payload); !reflect.DeepEqual(want, got) {
			t.Fatalf("round trip changed the payload:\n first %#v\nsecond %#v\n(body %q, re-encoded %q)", want, got, body, enc)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

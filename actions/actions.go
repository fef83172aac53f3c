// Package actions is the catalog of flow actions: their names, vendor
// content types and payloads, and the strict decoding of a request body into
// one. It carries no business rules: whether an action is allowed now, and
// what it does, is the step's business.
package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"sort"
	"strings"
)

// Action names, as they appear in _links and in the content type.
const (
	DeviceCreate         = "device.create"
	DeviceActivate       = "device.activate"
	DeviceSkipEnrollment = "device.skipEnrollment"
	DeviceDelete         = "device.delete"
	OTPResend            = "otp.resend"
)

const contentTypePrefix, contentTypeSuffix = "application/vnd.pingidentity.", "+json"

// ContentType returns the vendor content type of an action.
func ContentType(name string) string { return contentTypePrefix + name + contentTypeSuffix }

// Action is one decoded request: its name and its payload (a pointer to one
// of the payload types below, or nil for actions without parameters).
type Action struct {
	Name    string
	Payload any
}

// CreateDevice is the payload of device.create.
type CreateDevice struct {
	Type        string `json:"type"`
	Nickname    string `json:"nickname,omitempty"`
	Email       string `json:"email,omitempty"`
	Phone       string `json:"phone,omitempty"`
	Application *struct {
		ID string `json:"id"`
	} `json:"application,omitempty"`
	RP *struct {
		ID   string `json:"id,omitempty"`
		Name string `json:"name,omitempty"`
	} `json:"rp,omitempty"`
}

// ActivateDevice is the payload of device.activate.
type ActivateDevice struct {
	OTP         string          `json:"otp,omitempty"`
	Attestation json.RawMessage `json:"attestation,omitempty"`
	Origin      string          `json:"origin,omitempty"`
}

// MobilePair is the action the mobile side's pairing becomes: it is not
// posted to an execution (no content type decodes to it) but made by the
// mobile API from the app's request, after the key was found.
const MobilePair = "mobile.pair"

// Pairing is the payload of mobile.pair, as the mobile API checked it.
type Pairing struct {
	KeyHash       string // the presented key's keyed hash
	ApplicationID string
	Device        PairingDevice
	PublicKey     json.RawMessage // a JWK, EC P-256, public only
	// Seed is the offline-passcode secret the mobile API made for the app,
	// which it answers only to the app; the factor seals it in the record.
	Seed string
	// DeviceID is set by the step to the id of the device it enrolled.
	DeviceID string
}

// PairingDevice is what the app says of the phone.
type PairingDevice struct {
	Name       string `json:"name,omitempty"`
	Model      string `json:"model,omitempty"`
	OS         string `json:"os,omitempty"`
	OSVersion  string `json:"osVersion,omitempty"`
	AppVersion string `json:"appVersion,omitempty"`
	PushToken  string `json:"pushToken,omitempty"`
}

// payloads maps each known action to a constructor of its payload; nil
// means the action takes no parameters (an empty body or {} is accepted).
var payloads = map[string]func() any{
	DeviceCreate:         func() any { return new(CreateDevice) },
	DeviceActivate:       func() any { return new(ActivateDevice) },
	DeviceSkipEnrollment: nil,
	DeviceDelete:         nil,
	OTPResend:            nil,
}

// Names lists every known action, sorted.
func Names() []string {
	out := make([]string, 0, len(payloads))
	for n := range payloads {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ContentTypes lists every accepted content type, sorted.
func ContentTypes() []string {
	out := make([]string, 0, len(payloads))
	for _, n := range Names() {
		out = append(out, ContentType(n))
	}
	return out
}

// ErrUnsupportedType: the content type names no known action.
var ErrUnsupportedType = errors.New("unsupported content type")

// DecodeError is a body that is not valid for its action. Field names the
// offending JSON path when one is known ("" for a syntax error).
type DecodeError struct {
	Field   string
	Problem string
	Syntax  bool // the body is not JSON at all
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// NameFromContentType extracts the action from a vendor content type,
// ignoring parameters such as charset.
func NameFromContentType(contentType string) (string, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", ErrUnsupportedType
	}
	if !strings.HasPrefix(mt, contentTypePrefix) || !strings.HasSuffix(mt, contentTypeSuffix) {
		return "", ErrUnsupportedType
	}
	name := mt[len(contentTypePrefix) : len(mt)-len(contentTypeSuffix)]
	for known := range payloads {
		// Media types are case-insensitive; action names are not, so map
		// back to the catalog's spelling.
		if strings.EqualFold(known, name) {
			return known, nil
		}
	}
	return "", ErrUnsupportedType
}

// Decode reads an action from its content type and body. Unknown fields,
// trailing data and wrong JSON types are errors naming the field.
func Decode(contentType string, body []byte) (Action, error) {
	name, err := NameFromContentType(contentType)
	if err != nil {
		return Action{}, err
	}
	newPayload := payloads[name]
	trimmed := bytes.TrimSpace(body)
	if newPayload == nil {
		if len(trimmed) == 0 {
			return Action{Name: name}, nil
		}
		var empty struct{}
		if err := decodeStrict(trimmed, &empty); err != nil {
			return Action{}, err
		}
		return Action{Name: name}, nil
	}
	if len(trimmed) == 0 {
		return Action{}, &DecodeError{Problem: "the request body is empty; this action needs a JSON object", Syntax: true}
	}
	payload := newPayload()
	if err := decodeStrict(trimmed, payload); err != nil {
		return Action{}, err
	}
	return Action{Name: name, Payload: payload}, nil
}

// DecodeStrict is the strict JSON decoding every API body goes through.
func DecodeStrict(body []byte, v any) error { return decodeStrict(bytes.TrimSpace(body), v) }

func decodeStrict(body []byte, v any) error {
	if len(body) == 0 || body[0] != '{' {
		return &DecodeError{Problem: "the request body must be a JSON object", Syntax: true}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return describe(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &DecodeError{Problem: "unexpected data after the JSON object", Syntax: true}
	}
	if err := checkKeys(tree, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return describe(err)
	}
	return nil
}

// checkKeys walks a decoded JSON tree beside the Go type it is meant for
// and refuses any object key that is not exactly a field's JSON name.
// encoding/json alone matches names case-insensitively and names only the
// last key of an unknown field; this names the whole path ("rp.icon").
func checkKeys(tree any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := tree.(map[string]any)
		if !ok {
			return nil // a type mismatch; json.Unmarshal names it
		}
		fields := jsonFields(t)
		for _, key := range sortedKeys(obj) {
			f, known := fields[key]
			if !known {
				return &DecodeError{Field: joinPath(path, key), Problem: "unknown field"}
			}
			if err := checkKeys(obj[key], f, joinPath(path, key)); err != nil {
				return err
			}
		}
	case reflect.Map:
		obj, ok := tree.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			return nil
		}
		for _, key := range sortedKeys(obj) {
			if err := checkKeys(obj[key], t.Elem(), joinPath(path, key)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		list, ok := tree.([]any)
		if !ok || t.Elem().Kind() == reflect.Uint8 { // []byte and json.RawMessage hold anything
			return nil
		}
		for i, x := range list {
			if err := checkKeys(x, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return checkOwnDecoding(tree, t, path)
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// checkOwnDecoding runs a type's own UnmarshalJSON (a duration such as
// "10s", a time) on its part of the tree, so that its error names the field:
// from json.Unmarshal it would come without a path.
func checkOwnDecoding(tree any, t reflect.Type, path string) error {
	if tree == nil || path == "" || !reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return nil
	}
	raw, err := json.Marshal(tree)
	if err != nil {
		return nil
	}
	if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
		return &DecodeError{Field: path, Problem: err.Error()}
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// describe turns encoding/json's errors into ones that name the field.
func describe(err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return &DecodeError{Problem: fmt.Sprintf("malformed JSON at offset %d: %v", syntax.Offset, syntax), Syntax: true}
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return &DecodeError{Field: field, Problem: fmt.Sprintf("must be of JSON type %s, not %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &DecodeError{Problem: "malformed JSON: unexpected end of input", Syntax: true}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return &DecodeError{Field: strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), Problem: "unknown field"}
	}
	return &DecodeError{Problem: "malformed JSON: " + err.Error(), Syntax: true}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

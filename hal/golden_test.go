package hal_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/delivery"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const goldenDir = "../testdata/golden"

// normalizer replaces the volatile values of a body with placeholders:
// known ids and secrets by name, timestamps by their offset from the
// test's clock start (so the golden still pins lifetimes and expiry), and
// any other hex id by <ID>.
type normalizer struct {
	t0      time.Time
	replace map[string]string // literal -> placeholder
}

func newNormalizer(t0 time.Time) *normalizer {
	return &normalizer{t0: t0, replace: map[string]string{}}
}

// name registers a volatile literal; empty values are ignored.
func (z *normalizer) name(literal, placeholder string) {
	if literal != "" {
		z.replace[literal] = placeholder
	}
}

var looseID = regexp.MustCompile(`\b[0-9a-f]{32}(?:[0-9a-f]{4})?\b`)

func (z *normalizer) value(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = z.value(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = z.value(x)
		}
		return out
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return "<T0+" + ts.Sub(z.t0).String() + ">"
		}
		// Longest first, so an id inside a longer literal is not cut.
		keys := make([]string, 0, len(z.replace))
		for k := range z.replace {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
		for _, k := range keys {
			v = strings.ReplaceAll(v, k, z.replace[k])
		}
		return looseID.ReplaceAllString(v, "<ID>")
	}
	return v
}

// golden compares r's body, normalized, with testdata/golden/<name>.json;
// with -update it rewrites the file instead. encoding/json writes map keys
// sorted, so the comparison is deterministic.
func golden(t *testing.T, z *normalizer, name string, r *resp) {
	t.Helper()
	if r.Body == nil {
		t.Fatalf("golden %s: response has no JSON body: %s", name, r)
	}
	got := canonical(t, z.value(r.Body), "  ")
	file := filepath.Join(goldenDir, name+".json")
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test ./hal -run TestGolden -update to create it)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("golden %s differs (run with -update to accept):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// TestGolden pins the whole HAL body of every state and of error bodies.
// Both stores must render the same bytes.
func TestGolden(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		clock := apptest.NewClock()
		n := newNode(t, b, apptest.Options{Clock: clock})
		z := newNormalizer(clock.Now())

		// DEVICE_ENROLLMENT_REQUIRED, as the 201 of the start.
		r := n.admin(http.MethodPost, execPath, startBody(demoFlow,
			map[string]any{"id": "jane", "email": "jane.doe@example.com", "mobilePhone": "+12015554567"}))
		mustStatus(t, r, http.StatusCreated)
		emailExec := str(r.Body, "id")
		z.name(emailExec, "<EXECUTION_ID>")
		golden(t, z, "device_enrollment_required", r)

		// ACTIVATION_REQUIRED for EMAIL, one minute later.
		clock.Advance(time.Minute)
		r = n.act(emailExec, ctCreate, `{"type":"EMAIL","nickname":"Work e-mail"}`)
		mustStatus(t, r, http.StatusOK)
		z.name(str(r.Body, "device", "id"), "<EMAIL_DEVICE_ID>")
		golden(t, z, "activation_required_email", r)

		// The error body of a wrong passcode.
		r = n.activate(emailExec, wrongCode(n.passcode("jane.doe@example.com")))
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_invalid_otp", r)

		// COMPLETED with ENROLLED.
		clock.Advance(time.Minute)
		r = n.activate(emailExec, n.passcode("jane.doe@example.com"))
		mustStatus(t, r, http.StatusOK)
		golden(t, z, "completed_enrolled", r)

		// The error body of an action on an ended execution.
		r = n.act(emailExec, ctSkip, "")
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_execution_ended", r)

		// ACTIVATION_REQUIRED for SMS (the masked phone).
		smsExec := n.startFlow(demoFlow, map[string]any{"id": "sam", "mobilePhone": "+12015554567"})
		z.name(smsExec, "<SMS_EXECUTION_ID>")
		r = n.create(smsExec, "SMS")
		mustStatus(t, r, http.StatusOK)
		z.name(str(r.Body, "device", "id"), "<SMS_DEVICE_ID>")
		golden(t, z, "activation_required_sms", r)

		// The 429 of a resend within the cool-down, then the resend itself.
		r = n.act(smsExec, ctResend, "")
		mustStatus(t, r, http.StatusTooManyRequests)
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_too_soon", r)
		clock.Advance(30 * time.Second)
		r = n.act(smsExec, ctResend, "")
		mustStatus(t, r, http.StatusOK)
		golden(t, z, "otp_resent_sms", r)

		// device.delete: back to DEVICE_ENROLLMENT_REQUIRED.
		r = n.act(smsExec, ctDelete, "")
		mustStatus(t, r, http.StatusOK)
		golden(t, z, "device_deleted", r)

		// ACTIVATION_REQUIRED for VOICE.
		voiceExec := n.startFlow(demoFlow, map[string]any{"id": "val", "mobilePhone": "+12015554321"})
		z.name(voiceExec, "<VOICE_EXECUTION_ID>")
		r = n.create(voiceExec, "VOICE")
		mustStatus(t, r, http.StatusOK)
		z.name(str(r.Body, "device", "id"), "<VOICE_DEVICE_ID>")
		golden(t, z, "activation_required_voice", r)

		// ACTIVATION_REQUIRED after the provider refused the passcode.
		n.Outbox.Fail = delivery.Permanent("http 400", nil)
		failedExec := n.startFlow(demoFlow, map[string]any{"id": "fay", "mobilePhone": "+12015554321"})
		z.name(failedExec, "<FAILED_EXECUTION_ID>")
		r = n.create(failedExec, "SMS")
		mustStatus(t, r, http.StatusOK)
		z.name(str(r.Body, "device", "id"), "<FAILED_DEVICE_ID>")
		golden(t, z, "activation_required_delivery_failed", r)
		n.Outbox.Fail = nil

		// The error bodies of a missing API key, an unknown execution and an
		// unknown content type.
		r = n.do(http.MethodPost, execPath, "application/json", startBody(demoFlow, map[string]any{"id": "x"}))
		mustStatus(t, r, http.StatusUnauthorized)
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_unauthorized", r)
		r = n.get("0123456789abcdef0123456789abcdef0a1b")
		mustStatus(t, r, http.StatusNotFound)
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_not_found", r)
		r = n.act(voiceExec, "application/json", `{"type":"EMAIL"}`)
		mustStatus(t, r, http.StatusUnsupportedMediaType)
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_unsupported_media_type", r)

		// ACTIVATION_REQUIRED for TOTP.
		totpExec := n.startFlow(demoFlow, map[string]any{"id": "tom", "email": "tom@example.com"})
		z.name(totpExec, "<TOTP_EXECUTION_ID>")
		r = n.create(totpExec, "TOTP")
		mustStatus(t, r, http.StatusOK)
		z.name(str(r.Body, "device", "id"), "<TOTP_DEVICE_ID>")
		z.name(str(r.Body, "device", "secret"), "<TOTP_SECRET>")
		golden(t, z, "activation_required_totp", r)

		// The error body of an action the state does not allow.
		r = n.create(totpExec, "EMAIL")
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_action_not_allowed", r)

		// COMPLETED with SKIPPED.
		skipExec := n.startFlow(demoFlow, map[string]any{"id": "sue"})
		z.name(skipExec, "<SKIP_EXECUTION_ID>")
		r = n.act(skipExec, ctSkip, "")
		mustStatus(t, r, http.StatusOK)
		golden(t, z, "completed_skipped", r)

		// The error body of a bad field, with its target.
		r = n.act(totpExec, ctActivate, `{"otp":"12ab56"}`)
		z.name(str(r.Body, "id"), "<ERROR_ID>")
		golden(t, z, "error_invalid_data", r)
	})
}

// TestGoldenNormalizerIsDeterministic: the same body normalizes to the same
// bytes however its maps were built, and volatile values do not leak.
func TestGoldenNormalizerIsDeterministic(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	z := newNormalizer(t0)
	z.name("0123456789abcdef0123456789abcdef0a1b", "<EXECUTION_ID>")
	z.name("SECRETSECRET", "<TOTP_SECRET>")
	var a, b map[string]any
	must(t, json.Unmarshal([]byte(`{"z":1,"a":{"y":"http://x/0123456789abcdef0123456789abcdef0a1b","b":"2030-01-02T03:19:05Z"},"k":"otpauth://t?secret=SECRETSECRET","e":"ffffffffffffffffffffffffffffffff"}`), &a))
	must(t, json.Unmarshal([]byte(`{"k":"otpauth://t?secret=SECRETSECRET","e":"ffffffffffffffffffffffffffffffff","a":{"b":"2030-01-02T03:19:05Z","y":"http://x/0123456789abcdef0123456789abcdef0a1b"},"z":1}`), &b))
	ja := canonical(t, z.value(a), "")
	jb := canonical(t, z.value(b), "")
	const want = `{"a":{"b":"<T0+15m0s>","y":"http://x/<EXECUTION_ID>"},"e":"<ID>","k":"otpauth://t?secret=<TOTP_SECRET>","z":1}` + "\n"
	if string(ja) != want || string(jb) != want {
		t.Errorf("normalized:\n%s\n%s\nwant\n%s", ja, jb, want)
	}
}

// canonical re-marshals v: map keys sorted (encoding/json sorts them), no
// HTML escaping, one trailing newline.
func canonical(t *testing.T, v any, indent string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wrongCode returns a six-digit code that is not code.
func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

package openapitest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/hal/openapitest"
)

const (
	execURL  = "http://enrollflow.test/demo/flowExecutions/0123456789abcdef"
	errorID  = `"id":"0123456789abcdef0123456789abcdef"`
	halJSON  = "application/hal+json"
	jsonType = "application/json"
)

// execution is a valid DEVICE_ENROLLMENT_REQUIRED body with fields
// replaced or added by extra (raw JSON members, appended last).
func execution(extra string) string {
	body := `{"id":"0123456789abcdef","environment":{"id":"demo"},"flow":{"id":"mfa-enrollment"},` +
		`"step":{"id":"enroll","type":"MFA_DEVICE_ENROLLMENT"},"status":"DEVICE_ENROLLMENT_REQUIRED",` +
		`"createdAt":"2026-12-01T10:00:00Z","expiresAt":"2026-12-01T10:15:00Z",` +
		`"allowedtypes":["EMAIL","TOTP"],"applications":[],` +
		`"mfaSettings":{"pairing":{"maxAllowedDevices":5,"pairingKeyFormat":"NUMERIC"},"lockout":{"failureCount":5,"durationSeconds":600}},` +
		`"_links":{"self":{"href":"` + execURL + `"},"device.create":{"href":"` + execURL + `"}}`
	if extra != "" {
		body += "," + extra
	}
	return body + "}"
}

// exchange builds one exchange; reqHeader is name, value pairs of the
// request.
func exchange(method, path, contentType, reqBody string, status int, respType, respBody string, reqHeader ...string) openapitest.Exchange {
	req := httptest.NewRequest(method, path, strings.NewReader(reqBody))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(reqHeader); i += 2 {
		req.Header.Set(reqHeader[i], reqHeader[i+1])
	}
	h := http.Header{}
	if respType != "" {
		h.Set("Content-Type", respType)
	}
	h.Set("Cache-Control", "no-store")
	if respType == halJSON {
		h.Set("ETag", `"1-0123456789abcdef"`)
	}
	return openapitest.Exchange{Request: req, RequestBody: []byte(reqBody), Status: status, Header: h, Body: []byte(respBody)}
}

// TestCheck: the validator passes what the document describes and fails,
// saying why, every deliberately wrong exchange.
func TestCheck(t *testing.T) {
	v, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	poll := "/demo/flowExecutions/0123456789abcdef"
	create := "application/vnd.pingidentity.device.create+json"
	cases := []struct {
		name    string
		x       openapitest.Exchange
		wantErr string // "" for a valid exchange
	}{
		{"a poll as documented", exchange(http.MethodGet, poll, "", "", 200, halJSON, execution("")), ""},
		{"an action as documented", exchange(http.MethodPost, poll, create, `{"type":"EMAIL"}`, 200, halJSON, execution("")), ""},
		{"an error as documented", exchange(http.MethodGet, poll, "", "", 404, jsonType,
			`{`+errorID+`,"code":"NOT_FOUND","message":"flow execution not found (or expired).","details":[]}`), ""},

		{"an execution without _links", exchange(http.MethodGet, poll, "", "", 200, halJSON,
			strings.Replace(execution(""), `"_links"`, `"links"`, 1)), "does not match"},
		{"an execution with a property its state does not have", exchange(http.MethodGet, poll, "", "", 200, halJSON,
			execution(`"device":{"id":"d","type":"EMAIL","createdAt":"2026-12-01T10:00:00Z"}`)), "does not match"},
		{"a link to an action that does not exist", exchange(http.MethodGet, poll, "", "", 200, halJSON,
			execution(`"_links":{"self":{"href":"`+execURL+`"},"device.explode":{"href":"`+execURL+`"}}`)), "does not match"},
		{"an unknown status", exchange(http.MethodGet, poll, "", "", 200, halJSON,
			strings.Replace(execution(""), "DEVICE_ENROLLMENT_REQUIRED", "SOMEWHERE_ELSE", 1)), "does not match"},
		{"the wrong content type", exchange(http.MethodGet, poll, "", "", 200, jsonType, execution("")), "does not match"},
		{"an undocumented status", exchange(http.MethodGet, poll, "", "", http.StatusTeapot, jsonType,
			`{`+errorID+`,"code":"NOT_FOUND","message":"m","details":[]}`), "not documented"},
		{"an error without details", exchange(http.MethodGet, poll, "", "", 404, jsonType,
			`{`+errorID+`,"code":"NOT_FOUND","message":"m"}`), "details"},
		{"an error code the document does not list", exchange(http.MethodGet, poll, "", "", 404, jsonType,
			`{`+errorID+`,"code":"GONE_FISHING","message":"m","details":[]}`), "does not match"},
		{"a 503 without Retry-After", exchange(http.MethodGet, poll, "", "", 503, jsonType,
			`{`+errorID+`,"code":"SERVICE_UNAVAILABLE","message":"m","details":[]}`), "Retry-After"},
		{"a 204 with a body", exchange(http.MethodDelete, "/environments/demo/flows/f", "", "", 204, jsonType, `{"deleted":true}`,
			"Authorization", "Bearer k"), "documented without a body"},
		{"an accepted request the document refuses", exchange(http.MethodPost, poll, create, `{"type":"EMAIL","colour":"red"}`,
			200, halJSON, execution("")), "the document refuses this request"},
		{"an unauthenticated management request answered 200", exchange(http.MethodGet, "/environments/demo/flows", "", "",
			200, halJSON, `{"_links":{"self":{"href":"http://x/environments/demo/flows"}},"_embedded":{"flows":[]},"count":0,"size":0}`),
			"the document refuses this request"},
		{"a path the document does not list, answered 200", exchange(http.MethodGet, "/nowhere", "", "", 200, jsonType, `{}`),
			"not in the document"},
		{"a HEAD answered with an undocumented status", exchange(http.MethodHead, "/readyz", "", "", http.StatusTeapot, "", ""),
			"not documented"},
		{"a redirect the document does not list", exchange(http.MethodGet, poll, "", "", http.StatusMovedPermanently, "", ""),
			"not documented"},
		{"a preflight answered 204 without allowing the origin", exchange(http.MethodOptions, poll, "", "", http.StatusNoContent, "", "",
			"Origin", "https://app.example.com", "Access-Control-Request-Method", "POST"), "preflight"},
		{"a method the document does not list, without Allow", exchange(http.MethodPut, poll, jsonType, `{}`, 405, jsonType,
			`{`+errorID+`,"code":"METHOD_NOT_ALLOWED","message":"m","details":[]}`), "without an Allow header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := v.Check(c.x)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("valid exchange refused: %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("wrong exchange accepted")
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("error %q does not say %q", err, c.wantErr)
			}
		})
	}
}

// TestHandlerFailsTheTest: through Handler, an undocumented response fails
// the test that produced it.
func TestHandlerFailsTheTest(t *testing.T) {
	v, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	wrong := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonType)
		_, _ = w.Write([]byte(`{"status":"MAYBE"}`))
	})
	inner := &recordingTB{TB: t}
	rec := httptest.NewRecorder()
	v.Handler(inner, wrong).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if !inner.failed {
		t.Fatal("an undocumented /healthz body did not fail the test")
	}
	if rec.Body.String() != `{"status":"MAYBE"}` {
		t.Errorf("the response was not passed through: %q", rec.Body)
	}
}

// recordingTB records Errorf instead of failing the real test.
type recordingTB struct {
	testing.TB
	failed bool
}

func (r *recordingTB) Errorf(string, ...any) { r.failed = true }

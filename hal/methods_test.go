package hal_test

import (
	"net/http"
	"testing"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/store/memory"
)

// TestMethodNotAllowed: every route answers a method it does not serve
// with 405, the error body and an Allow header, never a 404.
func TestMethodNotAllowed(t *testing.T) {
	n := newNode(t, nil, apptest.Options{Store: memory.New(nil)})
	id := n.start("method-user")
	cases := []struct{ method, path, allow string }{
		{http.MethodDelete, "/demo/flowExecutions/" + id, "GET, POST"},
		{http.MethodPut, "/demo/flowExecutions/" + id, "GET, POST"},
		{http.MethodGet, "/demo/flowExecutions", "POST"},
		{http.MethodPost, "/demo/flowExecutions/" + id + "/qrcode.png", "GET"},
		{http.MethodPatch, "/environments/demo/flows/mfa-enrollment", "DELETE, GET, PUT"},
		{http.MethodPost, "/environments/demo/users/u/devices", "GET"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodDelete, "/readyz", "GET, HEAD"},
		{http.MethodPost, "/openapi.json", "GET"},
	}
	for _, c := range cases {
		r := n.do(c.method, c.path, "application/json", "{}", "Authorization", "Bearer "+apptest.APIKey)
		mustError(t, r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
		if got := r.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

// TestJSONBodiesNeedJSONContentType: start and management bodies are
// JSON and must say so.
func TestJSONBodiesNeedJSONContentType(t *testing.T) {
	n := newNode(t, nil, apptest.Options{Store: memory.New(nil)})
	body := startBody(demoFlow, map[string]any{"id": "ct-user"})
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		r := n.do(http.MethodPost, "/demo/flowExecutions", ct, body, "Authorization", "Bearer "+apptest.APIKey)
		mustError(t, r, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", detail{"Content-Type", "INVALID_VALUE"})
	}
	r := n.do(http.MethodPost, "/demo/flowExecutions", "application/json; charset=utf-8", body, "Authorization", "Bearer "+apptest.APIKey)
	mustStatus(t, r, http.StatusCreated)
}

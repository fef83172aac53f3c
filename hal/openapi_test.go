package hal_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/hal/openapitest"
	"github.com/enrollflow/enrollflow/store/memory"
)

// TestOpenAPIDocumentIsValid: the served document loads and validates.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	if _, err := openapitest.Load(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenAPIServed: GET /openapi.json without credentials is the document.
func TestOpenAPIServed(t *testing.T) {
	n := newNode(t, &backend{t: t, name: "memory"}, apptest.Options{})
	r := n.do(http.MethodGet, "/openapi.json", "", "")
	mustStatus(t, r, http.StatusOK)
	if got := str(r.Body, "openapi"); got != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", got)
	}
	if _, ok := at(r.Body, "paths", "/{envID}/flowExecutions").(map[string]any); !ok {
		t.Errorf("the served document has no /{envID}/flowExecutions: %.200s", r.Raw)
	}
}

// TestEveryRouteIsDocumented: the router and the document list the same
// paths with the same methods.
func TestEveryRouteIsDocumented(t *testing.T) {
	v, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	api := apptest.New(t, apptest.Options{Store: memory.New(nil)})
	routed := map[string][]string{}
	for _, r := range api.Server.Routes() {
		routed[r.Path] = r.Methods
	}
	documented := map[string][]string{}
	for path, item := range v.Document().Paths.Map() {
		var ms []string
		for m := range item.Operations() {
			ms = append(ms, strings.ToUpper(m))
		}
		slices.Sort(ms)
		documented[path] = ms
	}
	for path, ms := range routed {
		if d, ok := documented[path]; !ok {
			t.Errorf("route %s %v is not in the OpenAPI document", path, ms)
		} else if !slices.Equal(d, ms) {
			t.Errorf("%s: the router serves %v, the document lists %v", path, ms, d)
		}
	}
	for path, ms := range documented {
		if _, ok := routed[path]; !ok {
			t.Errorf("the document lists %s %v, which no route serves", path, ms)
		}
	}
}

// TestHeadOnHealth: HEAD answers like GET without a body, and the document
// says so.
func TestHeadOnHealth(t *testing.T) {
	n := newNode(t, &backend{t: t, name: "memory"}, apptest.Options{})
	for _, path := range []string{"/healthz", "/readyz"} {
		r := n.do(http.MethodHead, path, "", "")
		mustStatus(t, r, http.StatusOK)
	}
	mustError(t, n.do(http.MethodGet, "//healthz", "", ""), http.StatusNotFound, "NOT_FOUND")
}

package hal

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"gopkg.in/yaml.v3"
)

// openAPIYAML is the API's OpenAPI 3.1 document, written by hand: it is the
// contract an integrator reads, so it is kept readable and reviewed like
// code, and the test harness proves it true by validating every request and
// response of the HTTP tests against it (hal/openapitest).
//
//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPIDocument returns the document as JSON, as GET /openapi.json
// serves it.
var OpenAPIDocument = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml as JSON: %w", err)
	}
	return out, nil
})

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := OpenAPIDocument()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", plainJSON)
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(doc)
}

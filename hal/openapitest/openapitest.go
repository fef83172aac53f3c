// Package openapitest holds the API to its OpenAPI document: it validates a
// request and the response it got against hal's document with kin-openapi,
// so that a test harness can fail every test whose traffic the document
// does not describe. It wraps an http.Handler (in-process tests) or an
// http.RoundTripper (tests of a real listener).
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/enrollflow/enrollflow/hal"
)

// Validator checks exchanges against one document. Safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	// mu serializes validations: kin-openapi compiles JSON Schema 2020-12
	// validators lazily, and the harness calls Check from many goroutines.
	mu sync.Mutex
}

// Load reads and validates hal's served document.
var Load = sync.OnceValues(func() (*Validator, error) {
	data, err := hal.OpenAPIDocument()
	if err != nil {
		return nil, err
	}
	return New(data)
})

// New loads a document (JSON or YAML) and validates it.
func New(data []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	return &Validator{doc: doc, router: router}, nil
}

// Document is the loaded document.
func (v *Validator) Document() *openapi3.T { return v.doc }

func init() {
	// The QR code: a binary body checked by content type only.
	openapi3filter.RegisterBodyDecoder("image/png", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		data, err := io.ReadAll(body)
		return string(data), err
	})
	// A device's signed request: a compact JWS, checked as a string
	// against the document's pattern.
	openapi3filter.RegisterBodyDecoder("application/jose", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		data, err := io.ReadAll(body)
		return string(data), err
	})
}

// Exchange is one request with the body it carried and the response it got.
type Exchange struct {
	Request     *http.Request
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Check validates one exchange. The request must be one the document
// describes, unless the service refused it (4xx): tests send bad requests
// on purpose, and the document must not accept what the service refuses
// nor describe as invalid what the service accepts. The response must have
// a documented status, headers, content type and body.
func (v *Validator) Check(x Exchange) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	req := x.Request.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	where := x.Request.Method + " " + x.Request.URL.Path

	if isPreflight(req) && x.Status == http.StatusNoContent {
		// A CORS preflight from a configured origin is answered before
		// routing (see the document's description).
		if origin := req.Header.Get("Origin"); origin == "" || x.Header.Get("Access-Control-Allow-Origin") != origin ||
			x.Header.Get("Access-Control-Allow-Methods") == "" {
			return fmt.Errorf("%s: a 204 to a preflight must allow its Origin and name the methods (headers %v)", where, x.Header)
		}
		return noBody(where, x)
	}
	route, params, err := v.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return v.checkUnrouted(where, x, http.StatusNotFound)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if x.Header.Get("Allow") == "" {
			return fmt.Errorf("%s: 405 without an Allow header", where)
		}
		return v.checkUnrouted(where, x, http.StatusMethodNotAllowed)
	case err != nil:
		return fmt.Errorf("%s: %w", where, err)
	}

	// kin-openapi passes some answers unchecked (HEAD, redirects, 304):
	// every status must be one the operation documents.
	documented := route.Operation.Responses.Status(x.Status)
	if documented == nil {
		return fmt.Errorf("%s: status %d is not documented for this operation: %s", where, x.Status, clip(x.Body))
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true},
	}
	if reqErr := openapi3filter.ValidateRequest(context.Background(), in); reqErr != nil && x.Status < 400 {
		return fmt.Errorf("%s: the document refuses this request, yet the service answered %d:\n%v", where, x.Status, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: x.Status, Header: x.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(x.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("%s: the response %d does not match the document:\n%v\nbody: %s", where, x.Status, err, clip(x.Body))
	}
	if len(documented.Value.Content) == 0 || req.Method == http.MethodHead {
		return noBody(where, x)
	}
	return nil
}

// checkUnrouted validates the answer to a request the document has no
// operation for: it must be the given status with an Error body.
func (v *Validator) checkUnrouted(where string, x Exchange, want int) error {
	if x.Status != want {
		return fmt.Errorf("%s: not in the document, yet answered %d (want %d): %s", where, x.Status, want, clip(x.Body))
	}
	if x.Request.Method == http.MethodHead {
		return nil
	}
	return v.CheckSchema("Error", x.Header, x.Body)
}

// CheckSchema validates a JSON body against one of the document's
// component schemas.
func (v *Validator) CheckSchema(name string, header http.Header, body []byte) error {
	ref := v.doc.Components.Schemas[name]
	if ref == nil {
		return fmt.Errorf("the document has no schema %q", name)
	}
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("an error body must be application/json, not %q", header.Get("Content-Type"))
	}
	value, err := decodeJSON(body)
	if err != nil {
		return err
	}
	if err := ref.Value.VisitJSON(value, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("body does not match %s: %v\nbody: %s", name, err, clip(body))
	}
	return nil
}

func decodeJSON(body []byte) (any, error) {
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return nil, fmt.Errorf("body is not JSON: %v: %s", err, clip(body))
	}
	return value, nil
}

func noBody(where string, x Exchange) error {
	if len(bytes.TrimSpace(x.Body)) > 0 {
		return fmt.Errorf("%s: %d is documented without a body, yet has one: %s", where, x.Status, clip(x.Body))
	}
	return nil
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// bearerPresent is the document's one security scheme as a request
// validator sees it: a Bearer credential is sent. Whether it is the right
// key is the service's business (a wrong one is a documented 401).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type == "http" && in.SecurityScheme.Scheme == "bearer" {
		if strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
			return nil
		}
		return errors.New("no Authorization: Bearer header")
	}
	return fmt.Errorf("unknown security scheme %s", in.SecuritySchemeName)
}

func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// Handler serves h, failing tb for every exchange the document does not
// describe. Errors are reported with tb.Errorf, so it may serve from any
// goroutine.
func (v *Validator) Handler(tb testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			tb.Errorf("openapitest: read the request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		// Result has the headers as they were at WriteHeader, as a real
		// server sends them; one set later would be lost on the wire.
		res := rec.Result()
		respBody := rec.Body.Bytes()
		if r.Method == http.MethodHead {
			respBody = nil // a real server sends none
		}
		if err := v.Check(Exchange{Request: r, RequestBody: body, Status: res.StatusCode, Header: res.Header, Body: respBody}); err != nil {
			tb.Errorf("openapitest: %v", err)
		}
		for k, vs := range res.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(respBody)
	})
}

// Transport sends requests through base (nil: http.DefaultTransport) and
// fails tb for every exchange the document does not describe.
func (v *Validator) Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			var err error
			if body, err = io.ReadAll(r.Body); err != nil {
				return nil, err
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		respBody, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		if err := v.Check(Exchange{Request: r, RequestBody: body, Status: resp.StatusCode, Header: resp.Header, Body: respBody}); err != nil {
			tb.Errorf("openapitest: %v", err)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

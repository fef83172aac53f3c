package hal

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/enrollflow/enrollflow/actions"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/store"
)

const (
	halJSON   = "application/hal+json"
	plainJSON = "application/json"
)

// writeJSON writes a body that must never be cached: executions carry
// secrets (a TOTP seed) and change with every action.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeRaw writes an encoded JSON body with writeJSON's headers.
func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorBody is the error body every failure gets.
type errorBody struct {
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details is never null: clients may rely on the array.
	Details []engine.ErrorDetail `json:"details"`
}

// writeError renders an error; the cause goes to the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := engine.AsError(err)
	id := store.NewID()
	ev := s.cfg.Log.Debug()
	if e.Status >= 500 {
		ev = s.cfg.Log.Error()
	}
	if e.Status >= 500 || e.Cause != nil {
		ev.Str("error_id", id).Str("code", e.Code).Err(e.Cause).Msg(e.Message)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds())))
	}
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	details := e.Details
	if details == nil {
		details = []engine.ErrorDetail{}
	}
	writeJSON(w, e.Status, plainJSON, errorBody{ID: id, Code: e.Code, Message: e.Message, Details: details})
}

// link is one HAL link.
type link struct {
	Href string `json:"href"`
}

// executionURL is the self link of an execution.
func (s *Server) executionURL(r *http.Request, env *engine.Environment, id string) string {
	return s.baseURL(r) + "/" + env.ID + "/flowExecutions/" + id
}

// renderExecution is the HAL body of an execution: its identity, the
// view's status and properties, and _links = self plus one link per action
// the step's state machine allows now.
func (s *Server) renderExecution(r *http.Request, env *engine.Environment, x *engine.Execution) (map[string]any, engine.View, error) {
	self := s.executionURL(r, env, x.ID)
	view, err := s.cfg.Runner.View(r.Context(), env, x, self)
	if err != nil {
		return nil, view, err
	}
	body := make(map[string]any, len(view.Properties)+10)
	for k, v := range view.Properties {
		body[k] = v
	}
	body["id"] = x.ID
	body["environment"] = map[string]string{"id": env.ID}
	body["flow"] = map[string]string{"id": x.FlowID}
	if !x.Ended() {
		body["step"] = map[string]string{"id": x.StepID, "type": x.StepType}
	}
	body["status"] = view.Status
	body["createdAt"] = x.CreatedAt.UTC()
	body["expiresAt"] = x.ExpiresAt.UTC()
	links := make(map[string]link, len(view.Actions)+1)
	links["self"] = link{Href: self}
	for _, a := range view.Actions {
		links[a] = link{Href: self}
	}
	body["_links"] = links
	return body, view, nil
}

// decodeBody reads a JSON body strictly into v, mapping failures to 400s
// (or 413 for an over-long body).
func decodeBody(r *http.Request, v any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != plainJSON {
		return &engine.Error{Status: http.StatusUnsupportedMediaType, Code: engine.CodeUnsupportedMediaType,
			Message: "The request body must be sent as Content-Type: application/json.",
			Details: []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "Content-Type", Message: "must be application/json"}}}
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return requestError(actions.DecodeStrict(body, v))
}

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &engine.Error{Status: http.StatusRequestEntityTooLarge, Code: engine.CodeInvalidRequest,
			Message: "The request body is larger than " + strconv.FormatInt(tooBig.Limit, 10) + " bytes."}
	case err != nil:
		return nil, &engine.Error{Status: http.StatusBadRequest, Code: engine.CodeInvalidRequest,
			Message: "The request body could not be read.", Cause: err}
	}
	return body, nil
}

// requestError maps decoding failures onto API errors.
func requestError(err error) error {
	var de *actions.DecodeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, actions.ErrUnsupportedType):
		return &engine.Error{Status: http.StatusUnsupportedMediaType, Code: engine.CodeUnsupportedMediaType,
			Message: "The Content-Type names no action. Accepted: " + strings.Join(actions.ContentTypes(), ", ") + ".",
			Details: []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "Content-Type",
				Message:    "must be one of the accepted action content types",
				InnerError: map[string]any{"accepted": actions.ContentTypes()}}}}
	case errors.As(err, &de) && de.Syntax:
		return &engine.Error{Status: http.StatusBadRequest, Code: engine.CodeInvalidRequest, Message: "The request body is not valid JSON: " + de.Problem + "."}
	case errors.As(err, &de):
		code := engine.DetailInvalidValue
		if de.Problem == "unknown field" {
			code = engine.DetailUnknownField
		}
		return engine.InvalidField(de.Field, code, de.Problem)
	}
	return err
}

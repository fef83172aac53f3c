package hal

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
)

// startRequest is the body of POST /{envID}/flowExecutions.
type startRequest struct {
	Flow *struct {
		ID string `json:"id"`
	} `json:"flow"`
	Inputs map[string]any `json:"inputs"`
}

// startExecution: POST /{envID}/flowExecutions (API key required; its
// inputs, such as user.id, are trusted).
func (s *Server) startExecution(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	var req startRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Flow == nil || req.Flow.ID == "" {
		s.writeError(w, r, engine.InvalidField("flow.id", engine.DetailRequired, "is required"))
		return
	}
	x, err := s.cfg.Runner.Start(r.Context(), env, req.Flow.ID, req.Inputs)
	s.cfg.Observer.Started(Outcome(err))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	annotate(r, func(a *accessInfo) { a.execution = engine.LogID(x.ID) })
	w.Header().Set("Location", s.executionURL(r, env, x.ID))
	s.writeExecution(w, r, env, x, http.StatusCreated)
}

// actOnExecution: POST /{envID}/flowExecutions/{id} with an action's
// vendor content type.
func (s *Server) actOnExecution(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	id := s.executionID(r)
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	action, err := actions.Decode(r.Header.Get("Content-Type"), body)
	if err != nil {
		err = requestError(err)
		name, known := actions.NameFromContentType(r.Header.Get("Content-Type"))
		if known != nil {
			name = "unknown"
		}
		s.cfg.Observer.Acted(name, Outcome(err))
		s.writeError(w, r, err)
		return
	}
	annotate(r, func(a *accessInfo) { a.action = action.Name })
	x, err := s.cfg.Runner.Act(engine.WithBaseURL(r.Context(), s.baseURL(r)), env, id, action)
	s.cfg.Observer.Acted(action.Name, Outcome(err))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeExecution(w, r, env, x, http.StatusOK)
}

// getResource serves GET /{envID}/flowExecutions/{id}/<name>, a read-only
// resource of the running step (the TOTP QR code). Each name the step types
// serve is a route of its own, so that the router and the OpenAPI document
// list the same paths.
func (s *Server) getResource(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.serveResource(w, r, name) }
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, name string) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	contentType, body, err := s.cfg.Runner.Resource(r.Context(), env, s.executionID(r), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

// executionID reads {executionID}; only a prefix goes to the access log,
// since the full id is what lets a client drive the execution.
func (s *Server) executionID(r *http.Request) string {
	id := mux.Vars(r)["executionID"]
	annotate(r, func(a *accessInfo) { a.execution = engine.LogID(id) })
	return id
}

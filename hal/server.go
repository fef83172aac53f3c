// Package hal is enrollflow's HTTP API: HAL+JSON flow executions driven by
// vendor content-type actions, the management API, health checks, and the
// middleware around them (request ids, access log, body caps, rate limits,
// error bodies). It decodes and renders; the engine decides.
package hal

import (
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/store"
)

// MaxBodyBytes caps every request body.
const MaxBodyBytes = 64 << 10

// Config wires the API.
type Config struct {
	Runner  *engine.Runner
	Store   store.Store // for the registry endpoints and readiness
	Log     zerolog.Logger
	BaseURL string // public base URL for links; "" derives it from each request
	// RateLimit is the requests per second one client address may make to
	// the flow execution endpoints (burst: twice that); 0 disables it.
	RateLimit float64
	// CORSOrigins are the browser origins allowed to call the API
	// (scheme://host[:port]); none by default.
	CORSOrigins []string
}

// Server is the API's http.Handler.
type Server struct {
	cfg     Config
	router  *mux.Router
	handler http.Handler // the router inside its middleware
	limiter *limiter
}

// New builds the router.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, router: mux.NewRouter()}
	if cfg.RateLimit > 0 {
		s.limiter = newLimiter(cfg.RateLimit, int(2*cfg.RateLimit+1), 10*time.Minute)
	}
	r := s.router
	r.Use(recordRoute)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)

	m := r.PathPrefix("/environments/{envID}").Subrouter()
	m.Use(s.requireAPIKey)
	m.HandleFunc("/flows", s.listFlows).Methods(http.MethodGet)
	m.HandleFunc("/flows", s.createFlow).Methods(http.MethodPost)
	m.HandleFunc("/flows/{flowID}", s.getFlow).Methods(http.MethodGet)
	m.HandleFunc("/flows/{flowID}", s.replaceFlow).Methods(http.MethodPut)
	m.HandleFunc("/flows/{flowID}", s.deleteFlow).Methods(http.MethodDelete)
	m.HandleFunc("/deviceAuthenticationPolicies", s.listPolicies).Methods(http.MethodGet)
	m.HandleFunc("/deviceAuthenticationPolicies/{policyID}", s.getPolicy).Methods(http.MethodGet)
	m.HandleFunc("/users/{userID}/devices", s.listDevices).Methods(http.MethodGet)
	m.HandleFunc("/users/{userID}/devices/{deviceID}", s.getDevice).Methods(http.MethodGet)
	m.HandleFunc("/users/{userID}/devices/{deviceID}", s.deleteDevice).Methods(http.MethodDelete)

	x := r.PathPrefix("/{envID}/flowExecutions").Subrouter()
	x.Use(s.rateLimit)
	x.Handle("", s.requireAPIKey(http.HandlerFunc(s.startExecution))).Methods(http.MethodPost)
	x.HandleFunc("/{executionID}", s.getExecution).Methods(http.MethodGet)
	x.HandleFunc("/{executionID}", s.actOnExecution).Methods(http.MethodPost)
	x.HandleFunc("/{executionID}/{resource}", s.getResource).Methods(http.MethodGet)

	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, &engine.Error{Status: http.StatusNotFound, Code: engine.CodeNotFound,
			Message: "No such resource: " + req.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, &engine.Error{Status: http.StatusMethodNotAllowed, Code: engine.CodeMethodNotAllowed,
			Message: "Method " + req.Method + " is not allowed on " + req.URL.Path})
	})
	s.handler = s.observe(s.cors(s.limitBody(s.router)))
	return s
}

// ServeHTTP runs the middleware chain around the router.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// environment resolves {envID}, writing a 404 when unknown.
func (s *Server) environment(w http.ResponseWriter, r *http.Request) (*engine.Environment, bool) {
	env, ok := s.cfg.Runner.Environment(mux.Vars(r)["envID"])
	if !ok {
		s.writeError(w, r, engine.NotFound("environment"))
		return nil, false
	}
	annotate(r, func(a *accessInfo) { a.env = env.ID })
	return env, true
}

// baseURL is the public base for links.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return strings.TrimRight(s.cfg.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, "application/json", map[string]string{"status": "UP"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Store.Ping(r.Context()); err != nil {
		s.writeError(w, r, engine.Unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, "application/json", map[string]string{"status": "READY"})
}

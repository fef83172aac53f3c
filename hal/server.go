// Package hal is enrollflow's HTTP API: HAL+JSON flow executions driven by
// vendor content-type actions, the management API, health checks, and the
// middleware around them (request ids, access log, body caps, rate limits,
// error bodies). It decodes and renders; the engine decides.
package hal

import (
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor/mobile"
	"github.com/enrollflow/enrollflow/factor/webauthn"
	"github.com/enrollflow/enrollflow/registry"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/store"
)

// MaxBodyBytes caps every request body but a template content's.
const MaxBodyBytes = 64 << 10

// MaxTemplateBodyBytes caps a template content: an e-mail's text and HTML
// bodies may be 100 kB each.
const MaxTemplateBodyBytes = 256 << 10

// Config wires the API.
type Config struct {
	Runner     *engine.Runner
	Dispatcher *dispatch.Dispatcher  // templates and channels of the management API
	Registry   *registry.Registry    // the device registry endpoints
	Regulator  *regulation.Regulator // a user's lockout
	Store      store.Store           // readiness, long polls
	// Mobile is the MOBILE factor: the mobile side's pairings and signed
	// requests; Applications the mobile applications' management.
	Mobile       *mobile.Factor
	Applications *mobile.Applications
	Log          zerolog.Logger
	BaseURL      string // public base URL for links; "" derives it from each request
	// RateLimit is the requests per second one client address may make to
	// the flow execution endpoints (burst: twice that); 0 disables it.
	RateLimit float64
	// CORSOrigins are the browser origins allowed to call the API
	// (scheme://host[:port]); none by default.
	CORSOrigins []string
	// TrustedProxies are the networks of the load balancers in front: from
	// a peer inside them, the client address for the rate limit is taken
	// from X-Forwarded-For. None by default: the header is ignored, since
	// any client can send it.
	TrustedProxies []netip.Prefix
	// PollBurst is how many plain polls (without Prefer: wait) of one
	// execution may come at once before they are paced to one per second;
	// 0: the documented 10. Tests that poll after every step raise it.
	PollBurst int
	// Observer learns what the API does, for metrics; nil: nothing.
	Observer Observer
	// Metrics, when set, is served at GET /metrics (nil when the node
	// serves its metrics on a listener of their own).
	Metrics http.Handler
	// RequireClientCert makes the machine-to-machine routes (the
	// management API, /metrics) refuse requests without a verified client
	// certificate. Set it when the listener has a client CA.
	RequireClientCert bool
}

// Observer counts requests and their outcomes. Labels it is given are
// bounded: route patterns, catalog names, codes. Implementations must be
// safe for concurrent use and cheap: they run on every request.
type Observer interface {
	// Request is one answered request: the matched route pattern ("" when
	// none matched), method, status and how long it took.
	Request(route, method string, status int, elapsed time.Duration)
	// RateLimited is one request refused by the per-client rate limit.
	RateLimited(route string)
	// Started is one flow start: "ok" or its error's outcome (Outcome).
	Started(outcome string)
	// Acted is one action on an execution ("unknown" when the content
	// type names none) and its outcome.
	Acted(action, outcome string)
	// Waiting changes the number of long polls waiting by delta.
	Waiting(delta int)
	// LongPolled is one long poll answered: changed, expired (the view
	// changed by itself), timeout or canceled.
	LongPolled(result string)
	// Paired is one pairing from the mobile side: ok or its code.
	Paired(outcome string)
}

type nopObserver struct{}

func (nopObserver) Waiting(int)       {}
func (nopObserver) LongPolled(string) {}
func (nopObserver) Paired(string)     {}

func (nopObserver) Request(string, string, int, time.Duration) {}
func (nopObserver) RateLimited(string)                         {}
func (nopObserver) Started(string)                             {}
func (nopObserver) Acted(string, string)                       {}

// Outcome names how a request ended, for counting: "ok", a refused
// passcode's or ceremony's detail code (invalid_otp, otp_expired,
// origin_mismatch, ...), or the error's code in lower case
// (action_not_allowed, request_limited, ...).
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	e := engine.AsError(err)
	if e.Code == engine.CodeInvalidData && len(e.Details) > 0 {
		switch d := e.Details[0].Code; d {
		case engine.DetailInvalidOTP, engine.DetailOTPExpired, engine.DetailOTPVoid, engine.DetailOTPReplayed,
			engine.DetailLimitExceeded, engine.DetailPolicyViolation,
			webauthn.OriginMismatch, webauthn.ChallengeMismatch, webauthn.ChallengeExpired, webauthn.UserVerificationRequired,
			webauthn.AuthenticatorNotAllowed, webauthn.InvalidAttestation, webauthn.CredentialExists:
			return strings.ToLower(d)
		}
	}
	return strings.ToLower(e.Code)
}

// Server is the API's http.Handler.
type Server struct {
	cfg     Config
	router  *mux.Router
	handler http.Handler // the router inside its middleware
	limiter *limiter
	routes  []Route
}

// Route is one path of the router and the methods it serves.
type Route struct {
	Path    string // the path template, as in the OpenAPI document
	Methods []string
}

// New builds the router.
func New(cfg Config) *Server {
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	// SkipClean: a path such as /demo/flowExecutions/.. is a 404 like any
	// other unknown path, not a redirect to a "cleaned" one.
	s := &Server{cfg: cfg, router: mux.NewRouter().SkipClean(true)}
	if cfg.RateLimit > 0 {
		s.limiter = newLimiter(cfg.RateLimit, int(2*cfg.RateLimit+1), 10*time.Minute)
	}
	r := s.router
	r.Use(recordRoute)
	m := r.PathPrefix("/environments/{envID}").Subrouter()
	m.Use(s.requireClientCert, s.requireAPIKey)
	s.route(m, "/flows", methods{http.MethodGet: s.listFlows, http.MethodPost: s.createFlow})
	s.route(m, "/flows/{flowID}", methods{http.MethodGet: s.getFlow, http.MethodPut: s.replaceFlow, http.MethodDelete: s.deleteFlow})
	s.route(m, "/deviceAuthenticationPolicies", methods{http.MethodGet: s.listPolicies})
	s.route(m, "/deviceAuthenticationPolicies/{policyID}", methods{http.MethodGet: s.getPolicy})
	s.route(m, "/users/{userID}/devices", methods{http.MethodGet: s.listDevices})
	s.route(m, "/users/{userID}/devices/{deviceID}", methods{http.MethodGet: s.getDevice, http.MethodDelete: s.deleteDevice})
	s.route(m, "/users/{userID}/lockout", methods{http.MethodGet: s.getLockout, http.MethodDelete: s.liftLockout})
	s.notificationRoutes(m)
	s.applicationRoutes(m)

	// mux tries routes in order: the flow executions, which carry nearly
	// all the traffic, right after the one management prefix (which must
	// come first: /environments/{envID}/flows would otherwise read as the
	// execution "flows" of an environment called "environments").
	x := r.PathPrefix("/{envID}/flowExecutions").Subrouter()
	x.Use(s.rateLimit)
	s.route(x, "", methods{http.MethodPost: s.requireAPIKey(http.HandlerFunc(s.startExecution)).ServeHTTP})
	s.route(x, "/{executionID}", methods{http.MethodGet: s.getExecution, http.MethodPost: s.actOnExecution})
	for _, name := range cfg.Runner.Steps().ResourceNames() {
		s.route(x, "/{executionID}/"+name, methods{http.MethodGet: s.getResource(name)})
	}

	s.mobileRoutes(r)

	s.route(r, "/healthz", methods{http.MethodGet: s.healthz, http.MethodHead: s.healthz})
	s.route(r, "/readyz", methods{http.MethodGet: s.readyz, http.MethodHead: s.readyz})
	s.route(r, "/openapi.json", methods{http.MethodGet: s.openAPI})
	if cfg.Metrics != nil {
		s.route(r, "/metrics", methods{http.MethodGet: s.requireClientCert(cfg.Metrics).ServeHTTP})
	}

	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, &engine.Error{Status: http.StatusNotFound, Code: engine.CodeNotFound,
			Message: "No such resource: " + req.URL.Path})
	})
	s.handler = s.observe(s.cors(s.limitBody(s.router)))
	return s
}

// methods maps HTTP methods to the handlers of one path.
type methods map[string]http.HandlerFunc

// route registers one path for all its methods. Dispatching by method here,
// rather than with mux's Methods matcher, gives every path a correct 405
// with an Allow header (mux loses the 405 when a subrouter has several
// routes).
func (s *Server) route(r *mux.Router, path string, handlers methods) {
	allowed := make([]string, 0, len(handlers))
	for m := range handlers {
		allowed = append(allowed, m)
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	rt := r.HandleFunc(path, func(w http.ResponseWriter, req *http.Request) {
		if h, ok := handlers[req.Method]; ok {
			h(w, req)
			return
		}
		w.Header().Set("Allow", allow)
		s.writeError(w, req, &engine.Error{Status: http.StatusMethodNotAllowed, Code: engine.CodeMethodNotAllowed,
			Message: "Method " + req.Method + " is not allowed here; allowed: " + allow + "."})
	})
	tpl, err := rt.GetPathTemplate()
	if err != nil {
		panic("hal: route " + path + ": " + err.Error())
	}
	s.routes = append(s.routes, Route{Path: tpl, Methods: allowed})
}

// Routes lists every path the router serves, in registration order.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

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

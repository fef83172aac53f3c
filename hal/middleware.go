package hal

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/time/rate"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/store"
)

// accessInfo collects what the access line reports about one request.
type accessInfo struct {
	requestID, route, env, execution, action string
}

type accessKey struct{}

// annotate adds to the request's access line.
func annotate(r *http.Request, f func(*accessInfo)) {
	if a, ok := r.Context().Value(accessKey{}).(*accessInfo); ok {
		f(a)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// observe gives every request an id (echoed as X-Request-Id), recovers
// panics into a 500, and writes one access line: request id, env,
// execution, action, status and latency. Nothing from the body is logged.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &accessInfo{requestID: store.NewID()[:16]}
		w.Header().Set("X-Request-Id", info.requestID)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), accessKey{}, info))
		defer func() {
			if p := recover(); p != nil {
				s.cfg.Log.Error().Str("request_id", info.requestID).Interface("panic", p).
					Bytes("stack", debug.Stack()).Msg("handler panicked")
				if sw.status == 0 {
					s.writeError(sw, r, engine.AsError(nil))
				}
			}
			elapsed := time.Since(start)
			s.cfg.Observer.Request(info.route, r.Method, sw.status, elapsed)
			ev := s.cfg.Log.Info()
			if sw.status >= 500 {
				ev = s.cfg.Log.Warn()
			}
			ev.Str("request_id", info.requestID).Str("method", r.Method).Str("route", info.route).
				Str("env", info.env).Str("execution", info.execution).Str("action", info.action).
				Int("status", sw.status).Dur("latency", elapsed).Msg("request")
		}()
		next.ServeHTTP(sw, r)
	})
}

// recordRoute notes the matched route pattern for the access line: the
// pattern, not the path, because user ids in paths are personal data and
// execution ids are bearer capabilities.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if t, err := route.GetPathTemplate(); err == nil {
				annotate(r, func(a *accessInfo) { a.route = t })
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps every request body at MaxBodyBytes (template contents at
// MaxTemplateBodyBytes).
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(MaxBodyBytes)
		if strings.HasPrefix(r.URL.Path, "/environments/") && strings.Contains(r.URL.Path, "/templates/") {
			limit = MaxTemplateBodyBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// requireAPIKey checks the environment's Bearer API key.
func (s *Server) requireAPIKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env, ok := s.cfg.Runner.Environment(mux.Vars(r)["envID"])
		key, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// An unknown environment answers like a wrong key, so the API does
		// not reveal which environments exist to callers without a key.
		if !ok || !hasBearer || !env.CheckAPIKey(strings.TrimSpace(key)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="enrollflow"`)
			s.writeError(w, r, &engine.Error{Status: http.StatusUnauthorized, Code: engine.CodeAccessFailed,
				Message: "A valid API key is required: send it as Authorization: Bearer <key>."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rateLimit throttles each client address on the flow execution endpoints.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.limiter != nil {
			if ok, wait := s.limiter.allow(s.clientAddr(r)); !ok {
				annotate(r, func(a *accessInfo) { s.cfg.Observer.RateLimited(a.route) })
				s.writeError(w, r, engine.TooSoon("Too many requests from this client; slow down.", wait))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// clientAddr is the address a request is limited by: its peer, or, when
// the peer is a trusted proxy, the nearest X-Forwarded-For hop that is not
// one (the rightmost entries are the ones our own proxies appended; the
// leftmost are whatever the client chose to send).
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing left of it
		}
		if !s.trusted(hop) {
			return hop.Unmap().String()
		}
	}
	return host
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// limiter is a token bucket per key, forgetting keys idle for ttl. It is
// per node: N nodes behind a balancer allow N times the rate, which is
// documented; attempt limits, the real guard of passcodes, live in the
// store and hold across nodes.
type limiter struct {
	rate  rate.Limit
	burst int
	ttl   time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int, ttl time.Duration) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: burst, ttl: ttl, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.sweepAt) {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.ttl {
				delete(l.buckets, k)
			}
		}
		l.sweepAt = now.Add(l.ttl)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// requireClientCert refuses a request that did not come with a client
// certificate verified against the node's client CA, when the node has one
// (Config.RequireClientCert): the routes behind it are machine-to-machine.
func (s *Server) requireClientCert(next http.Handler) http.Handler {
	if !s.cfg.RequireClientCert {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ClientCertificate(r) == nil {
			// 403, not 401: there is no HTTP challenge to answer, the
			// certificate belongs in the TLS handshake.
			s.writeError(w, r, &engine.Error{Status: http.StatusForbidden, Code: engine.CodeAccessFailed,
				Message: "A client certificate issued by this service's client CA is required here; present it in the TLS handshake."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ClientCertificate is the client certificate the TLS handshake verified,
// or nil (plain HTTP, none presented).
func ClientCertificate(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// requestID is the request's id, as its access line and X-Request-Id carry
// it, for log lines that must be found next to that access line.
func requestID(r *http.Request) string {
	if a, ok := r.Context().Value(accessKey{}).(*accessInfo); ok {
		return a.requestID
	}
	return ""
}

// Package apptest builds a whole enrollflow API in-process for tests and
// benchmarks: the real router, engine, enrollment step and store (memory,
// or a real Redis), with an injectable clock and a delivery channel that
// records what it would have sent so a test can read the passcode. In a
// test (not a benchmark) every request and response through the API is
// validated against the OpenAPI document (hal/openapitest), so a test whose
// traffic the document does not describe fails.
package apptest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/hal"
	"github.com/enrollflow/enrollflow/hal/openapitest"
	"github.com/enrollflow/enrollflow/metrics"
	"github.com/enrollflow/enrollflow/registry"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/storetest"
)

// APIKey is the demo environment's key in tests.
const APIKey = "test-api-key-0123456789"

// Secret is the master secret every test node shares (like a deployment).
var Secret = []byte("0123456789abcdef0123456789abcdef")

// Clock is a settable clock, safe for concurrent use (the one the store
// conformance suite uses).
type Clock = storetest.Clock

// NewClock starts at the current time (so Redis TTLs stay sensible).
func NewClock() *Clock { return storetest.NewClock() }

// Outbox records messages in memory. It stands in for a delivery channel,
// which is not what these tests are about; channels have their own tests.
type Outbox struct {
	mu   sync.Mutex
	msgs []delivery.Message
	Fail error // when set, Send returns it
}

// Send records msg.
func (o *Outbox) Send(_ context.Context, msg delivery.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Fail != nil {
		return o.Fail
	}
	o.msgs = append(o.msgs, msg)
	return nil
}

// Messages returns a copy of what was sent.
func (o *Outbox) Messages() []delivery.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]delivery.Message(nil), o.msgs...)
}

// Last returns the last message sent to recipient, or false.
func (o *Outbox) Last(recipient string) (delivery.Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.msgs) - 1; i >= 0; i-- {
		if o.msgs[i].Recipient == recipient {
			return o.msgs[i], true
		}
	}
	return delivery.Message{}, false
}

// Options shape one test API.
type Options struct {
	Store     store.Store  // required
	Clock     *Clock       // nil: a new Clock
	Config    *config.File // nil: the demo environment with APIKey
	RateLimit float64      // 0: no rate limit
	// PollBurst is hal.Config.PollBurst; 0: so many that tests polling
	// after every step are never paced (the pacing test sets it).
	PollBurst int
	// TrustedProxies: peers whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
	Log            zerolog.Logger
	// DeliveryWait bounds how long a request waits for its delivery
	// (0: the default).
	DeliveryWait time.Duration
}

// API is one node: its handler plus what a test needs to look inside.
type API struct {
	// Handler is the node's router and middleware; in tests it checks
	// every exchange against the OpenAPI document.
	Handler    http.Handler
	Server     *hal.Server
	Runner     *engine.Runner
	Dispatcher *dispatch.Dispatcher
	Store      store.Store
	Clock      *Clock
	Outbox     *Outbox
	Env        *engine.Environment
	Metrics    *metrics.Metrics // served at /metrics
	Registry   *registry.Registry
}

// New wires a node the same way `enrollflow serve` does, with the
// configured flows.
func New(tb testing.TB, o Options) *API {
	tb.Helper()
	if o.Clock == nil {
		o.Clock = NewClock()
	}
	file := config.Demo(APIKey)
	if o.Config != nil {
		file = *o.Config
	}
	file = withOutboxChannels(file)
	outbox := &Outbox{}
	m := metrics.New(metrics.Build{Version: "test", Commit: "test", GoVersion: runtime.Version()})
	node, err := app.Build(app.Options{Config: file, Store: o.Store, Outbox: outbox, Secret: Secret, Now: o.Clock.Now,
		Log: o.Log, DeliveryWait: o.DeliveryWait, AllowLocalDestinations: true, Metrics: m})
	if err != nil {
		tb.Fatalf("build node: %v", err)
	}
	env, _ := node.Runner.Environment(file.Environments[0].ID)
	srv := hal.New(hal.Config{Runner: node.Runner, Dispatcher: node.Dispatcher, Registry: node.Registry, Regulator: node.Regulator, Store: node.Store,
		Mobile: node.Mobile, Applications: node.Applications, Log: o.Log, RateLimit: o.RateLimit, PollBurst: pollBurst(o.PollBurst),
		TrustedProxies: o.TrustedProxies, BaseURL: "http://enrollflow.test", Observer: m, Metrics: m.Handler()})
	return &API{Handler: Validated(tb, srv), Server: srv, Runner: node.Runner, Dispatcher: node.Dispatcher, Store: o.Store,
		Clock: o.Clock, Outbox: outbox, Env: env, Metrics: m, Registry: node.Registry}
}

func pollBurst(n int) int {
	if n == 0 {
		return 1 << 20
	}
	return n
}

// Validated wraps h so that every exchange is checked against the OpenAPI
// document, failing tb for any the document does not describe. Benchmarks
// get h itself: they measure the service, not the validator.
func Validated(tb testing.TB, h http.Handler) http.Handler {
	tb.Helper()
	if _, bench := tb.(*testing.B); bench {
		return h
	}
	v, err := openapitest.Load()
	if err != nil {
		tb.Fatalf("OpenAPI document: %v", err)
	}
	return v.Handler(tb, h)
}

// withOutboxChannels gives every environment that configures no channels
// at all the recording outbox for every method, so that tests about flows
// need not spell out delivery.
func withOutboxChannels(f config.File) config.File {
	envs := make([]config.Environment, len(f.Environments))
	for i, e := range f.Environments {
		if e.Notifications.Channels == nil {
			ch := dispatch.Channel{Type: dispatch.TypeOutbox}
			e.Notifications.Channels = map[delivery.Method]dispatch.Channel{delivery.Email: ch, delivery.SMS: ch, delivery.Voice: ch}
		}
		envs[i] = e
	}
	f.Environments = envs
	return f
}

// Do runs one request through the handler and returns the recorder.
func (a *API) Do(method, path, contentType, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, stringsReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, req)
	return rec
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// Package haltest builds a whole enrollflow API in-process for tests and
// benchmarks: the real router, engine, enrollment step and store (memory,
// or a real Redis), with an injectable clock and a delivery channel that
// records what it would have sent so a test can read the passcode.
package haltest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/hal"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/steps/mfaenroll"
	"github.com/enrollflow/enrollflow/store"
)

// APIKey is the demo environment's key in tests.
const APIKey = "test-api-key-0123456789"

// Secret is the master secret every test node shares (like a deployment).
var Secret = []byte("0123456789abcdef0123456789abcdef")

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at the current time (so Redis TTLs stay sensible).
func NewClock() *Clock { return &Clock{now: time.Now().UTC().Truncate(time.Millisecond)} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

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
	Log       zerolog.Logger
}

// API is one node: its handler plus what a test needs to look inside.
type API struct {
	Handler http.Handler
	Runner  *engine.Runner
	Store   store.Store
	Clock   *Clock
	Outbox  *Outbox
	Env     *engine.Environment
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
	envs, flows, err := file.Build()
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	keys, err := mfa.DeriveKeys(Secret)
	if err != nil {
		tb.Fatal(err)
	}
	sealer, err := mfa.NewSealer(keys.SealTOTP)
	if err != nil {
		tb.Fatal(err)
	}
	outbox := &Outbox{}
	step := mfaenroll.New(mfaenroll.Deps{Devices: o.Store, Sender: outbox,
		Hasher: mfa.NewOTPHasher(keys.OTPHash), Sealer: sealer, Log: o.Log})
	runner := engine.NewRunner(o.Store, engine.NewStepRegistry(step), envs, engine.Options{Now: o.Clock.Now})
	for _, env := range envs {
		if err := runner.ConfigureFlows(env, flows[env.ID]); err != nil {
			tb.Fatalf("configure flows: %v", err)
		}
	}
	h := hal.New(hal.Config{Runner: runner, Store: o.Store, Log: o.Log, RateLimit: o.RateLimit,
		BaseURL: "http://enrollflow.test"})
	return &API{Handler: h, Runner: runner, Store: o.Store, Clock: o.Clock, Outbox: outbox, Env: envs[0]}
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

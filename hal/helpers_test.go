package hal_test

// Shared helpers of the HTTP suite. Every test drives the real router of a
// whole node (apptest: router, engine, enrollment step, store) with a fake
// clock, once on the memory store and once on a real redis-server.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/redis"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

const (
	baseURL  = "http://enrollflow.test" // apptest.s BaseURL
	demoFlow = config.DemoFlowID
	execPath = "/demo/flowExecutions"
)

// Action content types, spelled out once.
var (
	ctCreate   = actions.ContentType(actions.DeviceCreate)
	ctActivate = actions.ContentType(actions.DeviceActivate)
	ctResend   = actions.ContentType(actions.OTPResend)
	ctDelete   = actions.ContentType(actions.DeviceDelete)
	ctSkip     = actions.ContentType(actions.DeviceSkipEnrollment)
)

// backend is the store one subtest runs on.
type backend struct {
	t     *testing.T
	name  string
	redis *redistest.Server // nil for memory
}

// Open returns a store client on clock. On memory every call is a new,
// empty store; on Redis every call is a new client of the subtest's one
// redis-server, so stores opened in one subtest share their data.
func (b *backend) Open(clock *apptest.Clock) store.Store {
	b.t.Helper()
	if b.redis == nil {
		return memory.New(clock.Now)
	}
	s, err := redis.Open(b.redis.URL(), clock.Now)
	if err != nil {
		b.t.Fatalf("redis.Open(%s): %v", b.redis.URL(), err)
	}
	b.t.Cleanup(func() { _ = s.Close() })
	return s
}

// forEachStore runs fn as the subtests "memory" and "redis". The Redis
// subtest starts one redis-server (on a free port) for the whole of fn.
func forEachStore(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) { fn(t, &backend{t: t, name: "memory"}) })
	t.Run("redis", func(t *testing.T) {
		fn(t, &backend{t: t, name: "redis", redis: redistest.Start(t)})
	})
}

// node is one API under test plus the helpers that talk to it.
type node struct {
	t *testing.T
	*apptest.API
}

// newNode builds a node on the backend with a fresh clock unless o sets one.
func newNode(t *testing.T, b *backend, o apptest.Options) *node {
	t.Helper()
	if o.Clock == nil {
		o.Clock = apptest.NewClock()
	}
	if o.Store == nil {
		o.Store = b.Open(o.Clock)
	}
	return &node{t: t, API: apptest.New(t, o)}
}

// resp is one response, decoded when it is JSON.
type resp struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func newResp(t *testing.T, rec *httptest.ResponseRecorder) *resp {
	t.Helper()
	r := &resp{Status: rec.Code, Header: rec.Header(), Raw: rec.Body.Bytes()}
	if ct := rec.Header().Get("Content-Type"); strings.Contains(ct, "json") && len(r.Raw) > 0 {
		if err := json.Unmarshal(r.Raw, &r.Body); err != nil {
			t.Fatalf("response is not a JSON object (%v): %s", err, r.Raw)
		}
	}
	return r
}

func (r *resp) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Raw)) }

// do runs one request; header is name, value pairs.
func (n *node) do(method, path, contentType, body string, header ...string) *resp {
	n.t.Helper()
	return newResp(n.t, n.Do(method, path, contentType, body, header...))
}

// admin runs one request with the environment's API key.
func (n *node) admin(method, path, body string) *resp {
	n.t.Helper()
	return n.do(method, path, "application/json", body, "Authorization", "Bearer "+apptest.APIKey)
}

// startBody builds a start request for flow with the given user inputs.
func startBody(flow string, user map[string]any) string {
	b, _ := json.Marshal(map[string]any{"flow": map[string]any{"id": flow}, "inputs": map[string]any{"user": user}})
	return string(b)
}

// start starts demoFlow for a user with an e-mail address and a phone and
// returns the execution id.
func (n *node) start(userID string) string {
	n.t.Helper()
	return n.startFlow(demoFlow, map[string]any{"id": userID, "email": userID + "@example.com", "mobilePhone": "+12015550000"})
}

// startFlow starts flow with the given user inputs, asserting the 201.
func (n *node) startFlow(flow string, user map[string]any) string {
	n.t.Helper()
	r := n.admin(http.MethodPost, execPath, startBody(flow, user))
	mustStatus(n.t, r, http.StatusCreated)
	id, _ := r.Body["id"].(string)
	if id == "" {
		n.t.Fatalf("start: no id in %s", r)
	}
	return id
}

// get GETs an execution.
func (n *node) get(id string) *resp {
	n.t.Helper()
	return n.do(http.MethodGet, execPath+"/"+id, "", "")
}

// act POSTs an action to an execution.
func (n *node) act(id, contentType, body string) *resp {
	n.t.Helper()
	return n.do(http.MethodPost, execPath+"/"+id, contentType, body)
}

// create posts device.create for a type (the address comes from the inputs).
func (n *node) create(id, deviceType string) *resp {
	n.t.Helper()
	return n.act(id, ctCreate, `{"type":"`+deviceType+`"}`)
}

// activate posts device.activate with otp.
func (n *node) activate(id, otp string) *resp {
	n.t.Helper()
	return n.act(id, ctActivate, `{"otp":"`+otp+`"}`)
}

// passcode reads the last passcode sent to recipient, checking that the
// message body carries it (VOICE spells it digit by digit).
func (n *node) passcode(recipient string) string {
	n.t.Helper()
	msg, ok := n.Outbox.Last(recipient)
	if !ok {
		n.t.Fatalf("no message was sent to %s (outbox: %d messages)", recipient, len(n.Outbox.Messages()))
	}
	code := otpPattern.FindString(strings.ReplaceAll(msg.Body, ", ", ""))
	if code == "" {
		n.t.Fatalf("no passcode in the message to %s: %q", recipient, msg.Body)
	}
	return code
}

var otpPattern = regexp.MustCompile(`\b[0-9]{6,10}\b`)

// sentTo counts the messages sent to recipient.
func (n *node) sentTo(recipient string) int {
	c := 0
	for _, m := range n.Outbox.Messages() {
		if m.Recipient == recipient {
			c++
		}
	}
	return c
}

// unchanged runs f, which must fail, and asserts that the execution reads
// exactly the same before and after: status, _links, device, expiresAt, all.
func (n *node) unchanged(id string, f func()) {
	n.t.Helper()
	before := n.get(id)
	mustStatus(n.t, before, http.StatusOK)
	f()
	after := n.get(id)
	mustStatus(n.t, after, http.StatusOK)
	if !reflect.DeepEqual(before.Body, after.Body) {
		n.t.Errorf("a failed request changed the execution:\nbefore %s\nafter  %s", before.Raw, after.Raw)
	}
}

// mustStatus fails the test unless r has the status.
func mustStatus(t *testing.T, r *resp, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, want, bytes.TrimSpace(r.Raw))
	}
}

// detail is one expected error detail; empty fields are not checked.
type detail struct{ Target, Code string }

// mustError asserts an error response: status, code, the error body's
// shape, and its details' targets and codes, in order.
func mustError(t *testing.T, r *resp, status int, code string, details ...detail) {
	t.Helper()
	mustStatus(t, r, status)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	if got := str(r.Body, "code"); got != code {
		t.Errorf("code = %q, want %q; body: %s", got, code, r.Raw)
	}
	if id := str(r.Body, "id"); !hexID.MatchString(id) {
		t.Errorf("error id = %q, want 32 hex characters", id)
	}
	if str(r.Body, "message") == "" {
		t.Errorf("error without message: %s", r.Raw)
	}
	if details == nil {
		return
	}
	got := list(r.Body, "details")
	if len(got) != len(details) {
		t.Fatalf("details = %s, want %d: %+v", r.Raw, len(details), details)
	}
	for i, want := range details {
		d, _ := got[i].(map[string]any)
		if want.Target != "" && d["target"] != want.Target {
			t.Errorf("details[%d].target = %v, want %q; body: %s", i, d["target"], want.Target, r.Raw)
		}
		if want.Code != "" && d["code"] != want.Code {
			t.Errorf("details[%d].code = %v, want %q; body: %s", i, d["code"], want.Code, r.Raw)
		}
		if m, _ := d["message"].(string); m == "" {
			t.Errorf("details[%d] without message: %s", i, r.Raw)
		}
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// at follows a path of keys (and, for arrays, decimal indexes).
func at(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string { s, _ := at(v, path...).(string); return s }
func list(v any, path ...string) []any { l, _ := at(v, path...).([]any); return l }
func num(v any, path ...string) float64 {
	f, _ := at(v, path...).(float64)
	return f
}

// links returns the sorted names of a body's _links, asserting that every
// action link points at the execution's own URL (actions are POSTed there).
func links(t *testing.T, body map[string]any) []string {
	t.Helper()
	m, _ := body["_links"].(map[string]any)
	self := str(body, "_links", "self", "href")
	var names []string
	for name := range m {
		names = append(names, name)
		if href := str(m, name, "href"); href != self {
			t.Errorf("_links.%s.href = %q, want the self link %q", name, href, self)
		}
	}
	slices.Sort(names)
	return names
}

// mustLinks asserts the exact set of _links (self is always expected).
func mustLinks(t *testing.T, r *resp, want ...string) {
	t.Helper()
	want = append([]string{"self"}, want...)
	slices.Sort(want)
	if got := links(t, r.Body); !slices.Equal(got, want) {
		t.Errorf("_links = %v, want %v (status %s)", got, want, str(r.Body, "status"))
	}
}

// mustState asserts the status of an execution body.
func mustState(t *testing.T, r *resp, status string) {
	t.Helper()
	if got := str(r.Body, "status"); got != status {
		t.Fatalf("status = %q, want %q; body: %s", got, status, r.Raw)
	}
}

// path strips the base URL from an href.
func path(href string) string { return strings.TrimPrefix(href, baseURL) }

// enrollEmail enrolls an EMAIL device at address in the current step
// (device.create, then device.activate with the passcode sent) and returns
// the activation's response.
func (n *node) enrollEmail(id, address string) *resp {
	n.t.Helper()
	mustStatus(n.t, n.act(id, ctCreate, `{"type":"EMAIL","email":"`+address+`"}`), http.StatusOK)
	r := n.activate(id, n.passcode(address))
	mustStatus(n.t, r, http.StatusOK)
	return r
}

// barrier releases n goroutines at once.
type barrier struct {
	ready sync.WaitGroup
	gate  chan struct{}
}

func newBarrier(n int) *barrier {
	b := &barrier{gate: make(chan struct{})}
	b.ready.Add(n)
	return b
}

// wait is called by each goroutine; it returns once all have arrived and
// release was called.
func (b *barrier) wait() { b.ready.Done(); <-b.gate }

// release waits for every goroutine to arrive, then lets them all go.
func (b *barrier) release() { b.ready.Wait(); close(b.gate) }

// demoConfig is the demo environment with f applied to it.
func demoConfig(f func(e *config.Environment)) *config.File {
	file := config.Demo(apptest.APIKey)
	f(&file.Environments[0])
	return &file
}

package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedSender fails with errs[i] on call i and succeeds once the script
// runs out.
type scriptedSender struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (s *scriptedSender) Send(context.Context, Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= len(s.errs) {
		return s.errs[s.calls-1]
	}
	return nil
}

// testRetrier returns a retrier whose sleeps are recorded instead of slept
// and whose jitter always picks the ceiling (or zero with zeroJitter), so the
// waits are predictable.
func testRetrier(s Sender, p RetryPolicy, zeroJitter bool) (*retrier, *[]time.Duration) {
	r := Retrying(s, p).(*retrier)
	var slept []time.Duration
	r.sleep = func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return ctx.Err()
	}
	r.jitter = func(ceiling time.Duration) time.Duration {
		if zeroJitter {
			return 0
		}
		return ceiling
	}
	return r, &slept
}

var (
	errUnavailable = Transient("http 503", nil)
	errRefused     = Permanent("http 400", nil)
)

func TestRetryingOutcomes(t *testing.T) {
	policy := RetryPolicy{Attempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}
	tests := []struct {
		name          string
		errs          []error
		wantErr       bool
		wantCalls     int
		wantSleeps    []time.Duration
		wantPermanent bool
		wantReason    string
	}{
		{name: "success first try", wantCalls: 1},
		{name: "transient then success", errs: []error{errUnavailable, errUnavailable}, wantCalls: 3,
			wantSleeps: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}},
		{name: "permanent stops at once", errs: []error{errRefused}, wantErr: true, wantCalls: 1,
			wantPermanent: true, wantReason: "http 400"},
		{name: "transient then permanent", errs: []error{errUnavailable, errRefused}, wantErr: true, wantCalls: 2,
			wantSleeps: []time.Duration{10 * time.Millisecond}, wantPermanent: true, wantReason: "http 400"},
		{name: "attempts exhausted", errs: []error{errUnavailable, errUnavailable, errUnavailable, nil}, wantErr: true,
			wantCalls: 3, wantSleeps: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}, wantReason: "http 503"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &scriptedSender{errs: tc.errs}
			r, slept := testRetrier(s, policy, false)
			err := r.Send(context.Background(), Message{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if s.calls != tc.wantCalls {
				t.Errorf("%d sends, want %d", s.calls, tc.wantCalls)
			}
			if !slices.Equal(*slept, tc.wantSleeps) {
				t.Errorf("slept %v, want %v", *slept, tc.wantSleeps)
			}
			if err == nil {
				return
			}
			if AttemptsOf(err) != tc.wantCalls || IsPermanent(err) != tc.wantPermanent || ReasonOf(err) != tc.wantReason {
				t.Errorf("err = %v: attempts %d permanent %v reason %q", err, AttemptsOf(err), IsPermanent(err), ReasonOf(err))
			}
		})
	}
}

func TestRetryingKeepsUnclassifiedErrors(t *testing.T) {
	cause := errors.New("provider down")
	r, _ := testRetrier(&scriptedSender{errs: []error{cause, cause}}, RetryPolicy{Attempts: 2}, true)
	err := r.Send(context.Background(), Message{})
	if !errors.Is(err, cause) || AttemptsOf(err) != 2 || IsPermanent(err) || ReasonOf(err) != "unclassified" {
		t.Fatalf("err = %v (attempts %d)", err, AttemptsOf(err))
	}
	if got := err.Error(); got != "delivery: transient failure after 2 attempts: unclassified: provider down" {
		t.Fatalf("message = %q", got)
	}
}

func TestRetryingHonoursRetryAfter(t *testing.T) {
	policy := RetryPolicy{Attempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: time.Second}
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       time.Duration
	}{
		{"longer than the backoff", 300 * time.Millisecond, 300 * time.Millisecond},
		{"capped at MaxBackoff", 5 * time.Second, time.Second},
		{"absent", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			limited := &Error{Reason: "http 429", RetryAfter: tc.retryAfter}
			r, slept := testRetrier(&scriptedSender{errs: []error{limited}}, policy, true)
			if err := r.Send(context.Background(), Message{}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(*slept, []time.Duration{tc.want}) {
				t.Fatalf("slept %v, want [%v]", *slept, tc.want)
			}
		})
	}
}

func TestRetryingBackoffNeverExceedsMax(t *testing.T) {
	policy := RetryPolicy{Attempts: 10, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	errs := make([]error, 9)
	for i := range errs {
		errs[i] = errUnavailable
	}
	r, slept := testRetrier(&scriptedSender{errs: errs}, policy, false)
	if err := r.Send(context.Background(), Message{}); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{10, 20, 40, 50, 50, 50, 50, 50, 50}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(*slept, want) {
		t.Fatalf("slept %v, want %v", *slept, want)
	}
}

func TestFullJitterStaysWithinCeiling(t *testing.T) {
	const ceiling = 7 * time.Millisecond
	for range 1000 {
		if d := fullJitter(ceiling); d < 0 || d > ceiling {
			t.Fatalf("jitter %v outside [0, %v]", d, ceiling)
		}
	}
}

func TestRetryingStopsAtContextDeadline(t *testing.T) {
	policy := RetryPolicy{Attempts: 5, InitialBackoff: time.Second, MaxBackoff: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	s := &scriptedSender{errs: []error{errUnavailable, errUnavailable}}
	r, slept := testRetrier(s, policy, false)
	start := time.Now()
	err := r.Send(ctx, Message{})
	if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
		t.Errorf("took %v: waited although the wait would outlast the deadline", elapsed)
	}
	if s.calls != 1 || len(*slept) != 0 {
		t.Errorf("%d sends and sleeps %v, want 1 send and no sleep", s.calls, *slept)
	}
	if ReasonOf(err) != "http 503" || AttemptsOf(err) != 1 || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the send error", err)
	}
}

func TestRetryingStopsWhenContextEndsDuringWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &scriptedSender{errs: []error{errUnavailable, errUnavailable}}
	r, _ := testRetrier(s, RetryPolicy{Attempts: 3}, false)
	r.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}
	err := r.Send(ctx, Message{})
	if s.calls != 1 || ReasonOf(err) != "http 503" || errors.Is(err, context.Canceled) {
		t.Fatalf("%d sends, err = %v; want 1 send and the send error", s.calls, err)
	}
}

func TestRetryingWithDoneContextSendsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &scriptedSender{}
	if err := Retrying(s, RetryPolicy{}).Send(ctx, Message{}); !errors.Is(err, context.Canceled) || s.calls != 0 {
		t.Fatalf("%d sends, err = %v", s.calls, err)
	}
}

func TestRetryingRealSleep(t *testing.T) {
	s := &scriptedSender{errs: []error{errUnavailable}}
	p := RetryPolicy{Attempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	if err := Retrying(s, p).Send(context.Background(), Message{}); err != nil || s.calls != 2 {
		t.Fatalf("%d sends, err = %v", s.calls, err)
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	ok := RetryPolicy{}.WithDefaults()
	if ok != (RetryPolicy{Attempts: 3, InitialBackoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second}) {
		t.Fatalf("defaults = %+v", ok)
	}
	tests := []struct {
		name  string
		edit  func(*RetryPolicy)
		field string
	}{
		{"defaults", func(*RetryPolicy) {}, ""},
		{"one attempt", func(p *RetryPolicy) { p.Attempts = 1 }, ""},
		{"max equals initial", func(p *RetryPolicy) { p.MaxBackoff = p.InitialBackoff }, ""},
		{"no attempts", func(p *RetryPolicy) { p.Attempts = 0 }, "attempts"},
		{"too many attempts", func(p *RetryPolicy) { p.Attempts = 11 }, "attempts"},
		{"negative initial", func(p *RetryPolicy) { p.InitialBackoff = -time.Second }, "initialBackoff"},
		{"zero max", func(p *RetryPolicy) { p.MaxBackoff = 0 }, "maxBackoff"},
		{"max below initial", func(p *RetryPolicy) { p.MaxBackoff = time.Millisecond }, "maxBackoff"},
		{"max too long", func(p *RetryPolicy) { p.MaxBackoff = time.Minute }, "maxBackoff"},
	}
	for _, tc := range tests {
		p := ok
		tc.edit(&p)
		err := p.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: err = %v, want one naming %s", tc.name, err, tc.field)
		}
	}
}

func TestRetryPolicyJSON(t *testing.T) {
	var p RetryPolicy
	if err := json.Unmarshal([]byte(`{"attempts": 4, "initialBackoff": "100ms", "maxBackoff": "1.5s"}`), &p); err != nil {
		t.Fatal(err)
	}
	if p != (RetryPolicy{Attempts: 4, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 1500 * time.Millisecond}) {
		t.Fatalf("decoded %+v", p)
	}
	out, err := json.Marshal(p)
	if err != nil || string(out) != `{"attempts":4,"initialBackoff":"100ms","maxBackoff":"1.5s"}` {
		t.Fatalf("encoded %s, %v", out, err)
	}
	for _, bad := range []string{`{"maxBackoff": 2000}`, `{"maxBackoff": "2 seconds"}`, `{"attempts": "3"}`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var cfg struct {
		Timeout Duration `json:"timeout"`
	}
	if err := json.Unmarshal([]byte(`{"timeout": "10s"}`), &cfg); err != nil || cfg.Timeout != Duration(10*time.Second) {
		t.Fatalf("decoded %v, %v", cfg.Timeout, err)
	}
	if err := json.Unmarshal([]byte(`{"timeout": null}`), &cfg); err != nil || cfg.Timeout != Duration(10*time.Second) {
		t.Fatalf("null changed the value: %v, %v", cfg.Timeout, err)
	}
	if err := json.Unmarshal([]byte(`{"timeout": 10}`), &cfg); err == nil || !strings.Contains(err.Error(), `"10s"`) {
		t.Fatalf("a bare number: %v", err)
	}
	if out, _ := json.Marshal(cfg); string(out) != `{"timeout":"10s"}` {
		t.Fatalf("encoded %s", out)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 0 ", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := ParseRetryAfter(tc.value, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.value, got, tc.want)
		}
	}
}

package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/storetest"
)

// effectStep is a step type whose actions carry the effects a test hands
// it. Every action but device.skipEnrollment starts a new round; skipping
// ends the step with DONE.
type effectStep struct {
	mu      sync.Mutex
	effects func(round int) []engine.Effect // the effects of the action that starts round
	ending  []engine.Effect                 // the effects of device.skipEnrollment, which ends the step
}

// fxState is effectStep's state: the round and what Followups recorded.
type fxState struct {
	Round int      `json:"round"`
	Notes []string `json:"notes,omitempty"`
}

const effectStepType = "EFFECT_TEST"

func (s *effectStep) setEffects(f func(round int) []engine.Effect) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.effects = f
}

func (s *effectStep) Name() string      { return effectStepType }
func (s *effectStep) Results() []string { return []string{"DONE"} }
func (s *effectStep) ValidateConfig(*engine.Environment, json.RawMessage) []engine.ErrorDetail {
	return nil
}
func (s *effectStep) ValidateInput(map[string]any) []engine.ErrorDetail { return nil }

// Begin starts round 0, with the effects of round 0.
func (s *effectStep) Begin(context.Context, *engine.StepContext) (*engine.Outcome, error) {
	out := &engine.Outcome{State: fxState{}}
	s.mu.Lock()
	if s.effects != nil {
		out.After = s.effects(0)
	}
	s.mu.Unlock()
	return out, nil
}

func (s *effectStep) Act(_ context.Context, sc *engine.StepContext, a actions.Action) (*engine.Outcome, error) {
	if a.Name == actions.DeviceSkipEnrollment {
		s.mu.Lock()
		defer s.mu.Unlock()
		return &engine.Outcome{Result: "DONE", After: s.ending}, nil
	}
	st, err := decodeFx(sc.State)
	if err != nil {
		return nil, err
	}
	st.Round++
	out := &engine.Outcome{State: st}
	s.mu.Lock()
	if s.effects != nil {
		out.After = s.effects(st.Round)
	}
	s.mu.Unlock()
	return out, nil
}

func (s *effectStep) View(_ context.Context, sc *engine.StepContext) (engine.View, error) {
	st, _ := decodeFx(sc.State)
	return engine.View{Status: "FX", Properties: map[string]any{"round": st.Round, "notes": st.Notes}}, nil
}

func decodeFx(raw json.RawMessage) (fxState, error) {
	var st fxState
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// anyRound makes noteFollowup record whatever the round.
const anyRound = -1

// noteFollowup records text in the state if it is still in round (or in
// any round); calls counts its runs.
func noteFollowup(round int, text string, calls *atomic.Int32) engine.Followup {
	return func(sc *engine.StepContext) (any, bool, error) {
		calls.Add(1)
		st, err := decodeFx(sc.State)
		if err != nil {
			return nil, false, err
		}
		if round != anyRound && st.Round != round {
			return nil, false, nil
		}
		st.Notes = append(st.Notes, text)
		return st, true, nil
	}
}

// effectStore is the memory store with a hook before the next execution
// update, forced conflicts, and a count of updates.
type effectStore struct {
	*memory.Store
	mu           sync.Mutex
	beforeUpdate func() // runs once, before the next update
	conflicts    int    // the next updates that fail with store.ErrConflict
	updates      int
}

func (s *effectStore) UpdateExecution(ctx context.Context, x store.Execution) error {
	s.mu.Lock()
	s.updates++
	hook := s.beforeUpdate
	s.beforeUpdate = nil
	forced := s.conflicts > 0
	if forced {
		s.conflicts--
	}
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	if forced {
		return store.ErrConflict
	}
	return s.Store.UpdateExecution(ctx, x)
}

func (s *effectStore) set(f func(s *effectStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *effectStore) updateCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates
}

type fxHarness struct {
	t      *testing.T
	clock  *storetest.Clock
	store  *effectStore
	step   *effectStep
	env    *engine.Environment
	runner *engine.Runner
	log    *lockedBuffer
}

// The flows of an fxHarness: one step, and two one after the other.
const fxFlow, fxTwoSteps = "fx", "fx-two-steps"

func newFxHarness(t *testing.T, effectWait time.Duration) *fxHarness {
	t.Helper()
	h := &fxHarness{t: t, clock: storetest.NewClock(), step: &effectStep{}, env: defaultOnlyEnv(t), log: &lockedBuffer{}}
	h.store = &effectStore{Store: memory.New(h.clock.Now)}
	h.runner = h.newRunner(effectWait)
	for _, f := range []*engine.Flow{
		{ID: fxFlow, Trigger: engine.Trigger{Next: "only"},
			StepDefinitions: map[string]engine.StepDefinition{"only": {Type: effectStepType}}},
		{ID: fxTwoSteps, Trigger: engine.Trigger{Next: "first"}, StepDefinitions: map[string]engine.StepDefinition{
			"first":  {Type: effectStepType, Outlets: map[string]engine.Outlet{"DONE": {Next: "second"}}},
			"second": {Type: effectStepType},
		}},
	} {
		if _, err := h.runner.SaveFlow(t.Context(), h.env, f, false); err != nil {
			t.Fatalf("SaveFlow(%s): %v", f.ID, err)
		}
	}
	t.Cleanup(func() {
		// No effect may outlive its test.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.runner.Wait(ctx); err != nil {
			t.Errorf("effects still running at the end of the test: %v", err)
		}
	})
	return h
}

// newRunner is a node over the harness's store.
func (h *fxHarness) newRunner(effectWait time.Duration) *engine.Runner {
	return engine.NewRunner(h.store, engine.NewStepRegistry(h.step), []*engine.Environment{h.env},
		engine.Options{Now: h.clock.Now, EffectWait: effectWait, Log: zerolog.New(h.log)})
}

func (h *fxHarness) start() *engine.Execution { return h.startFlow(fxFlow) }

func (h *fxHarness) startFlow(flowID string) *engine.Execution {
	h.t.Helper()
	x, err := h.runner.Start(h.t.Context(), h.env, flowID, map[string]any{"user": map[string]any{"id": "u1"}})
	if err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	return x
}

func (h *fxHarness) act(ctx context.Context, r *engine.Runner, id, name string) *engine.Execution {
	h.t.Helper()
	x, err := r.Act(ctx, h.env, id, actions.Action{Name: name})
	if err != nil {
		h.t.Fatalf("Act(%s): %v", name, err)
	}
	return x
}

func (h *fxHarness) get(id string) *engine.Execution {
	h.t.Helper()
	x, err := h.runner.Get(h.t.Context(), h.env, id)
	if err != nil {
		h.t.Fatalf("Get: %v", err)
	}
	return x
}

// wantFx fails unless x is at version with the round and notes.
func wantFx(t *testing.T, what string, x *engine.Execution, version int64, round int, notes ...string) {
	t.Helper()
	st, err := decodeFx(x.State)
	if err != nil {
		t.Fatal(err)
	}
	if x.Version != version || st.Round != round || !slices.Equal(st.Notes, notes) {
		t.Fatalf("%s: version %d round %d notes %q, want version %d round %d notes %q", what, x.Version, st.Round, st.Notes, version, round, notes)
	}
}

// waitEffects waits for the background effects, which must end soon.
func (h *fxHarness) waitEffects() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 5*time.Second)
	defer cancel()
	if err := h.runner.Wait(ctx); err != nil {
		h.t.Fatalf("Wait: %v", err)
	}
}

// lockedBuffer collects log lines from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// blockingEffect returns an effect that signals started, blocks until
// release is closed and then returns followup (made when it runs).
func blockingEffect(started chan<- struct{}, release <-chan struct{}, followup func(ctx context.Context) engine.Followup) engine.Effect {
	return func(ctx context.Context) engine.Followup {
		close(started)
		<-release
		return followup(ctx)
	}
}

func TestEffectWaitBoundsTheRequest(t *testing.T) {
	const effectWait = 50 * time.Millisecond
	h := newFxHarness(t, effectWait)
	x := h.start()
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	h.step.setEffects(func(round int) []engine.Effect {
		return []engine.Effect{blockingEffect(started, release, func(context.Context) engine.Followup {
			return noteFollowup(round, "late", &calls)
		})}
	})

	begin := time.Now()
	y := h.act(t.Context(), h.runner, x.ID, actions.OTPResend)
	took := time.Since(begin)
	if took < effectWait || took > effectWait+2*time.Second {
		t.Fatalf("Act took %s with an effect wait of %s and an effect that does not end", took, effectWait)
	}
	<-started
	wantFx(t, "Act's answer", y, 2, 1)
	wantFx(t, "stored while the effect runs", h.get(x.ID), 2, 1)

	// Wait gives up when its context ends first.
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := h.runner.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with an effect still running = %v, want %v", err, context.DeadlineExceeded)
	}
	canceled, cancelNow := context.WithCancel(t.Context())
	cancelNow()
	if err := h.runner.Wait(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a canceled context = %v, want %v", err, context.Canceled)
	}
	if calls.Load() != 0 {
		t.Fatal("the Followup ran before the effect ended")
	}

	// Released, the effect's Followup lands; Wait returns only after it.
	close(release)
	h.waitEffects()
	if calls.Load() != 1 {
		t.Fatalf("the Followup ran %d times, want 1", calls.Load())
	}
	wantFx(t, "after Wait", h.get(x.ID), 3, 1, "late")
}

// The client hanging up does not cut the effect short: it runs on with a
// live context and its Followup lands.
func TestEffectOutlivesTheRequest(t *testing.T) {
	h := newFxHarness(t, 5*time.Second)
	x := h.start()
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	effectCtxErr := make(chan error, 1)
	h.step.setEffects(func(round int) []engine.Effect {
		return []engine.Effect{blockingEffect(started, release, func(ctx context.Context) engine.Followup {
			effectCtxErr <- ctx.Err()
			return noteFollowup(round, "delivered", &calls)
		})}
	})
	ctx, hangUp := context.WithCancel(t.Context())
	go func() {
		<-started
		hangUp()
	}()
	begin := time.Now()
	y := h.act(ctx, h.runner, x.ID, actions.OTPResend)
	if took := time.Since(begin); took > 2*time.Second {
		t.Fatalf("Act took %s after the client hung up", took)
	}
	wantFx(t, "Act's answer", y, 2, 1)
	close(release)
	h.waitEffects()
	if err := <-effectCtxErr; err != nil {
		t.Fatalf("the effect's context ended with the request: %v", err)
	}
	wantFx(t, "after Wait", h.get(x.ID), 3, 1, "delivered")
}

func TestFollowupOutcomes(t *testing.T) {
	failure := errors.New("followup failed")
	tests := []struct {
		name    string
		effects func(round int, calls *atomic.Int32) []engine.Effect
		// what Act returns and the store then holds
		version int64
		notes   []string
		calls   int32
		updates int // store updates after Start: Act's own and the Followups'
		logged  bool
	}{
		{"recorded", func(round int, calls *atomic.Int32) []engine.Effect {
			return []engine.Effect{func(context.Context) engine.Followup { return noteFollowup(round, "sent", calls) }}
		}, 3, []string{"sent"}, 1, 2, false},
		{"nothing to record", func(int, *atomic.Int32) []engine.Effect {
			return []engine.Effect{func(context.Context) engine.Followup { return nil }}
		}, 2, nil, 0, 1, false},
		{"state moved on", func(round int, calls *atomic.Int32) []engine.Effect {
			return []engine.Effect{func(context.Context) engine.Followup { return noteFollowup(round+1, "stale", calls) }}
		}, 2, nil, 1, 1, false},
		{"followup fails", func(_ int, calls *atomic.Int32) []engine.Effect {
			return []engine.Effect{func(context.Context) engine.Followup {
				return func(*engine.StepContext) (any, bool, error) { calls.Add(1); return nil, false, failure }
			}}
		}, 2, nil, 1, 1, true},
		{"two effects in order", func(round int, calls *atomic.Int32) []engine.Effect {
			return []engine.Effect{
				func(context.Context) engine.Followup { return noteFollowup(round, "first", calls) },
				func(context.Context) engine.Followup { return nil },
				func(context.Context) engine.Followup { return noteFollowup(round, "second", calls) },
			}
		}, 4, []string{"first", "second"}, 2, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newFxHarness(t, 5*time.Second)
			x := h.start()
			var calls atomic.Int32
			h.step.setEffects(func(round int) []engine.Effect { return tc.effects(round, &calls) })
			y := h.act(t.Context(), h.runner, x.ID, actions.OTPResend)
			// Effects that end at once are waited for: the answer has them.
			wantFx(t, "Act's answer", y, tc.version, 1, tc.notes...)
			h.waitEffects()
			wantFx(t, "stored", h.get(x.ID), tc.version, 1, tc.notes...)
			if calls.Load() != tc.calls || h.store.updateCount() != tc.updates {
				t.Fatalf("%d Followup runs and %d updates, want %d and %d", calls.Load(), h.store.updateCount(), tc.calls, tc.updates)
			}
			if logged := strings.Contains(h.log.String(), "cannot record the result of a side effect"); logged != tc.logged {
				t.Fatalf("error logged: %v, want %v; log: %s", logged, tc.logged, h.log.String())
			}
		})
	}
}

// A Followup that loses the compare-and-set to a concurrent action reads
// the execution again and applies itself to the newer version.
func TestFollowupRetriesOnConflict(t *testing.T) {
	t.Run("concurrent action", func(t *testing.T) {
		h := newFxHarness(t, 5*time.Second)
		x := h.start()
		other := h.newRunner(5 * time.Second)
		var calls atomic.Int32
		h.step.setEffects(func(round int) []engine.Effect {
			if round != 1 {
				return nil
			}
			return []engine.Effect{func(context.Context) engine.Followup {
				// Another node's action lands just before the Followup's write.
				h.store.set(func(s *effectStore) {
					s.beforeUpdate = func() {
						if _, err := other.Act(context.Background(), h.env, x.ID, actions.Action{Name: actions.OTPResend}); err != nil {
							t.Errorf("the concurrent action: %v", err)
						}
					}
				})
				return noteFollowup(anyRound, "delivered", &calls)
			}}
		})
		h.act(t.Context(), h.runner, x.ID, actions.OTPResend)
		h.waitEffects()
		// Both changes are kept: round 2 from the concurrent action, the
		// note from the Followup, applied on top of it.
		wantFx(t, "stored", h.get(x.ID), 4, 2, "delivered")
		if calls.Load() != 2 {
			t.Fatalf("the Followup ran %d times, want 2 (once more after the conflict)", calls.Load())
		}
	})

	tests := []struct {
		name      string
		conflicts int
		version   int64
		notes     []string
		logged    bool
	}{
		{"one conflict", 1, 3, []string{"delivered"}, false},
		{"three conflicts", 3, 3, []string{"delivered"}, false},
		{"conflicts without end", 1000, 2, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newFxHarness(t, 5*time.Second)
			x := h.start()
			var calls atomic.Int32
			h.step.setEffects(func(round int) []engine.Effect {
				return []engine.Effect{func(context.Context) engine.Followup {
					h.store.set(func(s *effectStore) { s.conflicts = tc.conflicts })
					return noteFollowup(round, "delivered", &calls)
				}}
			})
			y := h.act(t.Context(), h.runner, x.ID, actions.OTPResend)
			h.waitEffects()
			wantFx(t, "Act's answer", y, tc.version, 1, tc.notes...)
			wantFx(t, "stored", h.get(x.ID), tc.version, 1, tc.notes...)
			runs := int(calls.Load())
			if tc.logged {
				// It gives up after a bounded number of tries.
				if runs < 2 || runs > 20 {
					t.Fatalf("the Followup ran %d times before giving up", runs)
				}
			} else if runs != tc.conflicts+1 {
				t.Fatalf("the Followup ran %d times, want %d", runs, tc.conflicts+1)
			}
			if logged := strings.Contains(h.log.String(), "cannot record the result of a side effect"); logged != tc.logged {
				t.Fatalf("error logged: %v, want %v; log: %s", logged, tc.logged, h.log.String())
			}
		})
	}
}

// A Followup finds nothing to amend once the execution has ended, moved to
// another step or expired: it is not even asked.
func TestFollowupAfterTheExecutionIsGone(t *testing.T) {
	tests := []struct {
		name string
		flow string
		// meanwhile runs while the effect is blocked
		meanwhile func(h *fxHarness, x *engine.Execution)
		// check looks at the execution once the effect has ended
		check func(t *testing.T, h *fxHarness, x *engine.Execution)
	}{
		{"ended", fxFlow, func(h *fxHarness, x *engine.Execution) {
			if y := h.act(h.t.Context(), h.runner, x.ID, actions.DeviceSkipEnrollment); y.Status != engine.StatusCompleted {
				h.t.Fatalf("skip: %+v", y)
			}
		}, func(t *testing.T, h *fxHarness, x *engine.Execution) {
			if y := h.get(x.ID); y.Version != 3 || y.Status != engine.StatusCompleted || y.State != nil {
				t.Fatalf("ended execution changed: version %d status %s state %s", y.Version, y.Status, y.State)
			}
		}},
		{"in the next step", fxTwoSteps, func(h *fxHarness, x *engine.Execution) {
			if y := h.act(h.t.Context(), h.runner, x.ID, actions.DeviceSkipEnrollment); y.StepID != "second" {
				h.t.Fatalf("skip: %+v", y)
			}
		}, func(t *testing.T, h *fxHarness, x *engine.Execution) {
			y := h.get(x.ID)
			if y.StepID != "second" {
				t.Fatalf("step %q", y.StepID)
			}
			wantFx(t, "the next step", y, 3, 0)
		}},
		{"expired", fxFlow, func(h *fxHarness, _ *engine.Execution) {
			h.clock.Advance(engine.DefaultTTL + time.Second)
		}, func(t *testing.T, h *fxHarness, x *engine.Execution) {
			_, err := h.runner.Get(t.Context(), h.env, x.ID)
			var e *engine.Error
			if !errors.As(err, &e) || e.Status != http.StatusNotFound {
				t.Fatalf("Get of the expired execution = %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newFxHarness(t, 20*time.Millisecond)
			x := h.startFlow(tc.flow)
			started, release := make(chan struct{}), make(chan struct{})
			var calls atomic.Int32
			h.step.setEffects(func(round int) []engine.Effect {
				if round != 1 {
					return nil
				}
				return []engine.Effect{blockingEffect(started, release, func(context.Context) engine.Followup {
					return noteFollowup(anyRound, "too late", &calls)
				})}
			})
			h.act(t.Context(), h.runner, x.ID, actions.OTPResend)
			<-started
			tc.meanwhile(h, x)
			updates := h.store.updateCount()
			close(release)
			h.waitEffects()
			if calls.Load() != 0 || h.store.updateCount() != updates {
				t.Fatalf("the Followup ran %d times and %d writes were made", calls.Load(), h.store.updateCount()-updates)
			}
			if strings.Contains(h.log.String(), "cannot record") {
				t.Fatalf("nothing to record is not an error: %s", h.log.String())
			}
			tc.check(t, h, x)
		})
	}
}

// Start runs the first step's effects like Act does, and answers with
// their Followups applied.
func TestStartWaitsForEffects(t *testing.T) {
	h := newFxHarness(t, 5*time.Second)
	var calls atomic.Int32
	h.step.setEffects(func(round int) []engine.Effect {
		return []engine.Effect{func(context.Context) engine.Followup { return noteFollowup(round, "begun", &calls) }}
	})
	x := h.start()
	wantFx(t, "Start's answer", x, 2, 0, "begun")
	h.waitEffects()
	wantFx(t, "stored", h.get(x.ID), 2, 0, "begun")
	if calls.Load() != 1 {
		t.Fatalf("the Followup ran %d times", calls.Load())
	}
}

// An action that ends a step may have effects; their Followups are about
// that step and must not be applied to the step the execution moved on to.
func TestFollowupOfAnEndedStepSkipsTheNextStep(t *testing.T) {
	h := newFxHarness(t, 5*time.Second)
	x := h.startFlow(fxTwoSteps)
	var calls atomic.Int32
	h.step.mu.Lock()
	h.step.ending = []engine.Effect{func(context.Context) engine.Followup {
		return noteFollowup(anyRound, "about the first step", &calls)
	}}
	h.step.mu.Unlock()
	y := h.act(t.Context(), h.runner, x.ID, actions.DeviceSkipEnrollment)
	h.waitEffects()
	if y.StepID != "second" || calls.Load() != 0 {
		t.Fatalf("step %q, the first step's Followup ran %d times", y.StepID, calls.Load())
	}
	wantFx(t, "the second step", h.get(x.ID), 2, 0)
}

// A panicking effect is logged and does not take the node down; the
// effects after it still run.
func TestPanickingEffectIsContained(t *testing.T) {
	h := newFxHarness(t, 5*time.Second)
	x := h.start()
	var calls atomic.Int32
	h.step.setEffects(func(round int) []engine.Effect {
		return []engine.Effect{
			func(context.Context) engine.Followup { panic("channel bug") },
			func(context.Context) engine.Followup { return noteFollowup(round, "after the panic", &calls) },
		}
	})
	y := h.act(t.Context(), h.runner, x.ID, actions.OTPResend)
	wantFx(t, "Act's answer", y, 3, 1, "after the panic")
	if !strings.Contains(h.log.String(), "a side effect panicked") || !strings.Contains(h.log.String(), "channel bug") {
		t.Fatalf("the panic was not logged: %s", h.log.String())
	}
}

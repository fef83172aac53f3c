// Package engine runs flows: it loads an execution, hands an action to the
// current step, saves the outcome with compare-and-set and only then runs
// the outcome's side effects. It knows nothing of HTTP or of a concrete
// store.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/store"
)

// DefaultTTL is the sliding inactivity window of an execution.
const DefaultTTL = 15 * time.Minute

// Runner is stateless between calls; any number of nodes can run one over
// the same store.
type Runner struct {
	store store.Store
	steps *StepRegistry
	envs  map[string]*Environment
	now   func() time.Time
	ttl   time.Duration
	log   zerolog.Logger
	// effectWait bounds how long a request waits for its side effects;
	// inflight counts those still running (Wait).
	effectWait time.Duration
	inflight   sync.WaitGroup
	observer   Observer
	// configured flows by environment and id (ConfigureFlows); read-only
	// once serving starts.
	configured map[string]map[string]*Flow
}

// Options tune a Runner; zero values take the defaults.
type Options struct {
	Now func() time.Time // the clock (tests inject one)
	TTL time.Duration    // inactivity expiry, DefaultTTL when 0
	// EffectWait bounds how long a request waits for its side effects
	// (passcode delivery); DefaultEffectWait when 0.
	EffectWait time.Duration
	Log        zerolog.Logger
	// Observer learns of every step that ended, for metrics; nil: none.
	Observer Observer
}

// Observer learns of each step that ended, once the end is saved.
type Observer interface {
	StepEnded(stepType, result string, outputs map[string]any)
}

type nopObserver struct{}

func (nopObserver) StepEnded(string, string, map[string]any) {}

// NewRunner wires a runner.
func NewRunner(st store.Store, steps *StepRegistry, envs []*Environment, opts Options) *Runner {
	r := &Runner{store: st, steps: steps, envs: map[string]*Environment{}, now: opts.Now, ttl: opts.TTL,
		effectWait: opts.EffectWait, log: opts.Log, observer: opts.Observer}
	if r.observer == nil {
		r.observer = nopObserver{}
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.ttl == 0 {
		r.ttl = DefaultTTL
	}
	if r.effectWait == 0 {
		r.effectWait = DefaultEffectWait
	}
	for _, e := range envs {
		r.envs[e.ID] = e
	}
	return r
}

// Now is the runner's clock.
func (r *Runner) Now() time.Time { return r.now() }

// Steps is the step registry.
func (r *Runner) Steps() *StepRegistry { return r.steps }

// Environment finds an environment by id.
func (r *Runner) Environment(id string) (*Environment, bool) {
	e, ok := r.envs[id]
	return e, ok
}

// Start creates an execution of flowID for the given inputs and runs it to
// its first state. inputs.user.id is required: every execution enrolls for
// one user, and that user decides where its records live.
func (r *Runner) Start(ctx context.Context, env *Environment, flowID string, inputs map[string]any) (*Execution, error) {
	if inputs == nil {
		inputs = map[string]any{}
	}
	userID, _ := Lookup(inputs, "user", "id").(string)
	if strings.TrimSpace(userID) == "" {
		return nil, InvalidField("inputs.user.id", DetailRequired, "is required and must be a non-empty string")
	}
	flow, err := r.GetFlow(ctx, env, flowID)
	if err != nil {
		if e := AsError(err); e.Status == http.StatusNotFound {
			return nil, InvalidField("flow.id", DetailInvalidValue, fmt.Sprintf("no flow %q in environment %s", flowID, env.ID))
		}
		return nil, err
	}
	now := r.now()
	x := &Execution{
		ID: store.NewExecutionID(env.ID, userID), EnvID: env.ID, Version: 1,
		FlowID: flow.ID, UserID: userID, Inputs: inputs,
		CreatedAt: now, ExpiresAt: now.Add(r.ttl),
	}
	var after []stepEffect
	if err := r.enterStep(ctx, env, x, flow, flow.Trigger.Next, &after, "inputs."); err != nil {
		return nil, err
	}
	data, err := json.Marshal(x)
	if err != nil {
		return nil, AsError(err)
	}
	err = r.store.CreateExecution(ctx, store.Execution{EnvID: env.ID, ID: x.ID, Version: 1, ExpiresAt: x.ExpiresAt, Data: data})
	if err != nil {
		return nil, storeError(err, "flow execution")
	}
	r.observeEnded(nil, x)
	return r.runEffects(ctx, env, x, after), nil
}

// observeEnded reports the steps that ended since before (the results the
// execution had when it was loaded). A flow never revisits a step (cycles
// are refused), so a new result is a step that ended now.
func (r *Runner) observeEnded(before map[string]StepResult, x *Execution) {
	for id, res := range x.Results {
		if _, old := before[id]; !old {
			r.observer.StepEnded(res.Type, res.Result, res.Outputs)
		}
	}
}

// Get loads an execution; unknown and expired ones are both 404.
func (r *Runner) Get(ctx context.Context, env *Environment, id string) (*Execution, error) {
	rec, err := r.store.GetExecution(ctx, env.ID, id)
	if err != nil {
		return nil, storeError(err, "flow execution")
	}
	x := &Execution{}
	if err := json.Unmarshal(rec.Data, x); err != nil {
		return nil, AsError(fmt.Errorf("decode execution %s: %w", id, err))
	}
	x.ID, x.EnvID, x.Version = rec.ID, rec.EnvID, rec.Version
	return x, nil
}

// Act performs one action on an execution and returns its new state. The
// write is compare-and-set on the version read, so of two concurrent
// actions one wins and the other gets a CONCURRENT_UPDATE conflict.
func (r *Runner) Act(ctx context.Context, env *Environment, id string, action actions.Action) (*Execution, error) {
	x, err := r.Get(ctx, env, id)
	if err != nil {
		return nil, err
	}
	if x.Ended() {
		return nil, &Error{Status: http.StatusConflict, Code: CodeActionNotAllowed,
			Message: fmt.Sprintf("The flow execution is %s; no action is allowed.", x.Status)}
	}
	st, ok := r.steps.Lookup(x.StepType)
	if !ok {
		return nil, AsError(fmt.Errorf("execution %s runs unknown step type %q", x.ID, x.StepType))
	}
	out, err := st.Act(ctx, r.stepContext(env, x), action)
	if err != nil {
		return nil, err
	}
	resultsBefore := maps.Clone(x.Results)
	x.Version++
	x.ExpiresAt = r.now().Add(r.ttl)
	after := bindEffects(x.StepID, out.After)
	if err := r.apply(ctx, env, x, out, &after); err != nil {
		return nil, err
	}
	data, err := json.Marshal(x)
	if err != nil {
		return nil, AsError(err)
	}
	rec := store.Execution{EnvID: env.ID, ID: x.ID, Version: x.Version, ExpiresAt: x.ExpiresAt, Data: data}
	if len(out.Writes) > 0 {
		err = r.store.Commit(ctx, rec, out.Writes...)
	} else {
		err = r.store.UpdateExecution(ctx, rec)
	}
	if errors.Is(err, store.ErrDeviceLimit) {
		return nil, InvalidField("device", DetailLimitExceeded,
			fmt.Sprintf("the user already has the maximum of %d devices; delete one first", deviceLimit(out.Writes)))
	}
	if out.Err != nil && out.OnConflict == nil && errors.Is(err, store.ErrConflict) {
		// A refusal that changes the execution (a failed pairing) lost the
		// race: nothing was written, and the caller may try again.
		return nil, Conflict()
	}
	if out.Err != nil && errors.Is(err, store.ErrConflict) {
		// A refused attempt (a wrong passcode) is answered with its own
		// verdict even when another request changed the execution first:
		// what it counted lives outside the execution, and the status must
		// not tell a guess that lost the race from one that did not. The
		// execution as it is now learns of the refusal too.
		if out.OnConflict != nil {
			if _, aerr := r.amend(ctx, env, id, x.StepID, out.OnConflict); aerr != nil {
				return nil, storeError(aerr, "flow execution")
			}
		}
		return nil, out.Err
	}
	if err != nil {
		return nil, storeError(err, "flow execution")
	}
	r.observeEnded(resultsBefore, x)
	x = r.runEffects(ctx, env, x, after)
	if out.Err != nil {
		return x, out.Err
	}
	return x, nil
}

// deviceLimit is the limit a commit's device creation was refused at.
func deviceLimit(writes []store.Write) int {
	for _, w := range writes {
		if w.Op == store.CreateDevice && w.MaxDevices > 0 {
			return w.MaxDevices
		}
	}
	return 0
}

// View renders an execution: the running step's view, or the end result.
func (r *Runner) View(ctx context.Context, env *Environment, x *Execution, selfURL string) (View, error) {
	if x.Ended() {
		props := map[string]any{}
		if len(x.Results) > 0 {
			props["steps"] = x.Results
		}
		if x.Error != nil {
			props["error"] = x.Error
		}
		return View{Status: x.Status, Properties: props, Actions: []string{}}, nil
	}
	st, ok := r.steps.Lookup(x.StepType)
	if !ok {
		return View{Status: StatusFailed, Properties: map[string]any{}, Actions: []string{}}, nil
	}
	sc := r.stepContext(env, x)
	sc.SelfURL = selfURL
	v, err := st.View(ctx, sc)
	if err != nil {
		return View{}, err
	}
	// The steps that have ended already are part of the picture a client
	// polls (a second step's page can say "your e-mail is enrolled").
	if len(x.Results) > 0 {
		if v.Properties == nil {
			v.Properties = map[string]any{}
		}
		v.Properties["steps"] = x.Results
	}
	return v, nil
}

// Resource returns a read-only resource of the running step.
func (r *Runner) Resource(ctx context.Context, env *Environment, id, name string) (string, []byte, error) {
	x, err := r.Get(ctx, env, id)
	if err != nil {
		return "", nil, err
	}
	st, _ := r.steps.Lookup(x.StepType)
	rp, ok := st.(ResourceProvider)
	if x.Ended() || !ok {
		return "", nil, NotFound(name)
	}
	return rp.Resource(ctx, r.stepContext(env, x), name)
}

func (r *Runner) stepContext(env *Environment, x *Execution) *StepContext {
	return &StepContext{Env: env, ExecutionID: x.ID, StepID: x.StepID, Config: x.StepConfig,
		Input: x.StepInput, State: x.State, Now: r.now()}
}

// enterStep makes stepID the current step and runs its Begin. inputPrefix
// names where input problems are reported: "inputs." when the client's
// start request is at fault (a 400), "" for a later step (the flow fails).
func (r *Runner) enterStep(ctx context.Context, env *Environment, x *Execution, flow *Flow, stepID string, after *[]stepEffect, inputPrefix string) error {
	sd, ok := flow.StepDefinitions[stepID]
	if !ok {
		return r.fail(x, fmt.Sprintf("flow %s has no step %q", flow.ID, stepID))
	}
	st, ok := r.steps.Lookup(sd.Type)
	if !ok {
		return r.fail(x, fmt.Sprintf("step %s has unknown type %q", stepID, sd.Type))
	}
	input := resolveInput(sd.Input, x.Inputs, x.Results)
	details := st.ValidateInput(input)
	if uid, ok := Lookup(input, "user", "id").(string); ok && uid != x.UserID {
		// An execution serves one user: its records live in that user's
		// partition, so a step may not switch to another user.
		details = append(details, ErrorDetail{Code: DetailInvalidValue, Target: "user.id",
			Message: "a step's user.id must be the execution's user (inputs.user.id)"})
	}
	if len(details) > 0 {
		if inputPrefix != "" {
			for i := range details {
				details[i].Target = inputPrefix + details[i].Target
			}
			return Invalid(details...)
		}
		return r.fail(x, fmt.Sprintf("step %s: input %s: %s", stepID, details[0].Target, details[0].Message))
	}
	x.StepID, x.StepType, x.StepInput, x.StepConfig, x.Outlets, x.State = stepID, sd.Type, input, sd.Configuration, sd.Outlets, nil
	out, err := st.Begin(ctx, r.stepContext(env, x))
	if err != nil {
		return err
	}
	*after = append(*after, bindEffects(stepID, out.After)...)
	return r.apply(ctx, env, x, out, after)
}

// apply stores a step outcome in the execution and, when the step ended,
// follows its outlet to the next step or ends the flow COMPLETED.
func (r *Runner) apply(ctx context.Context, env *Environment, x *Execution, out *Outcome, after *[]stepEffect) error {
	if out.Result == "" {
		state, err := json.Marshal(out.State)
		if err != nil {
			return AsError(err)
		}
		x.State = state
		return nil
	}
	if x.Results == nil {
		x.Results = map[string]StepResult{}
	}
	outputs, err := asJSON(out.Outputs)
	if err != nil {
		return AsError(fmt.Errorf("step %s: outputs: %w", x.StepID, err))
	}
	x.Results[x.StepID] = StepResult{Type: x.StepType, Result: out.Result, Outputs: outputs}
	next := x.Outlets[out.Result].Next
	if next == "" {
		x.StepID, x.StepType, x.StepInput, x.StepConfig, x.Outlets, x.State = "", "", nil, nil, nil, nil
		x.Status = StatusCompleted
		return nil
	}
	flow, err := r.GetFlow(ctx, env, x.FlowID)
	if err != nil {
		if AsError(err).Status == http.StatusNotFound {
			return r.fail(x, fmt.Sprintf("flow %s was deleted while running", x.FlowID))
		}
		return err
	}
	return r.enterStep(ctx, env, x, flow, next, after, "")
}

// asJSON gives outputs the plain JSON types (string, float64, map, slice)
// they have once the execution is saved and loaded again, so the next step
// sees the same values whether it starts in this request or a later one (a
// step may return typed values such as mfa.DeviceType).
func asJSON(m map[string]any) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// fail ends the execution FAILED; the reason is shown to the client.
func (r *Runner) fail(x *Execution, reason string) error {
	x.StepID, x.StepType, x.StepInput, x.StepConfig, x.Outlets, x.State = "", "", nil, nil, nil, nil
	x.Status = StatusFailed
	x.Error = &ErrorDetail{Code: "FLOW_FAILED", Message: reason}
	return nil
}

// storeError maps store errors onto API errors.
func storeError(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NotFound(what)
	case errors.Is(err, store.ErrConflict):
		return Conflict()
	case errors.Is(err, store.ErrExists):
		return &Error{Status: http.StatusConflict, Code: CodeUniquenessViolation, Message: what + " already exists."}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return Unavailable(err)
	}
	return AsError(err)
}

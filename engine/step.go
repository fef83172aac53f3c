package engine

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/store"
)

// StepType is one kind of step (MFA_DEVICE_ENROLLMENT, ...). It is
// stateless: everything about one execution comes in a StepContext, and
// what changes goes out in an Outcome that the runner saves.
type StepType interface {
	// Name is the `type` flow definitions use.
	Name() string
	// Results lists the results the step can end with (outlet names).
	Results() []string
	// ValidateConfig checks a step's configuration when a flow is saved;
	// detail targets are relative to the configuration.
	ValidateConfig(env *Environment, config json.RawMessage) []ErrorDetail
	// ValidateInput checks the resolved inputs when the step begins;
	// detail targets are relative to the inputs.
	ValidateInput(input map[string]any) []ErrorDetail
	// Begin returns the step's first state.
	Begin(ctx context.Context, sc *StepContext) (*Outcome, error)
	// Act performs an action. An error means nothing is saved.
	Act(ctx context.Context, sc *StepContext, action actions.Action) (*Outcome, error)
	// View renders the current state for the client. It may read the
	// store (what the state offers can live there); an error is the
	// request's (a 503 when the store is down).
	View(ctx context.Context, sc *StepContext) (View, error)
}

// StepContext is everything a step may know about the execution it runs in.
type StepContext struct {
	Env         *Environment
	ExecutionID string
	StepID      string
	Config      json.RawMessage
	Input       map[string]any
	State       json.RawMessage // the step's own state, as it last saved it
	Now         time.Time
	SelfURL     string // the execution's URL, for links in a View ("" outside HTTP)
}

// ResourceProvider is implemented by step types that serve extra read-only
// resources under the execution URL (the TOTP QR code image).
type ResourceProvider interface {
	// ResourceNames lists the names it serves, each a path segment under
	// the execution URL ("qrcode.png").
	ResourceNames() []string
	Resource(ctx context.Context, sc *StepContext, name string) (contentType string, body []byte, err error)
}

// Outcome is what an action (or Begin) produced.
type Outcome struct {
	// State is the step's new private state (marshalled by the runner).
	State any
	// Result ends the step when set ("ENROLLED", "SKIPPED"); Outputs are
	// then its outputs.
	Result  string
	Outputs map[string]any
	// Writes go to the registry of the execution's user atomically with
	// the execution (store.Commit): the device an enrollment adds, within
	// the user's device limit.
	Writes []store.Write
	// After runs once the new state is saved, never before: sending a
	// passcode for a state that failed to save would be a lie.
	After []Effect
	// Err is returned to the client after the state is saved: a wrong
	// passcode is a 400, yet the failed attempt must still be counted.
	Err *Error
	// OnConflict, for an Outcome with Err, records the refusal on the
	// execution as it is when another request changed it first; the client
	// gets Err either way.
	OnConflict Followup
}

// Effect is a side effect of an action (sending a passcode). It runs after
// the action's state is saved, with a context that outlives the client's
// request, and may return a Followup to record how it went.
type Effect func(ctx context.Context) Followup

// Followup records the result of an effect in the step's state: a passcode
// that could not be delivered. It is applied to the execution as it is when
// the effect ends, which may be later than the action (a concurrent action
// may have moved it on), so it must check that the state is still the one it
// is about; it returns changed=false when there is nothing to record.
type Followup func(sc *StepContext) (state any, changed bool, err error)

// View is a state as the client sees it: the flow status, its properties
// and the actions allowed now (derived from the step's state machine).
type View struct {
	Status     string
	Properties map[string]any
	Actions    []string
	// ChangesAt is when the view changes by itself, with no write (a
	// pairing key expires): a long poll wakes then. Zero: never.
	ChangesAt time.Time
}

type baseURLKey struct{}

// WithBaseURL tells the steps of a request the public base URL the client
// called (a pairing URI names the server).
func WithBaseURL(ctx context.Context, base string) context.Context {
	return context.WithValue(ctx, baseURLKey{}, base)
}

// BaseURL is the request's public base URL ("" outside HTTP).
func BaseURL(ctx context.Context) string {
	s, _ := ctx.Value(baseURLKey{}).(string)
	return s
}

// StepRegistry holds the step types a node knows.
type StepRegistry struct{ types map[string]StepType }

// NewStepRegistry registers the given types.
func NewStepRegistry(types ...StepType) *StepRegistry {
	r := &StepRegistry{types: map[string]StepType{}}
	for _, t := range types {
		r.types[t.Name()] = t
	}
	return r
}

// Lookup finds a step type by name.
func (r *StepRegistry) Lookup(name string) (StepType, bool) {
	t, ok := r.types[name]
	return t, ok
}

// ResourceNames lists the resource names the step types serve, sorted and
// without repeats.
func (r *StepRegistry) ResourceNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range r.types {
		if rp, ok := t.(ResourceProvider); ok {
			for _, n := range rp.ResourceNames() {
				if !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// Names lists the registered type names, sorted.
func (r *StepRegistry) Names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/enrollflow/enrollflow/store"
)

// DefaultEffectWait bounds how long a request waits for its effects (the
// passcode delivery) before answering.
const DefaultEffectWait = 3 * time.Second

// amendAttempts bounds the compare-and-set retries of a Followup: each
// conflict means another action was saved in between, and there are only so
// many a client makes.
const amendAttempts = 5

// stepEffect is an effect with the step that produced it: its Followup
// is about that step, and must not be applied to the next one when the
// action also moved the execution on.
type stepEffect struct {
	stepID string
	effect Effect
}

func bindEffects(stepID string, effects []Effect) []stepEffect {
	out := make([]stepEffect, len(effects))
	for i, e := range effects {
		out[i] = stepEffect{stepID: stepID, effect: e}
	}
	return out
}

// runEffects runs an action's effects after its state is saved and records
// their Followups. The request waits for them at most effectWait: a send that
// takes longer goes on in the background and its Followup lands in the
// execution for the client's next poll. It returns the execution as the
// client should see it now.
func (r *Runner) runEffects(ctx context.Context, env *Environment, x *Execution, effects []stepEffect) *Execution {
	if len(effects) == 0 {
		return x
	}
	done := make(chan *Execution, 1)
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		// The client may hang up; the delivery it asked for must not be
		// cut short with its request.
		bg := context.WithoutCancel(ctx)
		latest := x
		for _, e := range effects {
			followup := r.runEffect(bg, x.ID, e.effect)
			if followup == nil {
				continue
			}
			amended, err := r.amend(bg, env, x.ID, e.stepID, followup)
			if err != nil {
				r.log.Error().Err(err).Str("execution", LogID(x.ID)).Msg("cannot record the result of a side effect")
				continue
			}
			if amended != nil {
				latest = amended
			}
		}
		done <- latest
	}()
	wait := time.NewTimer(r.effectWait)
	defer wait.Stop()
	select {
	case latest := <-done:
		return latest
	case <-wait.C:
	case <-ctx.Done():
	}
	return x
}

// runEffect runs one effect. A panic in it (a channel's bug) is logged
// and ends that effect only: it runs outside any request, where nothing
// else would recover it, and must not take the node down.
func (r *Runner) runEffect(ctx context.Context, executionID string, effect Effect) (followup Followup) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error().Str("execution", LogID(executionID)).Str("panic", fmt.Sprint(p)).Msg("a side effect panicked")
			followup = nil
		}
	}()
	return effect(ctx)
}

// amend applies a Followup to the execution's current version, with
// compare-and-set, trying again when a concurrent action got there first.
// It returns nil when there was nothing to change: the execution is gone,
// ended or in another step, or the Followup found its state moved on.
func (r *Runner) amend(ctx context.Context, env *Environment, id, stepID string, followup Followup) (*Execution, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for range amendAttempts {
		x, err := r.Get(ctx, env, id)
		if e := AsError(err); err != nil && e.Code == CodeNotFound {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if x.Ended() || x.StepID != stepID {
			return nil, nil
		}
		state, changed, err := followup(r.stepContext(env, x))
		if err != nil || !changed {
			return nil, err
		}
		if x.State, err = json.Marshal(state); err != nil {
			return nil, err
		}
		// Not the client's doing: the inactivity expiry stays as it was.
		x.Version++
		data, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		err = r.store.UpdateExecution(ctx, store.Execution{EnvID: env.ID, ID: x.ID, Version: x.Version, ExpiresAt: x.ExpiresAt, Data: data})
		switch {
		case err == nil:
			return x, nil
		case errors.Is(err, store.ErrConflict):
			continue
		case errors.Is(err, store.ErrNotFound):
			return nil, nil
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("execution %s changed %d times while recording a side effect", LogID(id), amendAttempts)
}

// Wait blocks until the effects still running in the background have ended
// (a node shutting down lets its last deliveries finish) or ctx is done.
func (r *Runner) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { r.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/enrollflow/enrollflow/store"
)

// GetFlow loads one flow definition.
func (r *Runner) GetFlow(ctx context.Context, env *Environment, id string) (*Flow, error) {
	rec, err := r.store.GetFlow(ctx, env.ID, id)
	if err != nil {
		return nil, storeError(err, "flow")
	}
	f := &Flow{}
	if err := json.Unmarshal(rec.Data, f); err != nil {
		return nil, AsError(fmt.Errorf("decode flow %s: %w", id, err))
	}
	return f, nil
}

// ListFlows lists an environment's flows by id.
func (r *Runner) ListFlows(ctx context.Context, env *Environment) ([]*Flow, error) {
	recs, err := r.store.ListFlows(ctx, env.ID)
	if err != nil {
		return nil, storeError(err, "flows")
	}
	out := make([]*Flow, 0, len(recs))
	for _, rec := range recs {
		f := &Flow{}
		if err := json.Unmarshal(rec.Data, f); err != nil {
			return nil, AsError(fmt.Errorf("decode flow %s: %w", rec.ID, err))
		}
		out = append(out, f)
	}
	return out, nil
}

// SaveFlow validates and stores a flow. With onlyIfAbsent an existing flow
// is left alone (used to seed configured flows on start); otherwise it is
// replaced. It reports whether the flow was created.
func (r *Runner) SaveFlow(ctx context.Context, env *Environment, f *Flow, onlyIfAbsent bool) (bool, error) {
	if err := f.Validate(env, r.steps); err != nil {
		return false, err
	}
	now := r.now().UTC()
	if f.CreatedAt.IsZero() {
		f.CreatedAt = now
	}
	f.UpdatedAt = now
	data, err := json.Marshal(f)
	if err != nil {
		return false, AsError(err)
	}
	created, err := r.store.PutFlow(ctx, store.Flow{EnvID: env.ID, ID: f.ID, Data: data}, onlyIfAbsent)
	if err != nil {
		return false, storeError(err, "flow")
	}
	return created, nil
}

// DeleteFlow removes a flow; running executions finish their current step
// and then fail if they need the deleted definition.
func (r *Runner) DeleteFlow(ctx context.Context, env *Environment, id string) error {
	if err := r.store.DeleteFlow(ctx, env.ID, id); err != nil {
		return storeError(err, "flow")
	}
	return nil
}

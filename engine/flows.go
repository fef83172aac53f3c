package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/enrollflow/enrollflow/store"
)

// ConfigureFlows validates the flows of an environment's configuration and
// makes them available without writing them anywhere: they are
// configuration, like environments, identical on every node. A flow saved
// through the API with the same id overrides its configured definition;
// deleting the override restores it. Because configured flows never depend
// on the store, a Redis that lost its data still runs them.
func (r *Runner) ConfigureFlows(env *Environment, flows []Flow) error {
	byID := map[string]*Flow{}
	for i := range flows {
		f := flows[i]
		if err := f.Validate(env, r.steps); err != nil {
			return fmt.Errorf("flows[%d] (%s): %w", i, f.ID, err)
		}
		if _, dup := byID[f.ID]; dup {
			return fmt.Errorf("flows[%d].id: %q is used twice", i, f.ID)
		}
		byID[f.ID] = &f
	}
	if r.configured == nil {
		r.configured = map[string]map[string]*Flow{}
	}
	r.configured[env.ID] = byID
	return nil
}

// configuredFlow returns a copy of a configured flow.
func (r *Runner) configuredFlow(envID, id string) (*Flow, bool) {
	f, ok := r.configured[envID][id]
	if !ok {
		return nil, false
	}
	c := *f
	return &c, true
}

// GetFlow loads one flow definition: the one saved through the API, else
// the configured one.
func (r *Runner) GetFlow(ctx context.Context, env *Environment, id string) (*Flow, error) {
	rec, err := r.store.GetDocument(ctx, env.ID, store.KindFlow, id)
	if errors.Is(err, store.ErrNotFound) {
		if f, ok := r.configuredFlow(env.ID, id); ok {
			return f, nil
		}
	}
	if err != nil {
		return nil, storeError(err, "flow")
	}
	f := &Flow{}
	if err := json.Unmarshal(rec.Data, f); err != nil {
		return nil, AsError(fmt.Errorf("decode flow %s: %w", id, err))
	}
	return f, nil
}

// ListFlows lists an environment's flows by id, saved ones over
// configured ones.
func (r *Runner) ListFlows(ctx context.Context, env *Environment) ([]*Flow, error) {
	recs, err := r.store.ListDocuments(ctx, env.ID, store.KindFlow)
	if err != nil {
		return nil, storeError(err, "flows")
	}
	byID := map[string]*Flow{}
	for id := range r.configured[env.ID] {
		byID[id], _ = r.configuredFlow(env.ID, id)
	}
	for _, rec := range recs {
		f := &Flow{}
		if err := json.Unmarshal(rec.Data, f); err != nil {
			return nil, AsError(fmt.Errorf("decode flow %s: %w", rec.ID, err))
		}
		byID[f.ID] = f
	}
	out := make([]*Flow, 0, len(byID))
	for _, id := range sortedKeys(byID) {
		out = append(out, byID[id])
	}
	return out, nil
}

// IsConfigured reports whether id is a flow of the environment's
// configuration.
func (r *Runner) IsConfigured(env *Environment, id string) bool {
	_, ok := r.configured[env.ID][id]
	return ok
}

// SaveFlow validates and stores a flow. With onlyIfAbsent an existing flow
// is left alone; otherwise it is replaced. It reports whether the flow was
// created in the store.
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
	created, err := r.store.PutDocument(ctx, store.Document{EnvID: env.ID, Kind: store.KindFlow, ID: f.ID, Data: data}, onlyIfAbsent)
	if err != nil {
		return false, storeError(err, "flow")
	}
	return created, nil
}

// DeleteFlow removes a saved flow; running executions finish their current
// step and then fail if they need the deleted definition. Deleting the
// override of a configured flow restores the configured definition; a
// configured flow itself cannot be deleted through the API.
func (r *Runner) DeleteFlow(ctx context.Context, env *Environment, id string) error {
	err := r.store.DeleteDocument(ctx, env.ID, store.KindFlow, id)
	if errors.Is(err, store.ErrNotFound) && r.IsConfigured(env, id) {
		return &Error{Status: http.StatusConflict, Code: CodeActionNotAllowed,
			Message: "Flow " + id + " is defined in the configuration file; remove it there."}
	}
	if err != nil {
		return storeError(err, "flow")
	}
	return nil
}

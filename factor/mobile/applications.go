package mobile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// Sources of an application, as the management API shows them.
const (
	SourceConfiguration = "configuration"
	SourceAPI           = "api"
)

// Application is an application and where it comes from.
type Application struct {
	mfa.Application
	Source string `json:"source"`
}

// Applications are an environment's mobile applications: the configured
// ones, and those saved through the management API (store documents,
// kind applications), which override a configured one of the same id.
// Every enrollment start lists them, so a node reuses what it read for
// CacheTTL: an application saved through another node is seen within it,
// one saved through this node at once.
type Applications struct {
	store  store.Documents
	recent *store.RecentDocuments
}

// CacheTTL is how long a node reuses the applications saved through the
// API (as dispatch does templates and channels).
const CacheTTL = 2 * time.Second

// NewApplications returns the catalog over st; ttl 0 is CacheTTL, a
// negative one reads on every call.
func NewApplications(st store.Documents, ttl time.Duration) *Applications {
	if ttl == 0 {
		ttl = CacheTTL
	}
	return &Applications{store: st, recent: &store.RecentDocuments{Store: st, TTL: ttl}}
}

// List returns the applications by id.
func (c *Applications) List(ctx context.Context, env *engine.Environment) ([]Application, error) {
	byID := map[string]Application{}
	for _, a := range env.Applications {
		byID[a.ID] = Application{Application: a, Source: SourceConfiguration}
	}
	docs, err := c.recent.List(ctx, env.ID, store.KindApplication)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	for _, d := range docs {
		a, err := decodeApplication(d)
		if err != nil {
			return nil, err
		}
		byID[a.ID] = Application{Application: a, Source: SourceAPI}
	}
	out := make([]Application, 0, len(byID))
	for _, a := range byID {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func decodeApplication(d store.Document) (mfa.Application, error) {
	var a mfa.Application
	if err := json.Unmarshal(d.Data, &a); err != nil {
		return a, engine.AsError(fmt.Errorf("application %s: %w", d.ID, err))
	}
	return a, nil
}

// Get returns one application (404 when there is none of that id).
func (c *Applications) Get(ctx context.Context, env *engine.Environment, id string) (Application, error) {
	all, err := c.List(ctx, env)
	if err != nil {
		return Application{}, err
	}
	for _, a := range all {
		if a.ID == id {
			return a, nil
		}
	}
	return Application{}, engine.NotFound("application " + id)
}

// Allowed are the applications the policy lets pair that exist, in the
// policy's order.
func (c *Applications) Allowed(ctx context.Context, env *engine.Environment, policy *mfa.Policy) ([]mfa.Application, error) {
	out := []mfa.Application{}
	if !policy.Pairable(mfa.Mobile) {
		return out, nil
	}
	all, err := c.List(ctx, env)
	if err != nil {
		return nil, err
	}
	for _, id := range policy.Mobile.Applications {
		for _, a := range all {
			if a.ID == id {
				out = append(out, a.Application)
			}
		}
	}
	return out, nil
}

// Save creates or replaces an application saved through the API; the
// error names the field. created is false when one was replaced.
func (c *Applications) Save(ctx context.Context, env *engine.Environment, a mfa.Application) (bool, error) {
	a.ApplyDefaults()
	if err := a.Validate(); err != nil {
		field, msg, _ := strings.Cut(err.Error(), ": ")
		return false, engine.InvalidField(field, engine.DetailInvalidValue, msg)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return false, engine.AsError(err)
	}
	_, getErr := c.store.GetDocument(ctx, env.ID, store.KindApplication, a.ID)
	if getErr != nil && !errors.Is(getErr, store.ErrNotFound) {
		return false, engine.Unavailable(getErr)
	}
	defer c.recent.Forget(env.ID, store.KindApplication)
	if _, err := c.store.PutDocument(ctx, store.Document{EnvID: env.ID, Kind: store.KindApplication, ID: a.ID, Data: data}, false); err != nil {
		return false, engine.Unavailable(err)
	}
	_, configured := env.Application(a.ID)
	return getErr != nil && !configured, nil
}

// Delete removes an application saved through the API (a configured one
// of the same id shows again); a configured one cannot be deleted (409).
func (c *Applications) Delete(ctx context.Context, env *engine.Environment, id string) error {
	_, err := c.store.GetDocument(ctx, env.ID, store.KindApplication, id)
	switch {
	case err == nil:
		defer c.recent.Forget(env.ID, store.KindApplication)
		if err := c.store.DeleteDocument(ctx, env.ID, store.KindApplication, id); err != nil {
			return engine.Unavailable(err)
		}
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return engine.Unavailable(err)
	}
	if _, ok := env.Application(id); ok {
		return &engine.Error{Status: http.StatusConflict, Code: engine.CodeActionNotAllowed,
			Message: "Application " + id + " is in the configuration file; it can be overridden (PUT) but not deleted here."}
	}
	return engine.NotFound("application " + id)
}

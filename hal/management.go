package hal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/registry"
	"github.com/enrollflow/enrollflow/regulation"
)

// collection renders a HAL collection with its items under _embedded.
func (s *Server) collection(r *http.Request, name string, items any, count int) map[string]any {
	return map[string]any{
		"_links":    map[string]link{"self": {Href: s.baseURL(r) + r.URL.Path}},
		"_embedded": map[string]any{name: items},
		"count":     count,
		"size":      count,
	}
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	flows, err := s.cfg.Runner.ListFlows(r.Context(), env)
	writeCollection(s, w, r, "flows", flows, err, func(f *engine.Flow) map[string]any { return s.flowBody(r, env, f) })
}

// writeResource answers a read of one resource: the error, or the value
// rendered by body.
func writeResource[T any](s *Server, w http.ResponseWriter, r *http.Request, v T, err error, body func(T) map[string]any) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, body(v))
}

// writeCollection answers a list request: the error, or the items rendered
// by body as a HAL collection called name.
func writeCollection[T any](s *Server, w http.ResponseWriter, r *http.Request, name string, list []T, err error, body func(T) map[string]any) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, 0, len(list))
	for _, x := range list {
		items = append(items, body(x))
	}
	writeJSON(w, http.StatusOK, halJSON, s.collection(r, name, items, len(items)))
}

// toMap turns a value into its JSON object, for adding _links.
func toMap(v any) map[string]any {
	raw, _ := json.Marshal(v)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return body
}

func (s *Server) flowBody(r *http.Request, env *engine.Environment, f *engine.Flow) map[string]any {
	body := toMap(f)
	body["_links"] = map[string]link{"self": {Href: s.baseURL(r) + "/environments/" + env.ID + "/flows/" + f.ID}}
	return body
}

func (s *Server) getFlow(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	f, err := s.cfg.Runner.GetFlow(r.Context(), env, mux.Vars(r)["flowID"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, s.flowBody(r, env, f))
}

// createFlow: POST creates; an existing id is a 409.
func (s *Server) createFlow(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	var f engine.Flow
	if err := decodeBody(r, &f); err != nil {
		s.writeError(w, r, err)
		return
	}
	f.CreatedAt = time.Time{}
	// A configured flow always exists, saved or not: PUT overrides it.
	created, err := false, error(nil)
	if !s.cfg.Runner.IsConfigured(env, f.ID) {
		created, err = s.cfg.Runner.SaveFlow(r.Context(), env, &f, true)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !created {
		s.writeError(w, r, &engine.Error{Status: http.StatusConflict, Code: engine.CodeUniquenessViolation,
			Message: "A flow with id " + f.ID + " already exists; PUT it to replace it.",
			Details: []engine.ErrorDetail{{Code: engine.DetailInvalidValue, Target: "id", Message: "is already taken"}}})
		return
	}
	w.Header().Set("Location", s.baseURL(r)+"/environments/"+env.ID+"/flows/"+f.ID)
	writeJSON(w, http.StatusCreated, halJSON, s.flowBody(r, env, &f))
}

// replaceFlow: PUT creates or replaces; the id in the body, when given,
// must match the path.
func (s *Server) replaceFlow(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	id := mux.Vars(r)["flowID"]
	var f engine.Flow
	if err := decodeBody(r, &f); err != nil {
		s.writeError(w, r, err)
		return
	}
	if f.ID == "" {
		f.ID = id
	}
	if f.ID != id {
		s.writeError(w, r, engine.InvalidField("id", engine.DetailInvalidValue, "must match the flow id in the path"))
		return
	}
	f.CreatedAt = time.Time{}
	if old, err := s.cfg.Runner.GetFlow(r.Context(), env, id); err == nil {
		f.CreatedAt = old.CreatedAt
	}
	created, err := s.cfg.Runner.SaveFlow(r.Context(), env, &f, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, halJSON, s.flowBody(r, env, &f))
}

func (s *Server) deleteFlow(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Runner.DeleteFlow(r.Context(), env, mux.Vars(r)["flowID"]); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) policyBody(r *http.Request, env *engine.Environment, p *mfa.Policy) map[string]any {
	body := toMap(p)
	body["_links"] = map[string]link{"self": {Href: s.baseURL(r) + "/environments/" + env.ID + "/deviceAuthenticationPolicies/" + p.ID}}
	return body
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	items := []map[string]any{}
	for _, p := range env.SortedPolicies() {
		items = append(items, s.policyBody(r, env, p))
	}
	writeJSON(w, http.StatusOK, halJSON, s.collection(r, "deviceAuthenticationPolicies", items, len(items)))
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	p, found := env.Policy(mux.Vars(r)["policyID"])
	if !found {
		s.writeError(w, r, engine.NotFound("device authentication policy"))
		return
	}
	writeJSON(w, http.StatusOK, halJSON, s.policyBody(r, env, p))
}

func (s *Server) deviceBody(r *http.Request, env *engine.Environment, userID string, d registry.Entry) map[string]any {
	body := d.PublicView()
	body["user"] = map[string]string{"id": userID}
	body["_links"] = map[string]link{"self": {Href: s.baseURL(r) + "/environments/" + env.ID + "/users/" + userID + "/devices/" + d.ID}}
	return body
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	userID := mux.Vars(r)["userID"]
	devices, err := s.cfg.Registry.List(r.Context(), env.ID, userID)
	writeCollection(s, w, r, "devices", devices, err, func(d registry.Entry) map[string]any { return s.deviceBody(r, env, userID, d) })
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	v := mux.Vars(r)
	d, err := s.cfg.Registry.Get(r.Context(), env.ID, v["userID"], v["deviceID"])
	writeResource(s, w, r, d, err, func(d registry.Entry) map[string]any { return s.deviceBody(r, env, v["userID"], d) })
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	v := mux.Vars(r)
	if err := s.cfg.Registry.Delete(r.Context(), env.ID, v["userID"], v["deviceID"]); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getLockout shows a user's attempts towards mfaSettings.lockout and the
// lockout in force, if any.
func (s *Server) getLockout(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	userID := mux.Vars(r)["userID"]
	l, err := s.cfg.Regulator.Lockout(r.Context(), env, userID, s.cfg.Runner.Now())
	writeResource(s, w, r, l, err, func(l regulation.Lockout) map[string]any {
		body := map[string]any{
			"user":     map[string]string{"id": userID},
			"locked":   !l.LockedUntil.IsZero(),
			"attempts": l.Attempts,
			"limit":    env.MFASettings.Lockout.FailureCount,
			"_links":   map[string]link{"self": {Href: s.baseURL(r) + r.URL.Path}},
		}
		if !l.LockedUntil.IsZero() {
			body["lockedUntil"] = l.LockedUntil.UTC()
		}
		return body
	})
}

// liftLockout clears a user's attempts and lockout (a help desk that
// confirmed who the user is).
func (s *Server) liftLockout(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	userID := mux.Vars(r)["userID"]
	if err := s.cfg.Regulator.Lift(r.Context(), env, userID); err != nil {
		s.writeError(w, r, err)
		return
	}
	// The user id is personal data: the log names it by a short hash,
	// enough to find the lift again from the id.
	sum := sha256.Sum256([]byte(env.ID + "\x00" + userID))
	s.cfg.Log.Info().Str("env", env.ID).Str("audit", "lockout lifted").Str("user_hash", hex.EncodeToString(sum[:8])).
		Str("request_id", requestID(r)).Msg("management change")
	w.WriteHeader(http.StatusNoContent)
}

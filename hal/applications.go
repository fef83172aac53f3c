package hal

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor/mobile"
	"github.com/enrollflow/enrollflow/mfa"
)

// The mobile applications of an environment (management API): the
// configured ones, and those saved here, which override a configured one
// of the same id.

func (s *Server) applicationRoutes(m *mux.Router) {
	s.route(m, "/applications", methods{http.MethodGet: s.listApplications})
	s.route(m, "/applications/{applicationID}", methods{http.MethodGet: s.getApplication,
		http.MethodPut: s.putApplication, http.MethodDelete: s.deleteApplication})
}

func (s *Server) applicationBody(r *http.Request, env *engine.Environment, a mobile.Application) map[string]any {
	body := toMap(a)
	body["_links"] = map[string]link{"self": {Href: s.baseURL(r) + "/environments/" + env.ID + "/applications/" + a.ID}}
	return body
}

func (s *Server) listApplications(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	apps, err := s.cfg.Applications.List(r.Context(), env)
	writeCollection(s, w, r, "applications", apps, err, func(a mobile.Application) map[string]any { return s.applicationBody(r, env, a) })
}

func (s *Server) getApplication(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	a, err := s.cfg.Applications.Get(r.Context(), env, mux.Vars(r)["applicationID"])
	writeResource(s, w, r, a, err, func(a mobile.Application) map[string]any { return s.applicationBody(r, env, a) })
}

// putApplication creates (201) or replaces (200) an application; the id
// in the body, when given, must be the path's.
func (s *Server) putApplication(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	id := mux.Vars(r)["applicationID"]
	var a mfa.Application
	if err := decodeBody(r, &a); err != nil {
		s.writeError(w, r, err)
		return
	}
	if a.ID == "" {
		a.ID = id
	}
	if a.ID != id {
		s.writeError(w, r, engine.InvalidField("id", engine.DetailInvalidValue, "must match the application id in the path"))
		return
	}
	created, err := s.cfg.Applications.Save(r.Context(), env, a)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	saved, err := s.cfg.Applications.Get(r.Context(), env, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", s.baseURL(r)+"/environments/"+env.ID+"/applications/"+id)
	}
	writeJSON(w, status, halJSON, s.applicationBody(r, env, saved))
}

func (s *Server) deleteApplication(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	if err := s.cfg.Applications.Delete(r.Context(), env, mux.Vars(r)["applicationID"]); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

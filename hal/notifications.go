package hal

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/engine"
)

// The notification management API: device-pairing template contents and
// delivery channels of an environment. The dispatcher decides; these
// handlers decode, check the path against the body and render.

func (s *Server) notificationRoutes(m *mux.Router) {
	s.route(m, "/templates", methods{http.MethodGet: s.listTemplates})
	s.route(m, "/templates/{template}", methods{http.MethodGet: s.getTemplate})
	s.route(m, "/templates/{template}/contents", methods{http.MethodGet: s.listTemplateContents})
	content := methods{http.MethodGet: s.getTemplateContent, http.MethodPut: s.putTemplateContent, http.MethodDelete: s.deleteTemplateContent}
	s.route(m, "/templates/{template}/contents/{method}/{locale}", content)
	s.route(m, "/templates/{template}/contents/{method}/{locale}/{variant}", content)
	s.route(m, "/channels", methods{http.MethodGet: s.listChannels})
	s.route(m, "/channels/{method}", methods{http.MethodGet: s.getChannel, http.MethodPut: s.putChannel, http.MethodDelete: s.deleteChannel})
}

func (s *Server) templatesURL(r *http.Request, env *engine.Environment) string {
	return s.baseURL(r) + "/environments/" + env.ID + "/templates"
}

func (s *Server) templateBody(r *http.Request, env *engine.Environment) map[string]any {
	self := s.templatesURL(r, env) + "/" + templates.DevicePairing
	return map[string]any{
		"name":            templates.DevicePairing,
		"deliveryMethods": dispatch.Methods,
		"_links":          map[string]link{"self": {Href: self}, "contents": {Href: self + "/contents"}},
	}
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	items := []map[string]any{s.templateBody(r, env)}
	writeJSON(w, http.StatusOK, halJSON, s.collection(r, "templates", items, len(items)))
}

// knownTemplate writes a 404 for any template but device_pairing.
func (s *Server) knownTemplate(w http.ResponseWriter, r *http.Request) bool {
	if mux.Vars(r)["template"] != templates.DevicePairing {
		s.writeError(w, r, engine.NotFound("template"))
		return false
	}
	return true
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok || !s.knownTemplate(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, halJSON, s.templateBody(r, env))
}

func (s *Server) contentBody(r *http.Request, env *engine.Environment, e dispatch.TemplateEntry) map[string]any {
	body := toMap(e)
	k := e.Key()
	path := string(k.Method) + "/" + k.Locale
	if k.Variant != "" {
		path += "/" + k.Variant
	}
	body["_links"] = map[string]link{"self": {Href: s.templatesURL(r, env) + "/" + templates.DevicePairing + "/contents/" + path}}
	return body
}

func (s *Server) listTemplateContents(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok || !s.knownTemplate(w, r) {
		return
	}
	entries, err := s.cfg.Dispatcher.TemplateContents(r.Context(), env.ID)
	writeCollection(s, w, r, "contents", entries, err, func(e dispatch.TemplateEntry) map[string]any { return s.contentBody(r, env, e) })
}

// contentKey reads method, locale and variant from the path. A method
// other than EMAIL, SMS or VOICE names no resource (404); a locale that is
// not a language tag is a malformed request (400 on "locale"), whatever
// the verb.
func contentKey(r *http.Request) (templates.Key, error) {
	v := mux.Vars(r)
	method := delivery.Method(strings.ToUpper(v["method"]))
	if method != delivery.Email && method != delivery.SMS && method != delivery.Voice {
		return templates.Key{}, engine.NotFound("template content")
	}
	locale, ok := templates.CanonicalLocale(v["locale"])
	if !ok {
		return templates.Key{}, engine.InvalidField("locale", engine.DetailInvalidValue,
			"the path's locale must be a language tag such as en, es-ES or zh-Hant-TW")
	}
	return templates.Key{Method: method, Locale: locale, Variant: strings.ToLower(v["variant"])}, nil
}

func (s *Server) getTemplateContent(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok || !s.knownTemplate(w, r) {
		return
	}
	key, err := contentKey(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.cfg.Dispatcher.TemplateContent(r.Context(), env.ID, key)
	writeResource(s, w, r, e, err, func(e dispatch.TemplateEntry) map[string]any { return s.contentBody(r, env, e) })
}

// putTemplateContent creates or replaces the content at the path. The body
// may repeat the method, locale and variant; they must then match.
func (s *Server) putTemplateContent(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok || !s.knownTemplate(w, r) {
		return
	}
	key, err := contentKey(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var c templates.Content
	if err := decodeBody(r, &c); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := matchPath(&c, key); err != nil {
		s.writeError(w, r, err)
		return
	}
	created, err := s.cfg.Dispatcher.SaveTemplateContent(r.Context(), env.ID, c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.Normalize()
	writeJSON(w, status, halJSON, s.contentBody(r, env, dispatch.TemplateEntry{Content: c, Source: dispatch.SourceAPI}))
}

// matchPath fills the content's key from the path, refusing a body that
// names another.
func matchPath(c *templates.Content, key templates.Key) error {
	check := func(field, got, want string) error {
		if got != "" && !strings.EqualFold(got, want) {
			return engine.InvalidField(field, engine.DetailInvalidValue, "must match the path ("+want+") or be left out")
		}
		return nil
	}
	gotLocale := c.Locale
	if canon, ok := templates.CanonicalLocale(c.Locale); ok {
		gotLocale = canon
	}
	for _, err := range []error{
		check("deliveryMethod", string(c.Method), string(key.Method)),
		check("locale", gotLocale, key.Locale),
		check("variant", c.Variant, key.Variant),
	} {
		if err != nil {
			return err
		}
	}
	c.Method, c.Locale, c.Variant = key.Method, key.Locale, key.Variant
	return nil
}

func (s *Server) deleteTemplateContent(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok || !s.knownTemplate(w, r) {
		return
	}
	key, err := contentKey(r)
	if err == nil {
		err = s.cfg.Dispatcher.DeleteTemplateContent(r.Context(), env.ID, key)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) channelBody(r *http.Request, env *engine.Environment, e dispatch.ChannelEntry) map[string]any {
	body := toMap(e)
	body["_links"] = map[string]link{"self": {Href: s.baseURL(r) + "/environments/" + env.ID + "/channels/" + string(e.Method)}}
	return body
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	entries, err := s.cfg.Dispatcher.Channels(r.Context(), env.ID)
	writeCollection(s, w, r, "channels", entries, err, func(e dispatch.ChannelEntry) map[string]any { return s.channelBody(r, env, e) })
}

// channelMethod reads {method}: EMAIL, SMS or VOICE in any case.
func channelMethod(r *http.Request) (delivery.Method, error) {
	m := delivery.Method(strings.ToUpper(mux.Vars(r)["method"]))
	if m != delivery.Email && m != delivery.SMS && m != delivery.Voice {
		return "", engine.NotFound("channel")
	}
	return m, nil
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	method, err := channelMethod(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.cfg.Dispatcher.ChannelFor(r.Context(), env.ID, method)
	writeResource(s, w, r, e, err, func(e dispatch.ChannelEntry) map[string]any { return s.channelBody(r, env, e) })
}

func (s *Server) putChannel(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	method, err := channelMethod(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var ch dispatch.Channel
	if err := decodeBody(r, &ch); err != nil {
		s.writeError(w, r, err)
		return
	}
	created, err := s.cfg.Dispatcher.SaveChannel(r.Context(), env.ID, method, ch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, halJSON, s.channelBody(r, env, dispatch.ChannelEntry{Method: method, Channel: ch.Redacted(), Source: dispatch.SourceAPI}))
}

func (s *Server) deleteChannel(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	method, err := channelMethod(r)
	if err == nil {
		err = s.cfg.Dispatcher.DeleteChannel(r.Context(), env.ID, method)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

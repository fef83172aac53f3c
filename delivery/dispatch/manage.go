package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/store"
)

// lookupEnv reads the environment (a variable, so tests can replace it).
var lookupEnv = os.LookupEnv

// Sources of a template content or channel, as the API shows them.
const (
	SourceConfiguration = "configuration"
	SourceAPI           = "api"
)

// TemplateEntry is a template content as the management API lists it.
type TemplateEntry struct {
	templates.Content
	Source string `json:"source"`
}

// TemplateContents lists an environment's device-pairing contents, saved
// ones over configured ones, sorted by key.
func (d *Dispatcher) TemplateContents(ctx context.Context, envID string) ([]TemplateEntry, error) {
	saved, err := d.o.Store.ListDocuments(ctx, envID, store.KindTemplate)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	byKey := map[string]TemplateEntry{}
	for _, c := range d.o.Envs[envID].Templates {
		byKey[c.Key().String()] = TemplateEntry{Content: c, Source: SourceConfiguration}
	}
	for _, doc := range saved {
		var c templates.Content
		if err := json.Unmarshal(doc.Data, &c); err != nil {
			return nil, engine.AsError(err)
		}
		byKey[doc.ID] = TemplateEntry{Content: c, Source: SourceAPI}
	}
	out := make([]TemplateEntry, 0, len(byKey))
	for _, k := range sortedKeys(byKey) {
		out = append(out, byKey[k])
	}
	return out, nil
}

// TemplateContent returns one content.
func (d *Dispatcher) TemplateContent(ctx context.Context, envID string, key templates.Key) (TemplateEntry, error) {
	doc, err := d.o.Store.GetDocument(ctx, envID, store.KindTemplate, key.String())
	if err == nil {
		var c templates.Content
		if err := json.Unmarshal(doc.Data, &c); err != nil {
			return TemplateEntry{}, engine.AsError(err)
		}
		return TemplateEntry{Content: c, Source: SourceAPI}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return TemplateEntry{}, engine.Unavailable(err)
	}
	if c, ok := d.configuredContent(envID, key); ok {
		return TemplateEntry{Content: c, Source: SourceConfiguration}, nil
	}
	return TemplateEntry{}, engine.NotFound("template content")
}

func (d *Dispatcher) configuredContent(envID string, key templates.Key) (templates.Content, bool) {
	for _, c := range d.o.Envs[envID].Templates {
		if c.Key() == key {
			return c, true
		}
	}
	return templates.Content{}, false
}

// SaveTemplateContent validates and saves a content, replacing the one with
// the same method, locale and variant. It reports whether none existed
// before (configured or saved). A bad content changes nothing: the error
// lists every problem with its field.
func (d *Dispatcher) SaveTemplateContent(ctx context.Context, envID string, c templates.Content) (bool, error) {
	c.Normalize()
	if problems := c.Validate(); len(problems) > 0 {
		details := make([]engine.ErrorDetail, len(problems))
		for i, p := range problems {
			details[i] = engine.ErrorDetail{Code: p.Code, Target: p.Field, Message: p.Message}
		}
		return false, engine.Invalid(details...)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return false, engine.AsError(err)
	}
	created, err := d.o.Store.PutDocument(ctx, store.Document{EnvID: envID, Kind: store.KindTemplate, ID: c.Key().String(), Data: data}, false)
	d.forget(envID, store.KindTemplate)
	if err != nil {
		return false, engine.Unavailable(err)
	}
	if _, configured := d.configuredContent(envID, c.Key()); configured {
		created = false
	}
	d.audit("template content saved").Str("env", envID).Str("content", c.Key().String()).Send()
	return created, nil
}

// DeleteTemplateContent removes a saved content. Deleting the override of a
// configured content restores it; a configured content itself cannot be
// deleted through the API.
func (d *Dispatcher) DeleteTemplateContent(ctx context.Context, envID string, key templates.Key) error {
	err := d.o.Store.DeleteDocument(ctx, envID, store.KindTemplate, key.String())
	d.forget(envID, store.KindTemplate)
	if errors.Is(err, store.ErrNotFound) {
		if _, ok := d.configuredContent(envID, key); ok {
			return &engine.Error{Status: http.StatusConflict, Code: engine.CodeActionNotAllowed,
				Message: "Template content " + key.String() + " is defined in the configuration file; remove it there."}
		}
		return engine.NotFound("template content")
	}
	if err != nil {
		return engine.Unavailable(err)
	}
	d.audit("template content deleted").Str("env", envID).Str("content", key.String()).Send()
	return nil
}

// ChannelEntry is a channel as the management API shows it: without its
// credentials.
type ChannelEntry struct {
	Method delivery.Method `json:"deliveryMethod"`
	Channel
	Source string `json:"source"`
}

// Methods lists the delivery methods, in the order the API shows them.
var Methods = []delivery.Method{delivery.Email, delivery.SMS, delivery.Voice}

// Channels lists the environment's channels, saved over configured.
func (d *Dispatcher) Channels(ctx context.Context, envID string) ([]ChannelEntry, error) {
	out := []ChannelEntry{}
	for _, m := range Methods {
		e, err := d.ChannelFor(ctx, envID, m)
		if err == nil {
			out = append(out, e)
			continue
		}
		if apiErr, ok := errors.AsType[*engine.Error](err); ok && apiErr.Code == engine.CodeNotFound {
			continue // no channel for this method
		}
		return nil, err
	}
	return out, nil
}

// ChannelFor returns the environment's channel for one method.
func (d *Dispatcher) ChannelFor(ctx context.Context, envID string, method delivery.Method) (ChannelEntry, error) {
	ch, found, err := d.savedChannel(ctx, envID, method)
	if errors.Is(err, store.ErrUnavailable) {
		return ChannelEntry{}, engine.Unavailable(err)
	}
	if err != nil {
		// Sealed with another secret, or damaged: no retry will fix it
		// (Send calls it "channel unusable"); saving it again or deleting
		// it does.
		return ChannelEntry{}, engine.AsError(fmt.Errorf("environment %s: stored %s channel cannot be opened: %w", envID, method, err))
	}
	if found {
		return ChannelEntry{Method: method, Channel: ch.Redacted(), Source: SourceAPI}, nil
	}
	if ch, ok := d.o.Envs[envID].Channels[method]; ok {
		ch.CredentialEnv, ch.HeadersEnv = "", nil
		return ChannelEntry{Method: method, Channel: ch.Redacted(), Source: SourceConfiguration}, nil
	}
	return ChannelEntry{}, engine.NotFound("channel")
}

// SaveChannel validates a channel and saves it, sealed, replacing the
// environment's channel for method. It reports whether there was none.
// Whoever holds the management API must not get the node to reach what only
// it can, so a channel saved through it is held to stricter rules than the
// configuration file's (see validateForAPI), unless AllowLocalDestinations,
// and is sent through with restricted destinations.
func (d *Dispatcher) SaveChannel(ctx context.Context, envID string, method delivery.Method, ch Channel) (bool, error) {
	if ch.CredentialEnv != "" {
		return false, engine.InvalidField("credentialEnv", engine.DetailInvalidValue,
			"is for the configuration file only; send the credential itself (it is stored encrypted and never shown)")
	}
	if len(ch.HeadersEnv) > 0 {
		return false, engine.InvalidField("headersEnv", engine.DetailInvalidValue,
			"is for the configuration file only; send the values in webhook.headers (stored encrypted and never shown)")
	}
	if err := ch.Validate(method); err != nil {
		return false, invalidChannel(err)
	}
	if !d.o.AllowLocalDestinations {
		if err := ch.validateForAPI(); err != nil {
			return false, invalidChannel(err)
		}
	}
	if ch.Webhook != nil {
		for _, name := range sortedKeys(ch.Webhook.Headers) {
			if ch.Webhook.Headers[name] == redactedValue {
				// A channel read back from the API and saved as is.
				return false, engine.InvalidField("webhook.headers."+name, engine.DetailInvalidValue,
					"is the placeholder the API shows instead of the value; send the value itself")
			}
		}
	}
	plain, err := json.Marshal(ch)
	if err != nil {
		return false, engine.AsError(err)
	}
	data, err := json.Marshal(sealedChannel{Sealed: d.o.Sealer.Seal(plain, channelOwner(envID, method))})
	if err != nil {
		return false, engine.AsError(err)
	}
	created, err := d.o.Store.PutDocument(ctx, store.Document{EnvID: envID, Kind: store.KindChannel, ID: string(method), Data: data}, false)
	d.forget(envID, store.KindChannel)
	if err != nil {
		return false, engine.Unavailable(err)
	}
	if _, configured := d.o.Envs[envID].Channels[method]; configured {
		created = false
	}
	d.audit("channel saved").Str("env", envID).Str("method", string(method)).Str("type", ch.Type).Send()
	return created, nil
}

// DeleteChannel removes a saved channel; a configured one takes over again.
func (d *Dispatcher) DeleteChannel(ctx context.Context, envID string, method delivery.Method) error {
	err := d.o.Store.DeleteDocument(ctx, envID, store.KindChannel, string(method))
	d.forget(envID, store.KindChannel)
	if errors.Is(err, store.ErrNotFound) {
		if _, ok := d.o.Envs[envID].Channels[method]; ok {
			return &engine.Error{Status: http.StatusConflict, Code: engine.CodeActionNotAllowed,
				Message: "The " + string(method) + " channel is defined in the configuration file; remove it there."}
		}
		return engine.NotFound("channel")
	}
	if err != nil {
		return engine.Unavailable(err)
	}
	d.audit("channel deleted").Str("env", envID).Str("method", string(method)).Send()
	return nil
}

// audit starts the log line of a change made through the management API:
// where passcodes go and what they say are worth a trail (a leaked API key
// would be used to redirect them). It names what changed, never the
// credentials or the content.
func (d *Dispatcher) audit(what string) *zerolog.Event {
	return d.o.Log.Info().Str("audit", what)
}

// invalidChannel is the 400 for a channel whose validation failed with err,
// a path and a message ("twilio.accountSid: must start with AC").
func invalidChannel(err error) error {
	field, msg, _ := strings.Cut(err.Error(), ": ")
	return engine.InvalidField(field, engine.DetailInvalidValue, msg)
}

// sealedChannel is a channel as the store keeps it: the whole configuration
// encrypted, since it holds a credential.
type sealedChannel struct {
	Sealed string `json:"sealed"`
}

// channelOwner binds a sealed channel to its environment and method, so a
// stored channel cannot be copied to another.
func channelOwner(envID string, method delivery.Method) string {
	return "channel:" + envID + ":" + string(method)
}

func (d *Dispatcher) openChannel(envID string, method delivery.Method, data []byte) (Channel, error) {
	var sc sealedChannel
	if err := json.Unmarshal(data, &sc); err != nil {
		return Channel{}, err
	}
	plain, err := d.o.Sealer.Open(sc.Sealed, channelOwner(envID, method))
	if err != nil {
		return Channel{}, err
	}
	var ch Channel
	if err := json.Unmarshal(plain, &ch); err != nil {
		return Channel{}, err
	}
	return ch, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

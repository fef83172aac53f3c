// Package dispatch is the front of delivery for the rest of enrollflow: it
// renders a device-pairing message from an environment's templates and
// sends it over the environment's channel for its method, retrying
// transient failures within a time budget, logging and counting every
// outcome. Templates and channels come from the configuration file and,
// overriding it, from the management API (kept in the store, channel
// credentials sealed), so every node sees the same ones.
package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// DefaultBudget bounds one delivery, retries included.
const DefaultBudget = 30 * time.Second

// DefaultCacheTTL: every passcode needs the environment's saved templates
// and channels, two store round trips; reusing them for two seconds saves
// those on all but a few sends, and a change made through another node
// still arrives before a user could notice.
const DefaultCacheTTL = 2 * time.Second

// Environment is one environment's delivery configuration from the file.
type Environment struct {
	// DefaultLocale is the locale templates fall back to before the
	// built-in English ("en" when empty).
	DefaultLocale string
	Channels      map[delivery.Method]Channel
	Templates     []templates.Content
}

// Options build a Dispatcher.
type Options struct {
	Store  store.Documents
	Sealer *mfa.Sealer     // seals channel credentials saved through the API
	Outbox delivery.Sender // the development outbox, for channels of type outbox
	// Budget bounds one delivery, retries included; DefaultBudget when 0.
	Budget time.Duration
	// CacheTTL is how long a node reuses the templates and channels saved
	// through the API before reading them again (DefaultCacheTTL when 0,
	// no reuse when negative). A change saved through this node is seen at
	// once; one saved through another node within CacheTTL.
	CacheTTL time.Duration
	Observer Observer // nil: none
	Log      zerolog.Logger
	Envs     map[string]Environment
	// AllowLocalDestinations exempts channels saved through the API from
	// the rules that keep them off this machine and link-local addresses
	// (the cloud metadata service): SaveChannel skips the sections'
	// ValidateForAPI, and their senders are built without
	// RestrictDestinations, as for channels of the configuration file.
	// FOR TESTS ONLY, whose fake providers listen on 127.0.0.1: a
	// deployment never sets it, since it would let whoever holds the
	// management API make the node send requests (with credentials and
	// passcodes) to services only the node can reach.
	AllowLocalDestinations bool
}

// Observer learns the outcome of every delivery: the hook for counters of
// deliveries by method, channel and outcome.
type Observer interface {
	Delivered(o Outcome)
}

// Outcome is one delivery's result, with nothing secret in it.
type Outcome struct {
	EnvID    string
	Method   delivery.Method
	Channel  string // channel type, "none" when none is configured
	Result   string // ResultSent, ResultRefused or ResultFailed
	Reason   string // the failure's fixed reason ("smtp 550", "http 503", "timeout")
	Attempts int
	Duration time.Duration
}

// Outcome results.
const (
	ResultSent    = "sent"
	ResultRefused = "refused" // a permanent failure
	ResultFailed  = "failed"  // transient failures outlasted the retries or the budget
)

// Dispatcher renders and sends passcode messages. Safe for concurrent use.
type Dispatcher struct {
	o Options

	mu        sync.Mutex
	senders   map[senderKey]builtSender // the last sender built per channel
	templates map[string]builtSet       // the last template set built per environment
	recent    *store.RecentDocuments    // saved documents read lately, for CacheTTL
}

type senderKey struct {
	env    string
	method delivery.Method
}

// builtSender is a channel's sender with the fingerprint of the
// configuration it was built from. Building a sender validates the
// configuration again and, for SMTP, reads its CA file; the HTTP senders
// (webhook, Twilio) keep their own http.Client. So a sender is built once,
// and again only when its configuration changes.
type builtSender struct {
	fingerprint [32]byte
	sender      delivery.Sender
	channel     Channel
}

type builtSet struct {
	fingerprint [32]byte
	set         *templates.Set
}

// New validates the configured channels and templates of every environment.
func New(o Options) (*Dispatcher, error) {
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	envs := make(map[string]Environment, len(o.Envs))
	for id, env := range o.Envs {
		if env.DefaultLocale == "" {
			env.DefaultLocale = "en"
		}
		locale, ok := templates.CanonicalLocale(env.DefaultLocale)
		if !ok {
			return nil, fmt.Errorf("environment %s: notifications.defaultLocale: %q is not a language tag such as en or es-ES", id, env.DefaultLocale)
		}
		env.DefaultLocale = locale
		channels := make(map[delivery.Method]Channel, len(env.Channels))
		for method, ch := range env.Channels {
			if err := ch.fromEnvironment(); err != nil {
				return nil, fmt.Errorf("environment %s: notifications.channels.%s.%w", id, method, err)
			}
			if err := ch.Validate(method); err != nil {
				return nil, fmt.Errorf("environment %s: notifications.channels.%s.%w", id, method, err)
			}
			channels[method] = ch
		}
		env.Channels = channels
		for i := range env.Templates {
			env.Templates[i].Normalize()
		}
		if _, err := templates.NewSet(env.DefaultLocale, env.Templates); err != nil {
			return nil, fmt.Errorf("environment %s: notifications.templates.%s.%w", id, templates.DevicePairing, err)
		}
		envs[id] = env
	}
	o.Envs = envs
	return &Dispatcher{o: o, senders: map[senderKey]builtSender{}, templates: map[string]builtSet{},
		recent: &store.RecentDocuments{Store: o.Store, TTL: o.CacheTTL}}, nil
}

// ComposePairing renders the device-pairing message for p from the
// environment's templates. The error is a store failure (the API's saved
// templates could not be read).
func (d *Dispatcher) ComposePairing(ctx context.Context, p delivery.Pairing) (delivery.Message, error) {
	set, err := d.templateSet(ctx, p.EnvID)
	if err != nil {
		return delivery.Message{}, err
	}
	out, err := set.Render(templates.Request{
		Method: p.Method, Locale: p.Locale, Variant: p.Variant, OTP: p.OTP, Vars: p.Variables,
		User: templates.User{Username: p.Username, Email: p.Email, MobilePhone: p.MobilePhone},
	})
	if err != nil {
		return delivery.Message{}, engine.AsError(err)
	}
	if len(out.Missing) > 0 {
		// The integrator's template.variables lack what the content uses:
		// the passcode still goes, with the gap; the names tell them why.
		d.o.Log.Warn().Str("env", p.EnvID).Str("method", string(p.Method)).Str("locale", out.Locale).
			Str("variant", out.Variant).Strs("missing", out.Missing).Msg("template variables not supplied")
	}
	return delivery.Message{
		ID: store.NewID(), EnvID: p.EnvID, Method: p.Method, Recipient: p.Recipient, Locale: out.Locale,
		Subject: out.Subject, Body: out.Text, HTMLBody: out.HTML,
	}, nil
}

// Send delivers msg over the environment's channel for its method, retrying
// transient failures within the budget. The error is a *delivery.Error:
// IsPermanent tells whether trying again could help.
func (d *Dispatcher) Send(ctx context.Context, msg delivery.Message) error {
	start := time.Now()
	outcome := Outcome{EnvID: msg.EnvID, Method: msg.Method, Channel: "none"}
	sender, ch, err := d.sender(ctx, msg.EnvID, msg.Method)
	if err == nil {
		outcome.Channel = ch.Type
		counted := &countingSender{Sender: sender}
		ctx, cancel := context.WithTimeout(ctx, d.o.Budget)
		err = delivery.Retrying(counted, ch.retryPolicy()).Send(ctx, msg)
		cancel()
		outcome.Attempts = int(counted.attempts.Load())
	}
	outcome.Duration = time.Since(start)
	d.report(msg, outcome, err)
	return err
}

// countingSender counts the attempts of one delivery, successful or not.
type countingSender struct {
	delivery.Sender
	attempts atomic.Int32
}

func (c *countingSender) Send(ctx context.Context, msg delivery.Message) error {
	c.attempts.Add(1)
	return c.Sender.Send(ctx, msg)
}

// report logs and counts one delivery. Neither the passcode nor the
// recipient is logged: the delivery id ties the line to the provider's
// records. A failure's error is logged whole, with its cause ("connection
// refused", the certificate the TLS handshake refused): the channels keep
// only causes that hold neither the passcode, nor the recipient, nor the
// provider's URL.
func (d *Dispatcher) report(msg delivery.Message, o Outcome, err error) {
	ev := d.o.Log.Info()
	o.Result = ResultSent
	if err != nil {
		o.Reason = delivery.ReasonOf(err)
		o.Result = ResultFailed
		if delivery.IsPermanent(err) {
			o.Result = ResultRefused
		}
		ev = d.o.Log.Warn().Str("reason", o.Reason).Err(err)
	}
	ev.Str("env", o.EnvID).Str("method", string(o.Method)).Str("channel", o.Channel).Str("delivery", msg.ID).
		Str("locale", msg.Locale).Str("result", o.Result).Int("attempts", o.Attempts).Dur("duration", o.Duration).
		Msg("passcode delivery")
	if d.o.Observer != nil {
		d.o.Observer.Delivered(o)
	}
}

// sender returns the sender for an environment's method: the channel saved
// through the API, else the configured one. A channel saved through the API
// gets a sender with restricted destinations (neither this machine nor a
// link-local address, unless AllowLocalDestinations): whoever holds the
// management API must not get the node to reach what only it can. One from
// the configuration file may reach any.
func (d *Dispatcher) sender(ctx context.Context, envID string, method delivery.Method) (delivery.Sender, Channel, error) {
	ch, raw, fromAPI, err := d.channel(ctx, envID, method)
	if err != nil {
		return nil, Channel{}, err
	}
	restrict := fromAPI && !d.o.AllowLocalDestinations
	h := sha256.New()
	h.Write(raw)
	if restrict {
		h.Write([]byte{0, 1})
	}
	var fp [32]byte
	h.Sum(fp[:0])
	key := senderKey{envID, method}
	d.mu.Lock()
	b, ok := d.senders[key]
	d.mu.Unlock()
	if ok && b.fingerprint == fp {
		return b.sender, b.channel, nil
	}
	s, err := ch.newSender(d.o.Outbox, restrict)
	if err != nil {
		return nil, Channel{}, delivery.Misconfigured("channel unusable", err)
	}
	d.mu.Lock()
	d.senders[key] = builtSender{fingerprint: fp, sender: s, channel: ch}
	d.mu.Unlock()
	return s, ch, nil
}

// channel finds the channel configuration and its canonical bytes, and
// whether it was saved through the API (else it is the configured one).
// Its failures other than the store's are the deployment's fault: no
// channel, or one that cannot be opened.
func (d *Dispatcher) channel(ctx context.Context, envID string, method delivery.Method) (ch Channel, raw []byte, fromAPI bool, err error) {
	ch, fromAPI, err = d.recentChannel(ctx, envID, method)
	if errors.Is(err, store.ErrUnavailable) {
		return Channel{}, nil, false, delivery.Transient("store unavailable", err)
	}
	if err != nil {
		// Sealed with another secret, or damaged: no retry will fix it.
		return Channel{}, nil, false, delivery.Misconfigured("channel unusable", err)
	}
	found := fromAPI
	if !found {
		ch, found = d.o.Envs[envID].Channels[method]
	}
	if !found {
		return Channel{}, nil, false, delivery.Misconfigured("no channel", fmt.Errorf("environment %s has no channel for %s", envID, method))
	}
	raw, err = json.Marshal(ch)
	if err != nil {
		return Channel{}, nil, false, delivery.Misconfigured("channel unusable", err)
	}
	return ch, raw, fromAPI, nil
}

// templateSet builds the environment's template set: the configured
// contents, overridden by those saved through the API. The set is rebuilt
// only when the contents change. A saved content that cannot be used (its
// document does not decode, or it breaks a rule tightened since it was
// saved) is left out, with an error logged, rather than failing every
// passcode of the environment: the configured or built-in content with its
// key serves instead.
func (d *Dispatcher) templateSet(ctx context.Context, envID string) (*templates.Set, error) {
	env := d.o.Envs[envID]
	saved, err := d.recentDocuments(ctx, envID, store.KindTemplate)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	h := sha256.New()
	for _, doc := range saved {
		h.Write([]byte(doc.ID))
		h.Write([]byte{0})
		h.Write(doc.Data)
		h.Write([]byte{0})
	}
	var fp [32]byte
	h.Sum(fp[:0])
	d.mu.Lock()
	b, ok := d.templates[envID]
	d.mu.Unlock()
	if ok && b.fingerprint == fp {
		return b.set, nil
	}
	contents := d.mergeContents(envID, env.Templates, saved)
	set, err := templates.NewSet(env.DefaultLocale, contents)
	if err != nil {
		return nil, engine.AsError(fmt.Errorf("environment %s: saved templates: %w", envID, err))
	}
	d.mu.Lock()
	d.templates[envID] = builtSet{fingerprint: fp, set: set}
	d.mu.Unlock()
	return set, nil
}

// mergeContents lays saved contents over configured ones by key, leaving
// out (and logging) the saved ones that cannot be used.
func (d *Dispatcher) mergeContents(envID string, configured []templates.Content, saved []store.Document) []templates.Content {
	byKey := make(map[templates.Key]templates.Content, len(configured)+len(saved))
	order := make([]templates.Key, 0, len(configured)+len(saved))
	for _, c := range configured {
		byKey[c.Key()] = c
		order = append(order, c.Key())
	}
	for _, doc := range saved {
		var c templates.Content
		err := json.Unmarshal(doc.Data, &c)
		if err == nil {
			err = problemsError(c.Validate())
		}
		if err != nil {
			d.o.Log.Error().Str("env", envID).Str("template", doc.ID).Err(err).
				Msg("saved template content left out: it cannot be used; save it again or delete it")
			continue
		}
		if _, ok := byKey[c.Key()]; !ok {
			order = append(order, c.Key())
		}
		byKey[c.Key()] = c
	}
	out := make([]templates.Content, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k])
	}
	return out
}

// problemsError is nil without problems, else one error listing them all.
func problemsError(problems []templates.FieldError) error {
	if len(problems) == 0 {
		return nil
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Field + ": " + p.Message
	}
	return errors.New(strings.Join(msgs, "; "))
}

// recentDocuments lists an environment's saved documents of one kind,
// reusing a list read less than CacheTTL ago (store.RecentDocuments).
func (d *Dispatcher) recentDocuments(ctx context.Context, envID string, kind store.Kind) ([]store.Document, error) {
	return d.recent.List(ctx, envID, kind)
}

// forget drops what recentDocuments kept of a kind after this node changed it.
func (d *Dispatcher) forget(envID string, kind store.Kind) { d.recent.Forget(envID, kind) }

// recentChannel is the channel saved through the API for a method, if any,
// as recentDocuments last read it.
func (d *Dispatcher) recentChannel(ctx context.Context, envID string, method delivery.Method) (Channel, bool, error) {
	docs, err := d.recentDocuments(ctx, envID, store.KindChannel)
	if err != nil {
		return Channel{}, false, err
	}
	for _, doc := range docs {
		if doc.ID == string(method) {
			ch, err := d.openChannel(envID, method, doc.Data)
			return ch, err == nil, err
		}
	}
	return Channel{}, false, nil
}

// savedChannel reads the channel saved through the API, if any.
func (d *Dispatcher) savedChannel(ctx context.Context, envID string, method delivery.Method) (Channel, bool, error) {
	doc, err := d.o.Store.GetDocument(ctx, envID, store.KindChannel, string(method))
	if errors.Is(err, store.ErrNotFound) {
		return Channel{}, false, nil
	}
	if err != nil {
		return Channel{}, false, err
	}
	ch, err := d.openChannel(envID, method, doc.Data)
	if err != nil {
		return Channel{}, false, err
	}
	return ch, true, nil
}

package dispatch_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/store/memory"
)

// headersOf is what the API shows of a channel's webhook headers.
func headersOf(t *testing.T, e dispatch.ChannelEntry) map[string]string {
	t.Helper()
	if e.Webhook == nil {
		t.Fatalf("channel %+v has no webhook section", e)
	}
	return e.Webhook.Headers
}

// A configured webhook channel may take header values from the environment
// (headersEnv), as it takes its secret (credentialEnv); neither reaches the
// caller's configuration, and the API shows neither.
func TestHeadersEnvFillsHeaders(t *testing.T) {
	const (
		tokenVar  = "EF_DISPATCH_TEST_GATEWAY_TOKEN"
		secretVar = "EF_DISPATCH_TEST_GATEWAY_SECRET"
		token     = "Bearer gateway-token-2718281828"
	)
	t.Setenv(tokenVar, token)
	t.Setenv(secretVar, hookSecret)
	g := startGateway(t, hookSecret, nil)
	ch := g.channel()
	ch.Webhook.Secret = ""
	ch.Webhook.Headers = map[string]string{"X-Tenant": "acme"}
	ch.CredentialEnv = secretVar
	ch.HeadersEnv = map[string]string{"Authorization": tokenVar}
	configured := map[delivery.Method]dispatch.Channel{delivery.SMS: ch}
	before, _ := json.Marshal(configured)

	d := newDispatcher(t, dispatch.Options{Envs: oneEnv(dispatch.Environment{Channels: configured})})
	if after, _ := json.Marshal(configured); !bytes.Equal(before, after) {
		t.Fatalf("New wrote into the caller's configuration:\nbefore %s\nafter  %s", before, after)
	}
	if err := d.Send(t.Context(), smsMessage(envID)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	h := g.lastHeaders(t)
	if h.Get("Authorization") != token || h.Get("X-Tenant") != "acme" {
		t.Fatalf("the gateway received Authorization %q, X-Tenant %q", h.Get("Authorization"), h.Get("X-Tenant"))
	}

	// The API shows the header names, neither the values nor the
	// variables they came from.
	e, err := d.ChannelFor(t.Context(), envID, delivery.SMS)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(e)
	for _, hidden := range []string{token, tokenVar, secretVar, hookSecret, "acme", "headersEnv", "credentialEnv"} {
		if bytes.Contains(js, []byte(hidden)) {
			t.Errorf("ChannelFor shows %q: %s", hidden, js)
		}
	}
	if got, want := headersOf(t, e), map[string]string{"X-Tenant": "********", "Authorization": "********"}; !maps.Equal(got, want) {
		t.Fatalf("ChannelFor shows the headers %v, want %v", got, want)
	}
}

// Webhook header values may be credentials (an API key): the API shows
// their names only, while the channel keeps sending them.
func TestWebhookHeaderValuesAreRedacted(t *testing.T) {
	const apiKey = "gateway-api-key-1618033988"
	g := startGateway(t, hookSecret, nil)
	// The gateway listens on 127.0.0.1.
	d := newDispatcher(t, dispatch.Options{AllowLocalDestinations: true, Envs: oneEnv(dispatch.Environment{})})
	ch := g.channel()
	ch.Webhook.Headers = map[string]string{"X-Api-Key": apiKey, "X-Tenant": "acme"}
	if _, err := d.SaveChannel(t.Context(), envID, delivery.SMS, ch); err != nil {
		t.Fatal(err)
	}

	one, err := d.ChannelFor(t.Context(), envID, delivery.SMS)
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.Channels(t.Context(), envID)
	if err != nil || len(list) != 1 {
		t.Fatalf("Channels = %+v, %v", list, err)
	}
	want := map[string]string{"X-Api-Key": "********", "X-Tenant": "********"}
	for _, e := range []dispatch.ChannelEntry{one, list[0], {Channel: ch.Redacted()}} {
		if got := headersOf(t, e); !maps.Equal(got, want) {
			t.Fatalf("shown headers %v, want %v", got, want)
		}
		if js, _ := json.Marshal(e); bytes.Contains(js, []byte(apiKey)) {
			t.Fatalf("the API shows the header value: %s", js)
		}
	}
	// Redacting copies: the channel keeps its values, and sends them.
	if ch.Webhook.Headers["X-Api-Key"] != apiKey {
		t.Fatal("Redacted erased the caller's header value")
	}
	if err := d.Send(t.Context(), smsMessage(envID)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := g.lastHeaders(t).Get("X-Api-Key"); got != apiKey {
		t.Fatalf("the gateway received X-Api-Key %q", got)
	}

	// What GET shows cannot be saved back as is: the placeholder would
	// become the value.
	back := one.Channel
	hook := *back.Webhook
	hook.Secret = hookSecret // sent again, as a client must
	back.Webhook = &hook
	_, err = d.SaveChannel(t.Context(), envID, delivery.SMS, back)
	if err == nil || !strings.Contains(err.Error(), "webhook.headers.X-Api-Key") {
		t.Fatalf("saving the redacted channel back = %v, want refused on webhook.headers.X-Api-Key", err)
	}
}

// A channel saved through the API cannot reach this machine, even when it
// got into the store without ValidateForAPI (saved by a node with
// AllowLocalDestinations here; a host name that resolves to 127.0.0.1 in
// real life): its sender refuses the address it dials. A configured
// channel may reach it.
func TestChannelsSavedThroughTheAPIHaveRestrictedDestinations(t *testing.T) {
	st := memory.New(nil)
	g := startGateway(t, hookSecret, nil)
	envs := oneEnv(dispatch.Environment{Channels: map[delivery.Method]dispatch.Channel{delivery.Voice: g.channel()}})
	obs := &outcomes{}
	d := newDispatcher(t, dispatch.Options{Store: st, Observer: obs, Envs: envs})
	lax := newDispatcher(t, dispatch.Options{Store: st, AllowLocalDestinations: true, Envs: envs})

	if _, err := d.SaveChannel(t.Context(), envID, delivery.SMS, g.channel()); err == nil {
		t.Fatal("SaveChannel accepted a webhook on 127.0.0.1")
	}
	if _, err := lax.SaveChannel(t.Context(), envID, delivery.SMS, g.channel()); err != nil {
		t.Fatalf("SaveChannel with AllowLocalDestinations: %v", err)
	}

	err := d.Send(t.Context(), smsMessage(envID))
	if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "destination not allowed" {
		t.Fatalf("Send through the saved channel = %v; want a misconfiguration, reason \"destination not allowed\"", err)
	}
	if o := obs.last(t); o.Result != dispatch.ResultRefused || o.Attempts != 1 {
		t.Fatalf("outcome %+v, want refused after 1 attempt", o)
	}
	if req, _, _ := g.counts(); req != 0 {
		t.Fatalf("the gateway on 127.0.0.1 received %d requests from a saved channel", req)
	}

	// The configured channel reaches the same gateway; so does the saved
	// one on the node that allows local destinations.
	voice := smsMessage(envID)
	voice.Method = delivery.Voice
	if err := d.Send(t.Context(), voice); err != nil {
		t.Fatalf("Send through the configured channel: %v", err)
	}
	if err := lax.Send(t.Context(), smsMessage(envID)); err != nil {
		t.Fatalf("Send through the saved channel with AllowLocalDestinations: %v", err)
	}
	if _, accepted, _ := g.counts(); accepted != 2 {
		t.Fatalf("the gateway accepted %d requests, want 2", accepted)
	}
}

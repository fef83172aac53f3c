package dispatch_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
)

// A saved content that cannot be used (damaged, or valid when saved and
// broken by a rule tightened since) is left out with an error logged,
// rather than failing every passcode of the environment: the others are
// used, and the configured or built-in content stands in for it.
func TestUnusableSavedTemplateIsLeftOut(t *testing.T) {
	ctx := t.Context()
	st := memory.New(nil)
	var logs syncBuffer
	d := newDispatcher(t, dispatch.Options{Store: st, Log: zerolog.New(&logs), Envs: oneEnv(dispatch.Environment{
		Templates: []templates.Content{{Method: delivery.SMS, Locale: "fr", Body: "Configuré ${otp}"}}})})
	if _, err := d.SaveTemplateContent(ctx, envID, templates.Content{Method: delivery.SMS, Locale: "es", Body: "Código ${otp}"}); err != nil {
		t.Fatal(err)
	}
	// Written straight into the store, as an older version or a damaged
	// store would have them.
	bad := map[string]string{
		"SMS/fr":   `{"deliveryMethod":"SMS","locale":"fr","content":"Plus de code"}`, // overrides the configured one
		"SMS/de":   `{"deliveryMethod":"SMS","locale":"de",`,
		"VOICE/en": `{"deliveryMethod":"VOICE","locale":"en","content":"Call ${user.phone} ${otp}"}`,
	}
	for id, data := range bad {
		if _, err := st.PutDocument(ctx, store.Document{EnvID: envID, Kind: store.KindTemplate, ID: id, Data: []byte(data)}, false); err != nil {
			t.Fatal(err)
		}
	}
	compose := func(method delivery.Method, locale string) delivery.Message {
		t.Helper()
		m, err := d.ComposePairing(ctx, delivery.Pairing{EnvID: envID, Method: method, Locale: locale, Recipient: recipient, OTP: passcode})
		if err != nil {
			t.Fatalf("ComposePairing(%s, %s): %v", method, locale, err)
		}
		return m
	}
	if m := compose(delivery.SMS, "es"); m.Body != "Código "+passcode {
		t.Fatalf("the usable saved content is not used: %q", m.Body)
	}
	if m := compose(delivery.SMS, "fr"); m.Body != "Configuré "+passcode {
		t.Fatalf("the configured content does not stand in for its broken override: %q", m.Body)
	}
	if m := compose(delivery.SMS, "de"); m.Locale != "en" || !strings.Contains(m.Body, passcode) {
		t.Fatalf("a locale whose content is damaged: %q (%s), want the default locale's", m.Body, m.Locale)
	}
	if m := compose(delivery.Voice, "en"); strings.Contains(m.Body, "Call") || !strings.Contains(m.Body, passcode[:1]) {
		t.Fatalf("VOICE: %q, want the built-in content", m.Body)
	}

	// One error line per unusable content, naming it, logged when the set
	// is built, not on every passcode.
	logged := map[string]int{}
	for line := range strings.SplitSeq(logs.String(), "\n") {
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if fields["audit"] != nil {
			continue // the saves that set the test up
		}
		if fields["level"] != "error" || fields["env"] != envID || fields["error"] == "" {
			t.Fatalf("log line %s", line)
		}
		id, _ := fields["template"].(string)
		logged[id]++
	}
	if len(logged) != len(bad) {
		t.Fatalf("logged %v, want one line for each of %v", logged, bad)
	}
	for id := range bad {
		if logged[id] != 1 {
			t.Fatalf("logged %v, want one line for %s", logged, id)
		}
	}
}

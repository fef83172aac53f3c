package app_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/store/memory"
)

func configFile(name string) string {
	return filepath.Join("..", "..", "..", "testdata", "config", name)
}

// The configuration the README points to builds, channels and templates
// included, with its credentials taken from the environment.
func TestExampleConfigurationBuilds(t *testing.T) {
	t.Setenv("ACME_API_KEY", "acme-key-0123456789")
	t.Setenv("ACME_SMTP_PASSWORD", "smtp-password")
	t.Setenv("ACME_TWILIO_TOKEN", "twilio-token")
	t.Setenv("ACME_WEBHOOK_SECRET", "webhook-secret-0123456789")
	f, err := config.Load(configFile("example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var logs apptest.LogBuffer
	node, err := app.Build(app.Options{Config: f, Store: memory.New(nil), Secret: apptest.Secret, Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	channels, err := node.Dispatcher.Channels(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	types := map[delivery.Method]string{}
	for _, c := range channels {
		types[c.Method] = c.Type
		if c.Source != dispatch.SourceConfiguration || c.CredentialEnv != "" {
			t.Errorf("channel %s: %+v", c.Method, c)
		}
	}
	if types[delivery.Email] != "smtp" || types[delivery.SMS] != "twilio" || types[delivery.Voice] != "webhook" {
		t.Fatalf("channels = %v", types)
	}
	contents, err := node.Dispatcher.TemplateContents(ctx, "acme")
	if err != nil || len(contents) != 4 {
		t.Fatalf("template contents = %d, %v", len(contents), err)
	}
	msg, err := node.Dispatcher.ComposePairing(ctx, delivery.Pairing{EnvID: "acme", Method: delivery.SMS, Locale: "es-AR", OTP: "12345678"})
	if err != nil || msg.Body != "Tu código de Acme es 12345678" || msg.Locale != "es" {
		t.Fatalf("Spanish SMS = %+v, %v", msg, err)
	}
	if strings.Contains(logs.String(), "no channel is configured") {
		t.Errorf("a warning about a channel that is configured: %s", logs.String())
	}
}

// A method a policy enrolls without a channel to deliver it is worth a
// warning at start-up; the empty secret of credentialEnv is an error.
func TestBuildWarnsAboutMissingChannels(t *testing.T) {
	f := config.Demo(apptest.APIKey)
	f.Environments[0].Notifications.Channels = map[delivery.Method]dispatch.Channel{delivery.Email: {Type: dispatch.TypeOutbox}}
	var logs apptest.LogBuffer
	if _, err := app.Build(app.Options{Config: f, Store: memory.New(nil), Secret: apptest.Secret, Log: zerolog.New(&logs)}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, m := range []string{`"method":"SMS"`, `"method":"VOICE"`} {
		if !strings.Contains(out, m) || !strings.Contains(out, "no channel is configured") {
			t.Errorf("no warning for %s: %s", m, out)
		}
	}
	if strings.Contains(out, `"method":"EMAIL"`) {
		t.Errorf("a warning for EMAIL, which has a channel: %s", out)
	}

	f.Environments[0].Notifications.Channels[delivery.SMS] = dispatch.Channel{Type: dispatch.TypeWebhook, CredentialEnv: "ENROLLFLOW_TEST_UNSET_SECRET"}
	_, err := app.Build(app.Options{Config: f, Store: memory.New(nil), Secret: apptest.Secret})
	if err == nil || !strings.Contains(err.Error(), "notifications.channels.SMS.credentialEnv") {
		t.Fatalf("Build with an unset credentialEnv = %v", err)
	}
}

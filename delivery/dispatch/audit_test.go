package dispatch_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/delivery/webhook"
)

// Changes through the management API leave an audit line naming what
// changed, and never the credential or the text.
func TestManagementChangesAreAudited(t *testing.T) {
	var logs bytes.Buffer
	d := newDispatcher(t, dispatch.Options{Log: zerolog.New(&logs), Envs: map[string]dispatch.Environment{"e1": {}}})
	ctx := t.Context()
	const secret, header = "audit-secret-0123456789", "Bearer audit-header-token"
	ch := dispatch.Channel{Type: dispatch.TypeWebhook, Webhook: &webhook.Config{URL: "https://gateway.example/sms",
		Secret: secret, Headers: map[string]string{"Authorization": header}}}
	if _, err := d.SaveChannel(ctx, "e1", delivery.SMS, ch); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteChannel(ctx, "e1", delivery.SMS); err != nil {
		t.Fatal(err)
	}
	content := templates.Content{Method: delivery.SMS, Locale: "en", Variant: "promo", Body: "Secret promo text ${otp}"}
	if _, err := d.SaveTemplateContent(ctx, "e1", content); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteTemplateContent(ctx, "e1", content.Key()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{
		`"audit":"channel saved","env":"e1","method":"SMS","type":"webhook"`,
		`"audit":"channel deleted","env":"e1","method":"SMS"`,
		`"audit":"template content saved","env":"e1","content":"SMS/en/promo"`,
		`"audit":"template content deleted","env":"e1","content":"SMS/en/promo"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the log:\n%s", want, out)
		}
	}
	for _, leak := range []string{secret, header, "gateway.example", "Secret promo text"} {
		if strings.Contains(out, leak) {
			t.Errorf("the audit log carries %q:\n%s", leak, out)
		}
	}
}

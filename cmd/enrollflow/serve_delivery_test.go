package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery/smtp/smtptest"
)

// `enrollflow serve --config` with an SMTP channel whose password comes
// from the environment (credentialEnv): the e-mail crosses a real SMTP
// connection with STARTTLS and AUTH, in the configured Spanish template.
func TestServeDeliversThroughConfiguredSMTP(t *testing.T) {
	mail := smtptest.Start(t, smtptest.Options{StartTLS: true, Username: "mailer", Password: "smtp-secret-1"})
	t.Setenv("ENROLLFLOW_TEST_SMTP_PASSWORD", "smtp-secret-1")
	t.Setenv("ENROLLFLOW_TEST_API_KEY", "serve-delivery-key-0123456789")
	cfg := fmt.Sprintf(`
environments:
  - id: acme
    apiKeyEnv: ENROLLFLOW_TEST_API_KEY
    deviceAuthenticationPolicies:
      - {id: default, default: true, email: {enabled: true}, sms: {enabled: false}, voice: {enabled: false}, totp: {enabled: false}}
    flows:
      - id: enroll
        trigger: {next: enroll}
        stepDefinitions:
          enroll: {type: MFA_DEVICE_ENROLLMENT, configuration: {useDefaultPolicy: true}}
    notifications:
      channels:
        EMAIL:
          type: smtp
          smtp: {host: 127.0.0.1, port: %d, tls: mandatory, caFile: %q, username: mailer, from: "Acme <mfa@acme.test>"}
          credentialEnv: ENROLLFLOW_TEST_SMTP_PASSWORD
      templates:
        device_pairing:
          - {deliveryMethod: EMAIL, locale: es, subject: "Tu código", text: "Hola ${user.username}, tu código es ${otp}"}
`, mail.Port, mail.CAFile(t))
	path := filepath.Join(t.TempDir(), "enrollflow.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, "--config", path)
	if strings.Contains(n.stderr.String(), "smtp-secret-1") || strings.Contains(n.stdout.String(), "smtp-secret-1") {
		t.Fatal("the SMTP password is in the output")
	}
	auth := []string{"Authorization", "Bearer serve-delivery-key-0123456789"}
	status, body := call(t, http.MethodPost, n.base+"/acme/flowExecutions", "application/json",
		`{"flow":{"id":"enroll"},"inputs":{"user":{"id":"u1","username":"Ana","email":"ana@example.com"},"template":{"locale":"es-ES"}}}`, auth...)
	if status != http.StatusCreated {
		t.Fatalf("start: %d %v", status, body)
	}
	self := n.base + "/acme/flowExecutions/" + body["id"].(string)
	status, body = call(t, http.MethodPost, self, "application/vnd.pingidentity.device.create+json", `{"type":"EMAIL"}`)
	if status != http.StatusOK || body["status"] != "ACTIVATION_REQUIRED" || body["error"] != nil {
		t.Fatalf("device.create: %d %v", status, body)
	}
	m := mail.WaitMail(t, 1, 5*time.Second)
	parsed, err := m.Parse()
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile(`tu código es (\d{6})$`).FindStringSubmatch(strings.TrimSpace(parsed.Text))
	if !m.TLS || m.User != "mailer" || len(m.To) != 1 || m.To[0] != "ana@example.com" || code == nil || !strings.HasPrefix(parsed.Text, "Hola Ana") {
		t.Fatalf("mail: tls %v user %q to %v text %q", m.TLS, m.User, m.To, parsed.Text)
	}
	status, body = call(t, http.MethodPost, self, "application/vnd.pingidentity.device.activate+json", `{"otp":"`+code[1]+`"}`)
	if status != http.StatusOK || body["status"] != "COMPLETED" {
		t.Fatalf("device.activate: %d %v", status, body)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{code[1], "ana@example.com", "smtp-secret-1"} {
		if strings.Contains(n.stderr.String(), leak) {
			t.Errorf("the log carries %q", leak)
		}
	}
}

package engine_test

import (
	"bytes"
	"context"
	"regexp"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/otp"
	"github.com/enrollflow/enrollflow/factor/totp"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/steps/mfaenroll"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
)

const testAPIKey = "test-api-key-0123456789"

// defaultOnlyEnv is an environment with nothing but the default policy.
func defaultOnlyEnv(t testing.TB) *engine.Environment {
	t.Helper()
	env, err := engine.NewEnvironment("env1", testAPIKey, []mfa.Policy{mfa.DefaultPolicy("default")}, mfa.Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// testEnv adds an e-mail-only and a TOTP-only policy to the default one,
// which the flows in testdata/flows use.
func testEnv(t testing.TB, settings mfa.Settings) *engine.Environment {
	t.Helper()
	emailOnly := mfa.Policy{ID: "email-only", Name: "E-mail only"}
	emailOnly.Email.Enabled = true
	totpOnly := mfa.Policy{ID: "totp-only", Name: "TOTP only"}
	totpOnly.TOTP.Enabled = true
	env, err := engine.NewEnvironment("env1", testAPIKey,
		[]mfa.Policy{mfa.DefaultPolicy("default"), emailOnly, totpOnly}, settings,
		[]mfa.Application{{ID: "app1", Name: "App"}})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// captureSender renders the built-in texts and records every message;
// tests read passcodes from it.
type captureSender struct {
	mu   sync.Mutex
	msgs []delivery.Message
}

func (c *captureSender) ComposePairing(_ context.Context, p delivery.Pairing) (delivery.Message, error) {
	var builtin *templates.Set
	out, err := builtin.Render(templates.Request{Method: p.Method, Locale: p.Locale, OTP: p.OTP})
	if err != nil {
		return delivery.Message{}, err
	}
	return delivery.Message{EnvID: p.EnvID, Method: p.Method, Recipient: p.Recipient, Locale: out.Locale,
		Subject: out.Subject, Body: out.Text, HTMLBody: out.HTML}, nil
}

func (c *captureSender) Send(_ context.Context, m delivery.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

func (c *captureSender) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

var digitsRe = regexp.MustCompile(`\d{6,10}`)

// lastOTP is the passcode of the last message.
func (c *captureSender) lastOTP(t testing.TB) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) == 0 {
		t.Fatal("no message was sent")
	}
	code := digitsRe.FindString(c.msgs[len(c.msgs)-1].Body)
	if code == "" {
		t.Fatalf("no passcode in %q", c.msgs[len(c.msgs)-1].Body)
	}
	return code
}

// stepRegistry returns a registry with the real enrollment step.
func stepRegistry(t testing.TB, devices store.Devices, sender otp.Messenger) *engine.StepRegistry {
	t.Helper()
	keys, err := mfa.DeriveKeys(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := mfa.NewSealer(keys.SealTOTP)
	if err != nil {
		t.Fatal(err)
	}
	if sender == nil {
		sender = &captureSender{}
	}
	factors := factor.NewRegistry(&otp.Factor{Messenger: sender, Hasher: mfa.NewOTPHasher(keys.OTPHash)}, &totp.Factor{Sealer: sealer})
	reg := regulation.New(memory.New(nil), keys.AddressKey)
	if st, ok := devices.(regulation.Store); ok {
		reg = regulation.New(st, keys.AddressKey)
	}
	return engine.NewStepRegistry(mfaenroll.New(mfaenroll.Deps{Devices: devices, Factors: factors, Regulator: reg, Log: zerolog.Nop()}))
}

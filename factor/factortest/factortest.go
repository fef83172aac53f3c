// Package factortest is the conformance suite every factor runs, as every
// store runs store/storetest: what the enrollment step relies on of an
// Enroller, whatever the kind of device.
//
// A factor's test calls Run with a Case that knows how to produce the
// right proof for a pending device (read the passcode that was sent,
// compute the TOTP code from the secret the view shows).
package factortest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/actions"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// Case is one factor under test.
type Case struct {
	Enroller factor.Enroller
	// Action is a valid device.create of one of its types.
	Action actions.CreateDevice
	// Proof is the right proof for p, after Begin's send (if any) ran.
	Proof func(t *testing.T, p factor.Pending, now time.Time) string
	// Wrong is a well-formed proof that is not the right one.
	Wrong string
}

// Run runs the suite.
func Run(t *testing.T, c Case) {
	policy := mfa.DefaultPolicy("p")
	settings := mfa.Settings{}
	settings.ApplyDefaults()
	now := time.Now().UTC().Truncate(time.Second)
	begin := func(t *testing.T) (factor.Pending, factor.Begin) {
		t.Helper()
		action := c.Action
		b := factor.Begin{EnvID: "env1", Settings: &settings, Policy: &policy,
			User: factor.User{ID: "u1", Email: "u1@example.com", Phone: "+12015550123"}, Action: &action, ID: store.NewID(), Now: now}
		address, err := c.Enroller.Target(b)
		if err != nil {
			t.Fatalf("Target: %v", err)
		}
		p, send, err := c.Enroller.Begin(context.Background(), b, address)
		if err != nil {
			t.Fatalf("Begin: %v", err)
		}
		if send != nil {
			if err := send(context.Background()); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		return saved(t, p), b
	}
	activate := func(p factor.Pending, otp string, at time.Time) (factor.Verdict, error) {
		return c.Enroller.Activate(context.Background(), factor.Activate{Policy: &policy, Pending: p, Proof: &actions.ActivateDevice{OTP: otp}, Now: at})
	}

	t.Run("BeginMakesThePendingDevice", func(t *testing.T) {
		p, b := begin(t)
		if p.ID != b.ID || string(p.Type) != c.Action.Type || !p.CreatedAt.Equal(now) {
			t.Fatalf("pending %+v, want id %s, type %s, created now", p, b.ID, c.Action.Type)
		}
		if !contains(c.Enroller.Types(), p.Type) {
			t.Fatalf("Begin made a %s, which Types() %v does not list", p.Type, c.Enroller.Types())
		}
		v := c.Enroller.View(p, &policy, "https://x.test/env1/flowExecutions/e1")
		if v["id"] != p.ID || v["type"] != p.Type {
			t.Fatalf("view %v lacks the device's id and type", v)
		}
		raw, _ := json.Marshal(v)
		if strings.Contains(string(raw), string(p.Data)) && len(p.Data) > 2 {
			t.Fatalf("the view shows the factor's stored data: %s", raw)
		}
	})

	t.Run("RightProofEnrolls", func(t *testing.T) {
		p, _ := begin(t)
		v, err := activate(p, c.Proof(t, p, now), now.Add(time.Second))
		if err != nil || !v.OK || v.Device == nil {
			t.Fatalf("the right proof: %+v, %v", v, err)
		}
		if v.Device.ID != p.ID || v.Device.Type != p.Type || v.Device.Status != mfa.StatusActive {
			t.Fatalf("enrolled %+v, want an ACTIVE %s with the pending id", v.Device, p.Type)
		}
	})

	t.Run("WrongProofIsCountedAndNamesTheField", func(t *testing.T) {
		p, _ := begin(t)
		limit := failureCount(&policy, p.Type)
		for i := 1; i <= limit; i++ {
			v, err := activate(p, c.Wrong, now)
			if err != nil || v.OK || v.Refusal == nil {
				t.Fatalf("wrong proof %d: %+v, %v", i, v, err)
			}
			d := v.Refusal.Details
			if len(d) != 1 || d[0].Target != "otp" || d[0].InnerError["remainingAttempts"] != limit-i {
				t.Fatalf("wrong proof %d: details %+v, want otp with %d remaining", i, d, limit-i)
			}
			if v.Exhausted != (i == limit) {
				t.Fatalf("wrong proof %d: Exhausted %v", i, v.Exhausted)
			}
			p = saved(t, v.Pending)
		}
		// The attempts are spent: even the right proof does not enroll now.
		if v, err := activate(p, c.Proof(t, p, now), now); err == nil && v.OK {
			t.Fatal("the right proof enrolled after the attempts were spent")
		}
	})

	t.Run("MalformedProof", func(t *testing.T) {
		p, _ := begin(t)
		for _, otp := range []string{"", "12ab56", "12345"} {
			_, err := activate(p, otp, now)
			var e *engine.Error
			if !errors.As(err, &e) || e.Status != 400 || len(e.Details) != 1 || e.Details[0].Target != "otp" {
				t.Fatalf("proof %q: %v, want a 400 naming otp", otp, err)
			}
		}
	})
}

// saved is p after a round trip through JSON, as the step stores it.
func saved(t *testing.T, p factor.Pending) factor.Pending {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back factor.Pending
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

func failureCount(p *mfa.Policy, t mfa.DeviceType) int {
	if m := p.OTPMethodFor(t); m != nil {
		return m.OTP.Failure.Count
	}
	return p.TOTP.OTP.Failure.Count
}

func contains(ts []mfa.DeviceType, t mfa.DeviceType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

package regulation_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/regulation"
	"github.com/enrollflow/enrollflow/store/memory"
)

func testEnv(t *testing.T) *engine.Environment {
	t.Helper()
	var settings mfa.Settings
	settings.SendLimits.User.Count = 2
	env, err := engine.NewEnvironment("env1", "0123456789abcdef0123", []mfa.Policy{mfa.DefaultPolicy("default")}, settings, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func detailCode(err error) string {
	var e *engine.Error
	if errors.As(err, &e) && len(e.Details) > 0 {
		return e.Details[0].Code
	}
	return ""
}

// TestSpentUserCannotDrainAVictim: a caller whose own budget is spent is
// refused before anyone else's budget is touched, however often it tries:
// the victim's address keeps all its units.
func TestSpentUserCannotDrainAVictim(t *testing.T) {
	env := testEnv(t)
	g := regulation.New(memory.New(nil), bytes.Repeat([]byte{5}, 32))
	ctx := context.Background()
	const victim = "+12015550123"
	for i := range 2 {
		if err := g.Spend(ctx, env, "attacker", mfa.SMS, "+12015550999"); err != nil {
			t.Fatalf("the attacker's own send %d: %v", i, err)
		}
	}
	for range 20 {
		if err := g.Spend(ctx, env, "attacker", mfa.SMS, victim); detailCode(err) != engine.DetailSendLimitUser {
			t.Fatalf("a spent user's send: %v, want SEND_LIMIT_USER", err)
		}
	}
	// The address budget (5 an hour) is whole: five users reach the victim.
	for i, user := range []string{"u1", "u2", "u3", "u4", "u5"} {
		if err := g.Spend(ctx, env, user, mfa.SMS, victim); err != nil {
			t.Fatalf("send %d to the victim: %v", i, err)
		}
	}
	if err := g.Spend(ctx, env, "u6", mfa.SMS, victim); detailCode(err) != engine.DetailSendLimitAddress {
		t.Fatalf("the sixth send to one address: %v, want SEND_LIMIT_ADDRESS", err)
	}
	// That refusal gave u6 its unit back.
	for i := range 2 {
		if err := g.Spend(ctx, env, "u6", mfa.SMS, "+12015550777"); err != nil {
			t.Fatalf("u6's send %d after the refusal: %v", i, err)
		}
	}
}

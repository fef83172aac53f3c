package regulation

import (
	"context"
	"fmt"
	"time"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/store"
)

// Pairing-key guesses, single-use request ids and poll pacing: the limits
// of the doors that do not verify a user's code but could be used to find
// one (a pairing key), to replay a signed request, or to hammer the store.

// DetailGuessLimitClient and DetailGuessLimitEnvironment name the budget
// that refused a pairing-key lookup.
const (
	DetailGuessLimitClient      = "GUESS_LIMIT_CLIENT"
	DetailGuessLimitEnvironment = "GUESS_LIMIT_ENVIRONMENT"
)

// GuessPairingKey takes one unit from the client's and the environment's
// pairing-key guess budgets (mfaSettings.pairingKeyGuesses) before a key
// is looked up, counting first as for passcodes; Release the hold when the
// key was found, so that only wrong keys are counted. client is a keyed
// hash or a network prefix, never a raw address.
func (g *Regulator) GuessPairingKey(ctx context.Context, env *engine.Environment, client string) (*Hold, error) {
	l := env.MFASettings.PairingKeyGuesses
	budgets := []store.Budget{
		budget("g:"+env.ID+":"+g.addressName(env.ID, client), l.Client),
		budget("g:"+env.ID, l.Environment),
	}
	spent, err := g.st.Spend(ctx, budgets...)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	if !spent.OK {
		detail := engine.ErrorDetail{Code: DetailGuessLimitClient, Target: "pairingKey",
			Message: "too many unknown pairing keys from this client (mfaSettings.pairingKeyGuesses.client)"}
		if spent.Refused == 1 {
			detail = engine.ErrorDetail{Code: DetailGuessLimitEnvironment, Target: "pairingKey",
				Message: "too many unknown pairing keys in this environment (mfaSettings.pairingKeyGuesses.environment)"}
		}
		e := engine.TooSoon("Too many unknown pairing keys; try again later.", spent.RetryAfter)
		e.Details = []engine.ErrorDetail{detail}
		return nil, e
	}
	return &Hold{g: g, budgets: budgets}, nil
}

// Once reports whether name is used for the first time within window (a
// signed request's id): a budget of one unit per window, which the first
// use takes. It is only as good as its window, so the caller must refuse
// what is older than the window.
func (g *Regulator) Once(ctx context.Context, name string, window time.Duration) (bool, error) {
	spent, err := g.st.Spend(ctx, store.Budget{Key: "n:" + name, Limit: 1, Period: window})
	if err != nil {
		return false, engine.Unavailable(err)
	}
	return spent.OK, nil
}

// Pace takes one unit of a poll budget (limit polls per period, all of
// them available at once) and answers the 429 of a client polling faster
// than that, with the time to wait.
func (g *Regulator) Pace(ctx context.Context, name string, limit int, period time.Duration) error {
	spent, err := g.st.Spend(ctx, store.Budget{Key: "poll:" + name, Limit: limit, Period: period})
	if err != nil {
		return engine.Unavailable(err)
	}
	if !spent.OK {
		e := engine.TooSoon(fmt.Sprintf("Polling too fast: poll at most every %s, or long-poll with Prefer: wait=N.", period/time.Duration(limit)), spent.RetryAfter)
		e.Details = []engine.ErrorDetail{{Code: DetailSlowDown, Target: "poll", Message: "slow down (RFC 8628's slow_down)"}}
		return e
	}
	return nil
}

// DetailSlowDown is the detail code of a poll refused for pacing.
const DetailSlowDown = "SLOW_DOWN"

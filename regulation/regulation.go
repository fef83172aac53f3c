// Package regulation is the one place that decides whether a user's code
// may be judged and whether a passcode may be sent, for every front door:
// attempts are counted per user before they are judged (mfaSettings.lockout,
// across executions, nodes and front doors), and every send spends the
// budgets of mfaSettings.sendLimits (per user, per address, per environment
// and method). The state lives in the store (store.Regulation,
// store.Budgets); this package turns the environment's settings into store
// calls and the answers into API errors.
package regulation

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store"
)

// Store is what regulation keeps in the store.
type Store interface {
	store.Regulation
	store.Budgets
}

// Regulator applies the limits. Safe for concurrent use.
type Regulator struct {
	st         Store
	addressKey []byte
}

// New returns a regulator; addressKey names address budgets (mfa.Keys).
func New(st Store, addressKey []byte) *Regulator {
	return &Regulator{st: st, addressKey: addressKey}
}

// Attempt counts one verification of the user's code, before it is judged.
// It returns the store's answer, or the 429 when the user is locked out.
// An admitted attempt whose UserLockedUntil is set reached the limit: if
// its code is wrong the user is now locked; a right one settles it
// (Settlement, committed with what the right code does).
//
// subject is what is verified (a pending device's passcode) with its own
// limit; a refusal of the subject is returned with Refusal set and no
// error, for the factor's own answer.
func (g *Regulator) Attempt(ctx context.Context, env *engine.Environment, userID string, subject factor.AttemptLimit, now time.Time) (store.AttemptResult, error) {
	l := env.MFASettings.Lockout
	res, err := g.st.Attempt(ctx, store.Attempt{EnvID: env.ID, UserID: userID,
		UserLimit: l.FailureCount, UserLockout: env.MFASettings.LockoutDuration(),
		Subject: subject.Subject, SubjectLimit: subject.Count, SubjectCoolDown: subject.CoolDown, SubjectStaysVoid: subject.StaysVoid})
	if err != nil {
		return store.AttemptResult{}, engine.Unavailable(err)
	}
	if res.Refusal == store.UserLocked {
		return res, Locked(res.UserLockedUntil, now)
	}
	return res, nil
}

// Locked is the 429 of a locked-out user.
func Locked(until, now time.Time) *engine.Error {
	e := engine.TooSoon("Too many wrong passcodes for this user; verifications are refused until "+
		until.UTC().Format(time.RFC3339)+".", until.Sub(now))
	e.Details = []engine.ErrorDetail{{Code: engine.DetailUserLocked, Target: "user", Message: "is locked out",
		InnerError: map[string]any{"lockedUntil": until.UTC().Format(time.RFC3339)}}}
	return e
}

// Settlement is the write that clears the user's attempts and lockout and
// the subjects', to commit with what a right code does.
func Settlement(envID, userID string, subjects ...string) store.Write {
	return store.Write{Op: store.Settle, Device: store.Device{EnvID: envID, UserID: userID},
		Settle: &store.Settlement{User: true, Subjects: subjects}}
}

// Spend takes one passcode to address (by method) from the user's, the
// address's and the environment's budgets, or refuses with a 429 naming
// the budget and takes nothing (store.Budgets: the user's budget is the
// first, decided before the others are touched). Addresses are compared
// without case: Victim@Example.com is victim@example.com's mailbox.
func (g *Regulator) Spend(ctx context.Context, env *engine.Environment, userID string, method mfa.DeviceType, address string) error {
	_, err := g.Reserve(ctx, env, userID, method, address)
	return err
}

// Hold is one send's units, taken by Reserve, until Release gives them
// back because the send will not happen after all.
type Hold struct {
	g       *Regulator
	budgets []store.Budget
}

// Reserve takes one send's units (see Spend). It may run alongside other
// work of the request; Release undoes it.
func (g *Regulator) Reserve(ctx context.Context, env *engine.Environment, userID string, method mfa.DeviceType, address string) (*Hold, error) {
	limits := env.MFASettings.SendLimits
	budgets := []store.Budget{
		budget("u:"+env.ID+":"+userID, limits.User),
		budget("a:"+g.addressName(env.ID, strings.ToLower(address)), limits.Address),
		budget("e:"+env.ID+":"+string(method), limits.For(method)),
	}
	spent, err := g.st.Spend(ctx, budgets...)
	if err != nil {
		return nil, engine.Unavailable(err)
	}
	if !spent.OK {
		return nil, budgetRefusal(spent.Refused, spent.RetryAfter, method)
	}
	return &Hold{g: g, budgets: budgets}, nil
}

// Release gives the send's units back; a failed refund leaves a budget one
// short for its period: the safe side.
func (h *Hold) Release(ctx context.Context) {
	for _, b := range h.budgets {
		_ = h.g.st.Refund(ctx, b)
	}
}

func budgetRefusal(which int, retryAfter time.Duration, method mfa.DeviceType) error {
	detail := []struct{ code, target, message string }{
		{engine.DetailSendLimitUser, "user", "has been sent as many passcodes as mfaSettings.sendLimits.user allows"},
		{engine.DetailSendLimitAddress, "address", "has been sent as many passcodes as mfaSettings.sendLimits.address allows"},
		{engine.DetailSendLimitEnvironment, "environment", fmt.Sprintf("has sent as many %s passcodes as mfaSettings.sendLimits allows", method)},
	}[which]
	e := engine.TooSoon("Too many passcodes; no more can be sent for now.", retryAfter)
	e.Details = []engine.ErrorDetail{{Code: detail.code, Target: detail.target, Message: detail.message}}
	return e
}

func budget(key string, r mfa.Rate) store.Budget {
	return store.Budget{Key: key, Limit: r.Count, Period: r.Period.Std()}
}

// addressName is the keyed hash an address's budget is named by.
func (g *Regulator) addressName(envID, address string) string {
	return hex.EncodeToString(mfa.KeyedHash(g.addressKey, envID, address)[:16])
}

// Lockout is a user's regulation as the management API shows it.
type Lockout struct {
	Attempts    int
	LockedUntil time.Time // zero when not locked
}

// Lockout reads a user's attempts and lockout.
func (g *Regulator) Lockout(ctx context.Context, env *engine.Environment, userID string, now time.Time) (Lockout, error) {
	rec, err := g.st.ReadRegulation(ctx, env.ID, userID)
	if err != nil {
		return Lockout{}, engine.Unavailable(err)
	}
	l := Lockout{Attempts: rec.UserAttempts}
	if now.Before(rec.UserLockedUntil) {
		l.LockedUntil = rec.UserLockedUntil
	} else if !rec.UserLockedUntil.IsZero() {
		l.Attempts = 0 // a lockout served: the count starts again
	}
	return l, nil
}

// Settle clears the user's attempts and lockout and the subjects' after a
// right code outside an execution (the registry's verifications).
func (g *Regulator) Settle(ctx context.Context, env *engine.Environment, userID string, subjects ...string) error {
	if err := g.st.Settle(ctx, env.ID, userID, store.Settlement{User: true, Subjects: subjects}); err != nil {
		return engine.Unavailable(err)
	}
	return nil
}

// Lift clears a user's attempts and lockout.
func (g *Regulator) Lift(ctx context.Context, env *engine.Environment, userID string) error {
	if err := g.st.Settle(ctx, env.ID, userID, store.Settlement{User: true}); err != nil {
		return engine.Unavailable(err)
	}
	return nil
}

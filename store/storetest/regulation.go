package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/enrollflow/enrollflow/store"
)

// userAttempt is an attempt under mfaSettings.lockout of 5 → 10 minutes.
func userAttempt(envID, user string) store.Attempt {
	return store.Attempt{EnvID: envID, UserID: user, UserLimit: 5, UserLockout: 10 * time.Minute}
}

func (e *env) attempt(a store.Attempt) store.AttemptResult {
	e.t.Helper()
	res, err := e.s.Attempt(e.ctx, a)
	if err != nil {
		e.t.Fatalf("Attempt: %v", err)
	}
	return res
}

func (e *env) regulation(envID, user string) store.RegulationRecord {
	e.t.Helper()
	rec, err := e.s.ReadRegulation(e.ctx, envID, user)
	if err != nil {
		e.t.Fatalf("ReadRegulation: %v", err)
	}
	return rec
}

// sameMs compares times at the millisecond every backend keeps.
func sameMs(a, b time.Time) bool { return a.UnixMilli() == b.UnixMilli() }

func testRegulationUserLockout(e *env) {
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 0 || !rec.UserLockedUntil.IsZero() || len(rec.Subjects) != 0 {
		e.t.Fatalf("a user without attempts has the record %+v", rec)
	}
	a := userAttempt("env1", "alice")
	for i := 1; i <= 4; i++ {
		res := e.attempt(a)
		if !res.Admitted() || res.UserAttempts != i || !res.UserLockedUntil.IsZero() {
			e.t.Fatalf("attempt %d: %+v, want admitted, %d counted, not locked", i, res, i)
		}
	}
	// The fifth is still judged (it may be right), and locks the user.
	lockEnd := e.clock.Now().Add(10 * time.Minute)
	fifth := e.attempt(a)
	if !fifth.Admitted() || fifth.UserAttempts != 5 || !sameMs(fifth.UserLockedUntil, lockEnd) {
		e.t.Fatalf("fifth attempt: %+v, want admitted and locked until %v", fifth, lockEnd)
	}
	e.clock.Advance(time.Minute)
	sixth := e.attempt(a)
	if sixth.Refusal != store.UserLocked || !sameMs(sixth.UserLockedUntil, lockEnd) {
		e.t.Fatalf("sixth attempt: %+v, want refused, locked until %v", sixth, lockEnd)
	}
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 5 || !sameMs(rec.UserLockedUntil, lockEnd) {
		e.t.Fatalf("record %+v, want 5 attempts and the lockout", rec)
	}
	// Another user, and the same user elsewhere, are not locked.
	for _, other := range []store.Attempt{userAttempt("env1", "bob"), userAttempt("env2", "alice")} {
		if res := e.attempt(other); !res.Admitted() || res.UserAttempts != 1 {
			e.t.Fatalf("attempt of %s in %s: %+v", other.UserID, other.EnvID, res)
		}
	}
	// Once the lockout is served, counting starts again.
	e.clock.Advance(9 * time.Minute)
	if res := e.attempt(a); !res.Admitted() || res.UserAttempts != 1 || !res.UserLockedUntil.IsZero() {
		e.t.Fatalf("after the lockout: %+v, want admitted, 1 counted", res)
	}
	// A settlement (a right code, an administrator) clears count and lock.
	for range 4 {
		e.attempt(a)
	}
	if err := e.s.Settle(e.ctx, "env1", "alice", store.Settlement{User: true}); err != nil {
		e.t.Fatalf("Settle: %v", err)
	}
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 0 || !rec.UserLockedUntil.IsZero() {
		e.t.Fatalf("after Settle: %+v", rec)
	}
	if rec := e.regulation("env1", "bob"); rec.UserAttempts != 1 {
		e.t.Fatalf("Settle of alice touched bob: %+v", rec)
	}
}

func testRegulationSubjects(e *env) {
	cool := store.Attempt{EnvID: "env1", UserID: "alice", Subject: "totp-1", SubjectLimit: 3, SubjectCoolDown: 2 * time.Minute}
	for i := 1; i <= 3; i++ {
		if res := e.attempt(cool); !res.Admitted() || res.SubjectAttempts != i {
			e.t.Fatalf("subject attempt %d: %+v", i, res)
		}
	}
	until := e.clock.Now().Add(2 * time.Minute)
	if res := e.attempt(cool); res.Refusal != store.SubjectLocked || !sameMs(res.SubjectLockedUntil, until) {
		e.t.Fatalf("fourth subject attempt: %+v, want refused until %v", res, until)
	}
	e.clock.Advance(2 * time.Minute)
	if res := e.attempt(cool); !res.Admitted() || res.SubjectAttempts != 1 {
		e.t.Fatalf("after the cool-down: %+v, want admitted and counted afresh", res)
	}

	void := store.Attempt{EnvID: "env1", UserID: "alice", Subject: "otp-1", SubjectLimit: 2, SubjectCoolDown: time.Minute, SubjectStaysVoid: true}
	e.attempt(void)
	e.attempt(void)
	if res := e.attempt(void); res.Refusal != store.SubjectLocked {
		e.t.Fatalf("a void passcode in its cool-down: %+v", res)
	}
	e.clock.Advance(time.Minute)
	if res := e.attempt(void); res.Refusal != store.SubjectVoid {
		e.t.Fatalf("a void passcode after its cool-down: %+v, want still refused", res)
	}
	rec := e.regulation("env1", "alice")
	if rec.Subjects["otp-1"].Attempts != 2 || rec.Subjects["totp-1"].Attempts != 1 {
		e.t.Fatalf("subjects %+v", rec.Subjects)
	}
	if err := e.s.Settle(e.ctx, "env1", "alice", store.Settlement{Subjects: []string{"otp-1"}}); err != nil {
		e.t.Fatal(err)
	}
	if res := e.attempt(void); !res.Admitted() || res.SubjectAttempts != 1 {
		e.t.Fatalf("after settling the passcode: %+v", res)
	}
	// Subject attempts count toward the user's limit too; the user's
	// lockout refuses every subject.
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 10 || rec.Subjects["totp-1"].Attempts != 1 {
		e.t.Fatalf("user record %+v, want 10 attempts (those the subject refused count for the user)", rec)
	}
	both := cool
	both.UserLimit, both.UserLockout = 11, time.Hour
	e.attempt(both)
	if res := e.attempt(void); res.Refusal != store.UserLocked {
		e.t.Fatalf("a locked user's other subject: %+v", res)
	}
}

func testRegulationForgets(e *env) {
	a := userAttempt("env1", "alice")
	a.Forget = time.Hour
	e.attempt(a)
	e.attempt(a)
	e.clock.Advance(time.Hour - time.Second)
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 2 {
		e.t.Fatalf("record before Forget: %+v", rec)
	}
	e.attempt(a) // the last attempt sets the clock running again
	e.clock.Advance(time.Hour - time.Second)
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 3 {
		e.t.Fatalf("record an hour after the first attempts: %+v", rec)
	}
	// That the record then goes is each backend's own test: Redis lets
	// the key expire on the server's clock (PEXPIRE), which the suite's
	// fake clock does not move.
}

// testRegulationParallel: N attempts at once cost N: exactly the limit is
// admitted, the rest are refused.
func testRegulationParallel(e *env) {
	const n = 50
	var admitted, refused atomic.Int32
	errs := race(n, func(int) error {
		res, err := e.s.Attempt(e.ctx, userAttempt("env1", "alice"))
		switch {
		case err != nil:
			return err
		case res.Admitted():
			admitted.Add(1)
		case res.Refusal == store.UserLocked:
			refused.Add(1)
		default:
			return fmt.Errorf("refusal %d", res.Refusal)
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		e.t.Fatal(err)
	}
	if admitted.Load() != 5 || refused.Load() != n-5 {
		e.t.Fatalf("%d admitted and %d refused of %d parallel attempts, want 5 and %d", admitted.Load(), refused.Load(), n, n-5)
	}
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 5 || rec.UserLockedUntil.IsZero() {
		e.t.Fatalf("record %+v", rec)
	}
}

// testCommitSettles: a Settle write clears the regulation atomically with
// the execution, and only when the commit goes through.
func testCommitSettles(e *env) {
	a := store.Attempt{EnvID: "env1", UserID: "alice", UserLimit: 5, UserLockout: time.Minute, Subject: "dev-1", SubjectLimit: 3, SubjectCoolDown: time.Minute}
	e.attempt(a)
	e.attempt(a)
	exec := e.create(e.newExec("env1", "alice", "v1"))
	settle := store.Write{Op: store.Settle, Device: store.Device{EnvID: "env1", UserID: "alice"},
		Settle: &store.Settlement{User: true, Subjects: []string{"dev-1"}}}
	wantErr(e.t, "a stale commit with a Settle", e.s.Commit(e.ctx, next(next(exec, "x"), "y"), settle), store.ErrConflict)
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 2 || rec.Subjects["dev-1"].Attempts != 2 {
		e.t.Fatalf("a refused commit settled: %+v", rec)
	}
	d := newDevice("env1", "alice", "d")
	if err := e.s.Commit(e.ctx, next(exec, "enrolled"), create(d, 5), settle); err != nil {
		e.t.Fatalf("Commit with a Settle: %v", err)
	}
	if rec := e.regulation("env1", "alice"); rec.UserAttempts != 0 || len(rec.Subjects) != 0 {
		e.t.Fatalf("after the commit: %+v", rec)
	}
	e.wantDevices("env1", "alice", d)
	wantErr(e.t, "a Settle for another user", e.s.Commit(e.ctx, next(next(exec, "enrolled"), "z"),
		store.Write{Op: store.Settle, Device: store.Device{EnvID: "env1", UserID: "bob"}, Settle: &store.Settlement{User: true}}),
		store.ErrCrossPartition)
}

func (e *env) spend(budgets ...store.Budget) store.Spent {
	e.t.Helper()
	s, err := e.s.Spend(e.ctx, budgets...)
	if err != nil {
		e.t.Fatalf("Spend: %v", err)
	}
	return s
}

// testBudgets: GCRA with the whole limit available at once; a refusal says
// which budget and for how long, and takes nothing from the others.
// RetryAfter is checked within a second: the Redis backend counts on the
// server's clock.
func testBudgets(e *env) {
	user := store.Budget{Key: "test:user:" + store.NewID(), Limit: 3, Period: time.Hour}
	addr := store.Budget{Key: "test:addr:" + store.NewID(), Limit: 5, Period: time.Hour}
	for i := range 3 {
		if s := e.spend(user, addr); !s.OK {
			e.t.Fatalf("spend %d: %+v", i, s)
		}
	}
	s := e.spend(addr, user)
	if s.OK || s.Refused != 1 {
		e.t.Fatalf("fourth spend: %+v, want the user budget (index 1) to refuse", s)
	}
	if want := 20 * time.Minute; s.RetryAfter < want-time.Second || s.RetryAfter > want+time.Second {
		e.t.Fatalf("RetryAfter %v, want about %v (3 an hour: one every 20 minutes)", s.RetryAfter, want)
	}
	// The refused spend took nothing from addr: it still has 2 units.
	for i := range 2 {
		if s := e.spend(addr); !s.OK {
			e.t.Fatalf("addr spend %d after the refusal: %+v", i, s)
		}
	}
	if s := e.spend(addr); s.OK || s.Refused != 0 {
		e.t.Fatalf("addr after its 5 units: %+v", s)
	}
	// A refusal by a later budget gives the earlier its unit back, even
	// when it was full before (its refill is then complete at once).
	full := store.Budget{Key: "test:full:" + store.NewID(), Limit: 2, Period: time.Hour}
	spentOne := store.Budget{Key: "test:one:" + store.NewID(), Limit: 1, Period: time.Hour}
	e.spend(spentOne)
	if s := e.spend(full, spentOne); s.OK || s.Refused != 1 {
		e.t.Fatalf("spend over an exhausted second budget: %+v", s)
	}
	for i := range 2 {
		if s := e.spend(full); !s.OK {
			e.t.Fatalf("unit %d of a budget that was refunded: %+v", i, s)
		}
	}
	// A refusal gives back what the others took: the victim keeps its unit.
	victim := store.Budget{Key: "test:victim:" + store.NewID(), Limit: 1, Period: time.Hour}
	if s := e.spend(spentOne, victim); s.OK || s.Refused != 0 {
		e.t.Fatalf("spend with an exhausted first budget: %+v", s)
	}
	if s := e.spend(victim); !s.OK {
		e.t.Fatalf("the victim's budget was taken by a spend its first budget refused: %+v", s)
	}
	// Budgets are independent.
	if s := e.spend(store.Budget{Key: "test:other:" + store.NewID(), Limit: 1, Period: time.Minute}); !s.OK {
		e.t.Fatalf("another budget: %+v", s)
	}
}

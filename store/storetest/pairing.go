package storetest

import (
	"errors"
	"fmt"
	"time"

	"github.com/enrollflow/enrollflow/store"
)

func pairingWrite(op store.WriteOp, envID, user, hash string, expiresAt time.Time, max int) store.Write {
	return store.Write{Op: op, Device: store.Device{EnvID: envID, UserID: user},
		PairingKey: &store.PairingKey{Hash: hash, ExpiresAt: expiresAt, Max: max}}
}

func (e *env) wantPairingKey(envID, user, hash string, want bool) {
	e.t.Helper()
	got, err := e.s.PairingKeyValid(e.ctx, envID, user, hash)
	if err != nil {
		e.t.Fatalf("PairingKeyValid(%s): %v", hash, err)
	}
	if got != want {
		e.t.Errorf("PairingKeyValid(%s) = %v, want %v", hash, got, want)
	}
}

// testPairingKeys: a key added by a commit is valid until it expires, is
// claimed once (a second claim is a conflict that writes nothing), and
// can be dropped; beyond the limit the key that expires first is voided.
func testPairingKeys(e *env) {
	const envID, user = "env1", "alice"
	now := e.clock.Now()
	x := e.create(e.newExec(envID, user, "v1"))

	x = next(x, "v2")
	if err := e.s.Commit(e.ctx, x, pairingWrite(store.AddPairingKey, envID, user, "k1", now.Add(time.Minute), 3)); err != nil {
		e.t.Fatalf("Commit(add k1): %v", err)
	}
	e.wantPairingKey(envID, user, "k1", true)
	e.wantPairingKey(envID, user, "k2", false)
	e.wantPairingKey(envID, "bob", "k1", false)

	claimed := next(x, "claimed")
	if err := e.s.Commit(e.ctx, claimed, pairingWrite(store.ClaimPairingKey, envID, user, "k1", time.Time{}, 0)); err != nil {
		e.t.Fatalf("Commit(claim k1): %v", err)
	}
	e.wantPairingKey(envID, user, "k1", false)
	again := next(claimed, "claimed again")
	wantErr(e.t, "second claim", e.s.Commit(e.ctx, again, pairingWrite(store.ClaimPairingKey, envID, user, "k1", time.Time{}, 0)), store.ErrConflict)
	e.wantExec(claimed) // the refused claim wrote nothing

	// Four keys with a limit of three: the one that expires first goes.
	x = claimed
	for i, d := range []time.Duration{3 * time.Minute, time.Minute, 2 * time.Minute, 4 * time.Minute} {
		x = next(x, fmt.Sprintf("add %d", i))
		if err := e.s.Commit(e.ctx, x, pairingWrite(store.AddPairingKey, envID, user, fmt.Sprintf("a%d", i), now.Add(d), 3)); err != nil {
			e.t.Fatalf("Commit(add a%d): %v", i, err)
		}
	}
	e.wantPairingKey(envID, user, "a1", false)
	for _, h := range []string{"a0", "a2", "a3"} {
		e.wantPairingKey(envID, user, h, true)
	}

	// A new key that expires before all the others is not the one voided.
	x = next(x, "add short")
	if err := e.s.Commit(e.ctx, x, pairingWrite(store.AddPairingKey, envID, user, "short", now.Add(30*time.Second), 3)); err != nil {
		e.t.Fatalf("Commit(add short): %v", err)
	}
	e.wantPairingKey(envID, user, "short", true)
	e.wantPairingKey(envID, user, "a2", false) // the first of the others to expire
	e.wantPairingKey(envID, user, "a0", true)
	e.wantPairingKey(envID, user, "a3", true)

	x = next(x, "drop")
	if err := e.s.Commit(e.ctx, x, pairingWrite(store.DropPairingKey, envID, user, "a0", time.Time{}, 0),
		pairingWrite(store.DropPairingKey, envID, user, "never-added", time.Time{}, 0)); err != nil {
		e.t.Fatalf("Commit(drop): %v", err)
	}
	e.wantPairingKey(envID, user, "a0", false)

	// Expired keys are not valid and cannot be claimed.
	e.clock.Advance(time.Minute)
	e.wantPairingKey(envID, user, "short", false)
	e.wantPairingKey(envID, user, "a3", true)
	late := next(x, "late")
	wantErr(e.t, "claim of an expired key", e.s.Commit(e.ctx, late, pairingWrite(store.ClaimPairingKey, envID, user, "short", time.Time{}, 0)), store.ErrConflict)
	if err := e.s.Commit(e.ctx, late, pairingWrite(store.ClaimPairingKey, envID, user, "a3", time.Time{}, 0)); err != nil {
		e.t.Fatalf("Commit(claim a3): %v", err)
	}

	// A pairing-key write for another user's set is refused like a device's.
	other := next(late, "other")
	wantErr(e.t, "cross-partition pairing key", e.s.Commit(e.ctx, other,
		pairingWrite(store.AddPairingKey, envID, "someone-else-entirely", "z", now.Add(time.Hour), 20)), store.ErrCrossPartition)
}

// testIndexes: an entry maps a key to a value until it expires, per
// environment and index.
func testIndexes(e *env) {
	now := e.clock.Now()
	if created, err := e.s.PutIndex(e.ctx, "env1", store.IndexPairingKey, "h1", "exec-1", now.Add(time.Minute)); err != nil || !created {
		e.t.Fatalf("PutIndex = %v, %v; want created", created, err)
	}
	got, err := e.s.GetIndex(e.ctx, "env1", store.IndexPairingKey, "h1")
	if err != nil || got != "exec-1" {
		e.t.Fatalf("GetIndex = %q, %v; want exec-1", got, err)
	}
	_, err = e.s.GetIndex(e.ctx, "env2", store.IndexPairingKey, "h1")
	wantErr(e.t, "other environment", err, store.ErrNotFound)
	_, err = e.s.GetIndex(e.ctx, "env1", store.IndexPairingKey, "h2")
	wantErr(e.t, "unknown key", err, store.ErrNotFound)
	// A live entry is never replaced: two records cannot share a key.
	if created, err := e.s.PutIndex(e.ctx, "env1", store.IndexPairingKey, "h1", "exec-2", now.Add(time.Minute)); err != nil || created {
		e.t.Fatalf("PutIndex over a live entry = %v, %v; want not created", created, err)
	}
	if got, _ := e.s.GetIndex(e.ctx, "env1", store.IndexPairingKey, "h1"); got != "exec-1" {
		e.t.Errorf("entry = %q after a refused put, want exec-1", got)
	}
	if created, _ := e.s.PutIndex(e.ctx, "env2", store.IndexPairingKey, "h1", "exec-3", now.Add(time.Minute)); !created {
		e.t.Errorf("the same key in another environment was refused")
	}
	// A delete names the value it removes: another record's claim stays.
	if err := e.s.DeleteIndex(e.ctx, "env1", store.IndexPairingKey, "h1", "exec-2"); err != nil {
		e.t.Fatal(err)
	}
	if got, _ := e.s.GetIndex(e.ctx, "env1", store.IndexPairingKey, "h1"); got != "exec-1" {
		e.t.Errorf("a delete of another value removed the entry (now %q)", got)
	}
	if err := e.s.DeleteIndex(e.ctx, "env2", store.IndexPairingKey, "h1", "exec-3"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.GetIndex(e.ctx, "env2", store.IndexPairingKey, "h1"); !errors.Is(err, store.ErrNotFound) {
		e.t.Errorf("deleted entry: %v", err)
	}
	if err := e.s.DeleteIndex(e.ctx, "env2", store.IndexPairingKey, "absent", "x"); err != nil {
		e.t.Errorf("delete of an absent entry: %v", err)
	}
	e.clock.Advance(time.Minute)
	_, err = e.s.GetIndex(e.ctx, "env1", store.IndexPairingKey, "h1")
	wantErr(e.t, "expired entry", err, store.ErrNotFound)
	// An expired entry gives way.
	if created, err := e.s.PutIndex(e.ctx, "env1", store.IndexPairingKey, "h1", "exec-4", e.clock.Now().Add(time.Minute)); err != nil || !created {
		e.t.Fatalf("PutIndex over an expired entry = %v, %v", created, err)
	}
	if got, _ := e.s.GetIndex(e.ctx, "env1", store.IndexPairingKey, "h1"); got != "exec-4" {
		e.t.Errorf("entry = %q, want exec-4", got)
	}
}

// testWatchExecution: a waiter is woken by an update and by a commit of
// its execution, and not by another execution's.
func testWatchExecution(e *env) {
	x := e.create(e.newExec("env1", "alice", "v1"))
	other := e.create(e.newExec("env1", "bob", "v1"))
	changed, cancel := e.s.WatchExecution("env1", x.ID)
	defer cancel()
	// A backend that subscribes may wake a new waiter once (it cannot know
	// what it missed before it was listening): drain that before testing.
	drain(changed, 200*time.Millisecond)

	if err := e.s.UpdateExecution(e.ctx, next(other, "v2")); err != nil {
		e.t.Fatal(err)
	}
	if woken(changed, 200*time.Millisecond) {
		e.t.Errorf("woken by another execution's write")
	}
	x = next(x, "v2")
	if err := e.s.UpdateExecution(e.ctx, x); err != nil {
		e.t.Fatal(err)
	}
	if !woken(changed, 5*time.Second) {
		e.t.Fatalf("not woken by UpdateExecution")
	}
	x = next(x, "v3")
	if err := e.s.Commit(e.ctx, x, create(newDevice("env1", "alice", "d"), 0)); err != nil {
		e.t.Fatal(err)
	}
	if !woken(changed, 5*time.Second) {
		e.t.Fatalf("not woken by Commit")
	}
	cancel()
	x = next(x, "v4")
	if err := e.s.UpdateExecution(e.ctx, x); err != nil {
		e.t.Fatal(err)
	}
	if woken(changed, 200*time.Millisecond) {
		e.t.Errorf("woken after cancel")
	}
}

func woken(ch <-chan struct{}, within time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(within):
		return false
	}
}

func drain(ch <-chan struct{}, within time.Duration) { woken(ch, within) }

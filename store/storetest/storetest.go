// Package storetest is the conformance suite every store.Store backend must
// pass. The in-memory backend is the reference: its semantics are the
// contract, and this suite pins them down so that the Redis backend (or any
// later one) cannot drift.
//
// A backend's test calls Run with a factory:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
//			return memory.New(now)
//		})
//	}
//
// Each subtest gets a fresh, empty store from the factory and closes it when
// the subtest ends. Expiry is tested by advancing a fake clock, never by
// sleeping, so backends must read time only through the now they are given.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/store"
)

// Clock is a fake clock the suite advances to expire records.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at the current time truncated to the millisecond, the
// precision every backend keeps for ExpiresAt.
func NewClock() *Clock {
	return &Clock{now: time.Now().Truncate(time.Millisecond)}
}

// Now returns the fake time; safe for concurrent use.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the fake time forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env bundles what one subtest works with.
type env struct {
	t     *testing.T
	ctx   context.Context
	s     store.Store
	clock *Clock
}

// Run runs the whole suite against the stores newStore makes. newStore must
// return a fresh, empty store that reads time only from now; subtests run
// one after another, so a factory may reset shared state (FLUSHDB).
func Run(t *testing.T, newStore func(t *testing.T, now func() time.Time) store.Store) {
	tests := []struct {
		name string
		fn   func(e *env)
	}{
		{"Ping", testPing},
		{"ExecutionRoundTrip", testExecutionRoundTrip},
		{"ExecutionCreateDuplicate", testExecutionCreateDuplicate},
		{"ExecutionCreateOverExpired", testExecutionCreateOverExpired},
		{"ExecutionGetUnknown", testExecutionGetUnknown},
		{"ExecutionExpiry", testExecutionExpiry},
		{"ExecutionUpdate", testExecutionUpdate},
		{"ExecutionUpdateStale", testExecutionUpdateStale},
		{"ExecutionUpdateMissing", testExecutionUpdateMissing},
		{"Commit", testCommit},
		{"CommitStale", testCommitStale},
		{"CommitMissing", testCommitMissing},
		{"CommitDeviceLimit", testCommitDeviceLimit},
		{"CommitEachWrite", testCommitEachWrite},
		{"CommitIsAtomic", testCommitIsAtomic},
		{"CommitCrossPartition", testCommitCrossPartition},
		{"DeviceVersions", testDeviceVersions},
		{"ConcurrentDeviceUpdates", testConcurrentDeviceUpdates},
		{"ConcurrentCommits", testConcurrentCommits},
		{"ConcurrentMixedWriters", testConcurrentMixedWriters},
		{"Devices", testDevices},
		{"DevicesIsolation", testDevicesIsolation},
		{"Documents", testDocuments},
		{"RegulationUserLockout", testRegulationUserLockout},
		{"RegulationSubjects", testRegulationSubjects},
		{"RegulationForgets", testRegulationForgets},
		{"RegulationParallel", testRegulationParallel},
		{"CommitSettles", testCommitSettles},
		{"Budgets", testBudgets},
		{"PairingKeys", testPairingKeys},
		{"Indexes", testIndexes},
		{"WatchExecution", testWatchExecution},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewClock()
			s := newStore(t, clock.Now)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(&env{t: t, ctx: context.Background(), s: s, clock: clock})
		})
	}
}

// newExec returns a not-yet-stored execution of user in envID that expires
// in an hour. Ids come from store.NewExecutionID: backends may rely on the
// partition it carries.
func (e *env) newExec(envID, user string, data string) store.Execution {
	return store.Execution{
		EnvID:     envID,
		ID:        store.NewExecutionID(envID, user),
		Version:   1,
		ExpiresAt: e.clock.Now().Add(time.Hour),
		Data:      []byte(data),
	}
}

func (e *env) create(exec store.Execution) store.Execution {
	e.t.Helper()
	if err := e.s.CreateExecution(e.ctx, exec); err != nil {
		e.t.Fatalf("CreateExecution(%s): %v", exec.ID, err)
	}
	return exec
}

func (e *env) get(envID, id string) store.Execution {
	e.t.Helper()
	got, err := e.s.GetExecution(e.ctx, envID, id)
	if err != nil {
		e.t.Fatalf("GetExecution(%s): %v", id, err)
	}
	return got
}

// wantExec fails unless the stored execution equals want.
func (e *env) wantExec(want store.Execution) {
	e.t.Helper()
	got := e.get(want.EnvID, want.ID)
	if got.EnvID != want.EnvID || got.ID != want.ID {
		e.t.Errorf("got execution %s/%s, want %s/%s", got.EnvID, got.ID, want.EnvID, want.ID)
	}
	if got.Version != want.Version {
		e.t.Errorf("execution %s: version %d, want %d", want.ID, got.Version, want.Version)
	}
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		e.t.Errorf("execution %s: ExpiresAt %v, want %v", want.ID, got.ExpiresAt, want.ExpiresAt)
	}
	if !bytes.Equal(got.Data, want.Data) {
		e.t.Errorf("execution %s: data %q, want %q", want.ID, got.Data, want.Data)
	}
}

// next returns exec as a writer that read it would update it.
func next(exec store.Execution, data string) store.Execution {
	exec.Version++
	exec.Data = []byte(data)
	return exec
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func (e *env) wantDevices(envID, user string, want ...store.Device) {
	e.t.Helper()
	got, err := e.s.ListDevices(e.ctx, envID, user)
	if err != nil {
		e.t.Fatalf("ListDevices(%s, %s): %v", envID, user, err)
	}
	n, err := e.s.CountDevices(e.ctx, envID, user)
	if err != nil {
		e.t.Fatalf("CountDevices(%s, %s): %v", envID, user, err)
	}
	if n != len(want) {
		e.t.Errorf("CountDevices(%s, %s) = %d, want %d", envID, user, n, len(want))
	}
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b store.Device) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if len(got) != len(want) {
		e.t.Fatalf("ListDevices(%s, %s) returned %d devices, want %d: %v", envID, user, len(got), len(want), got)
	}
	for i := range want {
		if !sameDevice(got[i], want[i]) {
			e.t.Errorf("ListDevices(%s, %s)[%d] = %s, want %s (sorted by id)", envID, user, i, fmtDevice(got[i]), fmtDevice(want[i]))
		}
	}
}

func sameDevice(a, b store.Device) bool {
	return a.EnvID == b.EnvID && a.UserID == b.UserID && a.ID == b.ID && a.Version == b.Version && bytes.Equal(a.Data, b.Data)
}

func fmtDevice(d store.Device) string {
	return fmt.Sprintf("{%s %s %s v%d %q}", d.EnvID, d.UserID, d.ID, d.Version, d.Data)
}

// newDevice is a device of user not yet stored (version 1).
func newDevice(envID, user, data string) store.Device {
	return store.Device{EnvID: envID, UserID: user, ID: store.NewID(), Version: 1, Data: []byte(data)}
}

// create is the write that adds d, within max devices.
func create(d store.Device, max int) store.Write {
	return store.Write{Op: store.CreateDevice, Device: d, MaxDevices: max}
}

// updated is d's next version with new data.
func updated(d store.Device, data string) store.Device {
	d.Version++
	d.Data = []byte(data)
	return d
}

func testPing(e *env) {
	if err := e.s.Ping(e.ctx); err != nil {
		e.t.Fatalf("Ping: %v", err)
	}
}

func testExecutionRoundTrip(e *env) {
	exec := e.newExec("env1", "alice", "state-1")
	e.create(exec)
	// The store must own its copy: a caller reusing its buffer after the
	// call must not change what is stored.
	exec.Data[0] = 'X'
	exec.Data = []byte("state-1")

	got := e.get("env1", exec.ID)
	if got.Version != 1 {
		e.t.Errorf("version after create = %d, want 1", got.Version)
	}
	e.wantExec(exec)

	// Nor may a caller mutating what it read change the store.
	got.Data[0] = 'Y'
	e.wantExec(exec)

	// Executions are per environment.
	_, err := e.s.GetExecution(e.ctx, "env2", exec.ID)
	wantErr(e.t, "GetExecution from another env", err, store.ErrNotFound)

	// Binary data survives unchanged.
	bin := e.newExec("env1", "alice", "")
	bin.Data = []byte{0, 1, 2, 0xff, '\n', 0, '{', '}'}
	e.create(bin)
	e.wantExec(bin)
}

func testExecutionCreateDuplicate(e *env) {
	exec := e.create(e.newExec("env1", "alice", "first"))

	dup := exec
	dup.Data = []byte("second")
	wantErr(e.t, "CreateExecution of a live id", e.s.CreateExecution(e.ctx, dup), store.ErrExists)
	e.wantExec(exec)

	// The same id in another environment is a different record.
	other := dup
	other.EnvID = "env2"
	if err := e.s.CreateExecution(e.ctx, other); err != nil {
		e.t.Fatalf("CreateExecution of the same id in another env: %v", err)
	}
	e.wantExec(other)
	e.wantExec(exec)
}

func testExecutionCreateOverExpired(e *env) {
	exec := e.newExec("env1", "alice", "old")
	exec.ExpiresAt = e.clock.Now().Add(time.Minute)
	e.create(exec)
	e.clock.Advance(time.Minute)

	// An expired record no longer holds its id.
	fresh := exec
	fresh.Data = []byte("new")
	fresh.ExpiresAt = e.clock.Now().Add(time.Hour)
	if err := e.s.CreateExecution(e.ctx, fresh); err != nil {
		e.t.Fatalf("CreateExecution over an expired record: %v", err)
	}
	e.wantExec(fresh)
}

func testExecutionGetUnknown(e *env) {
	_, err := e.s.GetExecution(e.ctx, "env1", store.NewExecutionID("env1", "alice"))
	wantErr(e.t, "GetExecution of an unknown id", err, store.ErrNotFound)

	// Ids no backend could have issued are simply not found.
	for _, id := range []string{"", "nope", store.NewID(), "ZZZZ" + store.NewID()} {
		_, err := e.s.GetExecution(e.ctx, "env1", id)
		wantErr(e.t, fmt.Sprintf("GetExecution(%q)", id), err, store.ErrNotFound)
	}
}

func testExecutionExpiry(e *env) {
	exec := e.newExec("env1", "alice", "ticking")
	exec.ExpiresAt = e.clock.Now().Add(time.Minute)
	e.create(exec)

	e.clock.Advance(time.Minute - time.Millisecond)
	e.wantExec(exec) // still live one millisecond before ExpiresAt

	e.clock.Advance(time.Millisecond)
	_, err := e.s.GetExecution(e.ctx, "env1", exec.ID)
	wantErr(e.t, "GetExecution at ExpiresAt", err, store.ErrNotFound)

	e.clock.Advance(time.Hour)
	_, err = e.s.GetExecution(e.ctx, "env1", exec.ID)
	wantErr(e.t, "GetExecution long after ExpiresAt", err, store.ErrNotFound)
}

func testExecutionUpdate(e *env) {
	exec := e.create(e.newExec("env1", "alice", "v1"))

	read := e.get("env1", exec.ID)
	upd := next(read, "v2")
	upd.ExpiresAt = e.clock.Now().Add(2 * time.Hour) // updates may move expiry
	if err := e.s.UpdateExecution(e.ctx, upd); err != nil {
		e.t.Fatalf("UpdateExecution: %v", err)
	}
	e.wantExec(upd)
	if got := e.get("env1", exec.ID); got.Version != 2 {
		e.t.Fatalf("version after one update = %d, want 2", got.Version)
	}

	upd3 := next(upd, "v3")
	if err := e.s.UpdateExecution(e.ctx, upd3); err != nil {
		e.t.Fatalf("second UpdateExecution: %v", err)
	}
	e.wantExec(upd3)

	// A moved expiry is the one that counts.
	e.clock.Advance(90 * time.Minute)
	e.wantExec(upd3)
	e.clock.Advance(30 * time.Minute)
	_, err := e.s.GetExecution(e.ctx, "env1", exec.ID)
	wantErr(e.t, "GetExecution after the updated ExpiresAt", err, store.ErrNotFound)
}

func testExecutionUpdateStale(e *env) {
	exec := e.create(e.newExec("env1", "alice", "v1"))
	winner := next(exec, "winner")
	if err := e.s.UpdateExecution(e.ctx, winner); err != nil {
		e.t.Fatalf("UpdateExecution: %v", err)
	}

	// A writer that read version 1 too now loses.
	loser := next(exec, "loser")
	wantErr(e.t, "UpdateExecution from a stale version", e.s.UpdateExecution(e.ctx, loser), store.ErrConflict)
	e.wantExec(winner)

	// Skipping ahead is a conflict as well.
	ahead := winner
	ahead.Version += 2
	ahead.Data = []byte("ahead")
	wantErr(e.t, "UpdateExecution skipping a version", e.s.UpdateExecution(e.ctx, ahead), store.ErrConflict)
	e.wantExec(winner)
}

func testExecutionUpdateMissing(e *env) {
	unknown := next(e.newExec("env1", "alice", "v1"), "v2")
	wantErr(e.t, "UpdateExecution of an unknown id", e.s.UpdateExecution(e.ctx, unknown), store.ErrNotFound)
	_, err := e.s.GetExecution(e.ctx, "env1", unknown.ID)
	wantErr(e.t, "GetExecution after a refused update", err, store.ErrNotFound)

	exec := e.newExec("env1", "alice", "v1")
	exec.ExpiresAt = e.clock.Now().Add(time.Minute)
	e.create(exec)
	e.clock.Advance(time.Minute)
	upd := next(exec, "v2")
	upd.ExpiresAt = e.clock.Now().Add(time.Hour)
	wantErr(e.t, "UpdateExecution of an expired record", e.s.UpdateExecution(e.ctx, upd), store.ErrNotFound)
	_, err = e.s.GetExecution(e.ctx, "env1", exec.ID)
	wantErr(e.t, "GetExecution after updating an expired record", err, store.ErrNotFound)
}

func testCommit(e *env) {
	exec := e.create(e.newExec("env1", "alice", "before"))
	upd := next(exec, "enrolled")
	dev := newDevice("env1", "alice", "device-1")
	if err := e.s.Commit(e.ctx, upd, create(dev, 5)); err != nil {
		e.t.Fatalf("Commit: %v", err)
	}
	e.wantExec(upd)
	got, err := e.s.GetDevice(e.ctx, "env1", "alice", dev.ID)
	if err != nil {
		e.t.Fatalf("GetDevice after commit: %v", err)
	}
	if !sameDevice(got, dev) {
		e.t.Errorf("GetDevice = %s, want %s", fmtDevice(got), fmtDevice(dev))
	}
	e.wantDevices("env1", "alice", dev)

	// A commit without writes is an UpdateExecution.
	cur := next(upd, "no writes")
	if err := e.s.Commit(e.ctx, cur); err != nil {
		e.t.Fatalf("Commit without writes: %v", err)
	}
	e.wantExec(cur)

	// Without a limit (0) a user may have any number of devices.
	all := []store.Device{dev}
	for i := range 4 {
		cur = next(cur, fmt.Sprintf("enrolled-%d", i))
		d := newDevice("env1", "alice", fmt.Sprintf("device-%d", i))
		if err := e.s.Commit(e.ctx, cur, create(d, 0)); err != nil {
			e.t.Fatalf("Commit #%d without a limit: %v", i, err)
		}
		all = append(all, d)
	}
	e.wantExec(cur)
	e.wantDevices("env1", "alice", all...)
}

func testCommitStale(e *env) {
	exec := e.create(e.newExec("env1", "alice", "v1"))
	winner := next(exec, "winner")
	if err := e.s.UpdateExecution(e.ctx, winner); err != nil {
		e.t.Fatalf("UpdateExecution: %v", err)
	}

	dev := newDevice("env1", "alice", "d")
	wantErr(e.t, "Commit from a stale version", e.s.Commit(e.ctx, next(exec, "loser"), create(dev, 5)), store.ErrConflict)
	e.wantExec(winner)
	_, err := e.s.GetDevice(e.ctx, "env1", "alice", dev.ID)
	wantErr(e.t, "GetDevice after a refused commit", err, store.ErrNotFound)
	e.wantDevices("env1", "alice")
}

func testCommitMissing(e *env) {
	dev := newDevice("env1", "alice", "d")
	unknown := next(e.newExec("env1", "alice", "v1"), "v2")
	wantErr(e.t, "Commit of an unknown execution", e.s.Commit(e.ctx, unknown, create(dev, 5)), store.ErrNotFound)
	e.wantDevices("env1", "alice")

	exec := e.newExec("env1", "alice", "v1")
	exec.ExpiresAt = e.clock.Now().Add(time.Minute)
	e.create(exec)
	e.clock.Advance(time.Minute)
	wantErr(e.t, "Commit of an expired execution", e.s.Commit(e.ctx, next(exec, "v2"), create(dev, 5)), store.ErrNotFound)
	e.wantDevices("env1", "alice")
}

func testCommitDeviceLimit(e *env) {
	const limit = 2
	var devs []store.Device
	for i := range limit {
		exec := e.create(e.newExec("env1", "alice", "v1"))
		d := newDevice("env1", "alice", fmt.Sprintf("device-%d", i))
		if err := e.s.Commit(e.ctx, next(exec, "enrolled"), create(d, limit)); err != nil {
			e.t.Fatalf("Commit #%d under the limit: %v", i, err)
		}
		devs = append(devs, d)
	}

	exec := e.create(e.newExec("env1", "alice", "v1"))
	extra := newDevice("env1", "alice", "one too many")
	wantErr(e.t, "Commit over the limit", e.s.Commit(e.ctx, next(exec, "enrolled"), create(extra, limit)), store.ErrDeviceLimit)
	e.wantExec(exec) // the execution was not updated either
	e.wantDevices("env1", "alice", devs...)

	// Updating a device the user has does not grow the registry.
	replace := updated(devs[0], "re-enrolled")
	upd := next(exec, "re-enrolled")
	if err := e.s.Commit(e.ctx, upd, store.Write{Op: store.UpdateDevice, Device: replace}); err != nil {
		e.t.Fatalf("Commit updating a device at the limit: %v", err)
	}
	e.wantExec(upd)
	e.wantDevices("env1", "alice", replace, devs[1])

	// Deleting one in the same commit makes room for the new one.
	swap := next(upd, "swapped")
	if err := e.s.Commit(e.ctx, swap, store.Write{Op: store.DeleteDevice, Device: devs[1]}, create(extra, limit)); err != nil {
		e.t.Fatalf("Commit deleting then creating at the limit: %v", err)
	}
	e.wantDevices("env1", "alice", replace, extra)

	// The limit is per user.
	bob := e.create(e.newExec("env1", "bob", "v1"))
	bobDev := newDevice("env1", "bob", "bob's")
	if err := e.s.Commit(e.ctx, next(bob, "enrolled"), create(bobDev, limit)); err != nil {
		e.t.Fatalf("Commit for another user: %v", err)
	}
	e.wantDevices("env1", "bob", bobDev)
}

func testCommitEachWrite(e *env) {
	exec := e.create(e.newExec("env1", "alice", "v1"))
	a, b := newDevice("env1", "alice", "a"), newDevice("env1", "alice", "b")
	cur := next(exec, "two")
	if err := e.s.Commit(e.ctx, cur, create(a, 0), create(b, 0)); err != nil {
		e.t.Fatalf("Commit of two creates: %v", err)
	}
	e.wantDevices("env1", "alice", a, b)

	wantErr(e.t, "Commit creating an id that exists", e.s.Commit(e.ctx, next(cur, "dup"), create(a, 0)), store.ErrExists)
	wantErr(e.t, "Commit updating from a stale version", e.s.Commit(e.ctx, next(cur, "stale"),
		store.Write{Op: store.UpdateDevice, Device: updated(updated(a, "skips a version"), "again")}), store.ErrConflict)
	ghost := updated(newDevice("env1", "alice", "ghost"), "ghost v2")
	wantErr(e.t, "Commit updating an unknown device", e.s.Commit(e.ctx, next(cur, "ghost"),
		store.Write{Op: store.UpdateDevice, Device: ghost}), store.ErrNotFound)
	e.wantExec(cur)
	e.wantDevices("env1", "alice", a, b)

	a2 := updated(a, "a, second version")
	cur = next(cur, "update and delete")
	if err := e.s.Commit(e.ctx, cur, store.Write{Op: store.UpdateDevice, Device: a2}, store.Write{Op: store.DeleteDevice, Device: b}); err != nil {
		e.t.Fatalf("Commit of an update and a delete: %v", err)
	}
	e.wantExec(cur)
	e.wantDevices("env1", "alice", a2)

	// Deleting what is not there is no error: the commit's other writes
	// and the execution still go through.
	cur = next(cur, "delete again")
	if err := e.s.Commit(e.ctx, cur, store.Write{Op: store.DeleteDevice, Device: b}); err != nil {
		e.t.Fatalf("Commit deleting a deleted device: %v", err)
	}
	e.wantExec(cur)
}

// testCommitIsAtomic: when one write of a commit is refused, none happens.
func testCommitIsAtomic(e *env) {
	exec := e.create(e.newExec("env1", "alice", "v1"))
	a := newDevice("env1", "alice", "a")
	cur := next(exec, "a")
	if err := e.s.Commit(e.ctx, cur, create(a, 0)); err != nil {
		e.t.Fatal(err)
	}
	fresh := newDevice("env1", "alice", "fresh")
	stale := store.Write{Op: store.UpdateDevice, Device: updated(updated(a, "x"), "y")}
	for _, writes := range [][]store.Write{
		{create(fresh, 0), stale},
		{store.Write{Op: store.DeleteDevice, Device: a}, create(fresh, 0), create(a, 0)},
		{create(fresh, 0), create(newDevice("env1", "alice", "third"), 2)},
	} {
		if err := e.s.Commit(e.ctx, next(cur, "must not be written"), writes...); err == nil {
			e.t.Fatalf("Commit %v went through", writes)
		}
		e.wantExec(cur)
		e.wantDevices("env1", "alice", a)
	}
}

func testCommitCrossPartition(e *env) {
	exec := e.create(e.newExec("env1", "alice", "v1"))
	for _, d := range []store.Device{newDevice("env1", "bob", "bob's"), newDevice("env2", "alice", "other env")} {
		wantErr(e.t, "Commit to "+d.UserID+" in "+d.EnvID, e.s.Commit(e.ctx, next(exec, "x"), create(d, 0)), store.ErrCrossPartition)
		e.wantDevices(d.EnvID, d.UserID)
	}
	e.wantExec(exec)
}

func testDeviceVersions(e *env) {
	d := e.enroll("env1", "alice", "v1 data")
	if d.Version != 1 {
		e.t.Fatalf("enrolled device version %d", d.Version)
	}
	d2 := updated(d, "v2 data")
	if err := e.s.UpdateDevice(e.ctx, d2); err != nil {
		e.t.Fatalf("UpdateDevice to version 2: %v", err)
	}
	got, err := e.s.GetDevice(e.ctx, "env1", "alice", d.ID)
	if err != nil || !sameDevice(got, d2) {
		e.t.Fatalf("GetDevice after update = %s, %v; want %s", fmtDevice(got), err, fmtDevice(d2))
	}
	wantErr(e.t, "UpdateDevice from the version before", e.s.UpdateDevice(e.ctx, updated(d, "lost update")), store.ErrConflict)
	wantErr(e.t, "UpdateDevice skipping a version", e.s.UpdateDevice(e.ctx, updated(updated(d2, "x"), "y")), store.ErrConflict)
	e.wantDevices("env1", "alice", d2)

	// A nested update: the inner one wins, the outer, read before it,
	// conflicts and must be re-run from a fresh read.
	outerRead := d2
	inner := updated(d2, "inner")
	if err := e.s.UpdateDevice(e.ctx, inner); err != nil {
		e.t.Fatalf("inner UpdateDevice: %v", err)
	}
	wantErr(e.t, "outer UpdateDevice after the inner one", e.s.UpdateDevice(e.ctx, updated(outerRead, "outer")), store.ErrConflict)
	e.wantDevices("env1", "alice", inner)
}

func testConcurrentDeviceUpdates(e *env) {
	const n = 20
	d := e.enroll("env1", "alice", "v1")
	versions := make([]store.Device, n)
	for i := range n {
		versions[i] = updated(d, fmt.Sprintf("writer-%d", i))
	}
	w := oneWinner(e.t, race(n, func(i int) error { return e.s.UpdateDevice(e.ctx, versions[i]) }))
	e.wantDevices("env1", "alice", versions[w])
}

// race runs n writers that all start from the same read of one execution and
// reports, per writer, the error it got.
func race(n int, write func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = write(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner fails unless exactly one writer succeeded and all others got
// ErrConflict; it returns the winner.
func oneWinner(t *testing.T, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won from the same version", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("writer %d: got %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	return winner
}

func testConcurrentCommits(e *env) {
	const n = 20
	exec := e.create(e.newExec("env1", "alice", "v1"))
	read := e.get("env1", exec.ID)

	execs := make([]store.Execution, n)
	devs := make([]store.Device, n)
	for i := range n {
		execs[i] = next(read, fmt.Sprintf("writer-%d", i))
		devs[i] = newDevice("env1", "alice", fmt.Sprintf("device-%d", i))
	}
	errs := race(n, func(i int) error {
		return e.s.Commit(e.ctx, execs[i], create(devs[i], 10))
	})
	w := oneWinner(e.t, errs)
	e.wantExec(execs[w])
	e.wantDevices("env1", "alice", devs[w])
}

func testConcurrentMixedWriters(e *env) {
	const n = 20
	exec := e.create(e.newExec("env1", "alice", "v1"))
	read := e.get("env1", exec.ID)

	execs := make([]store.Execution, n)
	devs := make([]store.Device, n)
	for i := range n {
		// Identical data from every writer: the store must still let only
		// one of them through.
		execs[i] = next(read, "same-next-state")
		devs[i] = newDevice("env1", "alice", fmt.Sprintf("device-%d", i))
	}
	errs := race(n, func(i int) error {
		if i%2 == 0 {
			return e.s.UpdateExecution(e.ctx, execs[i])
		}
		return e.s.Commit(e.ctx, execs[i], create(devs[i], 10))
	})
	w := oneWinner(e.t, errs)
	e.wantExec(execs[w])
	if w%2 == 0 {
		e.wantDevices("env1", "alice") // an update won: no device at all
	} else {
		e.wantDevices("env1", "alice", devs[w])
	}
}

// enroll puts a device into the registry the only way the interface allows
// creating one: by committing an enrollment.
func (e *env) enroll(envID, user, data string) store.Device {
	e.t.Helper()
	exec := e.create(e.newExec(envID, user, "start"))
	d := newDevice(envID, user, data)
	if err := e.s.Commit(e.ctx, next(exec, "done"), create(d, 0)); err != nil {
		e.t.Fatalf("Commit(%s/%s): %v", envID, user, err)
	}
	return d
}

func testDevices(e *env) {
	e.wantDevices("env1", "alice") // empty registry: no error, no devices

	a := e.enroll("env1", "alice", "a")
	b := e.enroll("env1", "alice", "b")
	c := e.enroll("env1", "alice", "c")
	e.wantDevices("env1", "alice", a, b, c)

	got, err := e.s.GetDevice(e.ctx, "env1", "alice", b.ID)
	if err != nil {
		e.t.Fatalf("GetDevice: %v", err)
	}
	if !sameDevice(got, b) {
		e.t.Errorf("GetDevice = %s, want %s", fmtDevice(got), fmtDevice(b))
	}
	got.Data[0] = 'X' // the caller's copy, not the store's
	e.wantDevices("env1", "alice", a, b, c)
	_, err = e.s.GetDevice(e.ctx, "env1", "alice", store.NewID())
	wantErr(e.t, "GetDevice of an unknown id", err, store.ErrNotFound)

	// UpdateDevice replaces existing devices only.
	b = updated(b, "b, renamed")
	if err := e.s.UpdateDevice(e.ctx, b); err != nil {
		e.t.Fatalf("UpdateDevice of an existing device: %v", err)
	}
	ghost := updated(newDevice("env1", "alice", "ghost"), "ghost v2")
	wantErr(e.t, "UpdateDevice of an unknown device", e.s.UpdateDevice(e.ctx, ghost), store.ErrNotFound)
	e.wantDevices("env1", "alice", a, b, c)

	if err := e.s.DeleteDevice(e.ctx, "env1", "alice", a.ID); err != nil {
		e.t.Fatalf("DeleteDevice: %v", err)
	}
	_, err = e.s.GetDevice(e.ctx, "env1", "alice", a.ID)
	wantErr(e.t, "GetDevice after delete", err, store.ErrNotFound)
	wantErr(e.t, "DeleteDevice twice", e.s.DeleteDevice(e.ctx, "env1", "alice", a.ID), store.ErrNotFound)
	wantErr(e.t, "DeleteDevice of an unknown id", e.s.DeleteDevice(e.ctx, "env1", "alice", store.NewID()), store.ErrNotFound)
	wantErr(e.t, "UpdateDevice of a deleted device", e.s.UpdateDevice(e.ctx, updated(a, "a v2")), store.ErrNotFound)
	e.wantDevices("env1", "alice", b, c)

	for _, d := range []store.Device{b, c} {
		if err := e.s.DeleteDevice(e.ctx, "env1", "alice", d.ID); err != nil {
			e.t.Fatalf("DeleteDevice: %v", err)
		}
	}
	e.wantDevices("env1", "alice")
}

func testDevicesIsolation(e *env) {
	alice1 := e.enroll("env1", "alice", "alice in env1")
	bob1 := e.enroll("env1", "bob", "bob in env1")
	alice2 := e.enroll("env2", "alice", "alice in env2")
	// Ids that would collide if a backend joined env and user naively.
	odd := e.enroll("env1:alice", "x", "odd env")
	e.wantDevices("env1", "alice", alice1)
	e.wantDevices("env1", "bob", bob1)
	e.wantDevices("env2", "alice", alice2)
	e.wantDevices("env1:alice", "x", odd)
	e.wantDevices("env1", "alice:x")

	// A device is only reachable under its own env and user.
	for _, k := range [][2]string{{"env1", "bob"}, {"env2", "alice"}, {"env3", "alice"}} {
		_, err := e.s.GetDevice(e.ctx, k[0], k[1], alice1.ID)
		wantErr(e.t, fmt.Sprintf("GetDevice(%s, %s) of alice's env1 device", k[0], k[1]), err, store.ErrNotFound)
		wantErr(e.t, fmt.Sprintf("DeleteDevice(%s, %s) of alice's env1 device", k[0], k[1]),
			e.s.DeleteDevice(e.ctx, k[0], k[1], alice1.ID), store.ErrNotFound)
		moved := updated(alice1, "moved")
		moved.EnvID, moved.UserID = k[0], k[1]
		wantErr(e.t, fmt.Sprintf("UpdateDevice(%s, %s) of alice's env1 device", k[0], k[1]),
			e.s.UpdateDevice(e.ctx, moved), store.ErrNotFound)
	}
	e.wantDevices("env1", "alice", alice1)

	if err := e.s.DeleteDevice(e.ctx, "env1", "alice", alice1.ID); err != nil {
		e.t.Fatalf("DeleteDevice: %v", err)
	}
	e.wantDevices("env1", "alice")
	e.wantDevices("env1", "bob", bob1)
	e.wantDevices("env2", "alice", alice2)
}

func (e *env) wantDocs(envID string, kind store.Kind, want ...store.Document) {
	e.t.Helper()
	got, err := e.s.ListDocuments(e.ctx, envID, kind)
	if err != nil {
		e.t.Fatalf("ListDocuments(%s, %s): %v", envID, kind, err)
	}
	if len(got) != len(want) {
		e.t.Fatalf("ListDocuments(%s, %s) returned %d documents, want %d: %v", envID, kind, len(got), len(want), got)
	}
	for i := range want {
		if got[i].EnvID != want[i].EnvID || got[i].Kind != want[i].Kind || got[i].ID != want[i].ID || !bytes.Equal(got[i].Data, want[i].Data) {
			e.t.Errorf("ListDocuments(%s, %s)[%d] = {%s %s %s %q}, want {%s %s %s %q} (sorted by id)", envID, kind, i,
				got[i].EnvID, got[i].Kind, got[i].ID, got[i].Data, want[i].EnvID, want[i].Kind, want[i].ID, want[i].Data)
		}
	}
}

func (e *env) putDoc(d store.Document, onlyIfAbsent, wantCreated bool) {
	e.t.Helper()
	created, err := e.s.PutDocument(e.ctx, d, onlyIfAbsent)
	if err != nil {
		e.t.Fatalf("PutDocument(%s/%s, onlyIfAbsent=%v): %v", d.Kind, d.ID, onlyIfAbsent, err)
	}
	if created != wantCreated {
		e.t.Errorf("PutDocument(%s/%s, onlyIfAbsent=%v) created = %v, want %v", d.Kind, d.ID, onlyIfAbsent, created, wantCreated)
	}
}

func testDocuments(e *env) {
	flow := func(env, id, data string) store.Document {
		return store.Document{EnvID: env, Kind: store.KindFlow, ID: id, Data: []byte(data)}
	}
	e.wantDocs("env1", store.KindFlow)

	b, a, c := flow("env1", "signup", `{"v":1}`), flow("env1", "login", `{"v":1}`), flow("env1", "recover", `{"v":1}`)
	e.putDoc(b, false, true)
	e.putDoc(a, true, true)
	e.putDoc(c, false, true)
	e.wantDocs("env1", store.KindFlow, a, c, b)

	got, err := e.s.GetDocument(e.ctx, "env1", store.KindFlow, "signup")
	if err != nil {
		e.t.Fatalf("GetDocument: %v", err)
	}
	if got.EnvID != "env1" || got.Kind != store.KindFlow || got.ID != "signup" || !bytes.Equal(got.Data, b.Data) {
		e.t.Errorf("GetDocument = {%s %s %s %q}, want {%s %s %s %q}", got.EnvID, got.Kind, got.ID, got.Data, b.EnvID, b.Kind, b.ID, b.Data)
	}
	_, err = e.s.GetDocument(e.ctx, "env1", store.KindFlow, "nope")
	wantErr(e.t, "GetDocument of an unknown id", err, store.ErrNotFound)

	// Replace reports created=false and replaces.
	b.Data = []byte(`{"v":2}`)
	e.putDoc(b, false, false)
	// onlyIfAbsent never replaces.
	e.putDoc(flow("env1", "signup", `{"v":3}`), true, false)
	e.wantDocs("env1", store.KindFlow, a, c, b)

	// Documents are per environment and per kind: the same id elsewhere is
	// another document.
	other := flow("env2", "signup", `{"env":2}`)
	e.putDoc(other, true, true)
	tpl := store.Document{EnvID: "env1", Kind: store.KindTemplate, ID: "signup", Data: []byte(`{"tpl":1}`)}
	ch := store.Document{EnvID: "env1", Kind: store.KindChannel, ID: "SMS", Data: []byte(`{"ch":1}`)}
	e.putDoc(tpl, true, true)
	e.putDoc(ch, false, true)
	e.wantDocs("env2", store.KindFlow, other)
	e.wantDocs("env1", store.KindFlow, a, c, b)
	e.wantDocs("env1", store.KindTemplate, tpl)
	e.wantDocs("env1", store.KindChannel, ch)
	_, err = e.s.GetDocument(e.ctx, "env3", store.KindFlow, "signup")
	wantErr(e.t, "GetDocument from another env", err, store.ErrNotFound)
	_, err = e.s.GetDocument(e.ctx, "env1", store.KindChannel, "signup")
	wantErr(e.t, "GetDocument of another kind", err, store.ErrNotFound)

	if err := e.s.DeleteDocument(e.ctx, "env1", store.KindFlow, "login"); err != nil {
		e.t.Fatalf("DeleteDocument: %v", err)
	}
	_, err = e.s.GetDocument(e.ctx, "env1", store.KindFlow, "login")
	wantErr(e.t, "GetDocument after delete", err, store.ErrNotFound)
	wantErr(e.t, "DeleteDocument twice", e.s.DeleteDocument(e.ctx, "env1", store.KindFlow, "login"), store.ErrNotFound)
	wantErr(e.t, "DeleteDocument from another env", e.s.DeleteDocument(e.ctx, "env3", store.KindFlow, "signup"), store.ErrNotFound)
	wantErr(e.t, "DeleteDocument of another kind", e.s.DeleteDocument(e.ctx, "env1", store.KindTemplate, "recover"), store.ErrNotFound)
	e.wantDocs("env1", store.KindFlow, c, b)
	e.wantDocs("env2", store.KindFlow, other)
	e.wantDocs("env1", store.KindTemplate, tpl)

	// A deleted document can be created again.
	e.putDoc(a, true, true)
	e.wantDocs("env1", store.KindFlow, a, c, b)
}

package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/factor/totp"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/registry"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/redis"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

// backends returns, per store, a function opening one more node's client
// of the same data.
func backends(t *testing.T) map[string]func() store.Store {
	mem := memory.New(nil)
	srv := redistest.Start(t)
	return map[string]func() store.Store{
		"memory": func() store.Store { return mem },
		"redis": func() store.Store {
			s, err := redis.Open(srv.URL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
}

// enrollTOTP stores a TOTP device for user and returns its secret.
func enrollTOTP(t *testing.T, st store.Store, sealer *mfa.Sealer, user, id string) string {
	t.Helper()
	key, err := mfa.NewTOTPKey("test", user)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := json.Marshal(mfa.TOTPPart{Sealed: sealer.Seal([]byte(key.URI), id)})
	d := mfa.Device{ID: id, Type: mfa.TOTP, Status: mfa.StatusActive, Factor: part, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	data, _ := d.Marshal()
	x := store.Execution{EnvID: "env1", ID: store.NewExecutionID("env1", user), Version: 1, ExpiresAt: time.Now().Add(time.Hour), Data: []byte("{}")}
	ctx := context.Background()
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	x.Version = 2
	if err := st.Commit(ctx, x, store.Write{Op: store.CreateDevice, Device: store.Device{EnvID: "env1", UserID: user, ID: id, Version: 1, Data: data}}); err != nil {
		t.Fatal(err)
	}
	return key.Secret
}

// TestOneTOTPCodeIsAcceptedOnce: two nodes verifying the same code of one
// device at the same moment, many times over: exactly one success each
// time, and the code is refused as a replay afterwards.
func TestOneTOTPCodeIsAcceptedOnce(t *testing.T) {
	sealer, _ := mfa.NewSealer(bytes.Repeat([]byte{9}, 32))
	f := &totp.Factor{Sealer: sealer}
	policy := mfa.DefaultPolicy("p")
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			nodeA, nodeB := registry.New(open(), nil, f), registry.New(open(), nil, f)
			ctx := context.Background()
			for round := range 10 {
				user, id := "alice-"+name, store.NewID()
				secret := enrollTOTP(t, open(), sealer, user, id)
				code, _ := mfa.TOTPCode(secret, time.Now())
				var ok, replayed atomic.Int32
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						node := nodeA
						if i%2 == 1 {
							node = nodeB
						}
						v, err := node.Verify(ctx, "env1", user, id, &policy, code)
						if err != nil {
							t.Error(err)
						}
						if v.OK {
							ok.Add(1)
						}
						if v.Replayed {
							replayed.Add(1)
						}
					}()
				}
				close(start)
				wg.Wait()
				if ok.Load() != 1 || replayed.Load() != 7 {
					t.Fatalf("round %d: %d successes and %d replays of one code from 8 verifications, want 1 and 7", round, ok.Load(), replayed.Load())
				}
				if v, _ := nodeA.Verify(ctx, "env1", user, id, &policy, code); v.OK || !v.Replayed {
					t.Fatalf("the used code verified again: %+v", v)
				}
				if v, _ := nodeB.Verify(ctx, "env1", user, id, &policy, "000000"); v.OK {
					t.Fatal("a wrong code verified")
				}
			}
		})
	}
}

// TestUpdateReRunsOnConflict: an updater that conflicts with a nested one
// is re-run on the record the nested one wrote, exactly once more.
func TestUpdateReRunsOnConflict(t *testing.T) {
	sealer, _ := mfa.NewSealer(bytes.Repeat([]byte{9}, 32))
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			st := open()
			reg := registry.New(st, nil)
			id := store.NewID()
			enrollTOTP(t, st, sealer, "bob", id)
			ctx := context.Background()
			calls := 0
			got, err := reg.Update(ctx, "env1", "bob", id, func(d *mfa.Device) error {
				calls++
				if calls == 1 {
					if _, err := reg.Update(ctx, "env1", "bob", id, func(d *mfa.Device) error { d.Nickname = "inner"; return nil }); err != nil {
						t.Fatalf("inner update: %v", err)
					}
				}
				d.Nickname += "+outer"
				return nil
			})
			if err != nil || calls != 2 || got.Nickname != "inner+outer" || got.Version != 3 {
				t.Fatalf("outer update: %+v, %v after %d calls; want inner+outer at version 3 after 2", got, err, calls)
			}
			if e, _ := reg.Get(ctx, "env1", "bob", id); e.Nickname != "inner+outer" || e.Version != 3 {
				t.Fatalf("stored %+v", e)
			}
			if _, err := reg.Get(ctx, "env1", "bob", store.NewID()); err == nil {
				t.Fatal("an unknown device was found")
			}
		})
	}
}

package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/factor"
	"github.com/enrollflow/enrollflow/factor/otp"
	"github.com/enrollflow/enrollflow/factor/totp"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/registry"
	"github.com/enrollflow/enrollflow/regulation"
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
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			env := testEnv(t)
			stA, stB := open(), open()
			nodeA := registry.New(stA, regulation.New(stA, addressKey), nil, f)
			nodeB := registry.New(stB, regulation.New(stB, addressKey), nil, f)
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
						v, err := node.Verify(ctx, env, user, id, code)
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
				if v, _ := nodeA.Verify(ctx, env, user, id, code); v.OK || !v.Replayed {
					t.Fatalf("the used code verified again: %+v", v)
				}
				if v, _ := nodeB.Verify(ctx, env, user, id, "000000"); v.OK {
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
			reg := registry.New(st, regulation.New(st, addressKey), nil)
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

var addressKey = bytes.Repeat([]byte{4}, 32)

// testEnv is an environment whose lockout (100 attempts) stays out of the
// way of a race of verifications.
func testEnv(t *testing.T) *engine.Environment {
	t.Helper()
	settings := mfa.Settings{}
	settings.Lockout.FailureCount = 100
	env, err := engine.NewEnvironment("env1", "0123456789abcdef0123", []mfa.Policy{mfa.DefaultPolicy("default")}, settings, nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// outbox records the last passcode message per recipient.
type outbox struct {
	mu   sync.Mutex
	last map[string]string
}

func (o *outbox) ComposePairing(_ context.Context, p delivery.Pairing) (delivery.Message, error) {
	return delivery.Message{Recipient: p.Recipient, Method: p.Method, Body: p.OTP}, nil
}

func (o *outbox) Send(_ context.Context, m delivery.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last[m.Recipient] = m.Body
	return nil
}

// TestIssueAndVerifyAPasscode: outside any execution, a passcode is issued
// to an enrolled SMS device under the send budgets, verified once, and
// refused after; wrong ones count for the user like any other.
func TestIssueAndVerifyAPasscode(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			st := open()
			env := testEnv(t)
			env.MFASettings.Lockout.FailureCount = 5
			box := &outbox{last: map[string]string{}}
			reg := regulation.New(st, addressKey)
			r := registry.New(st, reg, nil, &otp.Factor{Messenger: box, Hasher: mfa.NewOTPHasher(addressKey)})
			ctx := context.Background()
			user := "carol-" + name
			id := store.NewID()
			d := mfa.Device{ID: id, Type: mfa.SMS, Status: mfa.StatusActive, Phone: "+12015550123", CreatedAt: time.Now(), UpdatedAt: time.Now()}
			data, _ := d.Marshal()
			x := store.Execution{EnvID: "env1", ID: store.NewExecutionID("env1", user), Version: 1, ExpiresAt: time.Now().Add(time.Hour), Data: []byte("{}")}
			if err := st.CreateExecution(ctx, x); err != nil {
				t.Fatal(err)
			}
			x.Version = 2
			if err := st.Commit(ctx, x, store.Write{Op: store.CreateDevice, Device: store.Device{EnvID: "env1", UserID: user, ID: id, Version: 1, Data: data}}); err != nil {
				t.Fatal(err)
			}
			if err := r.Issue(ctx, env, factor.User{ID: user}, id, factor.Message{}); err != nil {
				t.Fatalf("Issue: %v", err)
			}
			box.mu.Lock()
			code := box.last["+12015550123"]
			box.mu.Unlock()
			if v, err := r.Verify(ctx, env, user, id, "000000"); err != nil || v.OK {
				t.Fatalf("a wrong passcode: %+v, %v", v, err)
			}
			if v, err := r.Verify(ctx, env, user, id, code); err != nil || !v.OK {
				t.Fatalf("the right passcode: %+v, %v", v, err)
			}
			if v, _ := r.Verify(ctx, env, user, id, code); v.OK {
				t.Fatal("an issued passcode verified twice")
			}
			// The right one settled the user: four more wrong ones are not
			// yet a lockout; the fifth locks them.
			for i := range 5 {
				_, err := r.Verify(ctx, env, user, id, "000000")
				if i < 4 && err != nil {
					t.Fatalf("wrong passcode %d: %v", i, err)
				}
			}
			if _, err := r.Verify(ctx, env, user, id, code); err == nil {
				t.Fatal("a locked-out user was verified")
			}
		})
	}
}

// TestVerifyFollowsTheDevicesPolicy: a device enrolled under a stricter
// policy is verified under it, not under the environment's default.
func TestVerifyFollowsTheDevicesPolicy(t *testing.T) {
	st := memory.New(nil)
	strict := mfa.Policy{ID: "strict"}
	strict.SMS.Enabled = true
	strict.SMS.OTP.Failure.Count = 1
	var settings mfa.Settings
	settings.Lockout.FailureCount = 100
	env, err := engine.NewEnvironment("env1", "0123456789abcdef0123", []mfa.Policy{mfa.DefaultPolicy("default"), strict}, settings, nil)
	if err != nil {
		t.Fatal(err)
	}
	box := &outbox{last: map[string]string{}}
	r := registry.New(st, regulation.New(st, addressKey), nil, &otp.Factor{Messenger: box, Hasher: mfa.NewOTPHasher(addressKey)})
	ctx := context.Background()
	id := store.NewID()
	d := mfa.Device{ID: id, Type: mfa.SMS, Status: mfa.StatusActive, Policy: "strict", Phone: "+12015550123", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	data, _ := d.Marshal()
	x := store.Execution{EnvID: "env1", ID: store.NewExecutionID("env1", "dave"), Version: 1, ExpiresAt: time.Now().Add(time.Hour), Data: []byte("{}")}
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	x.Version = 2
	if err := st.Commit(ctx, x, store.Write{Op: store.CreateDevice, Device: store.Device{EnvID: "env1", UserID: "dave", ID: id, Version: 1, Data: data}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Issue(ctx, env, factor.User{ID: "dave"}, id, factor.Message{}); err != nil {
		t.Fatal(err)
	}
	box.mu.Lock()
	code := box.last["+12015550123"]
	box.mu.Unlock()
	if v, _ := r.Verify(ctx, env, "dave", id, "000000"); v.OK {
		t.Fatal("a wrong passcode verified")
	}
	// The strict policy allows one attempt per passcode: the right one now
	// finds it void (the default policy would have allowed three).
	if v, err := r.Verify(ctx, env, "dave", id, code); err != nil || v.OK {
		t.Fatalf("the right passcode after the strict policy's one attempt: %+v, %v", v, err)
	}
}

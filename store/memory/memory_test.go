package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return memory.New(now)
	})
}

// TestForgettingAndRefilling: on the store's own clock, a regulation record
// is gone Forget after its last attempt (a lockout outlives it), and a spent
// budget refills at its rate.
func TestForgettingAndRefilling(t *testing.T) {
	clock := storetest.NewClock()
	s := memory.New(clock.Now)
	ctx := context.Background()
	a := store.Attempt{EnvID: "e", UserID: "u", UserLimit: 2, UserLockout: 3 * time.Hour, Forget: time.Hour}
	for range 2 {
		if _, err := s.Attempt(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Hour)
	if rec, _ := s.ReadRegulation(ctx, "e", "u"); rec.UserLockedUntil.IsZero() {
		t.Fatal("the record was forgotten during its lockout")
	}
	clock.Advance(time.Hour)
	if rec, _ := s.ReadRegulation(ctx, "e", "u"); rec.UserAttempts != 0 || !rec.UserLockedUntil.IsZero() {
		t.Fatalf("record after lockout and Forget: %+v", rec)
	}

	b := store.Budget{Key: "k", Limit: 2, Period: time.Minute}
	for range 2 {
		if sp, _ := s.Spend(ctx, b); !sp.OK {
			t.Fatal("a fresh budget refused")
		}
	}
	if sp, _ := s.Spend(ctx, b); sp.OK || sp.RetryAfter != 30*time.Second {
		t.Fatalf("third spend: %+v, want refused for 30s", sp)
	}
	clock.Advance(30 * time.Second)
	if sp, _ := s.Spend(ctx, b); !sp.OK {
		t.Fatalf("after 30s: %+v, want one unit back", sp)
	}
	if sp, _ := s.Spend(ctx, b); sp.OK {
		t.Fatal("two units came back after 30s")
	}
}

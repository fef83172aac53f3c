package redis_test

// Benchmarks of the Redis store against a real, throw-away redis-server on
// loopback: one round trip each, so ns/op is mostly the round trip through
// go-redis and the kernel. Skipped when redis-server is not installed
// (REQUIRE_REDIS=1 makes that a failure).

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

// benchData is the size of a real execution in ACTIVATION_REQUIRED with a
// pending TOTP device, the largest state of the demo flow (767 bytes of
// JSON, measured by scripts/bench.sh).
var benchData = []byte(`{"f":"mfa-enrollment","u":"` + strings.Repeat("x", 767-29) + `"}`)

func benchExecution(user string) store.Execution {
	return store.Execution{EnvID: "env1", ID: store.NewExecutionID("env1", user), Version: 1,
		ExpiresAt: time.Now().Add(time.Hour), Data: benchData}
}

// BenchmarkCreateExecution: the create script (EVALSHA), new id each time.
func BenchmarkCreateExecution(b *testing.B) {
	s := open(b, redistest.Start(b), nil)
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchData)))
	for i := 0; i < b.N; i++ {
		if err := s.CreateExecution(ctx, benchExecution("u"+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetExecution: HMGET v e d of one live execution.
func BenchmarkGetExecution(b *testing.B) {
	s := open(b, redistest.Start(b), nil)
	defer s.Close()
	ctx := context.Background()
	x := benchExecution("alice")
	if err := s.CreateExecution(ctx, x); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchData)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.GetExecution(ctx, x.EnvID, x.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateExecution: the compare-and-set script, each update at the
// next version.
func BenchmarkUpdateExecution(b *testing.B) {
	s := open(b, redistest.Start(b), nil)
	defer s.Close()
	ctx := context.Background()
	x := benchExecution("alice")
	if err := s.CreateExecution(ctx, x); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchData)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x.Version++
		if err := s.UpdateExecution(ctx, x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitEnrollment: the commit script (CAS on the execution plus
// a device created in the registry), one fresh user per op.
func BenchmarkCommitEnrollment(b *testing.B) {
	s := open(b, redistest.Start(b), nil)
	defer s.Close()
	ctx := context.Background()
	xs := make([]store.Execution, b.N)
	for i := range xs {
		xs[i] = benchExecution("u" + strconv.Itoa(i))
		if err := s.CreateExecution(ctx, xs[i]); err != nil {
			b.Fatal(err)
		}
		xs[i].Version = 2
	}
	dev := []byte(`{"id":"d","t":"TOTP","k":"` + strings.Repeat("k", 150) + `"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := store.Device{EnvID: "env1", UserID: "u" + strconv.Itoa(i), ID: "dev" + strconv.Itoa(i), Version: 1, Data: dev}
		if err := s.Commit(ctx, xs[i], store.Write{Op: store.CreateDevice, Device: d, MaxDevices: 5}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetExecutionParallel and BenchmarkUpdateExecutionParallel run
// from GOMAXPROCS goroutines (one execution each) over the connection pool:
// ns/op is the store's throughput ceiling on this machine, Redis included.
func BenchmarkGetExecutionParallel(b *testing.B) {
	s := open(b, redistest.Start(b), nil)
	defer s.Close()
	ctx := context.Background()
	x := benchExecution("alice")
	if err := s.CreateExecution(ctx, x); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetExecution(ctx, x.EnvID, x.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUpdateExecutionParallel(b *testing.B) {
	s := open(b, redistest.Start(b), nil)
	defer s.Close()
	ctx := context.Background()
	var users atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := benchExecution("p" + strconv.FormatInt(users.Add(1), 10))
		if err := s.CreateExecution(ctx, x); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			x.Version++
			if err := s.UpdateExecution(ctx, x); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package hal_test

// Benchmarks of the action path through the whole in-process API (router,
// middleware, engine, enrollment step, store) without a network: the
// memory store, and a real throw-away redis-server (skipped when
// redis-server is not installed, unless REQUIRE_REDIS=1). Run them with
// `make bench-go`; docs/BENCHMARKS.md has figures.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/redis"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

const (
	benchCreateCT   = "application/vnd.pingidentity.device.create+json"
	benchActivateCT = "application/vnd.pingidentity.device.activate+json"
)

// benchUsers makes user ids unique across every benchmark run of the process.
var benchUsers atomic.Int64

// benchEachStore runs f as the sub-benchmarks "memory" and "redis", each on a
// fresh API.
func benchEachStore(b *testing.B, f func(b *testing.B, api *apptest.API)) {
	b.Run("memory", func(b *testing.B) {
		clock := apptest.NewClock()
		f(b, apptest.New(b, apptest.Options{Store: memory.New(clock.Now), Clock: clock}))
	})
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("REQUIRE_REDIS") != "1" {
		b.Run("redis", func(b *testing.B) { b.Skip("SKIPPING: redis-server not installed") })
		return
	}
	srv := redistest.Start(b) // one server for every round of the sub-benchmark
	b.Run("redis", func(b *testing.B) {
		srv.FlushAll()
		clock := apptest.NewClock()
		st, err := redis.Open(srv.URL(), clock.Now)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		f(b, apptest.New(b, apptest.Options{Store: st, Clock: clock}))
	})
}

func benchStartBody() string {
	u := fmt.Sprintf("bench-%d", benchUsers.Add(1))
	return `{"flow":{"id":"mfa-enrollment"},"inputs":{"user":{"id":"` + u + `","email":"` + u + `@example.com"}}}`
}

// benchStart begins an execution and returns its id.
func benchStart(tb testing.TB, api *apptest.API) string {
	rec := api.Do(http.MethodPost, "/demo/flowExecutions", "application/json", benchStartBody(),
		"Authorization", "Bearer "+apptest.APIKey)
	if rec.Code != http.StatusCreated {
		tb.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	var body struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.ID == "" {
		tb.Fatalf("start: %v %s", err, rec.Body)
	}
	return body.ID
}

// benchCreateTOTP adds a pending TOTP device and returns its secret.
func benchCreateTOTP(tb testing.TB, api *apptest.API, id string) string {
	rec := api.Do(http.MethodPost, "/demo/flowExecutions/"+id, benchCreateCT, `{"type":"TOTP"}`)
	if rec.Code != http.StatusOK {
		tb.Fatalf("device.create: %d %s", rec.Code, rec.Body)
	}
	var body struct {
		Device struct {
			Secret string `json:"secret"`
		} `json:"device"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Device.Secret == "" {
		tb.Fatalf("device.create: %v %s", err, rec.Body)
	}
	return body.Device.Secret
}

func benchTOTPCode(tb testing.TB, api *apptest.API, secret string) string {
	code, err := mfa.TOTPCode(secret, api.Clock.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

func benchActivate(tb testing.TB, api *apptest.API, id, code string) {
	rec := api.Do(http.MethodPost, "/demo/flowExecutions/"+id, benchActivateCT, `{"otp":"`+code+`"}`)
	if rec.Code != http.StatusOK {
		tb.Fatalf("device.activate: %d %s", rec.Code, rec.Body)
	}
}

// BenchmarkStart: POST /{env}/flowExecutions.
func BenchmarkStart(b *testing.B) {
	benchEachStore(b, func(b *testing.B, api *apptest.API) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			benchStart(b, api)
		}
	})
}

// BenchmarkCreateTOTP: device.create {"type":"TOTP"} on a started execution.
func BenchmarkCreateTOTP(b *testing.B) {
	benchEachStore(b, func(b *testing.B, api *apptest.API) {
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = benchStart(b, api)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchCreateTOTP(b, api, ids[i])
		}
	})
}

// BenchmarkActivateTOTP: device.activate with the right code, which
// completes the flow and commits the device.
func BenchmarkActivateTOTP(b *testing.B) {
	benchEachStore(b, func(b *testing.B, api *apptest.API) {
		ids, codes := make([]string, b.N), make([]string, b.N)
		for i := range ids {
			ids[i] = benchStart(b, api)
			codes[i] = benchTOTPCode(b, api, benchCreateTOTP(b, api, ids[i]))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchActivate(b, api, ids[i], codes[i])
		}
	})
}

// BenchmarkFullEnrollmentTOTP: start, device.create, device.activate; one
// op is one whole enrollment (three requests).
func BenchmarkFullEnrollmentTOTP(b *testing.B) {
	benchEachStore(b, func(b *testing.B, api *apptest.API) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			id := benchStart(b, api)
			benchActivate(b, api, id, benchTOTPCode(b, api, benchCreateTOTP(b, api, id)))
		}
	})
}

// BenchmarkFullEnrollmentTOTPParallel: the same from GOMAXPROCS goroutines,
// so ns/op is the in-process cost of an enrollment with every core busy
// (no HTTP transport, no load generator).
func BenchmarkFullEnrollmentTOTPParallel(b *testing.B) {
	benchEachStore(b, func(b *testing.B, api *apptest.API) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := benchStart(b, api)
				benchActivate(b, api, id, benchTOTPCode(b, api, benchCreateTOTP(b, api, id)))
			}
		})
	})
}

// benchCreateEmail adds a pending EMAIL device (address from the inputs):
// the message is rendered from the environment's templates and handed to
// its channel (apptest.s recording outbox) before the answer.
func benchCreateEmail(tb testing.TB, api *apptest.API, id string) {
	rec := api.Do(http.MethodPost, "/demo/flowExecutions/"+id, benchCreateCT, `{"type":"EMAIL"}`)
	if rec.Code != http.StatusOK {
		tb.Fatalf("device.create: %d %s", rec.Code, rec.Body)
	}
}

// BenchmarkCreateEmail: device.create {"type":"EMAIL"}, passcode delivery
// included (template selection and rendering, channel lookup, send).
func BenchmarkCreateEmail(b *testing.B) {
	benchEachStore(b, func(b *testing.B, api *apptest.API) {
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = benchStart(b, api)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			benchCreateEmail(b, api, ids[i])
		}
	})
}

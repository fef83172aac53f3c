package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/hal"
	"github.com/enrollflow/enrollflow/store/memory"
)

// totpServer is the real API on the memory store, on a loopback port.
func totpServer(t *testing.T) *httptest.Server {
	t.Helper()
	api := apptest.New(t, apptest.Options{Store: memory.New(nil)})
	srv := httptest.NewServer(api.Handler)
	t.Cleanup(srv.Close)
	return srv
}

// emailServer wires the API as `serve` does, with the real file outbox in
// dir, so the generator reads passcodes the way it does in production.
func emailServer(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	outbox, err := delivery.NewOutbox(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New(nil)
	node, err := app.Build(app.Options{Config: config.Demo(apptest.APIKey), Store: st, Outbox: outbox, Secret: apptest.Secret, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(apptest.Validated(t, hal.New(hal.Config{Runner: node.Runner, Dispatcher: node.Dispatcher, Registry: node.Registry, Regulator: node.Regulator, Store: st, Log: zerolog.Nop()})))
	t.Cleanup(srv.Close)
	return srv
}

func benchOpts(t *testing.T, args ...string) benchOptions {
	t.Helper()
	o, err := parseBenchFlags(args, io.Discard)
	if err != nil {
		t.Fatalf("parseBenchFlags(%q): %v", args, err)
	}
	return o
}

func latencyRow(t *testing.T, r *benchReport, name string) latencyStats {
	t.Helper()
	for _, l := range r.Latency {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("report has no latency row %q: %+v", name, r.Latency)
	return latencyStats{}
}

func TestBenchTOTPCountLimited(t *testing.T) {
	srv := totpServer(t)
	rep, err := runLoad(context.Background(), benchOpts(t, "--url", srv.URL, "--api-key", apptest.APIKey,
		"--concurrency", "4", "--enrollments", "40"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Enrollments != 40 || rep.Failed != 0 || len(rep.Errors) != 0 {
		t.Fatalf("enrollments %d, failed %d, errors %v; want 40, 0, none", rep.Enrollments, rep.Failed, rep.Errors)
	}
	if rep.Requests != 120 {
		t.Errorf("requests = %d, want 120 (3 per enrollment)", rep.Requests)
	}
	for _, name := range []string{actionStart, actionCreate, actionActivate, "enrollment"} {
		l := latencyRow(t, rep, name)
		if l.Count != 40 || l.P50 <= 0 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max {
			t.Errorf("%s: %+v: want 40 ordered samples", name, l)
		}
	}
	var text strings.Builder
	rep.writeText(&text)
	if !strings.Contains(text.String(), "40 completed, 0 failed") {
		t.Errorf("text report:\n%s", text.String())
	}
}

func TestBenchEMAILReadsTheOutbox(t *testing.T) {
	dir := t.TempDir()
	// A message from before the run, for one of the run's addresses-to-be
	// in shape: it must be ignored, not parsed.
	if err := os.WriteFile(filepath.Join(dir, "old.json"), []byte(`{"recipient":"x@example.com","body":"code 111111"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := emailServer(t, dir)
	rep, err := runLoad(context.Background(), benchOpts(t, "--url", srv.URL, "--api-key", apptest.APIKey,
		"--type", "email", "--outbox", dir, "--concurrency", "3", "--enrollments", "15"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Enrollments != 15 || rep.Failed != 0 {
		t.Fatalf("enrollments %d, failed %d, errors %v", rep.Enrollments, rep.Failed, rep.Errors)
	}
	if l := latencyRow(t, rep, "outbox.passcode"); l.Count != 15 {
		t.Errorf("outbox.passcode count %d, want 15", l.Count)
	}
}

func TestBenchRatePacesOpenLoop(t *testing.T) {
	srv := totpServer(t)
	start := time.Now()
	rep, err := runLoad(context.Background(), benchOpts(t, "--url", srv.URL, "--api-key", apptest.APIKey,
		"--concurrency", "4", "--rate", "100", "--enrollments", "30"))
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if rep.Enrollments != 30 || rep.Failed != 0 || rep.Missed != 0 {
		t.Fatalf("enrollments %d, failed %d, missed %d, errors %v", rep.Enrollments, rep.Failed, rep.Missed, rep.Errors)
	}
	// 30 starts at 100/s are spread over 290ms.
	if took < 280*time.Millisecond {
		t.Errorf("30 enrollments at 100/s took %v; the schedule was not kept", took)
	}
	if l := latencyRow(t, rep, "schedule.lag"); l.Count != 30 {
		t.Errorf("schedule.lag count %d, want 30", l.Count)
	}
}

func TestBenchDurationStopsByItself(t *testing.T) {
	srv := totpServer(t)
	start := time.Now()
	rep, err := runLoad(context.Background(), benchOpts(t, "--url", srv.URL, "--api-key", apptest.APIKey,
		"--concurrency", "2", "--duration", "300ms", "--warmup", "100ms"))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a 400ms run took %v", took)
	}
	if rep.Enrollments == 0 || rep.Failed != 0 || rep.Elapsed < 0.3 {
		t.Errorf("enrollments %d, failed %d, elapsed %.3fs", rep.Enrollments, rep.Failed, rep.Elapsed)
	}
}

func TestBenchStopAfterCreateLeavesExecutionsLive(t *testing.T) {
	srv := totpServer(t)
	rep, err := runLoad(context.Background(), benchOpts(t, "--url", srv.URL, "--api-key", apptest.APIKey,
		"--concurrency", "2", "--enrollments", "10", "--stop-after", "device.create"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Enrollments != 10 || rep.Requests != 20 {
		t.Fatalf("enrollments %d, requests %d; want 10, 20", rep.Enrollments, rep.Requests)
	}
	for _, l := range rep.Latency {
		if l.Name == actionActivate {
			t.Errorf("device.activate reported though never sent: %+v", l)
		}
	}
}

func TestBenchCountsErrorsByStatusAndCode(t *testing.T) {
	srv := totpServer(t)
	rep, err := runLoad(context.Background(), benchOpts(t, "--url", srv.URL, "--api-key", "wrong-key-0123456789",
		"--concurrency", "2", "--enrollments", "6"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Enrollments != 0 || rep.Failed != 6 || rep.Errors["start 401 ACCESS_FAILED"] != 6 {
		t.Fatalf("enrollments %d, failed %d, errors %v; want 6 x start 401 ACCESS_FAILED", rep.Enrollments, rep.Failed, rep.Errors)
	}
}

func TestBenchCommandFailsOnErrors(t *testing.T) {
	srv := totpServer(t)
	err := bench([]string{"--url", srv.URL, "--api-key", "wrong-key-0123456789", "--enrollments", "2", "--json"})
	if err == nil || !strings.Contains(err.Error(), "2 of 2 enrollments failed") {
		t.Fatalf("bench with a wrong key: %v", err)
	}
}

func TestBenchJSONOut(t *testing.T) {
	srv := totpServer(t)
	out := filepath.Join(t.TempDir(), "report.json")
	if err := bench([]string{"--url", srv.URL, "--api-key", apptest.APIKey, "--enrollments", "3", "--json-out", out}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(data, &rep); err != nil || rep.Enrollments != 3 || rep.EnrollmentsPerSec <= 0 {
		t.Fatalf("report %s: %v", data, err)
	}
}

func TestBenchRefusesNonLoopbackTargets(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1:8080", "http://192.168.1.1", "http://example.com", "https://8.8.8.8",
		"ftp://127.0.0.1", "http://127.0.0.1:8080/?x=1"} {
		if _, err := loopbackURL(u); err == nil {
			t.Errorf("loopbackURL(%q) accepted", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.8.9.10:1", "http://[::1]:8080", "http://localhost:9"} {
		if _, err := loopbackURL(u); err != nil {
			t.Errorf("loopbackURL(%q): %v", u, err)
		}
	}
	// The dialer's check refuses too, whatever a name resolved to (called
	// directly: no connection is attempted).
	for _, addr := range []string{"10.255.255.1:9", "[2001:db8::1]:80", "0.0.0.0:80"} {
		if err := loopbackOnly("tcp", addr, nil); err != errNotLoopback {
			t.Errorf("loopbackOnly(%s) = %v, want %v", addr, err, errNotLoopback)
		}
	}
	if err := loopbackOnly("tcp", "127.0.0.1:8080", nil); err != nil {
		t.Errorf("loopbackOnly(127.0.0.1:8080) = %v", err)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                                  // no key
		{"--api-key", "k", "--type", "SMS"}, // unsupported type
		{"--api-key", "k", "--type", "EMAIL"},
		{"--api-key", "k", "--concurrency", "0"},
		{"--api-key", "k", "--warmup", "1s", "--enrollments", "5"},
		{"--api-key", "k", "--stop-after", "device.delete"},
		{"--api-key", "k", "--rate", "-1"},
	} {
		t.Setenv("ENROLLFLOW_API_KEY", "")
		if _, err := parseBenchFlags(args, io.Discard); err == nil {
			t.Errorf("parseBenchFlags(%q) accepted", args)
		}
	}
	o := benchOpts(t, "--api-key", "k")
	if o.duration != 10*time.Second || o.concurrency != 8 || o.deviceType != "TOTP" {
		t.Errorf("defaults: %+v", o)
	}
}

func TestQuantileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.95: 95 * time.Millisecond,
		0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := quantile(s, q); got != want {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if got := quantile(s[:1], 0.99); got != time.Millisecond {
		t.Errorf("one sample: %v", got)
	}
}

func TestFindPasscode(t *testing.T) {
	for body, want := range map[string]string{
		"Use this code to finish setting up your e-mail address for sign-in: 042917\n\nIf you did not ask": "042917",
		"Your verification code is 12345678.": "12345678",
		"in 2024 your code 55 is 123456":      "123456",
		"no code":                             "",
	} {
		if got := findPasscode(body); got != want {
			t.Errorf("findPasscode(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestOutboxIndexSeesNewFilesOnly(t *testing.T) {
	dir := t.TempDir()
	write := func(name, recipient, code string) {
		t.Helper()
		data := fmt.Sprintf(`{"recipient":%q,"body":"Your code: %s"}`, recipient, code)
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("before.json", "a@example.com", "111111")
	idx, err := openOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	ctx := context.Background()
	if _, err := idx.wait(ctx, "a@example.com", 300*time.Millisecond); err == nil {
		t.Error("a file from before the index opened was used")
	}
	// Waiting first, then the file.
	var got atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, err := idx.wait(ctx, "b@example.com", 5*time.Second)
		if err != nil {
			got.Store("error: " + err.Error())
			return
		}
		got.Store(code)
	}()
	time.Sleep(20 * time.Millisecond)
	write("b.json", "b@example.com", "222222")
	<-done
	if got.Load() != "222222" {
		t.Errorf("waiting for b: %v", got.Load())
	}
	// The file first, then the wait.
	write("c.json", "c@example.com", "333333")
	deadline := time.Now().Add(2 * time.Second)
	for {
		idx.mu.Lock()
		_, ok := idx.codes["c@example.com"]
		idx.mu.Unlock()
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if code, err := idx.wait(ctx, "c@example.com", time.Second); err != nil || code != "333333" {
		t.Errorf("c: %q, %v", code, err)
	}
}

func TestOutboxIndexPolling(t *testing.T) {
	dir := t.TempDir()
	o := &outboxIndex{dir: dir, seen: map[string]struct{}{}, codes: map[string]string{},
		waiters: map[string]chan string{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	o.startPolling()
	defer o.Close()
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{"recipient":"p@example.com","body":"code 987654"}`), 0o600)
	}()
	if code, err := o.wait(context.Background(), "p@example.com", 5*time.Second); err != nil || code != "987654" {
		t.Errorf("polling: %q, %v", code, err)
	}
}

// A server error mid-enrollment is counted under its action, status and code.
func TestBenchCountsMidFlowErrors(t *testing.T) {
	api := apptest.New(t, apptest.Options{Store: memory.New(nil)})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Content-Type"), "device.create") && n.Add(1)%2 == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"code":"SERVICE_UNAVAILABLE"}`)
			return
		}
		api.Handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	rep, err := runLoad(context.Background(), benchOpts(t, "--url", srv.URL, "--api-key", apptest.APIKey,
		"--concurrency", "1", "--enrollments", "4"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Enrollments != 2 || rep.Failed != 2 || rep.Errors["device.create 503 SERVICE_UNAVAILABLE"] != 2 {
		t.Fatalf("enrollments %d, failed %d, errors %v", rep.Enrollments, rep.Failed, rep.Errors)
	}
}

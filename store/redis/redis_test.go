package redis_test

import (
	"bufio"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/redis"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
	"github.com/enrollflow/enrollflow/store/storetest"
)

func open(t testing.TB, srv *redistest.Server, now func() time.Time) *redis.Store {
	t.Helper()
	s, err := redis.Open(srv.URL(), now)
	if err != nil {
		t.Fatalf("Open(%s): %v", srv.URL(), err)
	}
	return s
}

// rawClient talks to the test server directly, to look behind the Store.
func rawClient(t testing.TB, srv *redistest.Server) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// hashTag is the part of a key Redis Cluster hashes: the first {...}.
func hashTag(key string) string {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return key
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok || tag == "" {
		return key
	}
	return tag
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		srv.FlushAll()
		return open(t, srv, now)
	})
}

// TestConformanceCluster: the whole suite on a Redis Cluster of three
// masters: commits stay in the user's slot, indexes and budgets live in
// other slots, pub/sub notifications cross nodes.
func TestConformanceCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		cluster.FlushAll()
		s, err := redis.Open(cluster.URL(), now)
		if err != nil {
			t.Fatalf("Open(%s): %v", cluster.URL(), err)
		}
		return s
	})
}

func TestConformanceCustomPrefix(t *testing.T) {
	srv := redistest.Start(t)
	c := rawClient(t, srv)
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		srv.FlushAll()
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		t.Cleanup(func() {
			// Whatever the subtest wrote lives under the prefix (budgets
			// under redis_rate's own "rate:" before it).
			keys, err := c.Keys(context.Background(), "*").Result()
			if err != nil {
				t.Fatalf("KEYS: %v", err)
			}
			for _, k := range keys {
				if !strings.HasPrefix(strings.TrimPrefix(k, "rate:"), "tenant7:{") {
					t.Errorf("key %q is not under prefix tenant7", k)
				}
			}
		})
		return redis.New(client, redis.Options{Prefix: "tenant7", Now: now})
	})
}

func TestOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, nil)
	defer s.Close()
	ctx := context.Background()

	exec := store.Execution{
		EnvID: "env1", ID: store.NewExecutionID("env1", "alice"), Version: 1,
		ExpiresAt: time.Now().Add(time.Hour), Data: []byte("v1"),
	}
	if err := s.CreateExecution(ctx, exec); err != nil {
		t.Fatalf("CreateExecution: %v", err)
	}

	srv.Stop()

	checks := []struct {
		name string
		call func() error
	}{
		{"GetExecution", func() error { _, err := s.GetExecution(ctx, "env1", exec.ID); return err }},
		{"UpdateExecution", func() error {
			upd := exec
			upd.Version, upd.Data = 2, []byte("v2")
			return s.UpdateExecution(ctx, upd)
		}},
		{"ListDevices", func() error { _, err := s.ListDevices(ctx, "env1", "alice"); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range checks {
		start := time.Now()
		err := c.call()
		took := time.Since(start)
		t.Logf("%s while Redis is down: %v after %v", c.name, err, took.Round(time.Millisecond))
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while Redis is down: got %v, want ErrUnavailable", c.name, err)
		}
		if took > 3*time.Second {
			t.Errorf("%s took %v to fail, want < 3s", c.name, took)
		}
	}

	// A caller's deadline is honoured and reported as an outage too.
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.GetExecution(dctx, "env1", exec.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetExecution with a deadline while Redis is down: got %v, want ErrUnavailable", err)
	}

	srv.Restart() // an empty server: persistence is off

	// The same Store recovers by itself. go-redis re-dials in the background
	// after repeated dial failures, so allow it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping still failing 5s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err := s.GetExecution(ctx, "env1", exec.ID)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetExecution after restart (data lost): got %v, want ErrNotFound", err)
	}
	if err := s.CreateExecution(ctx, exec); err != nil {
		t.Fatalf("CreateExecution after restart: %v", err)
	}
	upd := exec
	upd.Version, upd.Data = 2, []byte("v2")
	if err := s.UpdateExecution(ctx, upd); err != nil {
		t.Fatalf("UpdateExecution after restart: %v", err)
	}
	got, err := s.GetExecution(ctx, "env1", exec.ID)
	if err != nil || got.Version != 2 || string(got.Data) != "v2" {
		t.Fatalf("GetExecution after restart = %+v, %v; want version 2, data v2", got, err)
	}
}

func TestKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, nil)
	defer s.Close()
	c := rawClient(t, srv)
	ctx := context.Background()

	const envID, user = "acme", "alice"
	part := store.Partition(envID, user)
	exec := store.Execution{
		EnvID: envID, ID: store.NewExecutionID(envID, user), Version: 1,
		ExpiresAt: time.Now().Add(10 * time.Minute), Data: []byte("state"),
	}
	if err := s.CreateExecution(ctx, exec); err != nil {
		t.Fatalf("CreateExecution: %v", err)
	}
	dev := store.Device{EnvID: envID, UserID: user, ID: store.NewID(), Version: 1, Data: []byte("dev")}
	upd := exec
	upd.Version, upd.Data = 2, []byte("enrolled")
	if err := s.Commit(ctx, upd, store.Write{Op: store.CreateDevice, Device: dev, MaxDevices: 3}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if _, err := s.PutDocument(ctx, store.Document{EnvID: envID, Kind: store.KindFlow, ID: "signup", Data: []byte("{}")}, false); err != nil {
		t.Fatalf("PutDocument: %v", err)
	}

	execKey := "ef:{p" + part + "}:x:acme:" + exec.ID
	regKey := "ef:{p" + part + "}:d:acme:alice"
	flowsKey := "ef:{e:acme}:flows"
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	want := map[string]bool{execKey: true, regKey: true, flowsKey: true}
	if len(keys) != len(want) {
		t.Errorf("keys = %q, want exactly %q, %q, %q", keys, execKey, regKey, flowsKey)
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("unexpected key %q", k)
		}
	}

	// The execution and the registry it commits into share a hash tag, so a
	// cluster puts them in one slot.
	if a, b := hashTag(execKey), hashTag(regKey); a != b || a != "p"+part {
		t.Errorf("hash tags %q and %q, want both %q", a, b, "p"+part)
	}

	fields, err := c.HGetAll(ctx, execKey).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", execKey, err)
	}
	if fields["v"] != "2" || fields["d"] != "enrolled" || fields["e"] != strconv.FormatInt(exec.ExpiresAt.UnixMilli(), 10) {
		t.Errorf("execution hash = %q, want v=2, d=enrolled, e=%d", fields, exec.ExpiresAt.UnixMilli())
	}

	ttl, err := c.PTTL(ctx, execKey).Result()
	if err != nil {
		t.Fatalf("PTTL: %v", err)
	}
	if ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Errorf("execution TTL = %v, want about 10m", ttl)
	}
	if ttl, _ := c.PTTL(ctx, regKey).Result(); ttl != -1 {
		t.Errorf("registry TTL = %v, want none (-1)", ttl)
	}
	if got, _ := c.HGet(ctx, regKey, dev.ID).Result(); got != "1:dev" {
		t.Errorf("registry[%s] = %q, want the version, a colon and the data: 1:dev", dev.ID, got)
	}

	// A device written before devices had versions (bare JSON) reads as
	// version 1 and updates from there.
	legacyID := store.NewID()
	c.HSet(ctx, regKey, legacyID, `{"id":"legacy","type":"TOTP"}`)
	legacy, err := s.GetDevice(ctx, envID, user, legacyID)
	if err != nil || legacy.Version != 1 || string(legacy.Data) != `{"id":"legacy","type":"TOTP"}` {
		t.Fatalf("legacy device = %+v, %v", legacy, err)
	}
	legacy.Version, legacy.Data = 2, []byte(`{"id":"legacy","type":"TOTP","n":"x"}`)
	if err := s.UpdateDevice(ctx, legacy); err != nil {
		t.Fatalf("UpdateDevice of a legacy device: %v", err)
	}
	if got, _ := c.HGet(ctx, regKey, legacyID).Result(); got != `2:{"id":"legacy","type":"TOTP","n":"x"}` {
		t.Errorf("legacy device after update: %q", got)
	}
	c.HDel(ctx, regKey, legacyID)

	// An env id with ':' cannot run into its user id.
	odd := store.Execution{
		EnvID: "a:b", ID: store.NewExecutionID("a:b", "c"), Version: 1,
		ExpiresAt: time.Now().Add(time.Minute), Data: []byte("x"),
	}
	if err := s.CreateExecution(ctx, odd); err != nil {
		t.Fatalf("CreateExecution: %v", err)
	}
	oddKey := "ef:{p" + store.Partition("a:b", "c") + "}:x:a%3Ab:" + odd.ID
	if n, _ := c.Exists(ctx, oddKey).Result(); n != 1 {
		t.Errorf("key %q missing", oddKey)
	}

	// Ids that carry no partition never reach Redis and are not found.
	if _, err := s.GetExecution(ctx, envID, "not-an-execution-id"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetExecution of a malformed id: got %v, want ErrNotFound", err)
	}
}

// An execution whose ExpiresAt has passed is deleted by Redis itself, not
// just hidden by the clock comparison.
func TestRedisExpiresExecutions(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, nil)
	defer s.Close()
	c := rawClient(t, srv)
	ctx := context.Background()

	exec := store.Execution{
		EnvID: "env1", ID: store.NewExecutionID("env1", "alice"), Version: 1,
		ExpiresAt: time.Now().Add(150 * time.Millisecond), Data: []byte("short-lived"),
	}
	if err := s.CreateExecution(ctx, exec); err != nil {
		t.Fatalf("CreateExecution: %v", err)
	}
	if n, _ := c.DBSize(ctx).Result(); n != 1 {
		t.Fatalf("DBSIZE = %d, want 1", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		// KEYS skips (and so lazily evicts) keys whose TTL has passed.
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatalf("KEYS: %v", err)
		}
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution key %q still present 3s after ExpiresAt", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOpenURLs(t *testing.T) {
	for _, bad := range []string{"http://localhost:6379", "redis://a:6379,http://b:6379", "::"} {
		if s, err := redis.Open(bad, nil); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", bad)
		}
	}
	for _, good := range []string{"redis://127.0.0.1:1/0", "rediss://u:p@127.0.0.1:1", "redis://127.0.0.1:1,redis://127.0.0.2:2"} {
		s, err := redis.Open(good, nil)
		if err != nil {
			t.Errorf("Open(%q): %v", good, err)
			continue
		}
		s.Close()
	}
}

func TestMemoryPerExecution(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 5000 executions")
	}
	srv := redistest.Start(t)
	s := open(t, srv, nil)
	defer s.Close()
	c := rawClient(t, srv)
	ctx := context.Background()

	const n = 5000
	data := []byte(strings.Repeat("x", 800))
	// Warm up once (script cache, client buffers) so they are not counted.
	warm := store.Execution{EnvID: "env1", ID: store.NewExecutionID("env1", "warm"), Version: 1, ExpiresAt: time.Now().Add(time.Hour), Data: data}
	if err := s.CreateExecution(ctx, warm); err != nil {
		t.Fatalf("CreateExecution: %v", err)
	}
	before := usedMemory(t, c)
	for i := range n {
		exec := store.Execution{
			EnvID:     "env1",
			ID:        store.NewExecutionID("env1", "user-"+strconv.Itoa(i)),
			Version:   1,
			ExpiresAt: time.Now().Add(time.Hour),
			Data:      data,
		}
		if err := s.CreateExecution(ctx, exec); err != nil {
			t.Fatalf("CreateExecution #%d: %v", i, err)
		}
	}
	after := usedMemory(t, c)
	per := float64(after-before) / n
	t.Logf("used_memory %d -> %d: %.0f bytes per execution with %d bytes of data", before, after, per, len(data))
	if per >= 2048 {
		t.Errorf("%.0f bytes per execution, want < 2048", per)
	}
}

func usedMemory(t *testing.T, c *goredis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatalf("INFO memory: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "used_memory:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("used_memory %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("INFO memory has no used_memory:\n%s", info)
	return 0
}

// TestRegulationExpires: a user's regulation record expires Forget after
// the last attempt, but not before its lockout ends.
func TestRegulationExpires(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, nil)
	defer s.Close()
	c := rawClient(t, srv)
	ctx := context.Background()
	a := store.Attempt{EnvID: "env1", UserID: "alice", UserLimit: 5, UserLockout: 48 * time.Hour, Forget: time.Hour}
	if _, err := s.Attempt(ctx, a); err != nil {
		t.Fatal(err)
	}
	key := "ef:{p" + store.Partition("env1", "alice") + "}:r:env1:alice"
	if ttl, _ := c.PTTL(ctx, key).Result(); ttl < 47*time.Hour || ttl > 48*time.Hour {
		t.Errorf("TTL %v, want the 48 h lockout, the longest thing the record may hold", ttl)
	}
	if _, err := s.Attempt(ctx, store.Attempt{EnvID: "env1", UserID: "bob", UserLimit: 5, UserLockout: time.Minute, Forget: time.Hour}); err != nil {
		t.Fatal(err)
	}
	bob := "ef:{p" + store.Partition("env1", "bob") + "}:r:env1:bob"
	if ttl, _ := c.PTTL(ctx, bob).Result(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL %v, want Forget (1 h)", ttl)
	}
}

// TestWatchSurvivesReconnects: when the node's subscription is cut (its
// connection killed, or Redis restarted), every waiter is woken to read
// again, since what was published meanwhile is lost; and once subscribed
// again, writes wake their waiters as before.
func TestWatchSurvivesReconnects(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, nil)
	defer s.Close()
	ctx := context.Background()
	exec := store.Execution{EnvID: "env1", ID: store.NewExecutionID("env1", "alice"), Version: 1,
		ExpiresAt: time.Now().Add(time.Hour), Data: []byte("v1")}
	if err := s.CreateExecution(ctx, exec); err != nil {
		t.Fatal(err)
	}
	changed, cancel := s.WatchExecution("env1", exec.ID)
	defer cancel()
	drain := func(within time.Duration) bool {
		select {
		case <-changed:
			return true
		case <-time.After(within):
			return false
		}
	}
	// settle waits out the wake-ups of a (re)subscription: the waiter is
	// then quiet, and only a write can wake it.
	settle := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); drain(500 * time.Millisecond); {
			if time.Now().After(deadline) {
				t.Fatal("the waiter is woken again and again")
			}
		}
	}
	settle()
	update := func() {
		t.Helper()
		exec.Version++
		for i := 0; ; i++ { // just after a restart a call may still fail
			err := s.UpdateExecution(ctx, exec)
			if err == nil {
				return
			}
			if i == 50 {
				t.Fatalf("UpdateExecution: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	if err := rawClient(t, srv).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if !drain(5 * time.Second) {
		t.Fatal("a killed subscription did not wake the waiter")
	}
	settle()
	update()
	if !drain(5 * time.Second) {
		t.Fatal("not woken by a write after the subscription came back")
	}

	srv.Restart()
	if !drain(10 * time.Second) {
		t.Fatal("a Redis restart did not wake the waiter")
	}
	if err := s.CreateExecution(ctx, store.Execution{EnvID: exec.EnvID, ID: exec.ID, Version: 1, ExpiresAt: exec.ExpiresAt, Data: []byte("v1")}); err != nil {
		t.Fatal(err) // the restart lost everything (no persistence)
	}
	exec.Version = 1
	settle()
	update()
	if !drain(5 * time.Second) {
		t.Fatal("not woken by a write after Redis came back")
	}
}

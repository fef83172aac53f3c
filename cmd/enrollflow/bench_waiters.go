package main

// `enrollflow bench --waiters N`: N clients long-poll executions in
// PAIRING_REQUIRED (Prefer: wait=30) while pairings complete some of them;
// it reports the wake-up latency of the woken polls and what the waiting
// costs the server (goroutines and memory per waiter, read from its
// /metrics) and, with --redis-url, Redis (connected clients).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/factor/mobile/phone"
)

// waitersReport is what a waiters run measured.
type waitersReport struct {
	Waiters          int        `json:"waiters"`
	Pairings         int        `json:"pairings"`
	SetupSeconds     float64    `json:"setupSeconds"`
	WakeP50Ms        float64    `json:"wakeP50Ms"`
	WakeP99Ms        float64    `json:"wakeP99Ms"`
	WakeMaxMs        float64    `json:"wakeMaxMs"`
	PairingP50Ms     float64    `json:"pairingP50Ms"`
	PairingP99Ms     float64    `json:"pairingP99Ms"`
	LostWakeUps      int        `json:"lostWakeUps"`
	ServerGoroutines [2]float64 `json:"serverGoroutines"` // before the waiters, while they wait
	ServerHeapBytes  [2]float64 `json:"serverHeapInuseBytes"`
	ServerRSSBytes   [2]float64 `json:"serverRssBytes"`
	GoroutinesPer    float64    `json:"goroutinesPerWaiter"`
	HeapBytesPer     float64    `json:"heapBytesPerWaiter"`
	RSSBytesPer      float64    `json:"rssBytesPerWaiter"`
	RedisClients     [2]int     `json:"redisConnectedClients"` // -1 without --redis-url
}

type waiter struct {
	self, etag, code string
	polledAt         atomic.Int64 // unix ns when the poll returned changed
}

func runWaiters(ctx context.Context, o benchOptions) (*waitersReport, error) {
	base, err := loopbackURL(o.url)
	if err != nil {
		return nil, err
	}
	root := strings.TrimRight(base.String(), "/")
	client := newBenchClient(o.waiters, 60*time.Second)
	defer client.CloseIdleConnections()
	rep := &waitersReport{Waiters: o.waiters, RedisClients: [2]int{-1, -1}}
	var rdb *goredis.Client
	if o.redisURL != "" {
		opt, err := goredis.ParseURL(o.redisURL)
		if err != nil {
			return nil, fmt.Errorf("bench: --redis-url: %w", err)
		}
		rdb = goredis.NewClient(opt)
		defer rdb.Close()
	}

	// N executions, each in PAIRING_REQUIRED.
	began := time.Now()
	ws := make([]*waiter, o.waiters)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := parallel(ctx, o.waiters, o.concurrency, func(i int) error {
		w, err := newWaiter(ctx, client, root, o, fmt.Sprintf("waiter-%s-%d", run, i))
		ws[i] = w
		return err
	}); err != nil {
		return nil, err
	}
	rep.SetupSeconds = time.Since(began).Seconds()
	before, err := scrape(ctx, client, root)
	if err != nil {
		return nil, err
	}
	rep.RedisClients[0] = redisClients(ctx, rdb)

	// The waiters: one connection each.
	pollCtx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	var polls sync.WaitGroup
	for _, w := range ws {
		polls.Add(1)
		go func() { defer polls.Done(); w.poll(pollCtx, client) }()
	}
	var waiting map[string]float64
	for deadline := time.Now().Add(60 * time.Second); ; {
		if waiting, err = scrape(ctx, client, root); err != nil {
			return nil, err
		}
		if int(waiting["enrollflow_long_polls_waiting"]) >= o.waiters {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench: only %.0f of %d long polls are waiting after 60 s", waiting["enrollflow_long_polls_waiting"], o.waiters)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rep.RedisClients[1] = redisClients(ctx, rdb)
	rep.ServerGoroutines = [2]float64{before["go_goroutines"], waiting["go_goroutines"]}
	rep.ServerHeapBytes = [2]float64{before["go_memstats_heap_inuse_bytes"], waiting["go_memstats_heap_inuse_bytes"]}
	rep.ServerRSSBytes = [2]float64{before["process_resident_memory_bytes"], waiting["process_resident_memory_bytes"]}
	n := float64(o.waiters)
	rep.GoroutinesPer = (rep.ServerGoroutines[1] - rep.ServerGoroutines[0]) / n
	rep.HeapBytesPer = (rep.ServerHeapBytes[1] - rep.ServerHeapBytes[0]) / n
	rep.RSSBytesPer = (rep.ServerRSSBytes[1] - rep.ServerRSSBytes[0]) / n

	// Pairings of the first K, a few at a time, while all the others wait.
	k := min(o.pairings, o.waiters)
	rep.Pairings = k
	wake := make([]time.Duration, k)
	took := make([]time.Duration, k)
	pairedAt := make([]time.Time, k)
	if err := parallel(ctx, k, 4, func(i int) error {
		keys, err := phone.NewKeys()
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := keys.Pair(ctx, client, root, o.env, config.DemoApplicationID, ws[i].code, phone.Device{Name: "bench"}); err != nil {
			return fmt.Errorf("bench: pairing %d: %w", i, err)
		}
		pairedAt[i], took[i] = time.Now(), time.Since(t0)
		return nil
	}); err != nil {
		return nil, err
	}
	time.Sleep(time.Second) // the last wake-ups
	for i := 0; i < k; i++ {
		at := ws[i].polledAt.Load()
		if at == 0 {
			rep.LostWakeUps++
			wake[i] = time.Second
			continue
		}
		wake[i] = max(time.Unix(0, at).Sub(pairedAt[i]), 0)
	}
	stopPolls()
	polls.Wait()
	slices.Sort(wake)
	slices.Sort(took)
	rep.WakeP50Ms, rep.WakeP99Ms, rep.WakeMaxMs = ms(quantile(wake, 0.5)), ms(quantile(wake, 0.99)), ms(wake[len(wake)-1])
	rep.PairingP50Ms, rep.PairingP99Ms = ms(quantile(took, 0.5)), ms(quantile(took, 0.99))
	return rep, nil
}

// newWaiter starts an execution and creates a MOBILE device in it.
func newWaiter(ctx context.Context, c *http.Client, root string, o benchOptions, user string) (*waiter, error) {
	body := fmt.Sprintf(`{"flow":{"id":%q},"inputs":{"user":{"id":%q}}}`, o.flow, user)
	var started struct {
		Links map[string]struct{ Href string } `json:"_links"`
	}
	if _, err := doBench(ctx, c, http.MethodPost, root+"/"+o.env+"/flowExecutions", "application/json", body, "Bearer "+o.apiKey, http.StatusCreated, &started); err != nil {
		return nil, err
	}
	w := &waiter{self: started.Links["self"].Href}
	var state struct {
		PairingKey struct{ Code string } `json:"pairingKey"`
	}
	h, err := doBench(ctx, c, http.MethodPost, w.self, "application/vnd.pingidentity.device.create+json",
		`{"type":"MOBILE","application":{"id":"`+config.DemoApplicationID+`"}}`, "", http.StatusOK, &state)
	if err != nil {
		return nil, err
	}
	w.etag, w.code = h.Get("ETag"), state.PairingKey.Code
	return w, nil
}

// poll long-polls until the execution changes, recording when.
func (w *waiter) poll(ctx context.Context, c *http.Client) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.self, nil)
		req.Header.Set("Prefer", "wait=30")
		req.Header.Set("If-None-Match", w.etag)
		resp, err := c.Do(req)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			w.polledAt.Store(time.Now().UnixNano())
			return
		}
	}
}

func doBench(ctx context.Context, c *http.Client, method, url, contentType, body, auth string, want int, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("bench: %s %s: %d %s", method, url, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return resp.Header, json.Unmarshal(raw, out)
}

// parallel runs fn(0..n-1) on workers goroutines; the first error wins.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// scrape reads the server's /metrics, the unlabelled samples only.
func scrape(ctx context.Context, c *http.Client, root string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, root+"/metrics", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: GET /metrics: %d (serve without --metrics-listen)", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

func redisClients(ctx context.Context, rdb *goredis.Client) int {
	if rdb == nil {
		return -1
	}
	info, err := rdb.Info(ctx, "clients").Result()
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_clients:"); ok {
			n, _ := strconv.Atoi(v)
			return n - 1 // less this one
		}
	}
	return -1
}

func (r *waitersReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "waiters            %d long polls (Prefer: wait=30), set up in %.1f s\n", r.Waiters, r.SetupSeconds)
	fmt.Fprintf(w, "wake-up            p50 %.2f ms, p99 %.2f ms, max %.2f ms after the pairing answered (%d pairings, %d lost)\n",
		r.WakeP50Ms, r.WakeP99Ms, r.WakeMaxMs, r.Pairings, r.LostWakeUps)
	fmt.Fprintf(w, "pairing            p50 %.2f ms, p99 %.2f ms (POST /mobile/pairings, while the others wait)\n", r.PairingP50Ms, r.PairingP99Ms)
	fmt.Fprintf(w, "server goroutines  %.0f -> %.0f (%.2f per waiter)\n", r.ServerGoroutines[0], r.ServerGoroutines[1], r.GoroutinesPer)
	fmt.Fprintf(w, "server heap in use %.1f -> %.1f MiB (%.0f bytes per waiter)\n", r.ServerHeapBytes[0]/(1<<20), r.ServerHeapBytes[1]/(1<<20), r.HeapBytesPer)
	fmt.Fprintf(w, "server RSS         %.1f -> %.1f MiB (%.0f bytes per waiter)\n", r.ServerRSSBytes[0]/(1<<20), r.ServerRSSBytes[1]/(1<<20), r.RSSBytesPer)
	if r.RedisClients[0] >= 0 {
		fmt.Fprintf(w, "redis clients      %d -> %d while waiting\n", r.RedisClients[0], r.RedisClients[1])
	}
}

// benchWaiters is bench --waiters.
func benchWaiters(ctx context.Context, o benchOptions) error {
	if !o.jsonStdout {
		fmt.Fprintf(os.Stderr, "bench: %d long polls on %s/%s while %d of them are paired\n", o.waiters, strings.TrimRight(o.url, "/"), o.env, min(o.pairings, o.waiters))
	}
	rep, err := runWaiters(ctx, o)
	if err != nil {
		return err
	}
	if err := writeReport(o, rep, rep.writeText); err != nil {
		return err
	}
	if rep.LostWakeUps > 0 {
		return errors.New("bench: some long polls did not wake up after their pairing")
	}
	return nil
}

package main

// The load generator behind `enrollflow bench`: workers that each run whole
// enrollments (start, device.create, device.activate) over keep-alive
// connections, either as fast as they can (closed loop) or paced by a
// schedule (open loop, --rate), and the report of what they measured.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/enrollflow/enrollflow/mfa"
)

// The actions of one enrollment, in order.
const (
	actionStart    = "start"
	actionCreate   = "device.create"
	actionActivate = "device.activate"
)

func actionIndex(name string) int {
	switch name {
	case actionStart:
		return rowStart
	case actionCreate:
		return rowCreate
	case actionActivate:
		return rowActivate
	}
	return -1
}

// Latency rows of the report.
const (
	rowStart      = iota // POST /{env}/flowExecutions
	rowCreate            // device.create
	rowActivate          // device.activate
	rowEnrollment        // the whole enrollment; in --rate mode from its scheduled start
	rowPasscode          // EMAIL: device.create answered -> passcode read from the outbox
	rowLag               // --rate: scheduled start -> start request sent
	nRows
)

var rowNames = [nRows]string{actionStart, actionCreate, actionActivate, "enrollment", "outbox.passcode", "schedule.lag"}

// maxBody caps what the generator reads of one response.
const maxBody = 1 << 20

// passcodeTimeout bounds the wait for an EMAIL passcode file.
const passcodeTimeout = 10 * time.Second

// drainGrace is how long after the planned end the workers may still work
// off a backlog of scheduled enrollments (--rate) before giving up on it.
const drainGrace = 10 * time.Second

// loadgen is one run.
type loadgen struct {
	o          benchOptions
	client     *http.Client
	startURL   string // .../{env}/flowExecutions
	execPrefix string // .../{env}/flowExecutions/
	auth       string // Authorization header value
	flowJSON   string // the flow id as a JSON string
	outbox     *outboxIndex
	runID      string // makes user ids unique across runs on one store
	lastAction int    // index of --stop-after

	measureFrom time.Time // end of the warm-up
	stopAt      time.Time // no enrollment starts at or after it (zero: none)
	hardStop    time.Time // queued (--rate) enrollments not begun by then are missed

	seq     atomic.Int64 // user sequence
	claimed atomic.Int64 // enrollments begun (for --enrollments)
	missed  atomic.Int64 // --rate: scheduled, never begun
}

// workerStats is one worker's tally; merged after the run, so the hot path
// takes no lock.
type workerStats struct {
	lat         [nRows][]time.Duration
	requests    int64
	done        int64
	failed      int64
	errors      map[string]int64
	buf         bytes.Buffer
	interrupted bool
}

func newWorkerStats() *workerStats { return &workerStats{errors: map[string]int64{}} }

func (ws *workerStats) fail(key string) {
	ws.errors[key]++
	ws.failed++
}

// runLoad runs the load described by o and returns its report.
func runLoad(ctx context.Context, o benchOptions) (*benchReport, error) {
	base, err := loopbackURL(o.url)
	if err != nil {
		return nil, err
	}
	g := &loadgen{o: o, client: newBenchClient(o.concurrency, o.timeout), lastAction: actionIndex(o.stopAfter)}
	defer g.client.CloseIdleConnections()
	basePath := strings.TrimRight(base.String(), "/")
	g.startURL = basePath + "/" + url.PathEscape(o.env) + "/flowExecutions"
	g.execPrefix = g.startURL + "/"
	g.auth = "Bearer " + o.apiKey
	fj, _ := json.Marshal(o.flow)
	g.flowJSON = string(fj)
	var rid [4]byte
	_, _ = rand.Read(rid[:])
	g.runID = hex.EncodeToString(rid[:])

	if err := g.preflight(ctx, basePath); err != nil {
		return nil, err
	}
	if o.deviceType == "EMAIL" && g.lastAction >= rowActivate {
		if g.outbox, err = openOutbox(o.outbox); err != nil {
			return nil, fmt.Errorf("bench: --outbox: %w", err)
		}
		defer g.outbox.Close()
	}

	begin := time.Now()
	cpu0 := processCPU()
	g.measureFrom = begin.Add(o.warmup)
	if o.duration > 0 {
		g.stopAt = g.measureFrom.Add(o.duration)
		g.hardStop = g.stopAt.Add(drainGrace)
	} else if o.rate > 0 {
		planned := time.Duration(float64(o.enrollments) / o.rate * float64(time.Second))
		g.hardStop = begin.Add(planned + drainGrace)
	}

	stats := make([]*workerStats, o.concurrency)
	var wg sync.WaitGroup
	var ticks chan time.Time
	if o.rate > 0 {
		ticks = make(chan time.Time, min(max(1024, int(2*o.rate)), 1<<20))
		go g.dispatch(ctx, begin, ticks)
	}
	for i := range stats {
		stats[i] = newWorkerStats()
		wg.Add(1)
		go func(ws *workerStats) {
			defer wg.Done()
			warm := newWorkerStats()
			if ticks != nil {
				g.paced(ctx, ticks, ws, warm)
			} else {
				g.unpaced(ctx, ws, warm)
			}
		}(stats[i])
	}
	wg.Wait()
	end := time.Now()
	rep := g.report(stats, end.Sub(g.measureFrom))
	rep.LoadgenCPU = (processCPU() - cpu0).Seconds()
	rep.Wall = end.Sub(begin).Seconds()
	return rep, nil
}

// preflight makes one request so that a wrong --url fails fast and clearly
// rather than as thousands of counted errors.
func (g *loadgen) preflight(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, g.o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("bench: --url: %w", err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("bench: server at %s not reachable: %s", base, transportError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: %s/healthz answered %s; is that an enrollflow server?", base, resp.Status)
	}
	return nil
}

// unpaced is a closed-loop worker: the next enrollment begins when the
// last one ends.
func (g *loadgen) unpaced(ctx context.Context, ws, warm *workerStats) {
	for ctx.Err() == nil {
		now := time.Now()
		if !g.stopAt.IsZero() && !now.Before(g.stopAt) {
			return
		}
		if g.o.enrollments > 0 && g.claimed.Add(1) > g.o.enrollments {
			return
		}
		target := ws
		if now.Before(g.measureFrom) {
			target = warm
		}
		g.enroll(ctx, target, time.Time{})
	}
}

// dispatch releases one scheduled start time per 1/rate, whether or not
// the workers keep up (open loop): a slow server shows as latency and lag,
// not as a lower offered load. A start that finds the queue full is missed.
func (g *loadgen) dispatch(ctx context.Context, begin time.Time, ticks chan<- time.Time) {
	defer close(ticks)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	interval := float64(time.Second) / g.o.rate
	for i := int64(0); ; i++ {
		if g.o.enrollments > 0 && i >= g.o.enrollments {
			return
		}
		at := begin.Add(time.Duration(float64(i) * interval))
		if !g.stopAt.IsZero() && !at.Before(g.stopAt) {
			return
		}
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case ticks <- at:
		default:
			if !at.Before(g.measureFrom) {
				g.missed.Add(1)
			}
		}
	}
}

// paced is an open-loop worker: it runs the enrollments dispatch schedules.
func (g *loadgen) paced(ctx context.Context, ticks <-chan time.Time, ws, warm *workerStats) {
	for at := range ticks {
		target := ws
		if at.Before(g.measureFrom) {
			target = warm
		}
		if ctx.Err() != nil || (!g.hardStop.IsZero() && time.Now().After(g.hardStop)) {
			if target == ws {
				g.missed.Add(1)
			}
			continue
		}
		g.enroll(ctx, target, at)
	}
}

// Response bodies, as far as the generator reads them.
type (
	startResponse struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	createResponse struct {
		Status string `json:"status"`
		Device struct {
			Secret string `json:"secret"`
		} `json:"device"`
	}
	statusResponse struct {
		Status string `json:"status"`
	}
	errorResponse struct {
		Code string `json:"code"`
	}
)

// enroll runs one enrollment. scheduled is its planned start (--rate), or
// zero to start now.
func (g *loadgen) enroll(ctx context.Context, ws *workerStats, scheduled time.Time) {
	n := g.seq.Add(1)
	user := "bench-" + g.runID + "-" + strconv.FormatInt(n, 10)
	email := user + "@bench.example.com"
	began := time.Now()
	if scheduled.IsZero() {
		scheduled = began
	} else {
		ws.lat[rowLag] = append(ws.lat[rowLag], began.Sub(scheduled))
	}

	body := `{"flow":{"id":` + g.flowJSON + `},"inputs":{"user":{"id":"` + user + `","email":"` + email + `"}}}`
	var sr startResponse
	if !g.post(ctx, ws, rowStart, g.startURL, "application/json", body, http.StatusCreated, &sr) {
		return
	}
	if sr.ID == "" || strings.ContainsAny(sr.ID, "/?#") {
		ws.fail(actionStart + " 201 without a usable id")
		return
	}
	if g.lastAction == rowStart {
		g.finish(ws, scheduled)
		return
	}

	execURL := g.execPrefix + sr.ID
	var cr createResponse
	if !g.post(ctx, ws, rowCreate, execURL, "application/vnd.pingidentity.device.create+json",
		`{"type":"`+g.o.deviceType+`"}`, http.StatusOK, &cr) {
		return
	}
	if cr.Status != "ACTIVATION_REQUIRED" {
		ws.fail(actionCreate + " 200 with status " + quoteOrEmpty(cr.Status))
		return
	}
	if g.lastAction == rowCreate {
		g.finish(ws, scheduled)
		return
	}

	var code string
	if g.o.deviceType == "TOTP" {
		if cr.Device.Secret == "" {
			ws.fail(actionCreate + " 200 without device.secret")
			return
		}
		c, err := mfa.TOTPCode(cr.Device.Secret, time.Now())
		if err != nil {
			ws.fail(actionCreate + " 200 with an unusable device.secret")
			return
		}
		code = c
	} else {
		t0 := time.Now()
		c, err := g.outbox.wait(ctx, email, passcodeTimeout)
		if err != nil {
			if ctx.Err() != nil {
				ws.interrupted = true
				return
			}
			ws.fail("outbox.passcode: " + err.Error())
			return
		}
		ws.lat[rowPasscode] = append(ws.lat[rowPasscode], time.Since(t0))
		code = c
	}

	var ar statusResponse
	if !g.post(ctx, ws, rowActivate, execURL, "application/vnd.pingidentity.device.activate+json",
		`{"otp":"`+code+`"}`, http.StatusOK, &ar) {
		return
	}
	if ar.Status != "COMPLETED" {
		ws.fail(actionActivate + " 200 with status " + quoteOrEmpty(ar.Status))
		return
	}
	g.finish(ws, scheduled)
}

func (g *loadgen) finish(ws *workerStats, scheduled time.Time) {
	ws.done++
	ws.lat[rowEnrollment] = append(ws.lat[rowEnrollment], time.Since(scheduled))
}

// post sends one action and decodes a response of the wanted status into
// out. Any other outcome is counted as a failed enrollment under a key
// naming the action, the status and the API's error code; it returns false.
// Only wanted responses count in the latency figures.
func (g *loadgen) post(ctx context.Context, ws *workerStats, row int, target, contentType, body string, want int, out any) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		ws.fail(rowNames[row] + " request: " + err.Error())
		return false
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/hal+json, application/json")
	if row == rowStart {
		req.Header.Set("Authorization", g.auth)
	}
	t0 := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			ws.interrupted = true // Ctrl-C: not the server's fault
			return false
		}
		ws.requests++
		ws.fail(rowNames[row] + " transport: " + transportError(err))
		return false
	}
	ws.buf.Reset()
	_, err = ws.buf.ReadFrom(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	elapsed := time.Since(t0)
	ws.requests++
	if err != nil {
		if ctx.Err() != nil {
			ws.interrupted = true
			return false
		}
		ws.fail(rowNames[row] + " reading the response: " + transportError(err))
		return false
	}
	if resp.StatusCode != want {
		var e errorResponse
		_ = json.Unmarshal(ws.buf.Bytes(), &e)
		if e.Code == "" {
			e.Code = "(no error code)"
		}
		ws.fail(rowNames[row] + " " + strconv.Itoa(resp.StatusCode) + " " + e.Code)
		return false
	}
	if err := json.Unmarshal(ws.buf.Bytes(), out); err != nil {
		ws.fail(rowNames[row] + " " + strconv.Itoa(resp.StatusCode) + " with a body that is not JSON")
		return false
	}
	ws.lat[row] = append(ws.lat[row], elapsed)
	return true
}

func quoteOrEmpty(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// transportError names a failure to get a response briefly, so that errors
// group by kind in the report.
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port (EADDRNOTAVAIL)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120] + "..."
	}
	return msg
}

// loopbackURL checks that --url names a server on this machine: a loopback
// IP literal or localhost. The generator never sends load anywhere else.
func loopbackURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bench: --url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bench: --url %q: must be http://HOST:PORT or https://HOST:PORT", raw)
	}
	if !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("bench: --url %q: only a server on this machine may be loaded: use 127.0.0.1, [::1] or localhost", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("bench: --url %q: must not have a query or fragment", raw)
	}
	return u, nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errNotLoopback is refused by the dialer whatever a name resolved to.
var errNotLoopback = errors.New("bench: refusing to connect to a non-loopback address")

// loopbackOnly is the dialer's Control hook: it runs before connect, on
// the address the name resolved to.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errNotLoopback
	}
	return nil
}

// newBenchClient is an HTTP/1.1 client with a keep-alive connection per
// worker (idle pool larger than the concurrency, so no connection churns),
// no proxy, no compression, no redirects, and a dialer that connects to
// loopback addresses only.
func newBenchClient(concurrency int, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout:   5 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   loopbackOnly,
	}
	idle := 2*concurrency + 16
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/hal/openapitest"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

type node struct {
	base           string
	stdout, stderr *apptest.LogBuffer
	stop           func() error
}

// startNode runs `enrollflow serve` in-process on a free port, exactly as
// main does but for the signal handling.
func startNode(t *testing.T, args ...string) *node {
	t.Helper()
	o, err := parseServeFlags(append([]string{"--listen", "127.0.0.1:0", "--log-format", "json"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{stdout: &apptest.LogBuffer{}, stderr: &apptest.LogBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, o, n.stdout, n.stderr, func(a string) { addr <- a }) }()
	select {
	case a := <-addr:
		n.base = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("serve exited at start: %v\n%s", err, n.stderr)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("serve did not start listening within 10 s")
	}
	var once sync.Once
	var stopErr error
	n.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = fmt.Errorf("serve did not shut down within 10 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = n.stop() })
	return n
}

// call sends one request to a node, checking the exchange against the
// OpenAPI document.
func call(t *testing.T, method, url, contentType, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	v, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: v.Transport(t, nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// passcodeFromOutbox waits for the development channel's file for
// recipient and returns the passcode in its body.
func passcodeFromOutbox(t *testing.T, dir, recipient string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var msg struct{ Recipient, Channel, Subject, Body string }
			if json.Unmarshal(raw, &msg) == nil && msg.Recipient == recipient {
				if msg.Channel != "EMAIL" || msg.Subject == "" {
					t.Fatalf("outbox message %s: channel %q subject %q", f, msg.Channel, msg.Subject)
				}
				if code := sixDigits.FindString(msg.Body); code != "" {
					return code
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no outbox message for %s in %s", recipient, dir)
	return ""
}

// enrollByEmail walks the README's curl walkthrough against a node.
func enrollByEmail(t *testing.T, startOn, actOn *node, key, outbox, user string) {
	t.Helper()
	email := user + "@example.com"
	status, x := call(t, "POST", startOn.base+"/demo/flowExecutions", "application/json",
		fmt.Sprintf(`{"flow":{"id":"mfa-enrollment"},"inputs":{"user":{"id":%q,"email":%q}}}`, user, email),
		"Authorization", "Bearer "+key)
	if status != 201 || x["status"] != "DEVICE_ENROLLMENT_REQUIRED" {
		t.Fatalf("start: %d %v", status, x)
	}
	url := actOn.base + "/demo/flowExecutions/" + x["id"].(string)
	status, x = call(t, "POST", url, "application/vnd.pingidentity.device.create+json", `{"type":"EMAIL"}`)
	if status != 200 || x["status"] != "ACTIVATION_REQUIRED" {
		t.Fatalf("device.create: %d %v", status, x)
	}
	code := passcodeFromOutbox(t, outbox, email)
	status, x = call(t, "POST", url, "application/vnd.pingidentity.device.activate+json", fmt.Sprintf(`{"otp":%q}`, code))
	if status != 200 || x["status"] != "COMPLETED" {
		t.Fatalf("device.activate: %d %v", status, x)
	}
	status, list := call(t, "GET", startOn.base+"/environments/demo/users/"+user+"/devices", "", "", "Authorization", "Bearer "+key)
	if status != 200 || list["count"] != float64(1) {
		t.Fatalf("devices: %d %v", status, list)
	}
	for _, n := range []*node{startOn, actOn} {
		if strings.Contains(n.stderr.String(), code) || strings.Contains(n.stderr.String(), email) {
			t.Fatalf("the log holds the passcode or the address:\n%s", n.stderr)
		}
	}
}

func TestServeMemoryDemoWalkthrough(t *testing.T) {
	const key = "walkthrough-key-0123456789"
	t.Setenv("ENROLLFLOW_API_KEY", key)
	t.Setenv("ENROLLFLOW_SECRET", "")
	outbox := t.TempDir()
	n := startNode(t, "--outbox", outbox)

	if status, body := call(t, "GET", n.base+"/healthz", "", ""); status != 200 || body["status"] != "UP" {
		t.Fatalf("healthz: %d %v", status, body)
	}
	if status, _ := call(t, "GET", n.base+"/readyz", "", ""); status != 200 {
		t.Fatalf("readyz: %d", status)
	}
	if !strings.Contains(n.stdout.String(), n.base+"/demo/flowExecutions") {
		t.Fatalf("the banner does not say where to start:\n%s", n.stdout)
	}
	enrollByEmail(t, n, n, key, outbox, "walker")
	if err := n.stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
}

func TestServeGeneratesAndPrintsAPIKey(t *testing.T) {
	t.Setenv("ENROLLFLOW_API_KEY", "")
	os.Unsetenv("ENROLLFLOW_API_KEY")
	n := startNode(t, "--outbox", t.TempDir())
	m := regexp.MustCompile(`\(generated, shown once\): (\S+)`).FindStringSubmatch(n.stdout.String())
	if m == nil {
		t.Fatalf("no generated key in the banner:\n%s", n.stdout)
	}
	if status, _ := call(t, "GET", n.base+"/environments/demo/flows", "", "", "Authorization", "Bearer "+m[1]); status != 200 {
		t.Fatalf("the printed key is refused: %d", status)
	}
	if strings.Contains(n.stderr.String(), m[1]) {
		t.Fatal("the API key was logged")
	}
}

func TestServeRedisRequiresSecret(t *testing.T) {
	t.Setenv("ENROLLFLOW_SECRET", "")
	o, err := parseServeFlags([]string{"--listen", "127.0.0.1:0", "--redis-url", "redis://127.0.0.1:1/0", "--outbox", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	err = runServe(context.Background(), o, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "ENROLLFLOW_SECRET is required") {
		t.Fatalf("want a refusal naming ENROLLFLOW_SECRET, got %v", err)
	}
}

// TestServeTwoNodesOneRedis is the README's "several nodes" section: start
// on one node, act through the other.
func TestServeTwoNodesOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	const key = "two-nodes-key-0123456789"
	t.Setenv("ENROLLFLOW_API_KEY", key)
	t.Setenv("ENROLLFLOW_SECRET", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	outbox := t.TempDir()
	a := startNode(t, "--redis-url", srv.URL(), "--outbox", outbox)
	b := startNode(t, "--redis-url", srv.URL(), "--outbox", outbox)
	enrollByEmail(t, a, b, key, outbox, "roamer")
}

func TestServeFlagValidation(t *testing.T) {
	for _, args := range [][]string{
		{"--execution-ttl", "10s"},
		{"--rate-limit", "-1"},
		{"--no-such-flag"},
		{"--trusted-proxies", "10.0.0.0/8,load-balancer"},
		{"--trusted-proxies", "10.0.0.0/33"},
	} {
		if _, err := parseServeFlags(args); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	o, err := parseServeFlags([]string{"--trusted-proxies", " 10.1.2.3/8, 192.0.2.1 ,::ffff:198.51.100.2,"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(o.trustedProxies); got != "[10.0.0.0/8 192.0.2.1/32 198.51.100.2/32]" {
		t.Errorf("--trusted-proxies parsed as %s", got)
	}
	o, err = parseServeFlags([]string{"--log-level", "loud"})
	if err != nil {
		t.Fatal(err)
	}
	if err := runServe(context.Background(), o, io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("bad log level: %v", err)
	}
}

// TestServeMetricsListener: with --metrics-listen, /metrics is served there
// and not on the API's listener.
func TestServeMetricsListener(t *testing.T) {
	t.Setenv("ENROLLFLOW_API_KEY", "metrics-listener-key-0123")
	n := startNode(t, "--outbox", t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	addr := ""
	for _, line := range strings.Split(n.stderr.String(), "\n") {
		var entry struct{ Message, Listen string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Message == "metrics serving" {
			addr = entry.Listen
		}
	}
	if addr == "" {
		t.Fatalf("no metrics listener in the log:\n%s", n.stderr)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "enrollflow_build_info{") {
		t.Fatalf("metrics listener: %d %.300s", resp.StatusCode, body)
	}
	if status, _ := call(t, "GET", n.base+"/metrics", "", ""); status != http.StatusNotFound {
		t.Errorf("/metrics on the API listener: %d, want 404 when --metrics-listen is set", status)
	}
	if status, _ := call(t, "HEAD", n.base+"/healthz", "", ""); status != http.StatusOK {
		t.Errorf("HEAD /healthz: %d", status)
	}
	if status, _ := call(t, "HEAD", n.base+"/readyz", "", ""); status != http.StatusOK {
		t.Errorf("HEAD /readyz: %d", status)
	}
}

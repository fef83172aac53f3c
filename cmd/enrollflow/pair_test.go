package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

// TestPairCommand: a MOBILE enrollment on a running server, paired by
// `enrollflow pair` with the URI the state shows, on the embedded store
// and on Redis; the key file then gives offline passcodes, and a second
// pairing with the same key exits 1 with PAIRING_KEY_USED.
func TestPairCommand(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			var args []string
			env := []string{"ENROLLFLOW_SECRET="}
			if backend == "redis" {
				args = []string{"--redis-url", redistest.Start(t).URL()}
				env = []string{"ENROLLFLOW_SECRET=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
			}
			p := startProcessWith(t, env, args...)
			base := "http://" + p.addr
			exec := postJSON(t, base+"/demo/flowExecutions", "application/json", `{"flow":{"id":"mfa-enrollment"},"inputs":{"user":{"id":"cli-user"}}}`, "Bearer "+processKey)
			self := exec["_links"].(map[string]any)["self"].(map[string]any)["href"].(string)
			state := postJSON(t, self, "application/vnd.pingidentity.device.create+json", `{"type":"MOBILE","application":{"id":"demo-authenticator"}}`, "")
			if state["status"] != "PAIRING_REQUIRED" {
				t.Fatalf("state after create: %v", state)
			}
			uri := state["pairingKey"].(map[string]any)["uri"].(string)

			keyFile := filepath.Join(t.TempDir(), "phone.json")
			code, stdout, stderr := runBinary(t, "pair", "--key-file", keyFile, uri)
			if code != 0 {
				t.Fatalf("pair exited %d: %s %s", code, stdout, stderr)
			}
			var out struct {
				Device   struct{ ID, Type string }
				User     struct{ ID string }
				Passcode string
			}
			if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Device.Type != "MOBILE" || out.User.ID != "cli-user" || len(out.Passcode) != 6 {
				t.Fatalf("pair printed %q (%v)", stdout, err)
			}
			final := getJSON(t, self)
			if final["status"] != "COMPLETED" {
				t.Fatalf("execution after pairing: %v", final)
			}
			code, otp, stderr := runBinary(t, "pair", "--key-file", keyFile, "--otp")
			if o := strings.TrimSpace(otp); code != 0 || len(o) != 6 || strings.Trim(o, "0123456789") != "" {
				t.Fatalf("pair --otp: %d %q %s", code, otp, stderr)
			}
			code, stdout, stderr = runBinary(t, "pair", "--key-file", filepath.Join(t.TempDir(), "other.json"), uri)
			if code != 1 || !strings.Contains(stdout, "PAIRING_KEY_USED") || !strings.Contains(stderr, "PAIRING_KEY_USED") {
				t.Fatalf("second pairing: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			if code, _, _ := runBinary(t, "pair"); code != exitUsage {
				t.Errorf("pair without a code: exit %d, want %d", code, exitUsage)
			}
		})
	}
}

func postJSON(t *testing.T, url, contentType, body, auth string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return doJSON(t, req)
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) map[string]any {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, raw)
	}
	return m
}

package hal_test

// Limits and hygiene: the per-user device limit, the per-client rate limit,
// and logs that never carry a passcode or an address.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/mfa"
)

func oneDevice() *config.File {
	return demoConfig(func(e *config.Environment) { e.MFASettings.Pairing.MaxAllowedDevices = 1 })
}

func TestMaxAllowedDevices(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		t.Run("refused at device.create", func(t *testing.T) {
			n := newNode(t, b, apptest.Options{Config: oneDevice()})
			first := n.start("solo")
			if got := num(n.get(first).Body, "mfaSettings", "pairing", "maxAllowedDevices"); got != 1 {
				t.Errorf("mfaSettings.pairing.maxAllowedDevices = %v, want 1", got)
			}
			mustState(t, n.enrollEmail(first, "solo@example.com"), "COMPLETED")

			second := n.start("solo")
			n.unchanged(second, func() {
				r := n.create(second, "SMS")
				mustError(t, r, http.StatusBadRequest, "INVALID_DATA", detail{"type", "LIMIT_EXCEEDED"})
				if !strings.Contains(str(r.Body, "message"), "1") {
					t.Errorf("message %q does not name the limit", str(r.Body, "message"))
				}
			})
			// Another user is not affected; skipping is still possible.
			mustState(t, n.enrollEmail(n.start("other"), "other@example.com"), "COMPLETED")
			mustState(t, n.act(second, ctSkip, ""), "COMPLETED")

			// Deleting the device makes room again.
			l := n.admin(http.MethodGet, "/environments/demo/users/solo/devices", "")
			mustStatus(t, n.admin(http.MethodDelete, "/environments/demo/users/solo/devices/"+str(l.Body, "_embedded", "devices", "0", "id"), ""), http.StatusNoContent)
			mustState(t, n.enrollEmail(n.start("solo"), "solo@example.com"), "COMPLETED")
		})
		t.Run("refused at device.activate when another enrollment won", func(t *testing.T) {
			// Both executions passed device.create while the user had no
			// device; the registry write is atomic with the limit, so only
			// the first activation lands.
			n := newNode(t, b, apptest.Options{Config: oneDevice()})
			a, c := n.start("pair"), n.start("pair")
			mustStatus(t, n.create(a, "EMAIL"), http.StatusOK)
			codeA := n.passcode("pair@example.com")
			mustStatus(t, n.create(c, "TOTP"), http.StatusOK)
			mustState(t, n.activate(a, codeA), "COMPLETED")

			secret := str(n.get(c).Body, "device", "secret")
			code := totpNow(t, n, secret)
			n.unchanged(c, func() {
				mustError(t, n.activate(c, code), http.StatusBadRequest, "INVALID_DATA", detail{"device", "LIMIT_EXCEEDED"})
			})
			if l := n.admin(http.MethodGet, "/environments/demo/users/pair/devices", ""); num(l.Body, "count") != 1 {
				t.Errorf("registry = %s, want one device", l.Raw)
			}
		})
	})
}

// TestRateLimit: with 1 request per second (burst 3) per client address,
// the fourth quick request of one client is refused with 429 and a
// Retry-After, while other clients and the management API are not.
func TestRateLimit(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		clock := apptest.NewClock()
		shared := b.Open(clock)
		// The execution is started through an unthrottled node on the same
		// store, so that every throttled request below is a GET.
		free := newNode(t, b, apptest.Options{Store: shared, Clock: clock})
		id := free.start("busy")
		n := newNode(t, b, apptest.Options{Store: shared, Clock: clock, RateLimit: 1})

		from := func(addr string) *resp {
			req := httptest.NewRequest(http.MethodGet, execPath+"/"+id, nil)
			req.RemoteAddr = addr
			rec := httptest.NewRecorder()
			n.Handler.ServeHTTP(rec, req)
			return newResp(t, rec)
		}
		// The limiter runs on real time: a slow machine may earn a token
		// back while the requests run, so allow one more per elapsed second.
		began := time.Now()
		allowed := 0
		var limited *resp
		for range 10 {
			r := from(fmt.Sprintf("192.0.2.1:%d", 1000+allowed)) // one address, any port
			if r.Status == http.StatusTooManyRequests {
				limited = r
				break
			}
			mustStatus(t, r, http.StatusOK)
			allowed++
		}
		elapsed := time.Since(began)
		if limited == nil {
			t.Fatalf("10 quick GETs were all allowed")
		}
		if allowed < 3 || allowed > 3+int(elapsed/time.Second) {
			t.Errorf("%d GETs allowed in %v before the 429, want the burst of 3", allowed, elapsed)
		}
		mustError(t, limited, http.StatusTooManyRequests, "REQUEST_LIMITED")
		if s := retryAfter(t, limited); s < 1 {
			t.Errorf("Retry-After = %d, want at least 1", s)
		}
		mustStatus(t, from("198.51.100.7:1000"), http.StatusOK)
		for range 5 {
			mustStatus(t, n.admin(http.MethodGet, "/environments/demo/flows", ""), http.StatusOK)
		}
		counters, _ := n.scrape()
		if got := counters[`enrollflow_rate_limited_requests_total{route="/{envID}/flowExecutions/{executionID}"}`]; got != 1 {
			t.Errorf("rate-limited requests counted: %v, want 1", got)
		}
		if got := counters[`enrollflow_http_requests_total{method="GET",route="/{envID}/flowExecutions/{executionID}",status="429"}`]; got != 1 {
			t.Errorf("429 answers counted: %v, want 1", got)
		}
	})
}

// TestRateLimitBehindTrustedProxy: behind a trusted load balancer each
// client has its own bucket, found in X-Forwarded-For from the right; a
// client cannot escape its bucket by prepending addresses, and the header
// from an untrusted peer is ignored.
func TestRateLimitBehindTrustedProxy(t *testing.T) {
	// The limiter is in the node, whatever the store: memory suffices.
	b := &backend{t: t, name: "memory"}
	clock := apptest.NewClock()
	shared := b.Open(clock)
	id := newNode(t, b, apptest.Options{Store: shared, Clock: clock}).start("proxied")
	n := newNode(t, b, apptest.Options{Store: shared, Clock: clock, RateLimit: 1,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	from := func(peer, xff string) int {
		req := httptest.NewRequest(http.MethodGet, execPath+"/"+id, nil)
		req.RemoteAddr = peer + ":4000"
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		n.Handler.ServeHTTP(rec, req)
		return rec.Code
	}
	exhaust := func(peer, xff string) {
		t.Helper()
		for range 10 {
			if from(peer, xff) == http.StatusTooManyRequests {
				return
			}
		}
		t.Fatalf("10 quick GETs from %s (X-Forwarded-For %q) were all allowed", peer, xff)
	}
	exhaust("10.0.0.5", "203.0.113.9")
	// Another client through the same balancer has its own bucket.
	if got := from("10.0.0.5", "203.0.113.10"); got != http.StatusOK {
		t.Errorf("second client behind the proxy: %d, want 200", got)
	}
	// Prepending a made-up hop does not give the first client a new bucket;
	// two trusted hops (balancer behind balancer) are skipped.
	if got := from("10.0.0.5", "198.51.100.1, 203.0.113.9"); got != http.StatusTooManyRequests {
		t.Errorf("spoofed leftmost hop: %d, want 429", got)
	}
	if got := from("10.0.0.6", "203.0.113.9, 10.0.0.7"); got != http.StatusTooManyRequests {
		t.Errorf("client behind two proxies: %d, want 429", got)
	}
	// From an untrusted peer the header means nothing: its own address counts.
	exhaust("192.0.2.50", "203.0.113.77")
	if got := from("10.0.0.5", "203.0.113.77"); got != http.StatusOK {
		t.Errorf("203.0.113.77 through the proxy: %d, want 200 (the untrusted peer's header must not have used its bucket)", got)
	}
}

// TestLogsCarryNoSecrets: a whole EMAIL enrollment, with a wrong code, a
// resend, a failed delivery and the right code, leaves access lines in the
// log, but neither a passcode nor the full e-mail address.
func TestLogsCarryNoSecrets(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		var buf apptest.LogBuffer
		log := zerolog.New(&buf).Level(zerolog.DebugLevel)
		n := newNode(t, b, apptest.Options{Log: log})
		const address = "secret.person.4711@example.com"
		id := n.startFlow(demoFlow, map[string]any{"id": "logged", "email": address})
		mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
		first := n.passcode(address)
		wrong := wrongCode(first)
		mustError(t, n.activate(id, wrong), http.StatusBadRequest, "INVALID_DATA")

		n.Outbox.Fail = errDeliveryDown // the next send fails and is logged
		n.Clock.Advance(5 * time.Second)
		mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
		n.Outbox.Fail = nil
		n.Clock.Advance(5 * time.Second)
		mustStatus(t, n.act(id, ctResend, ""), http.StatusOK)
		right := n.passcode(address)
		mustState(t, n.activate(id, right), "COMPLETED")

		logged := buf.String()
		lines := 0
		sc := bufio.NewScanner(strings.NewReader(logged))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("log line is not JSON: %s", sc.Text())
			}
			// Random hex ids (request ids, error ids, execution prefixes)
			// may by chance contain six digits in a row; every other string
			// value must not contain a passcode.
			// The access line names the execution by a prefix only: the full
			// id is what lets a client drive it. (The step's own error lines
			// still log the full id: reported, not covered here.)
			if rec["message"] == "request" && strings.Contains(sc.Text(), id) {
				t.Errorf("an access line carries the full execution id: %s", sc.Text())
			}
			for k, v := range rec {
				s, ok := v.(string)
				if !ok || randomHex.MatchString(s) {
					continue
				}
				for _, code := range []string{first, right, wrong} {
					if strings.Contains(s, code) {
						t.Errorf("log field %s carries passcode %s: %s", k, code, sc.Text())
					}
				}
			}
		}
		if lines < 7 || !strings.Contains(logged, `"result":"failed"`) {
			t.Fatalf("expected access lines and the delivery failure in the log, got:\n%s", logged)
		}
		for _, leak := range []string{address, "secret.person.4711"} {
			if strings.Contains(logged, leak) {
				t.Errorf("the log carries %q:\n%s", leak, logged)
			}
		}
	})
}

var randomHex = regexp.MustCompile(`^[0-9a-f]{8,36}$`)

var errDeliveryDown = errors.New("delivery provider down")

// totpNow is the current code of secret on n's clock.
func totpNow(t *testing.T, n *node, secret string) string {
	t.Helper()
	code, err := mfa.TOTPCode(secret, n.Clock.Now())
	must(t, err)
	return code
}

package hal_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
)

// TestETag: every execution response has a strong ETag that changes with
// every version; If-None-Match with it answers 304 while nothing changed.
func TestETag(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("etag")
		first := n.get(id)
		etag := first.Header.Get("ETag")
		if etag == "" || etag[0] != '"' {
			t.Fatalf("ETag = %q", etag)
		}
		same := n.do(http.MethodGet, execPath+"/"+id, "", "", "If-None-Match", etag)
		mustStatus(t, same, http.StatusNotModified)
		if same.Header.Get("ETag") != etag || len(same.Raw) != 0 {
			t.Errorf("304 with ETag %q and body %q", same.Header.Get("ETag"), same.Raw)
		}
		mustStatus(t, n.do(http.MethodGet, execPath+"/"+id, "", "", "If-None-Match", `"other", `+etag), http.StatusNotModified)
		created := n.create(id, "TOTP")
		if created.Header.Get("ETag") == etag {
			t.Errorf("the ETag did not change with the version")
		}
		mustStatus(t, n.do(http.MethodGet, execPath+"/"+id, "", "", "If-None-Match", etag), http.StatusOK)
		deleted := n.act(id, ctDelete, "")
		if deleted.Header.Get("ETag") == created.Header.Get("ETag") || deleted.Header.Get("ETag") == etag {
			t.Errorf("ETags %s, %s, %s are not all different", etag, created.Header.Get("ETag"), deleted.Header.Get("ETag"))
		}
	})
}

// TestLongPoll: Prefer: wait holds a poll until the execution changes (on
// any node, through the store), answers at once when the client is behind,
// and returns the unchanged execution when the wait is over.
func TestLongPoll(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("waiter")

		began := time.Now()
		r := n.do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=1")
		mustState(t, r, "DEVICE_ENROLLMENT_REQUIRED")
		if d := time.Since(began); d < time.Second || d > 3*time.Second {
			t.Errorf("an unchanged long poll of wait=1 took %s", d)
		}
		if r.Header.Get("Preference-Applied") != "wait=1" {
			t.Errorf("Preference-Applied = %q", r.Header.Get("Preference-Applied"))
		}

		// A client that is behind is answered at once.
		began = time.Now()
		r = n.do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=10", "If-None-Match", `"0-0000000000000000"`)
		mustStatus(t, r, http.StatusOK)
		if time.Since(began) > time.Second {
			t.Errorf("a poll with a stale ETag waited")
		}

		// A change wakes the poll.
		etag := r.Header.Get("ETag")
		done := make(chan *resp, 1)
		go func() {
			done <- newResp(t, n.Do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=10", "If-None-Match", etag))
		}()
		time.Sleep(100 * time.Millisecond)
		n.create(id, "TOTP")
		select {
		case r = <-done:
			mustState(t, r, "ACTIVATION_REQUIRED")
		case <-time.After(3 * time.Second):
			t.Fatal("the long poll did not wake on the change")
		}

		// A timed-out poll with the current ETag is a 304.
		r = n.do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=1", "If-None-Match", r.Header.Get("ETag"))
		mustStatus(t, r, http.StatusNotModified)
	})
}

// TestLongPollWakesOnExpiry: a waiting poll returns when the pairing key
// expires, with no write.
func TestLongPollWakesOnExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("expiring")
		r := n.createMobile(id, demoApp)
		n.Clock.Advance(10*time.Minute - time.Second)
		done := make(chan *resp, 1)
		go func() {
			done <- newResp(t, n.Do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=10", "If-None-Match", r.Header.Get("ETag")))
		}()
		time.Sleep(200 * time.Millisecond)
		n.Clock.Advance(2 * time.Second)
		select {
		case r = <-done:
			mustState(t, r, "MOBILE_PAIRING_FAILURE")
			if str(r.Body, "error", "code") != "PAIRING_KEY_EXPIRED" {
				t.Errorf("error: %s", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the long poll did not wake when the key expired")
		}
	})
}

// TestPollPacing: polls faster than the documented pace get 429
// SLOW_DOWN with Retry-After, long polls answered at once too.
func TestPollPacing(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{PollBurst: 3})
		id := n.start("eager")
		for i := 0; i < 3; i++ {
			mustStatus(t, n.get(id), http.StatusOK)
		}
		r := n.get(id)
		mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"poll", "SLOW_DOWN"})
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("no Retry-After")
		}
		mustError(t, n.do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=1", "If-None-Match", `"0-0000000000000000"`),
			http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"poll", "SLOW_DOWN"})
		// Another execution has its own pace.
		mustStatus(t, n.get(n.start("patient")), http.StatusOK)
	})
}

package hal_test

// Concurrent actions on one execution: compare-and-set lets exactly one
// win; the rest are refused without side effects and without a 5xx.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
)

const racers = 20

// race posts the same action from racers goroutines released together.
func race(n *node, id, contentType string, body func(i int) string) []*resp {
	n.t.Helper()
	recs := make([]*httptest.ResponseRecorder, racers)
	gate := newBarrier(racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gate.wait()
			// No t.Fatal off the test goroutine: record, judge later.
			recs[i] = n.Do(http.MethodPost, execPath+"/"+id, contentType, body(i))
		}()
	}
	gate.release()
	wg.Wait()
	out := make([]*resp, racers)
	for i, rec := range recs {
		out[i] = newResp(n.t, rec)
	}
	return out
}

// tally counts outcomes as "200", "409 CONCURRENT_UPDATE", ...
func tally(t *testing.T, rs []*resp) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, r := range rs {
		k := fmt.Sprint(r.Status)
		if r.Status != http.StatusOK {
			k += " " + str(r.Body, "code")
			if d := str(r.Body, "details", "0", "code"); r.Status == http.StatusBadRequest {
				k += "/" + d
			}
		}
		m[k]++
		if r.Status >= 500 {
			t.Errorf("a racer got a server error: %s", r)
		}
	}
	return m
}

// mustOneWinner asserts one 200 and only losers of the kinds a loser may
// see: it lost the write (409 CONCURRENT_UPDATE), it loaded the execution
// after the winner had changed it (409 ACTION_NOT_ALLOWED), or one of the
// refusals in also (a limit that counted it before it could be judged).
func mustOneWinner(t *testing.T, rs []*resp, also ...string) *resp {
	t.Helper()
	m := tally(t, rs)
	t.Logf("outcomes: %v", m)
	losers := m["409 CONCURRENT_UPDATE"] + m["409 ACTION_NOT_ALLOWED"]
	for _, k := range also {
		losers += m[k]
	}
	if m["200"] != 1 || m["200"]+losers != racers {
		t.Fatalf("outcomes = %v, want exactly one 200 and %d losers (409s, or %v)", m, racers-1, also)
	}
	for _, r := range rs {
		if r.Status == http.StatusOK {
			return r
		}
	}
	return nil
}

func TestConcurrentActivate(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("racer")
		mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
		code := n.passcode("racer@example.com")

		// Every racer is an attempt, counted before it is judged: past the
		// policy's 3, the passcode is void for the late ones, right or not.
		// and past mfaSettings.lockout's 5 the user is locked.
		win := mustOneWinner(t, race(n, id, ctActivate, func(int) string { return `{"otp":"` + code + `"}` }),
			"400 INVALID_DATA/OTP_ATTEMPTS_EXCEEDED", "429 REQUEST_LIMITED")
		mustState(t, win, "COMPLETED")
		g := n.get(id)
		mustState(t, g, "COMPLETED")
		l := n.admin(http.MethodGet, "/environments/demo/users/racer/devices", "")
		items := list(l.Body, "_embedded", "devices")
		if len(items) != 1 || str(items[0], "id") != str(win.Body, "steps", "enroll", "outputs", "device", "id") {
			t.Errorf("registry = %s, want exactly the winner's device", l.Raw)
		}
	})
}

func TestConcurrentCreate(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("creator")
		// Each racer spends the address's send budget (5 an hour) before
		// it can win: the late ones are refused by it.
		win := mustOneWinner(t, race(n, id, ctCreate, func(int) string { return `{"type":"EMAIL"}` }), "429 REQUEST_LIMITED")
		mustState(t, win, "ACTIVATION_REQUIRED")

		// One pending device, the winner's, and one passcode sent for it:
		// a loser's passcode would be a message for a state never saved.
		g := n.get(id)
		mustState(t, g, "ACTIVATION_REQUIRED")
		if str(g.Body, "device", "id") != str(win.Body, "device", "id") {
			t.Errorf("pending device %s, want the winner's %s", str(g.Body, "device", "id"), str(win.Body, "device", "id"))
		}
		if sent := n.sentTo("creator@example.com"); sent != 1 {
			t.Fatalf("%d passcodes sent, want 1", sent)
		}
		r := n.activate(id, n.passcode("creator@example.com"))
		mustStatus(t, r, http.StatusOK)
		if str(r.Body, "steps", "enroll", "outputs", "device", "id") != str(win.Body, "device", "id") {
			t.Errorf("enrolled %v, want the winner's device", at(r.Body, "steps", "enroll", "outputs"))
		}
		if l := n.admin(http.MethodGet, "/environments/demo/users/creator/devices", ""); num(l.Body, "count") != 1 {
			t.Errorf("registry = %s, want one device", l.Raw)
		}
	})
}

// TestConcurrentWrongCodesAreBounded: a burst of guesses gets no more
// counted attempts than the policy allows, and every guess that was judged
// is counted in the execution.
func TestConcurrentWrongCodesAreBounded(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		id := n.start("guesser")
		mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
		right := n.passcode("guesser@example.com")
		rs := race(n, id, ctActivate, func(i int) string {
			guess := fmt.Sprintf("%06d", 100000+i)
			if guess == right {
				guess = "999999"
			}
			return `{"otp":"` + guess + `"}`
		})
		m := tally(t, rs)
		t.Logf("outcomes: %v", m)
		wrong, voided := m["400 INVALID_DATA/INVALID_OTP"], 0
		for _, r := range rs {
			if strings.HasPrefix(str(r.Body, "details", "0", "message"), "the passcode is wrong and no attempts are left") {
				voided++
			}
		}
		if m["200"] != 0 || wrong > 2 || voided > 1 {
			t.Fatalf("outcomes = %v (%d voiding): more guesses judged than the 3 allowed", m, voided)
		}
		for k := range m {
			// A wrong guess is answered with its own verdict even when it
			// lost the write: never a 409 that would tell it from a right one.
			if !strings.HasPrefix(k, "400 INVALID_DATA/") && k != "429 REQUEST_LIMITED" {
				t.Errorf("unexpected outcome %q", k)
			}
		}
		// Every guess counts for the user: the policy's 3 are judged, 2
		// more find the passcode void, and the fifth locks the user
		// (mfaSettings.lockout: 5), so the other 15 are refused unjudged.
		if wrong+voided != 3 || m["400 INVALID_DATA/OTP_ATTEMPTS_EXCEEDED"] != 5-wrong || m["429 REQUEST_LIMITED"] != racers-5 {
			t.Errorf("outcomes = %v: want 3 judged, 2 refused as void, %d locked out", m, racers-5)
		}
		g := n.get(id)
		if got, want := num(g.Body, "device", "otp", "remainingAttempts"), float64(3-wrong-voided); got != want {
			t.Errorf("remainingAttempts = %v, want %v after %d counted wrong guesses", got, want, wrong+voided)
		}
	})
}

package hal_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
)

// twoNodes are two nodes on one store (on Redis, two clients of one
// redis-server; on memory, one store shared in-process).
func twoNodes(t *testing.T, b *backend, cfg *config.File) (*node, *node) {
	clock := apptest.NewClock()
	shared := b.Open(clock)
	a := newNode(t, b, apptest.Options{Store: shared, Clock: clock, Config: cfg})
	other := shared
	if b.redis != nil {
		other = b.Open(clock)
	}
	return a, newNode(t, b, apptest.Options{Store: other, Clock: clock, Config: cfg})
}

// parallel posts n activations at once, alternating the two nodes.
func parallel(nodes [2]*node, id string, n int, otp func(i int) string) map[string]int {
	var mu sync.Mutex
	out := map[string]int{}
	gate := newBarrier(n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gate.wait()
			rec := nodes[i%2].Do(http.MethodPost, execPath+"/"+id, ctActivate, `{"otp":"`+otp(i)+`"}`)
			mu.Lock()
			defer mu.Unlock()
			out[strconv.Itoa(rec.Code)]++
		}()
	}
	gate.release()
	wg.Wait()
	return out
}

func (n *node) lockout(user string) *resp {
	n.t.Helper()
	r := n.admin(http.MethodGet, "/environments/demo/users/"+user+"/lockout", "")
	mustStatus(n.t, r, http.StatusOK)
	return r
}

func wrongFor(right string) func(int) string {
	return func(i int) string {
		if g := fmt.Sprintf("%06d", 100000+i); g != right {
			return g
		}
		return "999999"
	}
}

// TestParallelGuessesAcrossNodes: fifty wrong passcodes at once, half
// through each of two nodes: every one is counted before it is judged.
func TestParallelGuessesAcrossNodes(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		t.Run("all counted", func(t *testing.T) {
			a, c := twoNodes(t, b, demoConfig(func(e *config.Environment) { e.MFASettings.Lockout.FailureCount = 100 }))
			id := a.start("fifty")
			mustStatus(t, a.create(id, "EMAIL"), http.StatusOK)
			out := parallel([2]*node{a, c}, id, 50, wrongFor(a.passcode("fifty@example.com")))
			if out["400"] != 50 {
				t.Fatalf("outcomes %v, want 50 refusals (3 judged wrong, 47 finding the passcode void)", out)
			}
			if got := num(a.lockout("fifty").Body, "attempts"); got != 50 {
				t.Fatalf("attempts counted %v, want 50", got)
			}
			if r := a.get(id); num(r.Body, "device", "otp", "remainingAttempts") != 0 || slices.Contains(links(t, r.Body), "device.activate") {
				t.Errorf("after the burst: %s; want no attempts left and no device.activate", r.Raw)
			}
		})
		t.Run("locked after five", func(t *testing.T) {
			a, c := twoNodes(t, b, nil)
			id := a.start("five")
			mustStatus(t, a.create(id, "EMAIL"), http.StatusOK)
			out := parallel([2]*node{a, c}, id, 50, wrongFor(a.passcode("five@example.com")))
			if out["400"] != 5 || out["429"] != 45 {
				t.Fatalf("outcomes %v, want 5 counted (400) and 45 refused while locked (429)", out)
			}
			l := c.lockout("five")
			if l.Body["locked"] != true || num(l.Body, "attempts") != 5 || str(l.Body, "lockedUntil") == "" {
				t.Fatalf("lockout %s", l.Raw)
			}
		})
		t.Run("one right among them", func(t *testing.T) {
			a, c := twoNodes(t, b, demoConfig(func(e *config.Environment) { e.MFASettings.Lockout.FailureCount = 100 }))
			id := a.start("lucky")
			mustStatus(t, a.create(id, "EMAIL"), http.StatusOK)
			right := a.passcode("lucky@example.com")
			before := attemptsCounted(a) + attemptsCounted(c)
			out := parallel([2]*node{a, c}, id, 50, func(i int) string {
				if i == 17 {
					return right
				}
				return wrongFor(right)(i)
			})
			if got := attemptsCounted(a) + attemptsCounted(c) - before; got != 50 {
				t.Fatalf("%v attempts counted across the two nodes, want 50 (outcomes %v)", got, out)
			}
			if out["200"] > 1 || out["200"]+out["400"]+out["409"] != 50 {
				t.Fatalf("outcomes %v", out)
			}
		})
	})
}

// attemptsCounted is a node's count of regulation attempts in the store.
func attemptsCounted(n *node) float64 {
	counters, _ := n.scrape()
	return counters[`enrollflow_store_operations_total{operation="attempt",outcome="ok"}`]
}

// TestLockoutAcrossExecutions: wrong passcodes spread over three
// executions on two nodes lock the user; a fourth execution is refused its
// verification, another user is not, and lifting the lockout through the
// management API lets the user in again.
func TestLockoutAcrossExecutions(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		a, c := twoNodes(t, b, nil)
		wrong := func(n *node, id, right string, times int) {
			for range times {
				r := n.activate(id, wrongFor(right)(0))
				mustStatus(t, r, http.StatusBadRequest)
			}
		}
		nodes := []*node{a, c, a}
		var lockedBy string
		for i, times := range []int{2, 2, 1} {
			n := nodes[i]
			id := n.startFlow(demoFlow, map[string]any{"id": "roamer", "email": fmt.Sprintf("r%d@example.com", i)})
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
			wrong(n, id, n.passcode(fmt.Sprintf("r%d@example.com", i)), times)
			lockedBy = id
		}
		if l := a.lockout("roamer"); l.Body["locked"] != true {
			t.Fatalf("after 5 wrong passcodes in 3 executions: %s", l.Raw)
		}

		id := c.startFlow(demoFlow, map[string]any{"id": "roamer", "email": "fourth@example.com"})
		mustStatus(t, c.create(id, "EMAIL"), http.StatusOK)
		right := c.passcode("fourth@example.com")
		r := c.activate(id, right)
		mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"user", "USER_LOCKED"})
		if retryAfter(t, r) < 590 || str(r.Body, "details", "0", "innerError", "lockedUntil") == "" {
			t.Errorf("the refusal: Retry-After %q, body %s", r.Header.Get("Retry-After"), r.Raw)
		}
		// The execution whose wrong passcode set the lockout off shows it.
		if g := a.get(lockedBy); str(g.Body, "lockedUntil") == "" || slices.Contains(links(t, g.Body), "device.activate") {
			t.Errorf("the locked user's state: %s", g.Raw)
		}

		other := a.startFlow(demoFlow, map[string]any{"id": "bystander", "email": "by@example.com"})
		mustStatus(t, a.create(other, "EMAIL"), http.StatusOK)
		mustState(t, a.activate(other, a.passcode("by@example.com")), "COMPLETED")

		mustStatus(t, a.admin(http.MethodDelete, "/environments/demo/users/roamer/lockout", ""), http.StatusNoContent)
		if l := c.lockout("roamer"); l.Body["locked"] != false || num(l.Body, "attempts") != 0 {
			t.Fatalf("after lifting: %s", l.Raw)
		}
		mustState(t, c.activate(id, right), "COMPLETED")

		// The execution whose wrong passcode set the lockout off may ask
		// for a new passcode as soon as it is lifted.
		locker := a.startFlow(demoFlow, map[string]any{"id": "locker", "email": "locker@example.com"})
		mustStatus(t, a.create(locker, "EMAIL"), http.StatusOK)
		for range 5 {
			a.activate(locker, wrongFor(a.passcode("locker@example.com"))(0))
		}
		mustError(t, a.act(locker, ctResend, ""), http.StatusTooManyRequests, "REQUEST_LIMITED")
		mustStatus(t, a.admin(http.MethodDelete, "/environments/demo/users/locker/lockout", ""), http.StatusNoContent)
		// The passcode's own failure cool-down (2 minutes) still holds;
		// the lockout (10) does not.
		a.Clock.Advance(2*time.Minute + time.Second)
		mustStatus(t, a.act(locker, ctResend, ""), http.StatusOK)
		mustState(t, a.activate(locker, a.passcode("locker@example.com")), "COMPLETED")
	})
}

// TestSendBudgets: the pumping scenario. Creating and deleting devices to
// ten numbers, in one execution or spread over five, stops at the user's
// budget (10 an hour); one number across users stops at the address's (5
// an hour); and an environment's SMS stop at its own.
func TestSendBudgets(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		fresh := func() {
			if b.redis != nil {
				b.redis.FlushAll() // budgets outlive a node: start each case clean
			}
		}
		t.Run("per user, one execution", func(t *testing.T) {
			fresh()
			// Under the step's own cap of 10 passcodes.
			n := newNode(t, b, apptest.Options{Config: demoConfig(func(e *config.Environment) { e.MFASettings.SendLimits.User.Count = 6 })})
			id := n.start("pumper")
			if sent := pump(t, n, []string{id}, 6, 600); sent != 6 {
				t.Fatalf("%d passcodes sent, want the user's 6", sent)
			}
		})
		t.Run("per user, five executions", func(t *testing.T) {
			fresh()
			n := newNode(t, b, apptest.Options{})
			var ids []string
			for range 5 {
				ids = append(ids, n.start("spreader"))
			}
			if sent := pump(t, n, ids, 10, 360); sent != 10 {
				t.Fatalf("%d passcodes sent over five executions, want the user's 10", sent)
			}
		})
		t.Run("per address, across users", func(t *testing.T) {
			fresh()
			n := newNode(t, b, apptest.Options{})
			const target = "+12015559999"
			for i := range 7 {
				id := n.start(fmt.Sprintf("victim-%d", i))
				r := n.act(id, ctCreate, `{"type":"SMS","phone":"`+target+`"}`)
				if i < 5 {
					mustStatus(t, r, http.StatusOK)
					continue
				}
				mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"address", "SEND_LIMIT_ADDRESS"})
				if s := retryAfter(t, r); s < 700 || s > 721 {
					t.Errorf("Retry-After %d, want about 720 (5 an hour: one every 12 minutes)", s)
				}
			}
			if got := n.sentTo(target); got != 5 {
				t.Errorf("%d passcodes to one number, want 5", got)
			}
			// One mailbox, whatever the case it is typed in.
			for i, addr := range []string{"box@example.com", "Box@example.com", "BOX@Example.com", "bOx@EXAMPLE.COM", "box@example.COM", "Box@Example.Com"} {
				id := n.start(fmt.Sprintf("case-%d", i))
				r := n.act(id, ctCreate, `{"type":"EMAIL","email":"`+addr+`"}`)
				if i < 5 {
					mustStatus(t, r, http.StatusOK)
					continue
				}
				mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"address", "SEND_LIMIT_ADDRESS"})
			}
		})
		t.Run("per environment", func(t *testing.T) {
			fresh()
			n := newNode(t, b, apptest.Options{Config: demoConfig(func(e *config.Environment) {
				e.MFASettings.SendLimits.SMS.Count = 3
			})})
			for i := range 4 {
				id := n.start(fmt.Sprintf("env-user-%d", i))
				r := n.act(id, ctCreate, fmt.Sprintf(`{"type":"SMS","phone":"+1201555%04d"}`, 1000+i))
				if i < 3 {
					mustStatus(t, r, http.StatusOK)
					continue
				}
				mustError(t, r, http.StatusTooManyRequests, "REQUEST_LIMITED", detail{"environment", "SEND_LIMIT_ENVIRONMENT"})
				if s := retryAfter(t, r); s < 15 || s > 21 {
					t.Errorf("Retry-After %d, want about 20 (3 a minute)", s)
				}
			}
			// E-mail has a budget of its own.
			id := n.start("env-user-mail")
			mustStatus(t, n.create(id, "EMAIL"), http.StatusOK)
		})
	})
}

// pump alternates device.create (VOICE, a new number each time) and
// device.delete over the executions until a budget refuses, and returns
// how many passcodes were sent; the refusal's Retry-After must be the
// user budget's interval (wait seconds).
func pump(t *testing.T, n *node, ids []string, want, wait int) int {
	t.Helper()
	for i := range 30 {
		id := ids[i%len(ids)]
		r := n.act(id, ctCreate, fmt.Sprintf(`{"type":"VOICE","phone":"+1201555%04d"}`, 2000+i))
		if r.Status == http.StatusTooManyRequests {
			d := str(r.Body, "details", "0", "code")
			if d != "SEND_LIMIT_USER" {
				t.Fatalf("refused by %s (%s), want the user's budget", d, r.Raw)
			}
			if s := retryAfter(t, r); s < wait-60 || s > wait+1 {
				t.Errorf("Retry-After %d, want about %d (the user's budget per hour)", s, wait)
			}
			return i
		}
		mustStatus(t, r, http.StatusOK)
		n.Clock.Advance(time.Second)
		mustStatus(t, n.act(id, ctDelete, "{}"), http.StatusOK)
	}
	t.Fatalf("30 passcodes went out, want a refusal at %d", want)
	return 0
}

package dispatch_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/delivery/templates"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
)

// heldList is a store whose next ListDocuments, once armed, reads the list
// and then waits, before returning it, until the test releases it: a read
// that began before a change and ends after it.
type heldList struct {
	store.Documents
	lists atomic.Int32

	mu      sync.Mutex
	armed   bool
	read    chan struct{} // closed when the held read has its list
	release chan struct{} // closed by the test to let it return
}

func (h *heldList) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.read, h.release = true, make(chan struct{}), make(chan struct{})
}

func (h *heldList) ListDocuments(ctx context.Context, envID string, kind store.Kind) ([]store.Document, error) {
	h.lists.Add(1)
	docs, err := h.Documents.ListDocuments(ctx, envID, kind)
	h.mu.Lock()
	hold, read, release := h.armed, h.read, h.release
	h.armed = false
	h.mu.Unlock()
	if hold {
		close(read)
		<-release
	}
	return docs, err
}

// waitFor fails the test if ch is not closed (or sent on) in time.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// A list read that began before this node saved a change, and ended after,
// must not be kept for CacheTTL: the node's own change applies to the next
// passcode, whatever reads were under way.
func TestOwnChangeIsNotHiddenByAReadUnderWay(t *testing.T) {
	const otp = "123456"
	box := &memOutbox{}
	g := startGateway(t, hookSecret, nil)
	compose := func(ctx context.Context, d *dispatch.Dispatcher) (string, error) {
		m, err := d.ComposePairing(ctx, delivery.Pairing{EnvID: envID, Method: delivery.SMS, OTP: otp})
		return m.Body, err
	}
	tests := []struct {
		name string
		// use reads the kind (the read held); change saves a change to it
		// while the read is held; after checks the next use sees it.
		use    func(ctx context.Context, d *dispatch.Dispatcher) error
		change func(ctx context.Context, d *dispatch.Dispatcher) error
		after  func(t *testing.T, d *dispatch.Dispatcher)
	}{
		{"templates",
			func(ctx context.Context, d *dispatch.Dispatcher) error {
				_, err := compose(ctx, d)
				return err
			},
			func(ctx context.Context, d *dispatch.Dispatcher) error {
				_, err := d.SaveTemplateContent(ctx, envID, templates.Content{Method: delivery.SMS, Locale: "en", Body: "This node: ${otp}"})
				return err
			},
			func(t *testing.T, d *dispatch.Dispatcher) {
				if body, err := compose(t.Context(), d); err != nil || body != "This node: "+otp {
					t.Fatalf("after this node's change: %q, %v", body, err)
				}
			}},
		{"channels",
			func(ctx context.Context, d *dispatch.Dispatcher) error {
				return d.Send(ctx, smsMessage(envID))
			},
			func(ctx context.Context, d *dispatch.Dispatcher) error {
				_, err := d.SaveChannel(ctx, envID, delivery.SMS, g.channel())
				return err
			},
			func(t *testing.T, d *dispatch.Dispatcher) {
				if err := d.Send(t.Context(), smsMessage(envID)); err != nil {
					t.Fatal(err)
				}
				// The send under way went to the configured outbox.
				if _, accepted, _ := g.counts(); accepted != 1 || len(box.received()) != 1 {
					t.Fatalf("after this node's change: gateway %d, outbox %d; want 1, 1", accepted, len(box.received()))
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &heldList{Documents: memory.New(nil)}
			// An hour: only forget can make the node read again. The
			// gateway listens on 127.0.0.1.
			d := newDispatcher(t, dispatch.Options{Store: st, Outbox: box, CacheTTL: time.Hour, AllowLocalDestinations: true, Envs: oneEnv(dispatch.Environment{
				Channels: map[delivery.Method]dispatch.Channel{delivery.SMS: {Type: dispatch.TypeOutbox}}})})
			st.arm()
			done := make(chan struct{})
			var underWay error
			go func() {
				defer close(done)
				underWay = tc.use(context.Background(), d)
			}()
			waitFor(t, st.read, "the read under way")
			err := tc.change(t.Context(), d)
			close(st.release)
			waitFor(t, done, "the use under way")
			if err != nil || underWay != nil {
				t.Fatalf("change: %v; use under way: %v", err, underWay)
			}

			tc.after(t, d)
			// The list read after the change is kept: no read for the
			// next use.
			lists := st.lists.Load()
			if err := tc.use(t.Context(), d); err != nil {
				t.Fatal(err)
			}
			if got := st.lists.Load(); got != lists {
				t.Fatalf("the list read after the change was not kept: %d reads, then %d", lists, got)
			}
		})
	}
}

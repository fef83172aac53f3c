package store

import "sync"

// Hub fans change notifications out to the waiters of one node: the
// backends feed it (the memory store from its own writes, the Redis store
// from one pub/sub subscription per node), and each waiting request holds
// a channel of its own. Waiting costs a map entry and a channel, not a
// connection.
type Hub struct {
	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	count   int
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{waiters: map[string]map[chan struct{}]struct{}{}} }

// Watch registers a waiter for key. The channel receives at most one value
// (it is buffered, so a notification that comes before the waiter reads is
// kept); cancel unregisters it.
func (h *Hub) Watch(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	set := h.waiters[key]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.waiters[key] = set
	}
	set[ch] = struct{}{}
	h.count++
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if set := h.waiters[key]; set != nil {
				if _, ok := set[ch]; ok {
					delete(set, ch)
					h.count--
				}
				if len(set) == 0 {
					delete(h.waiters, key)
				}
			}
		})
	}
}

// Notify wakes every waiter of key.
func (h *Hub) Notify(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.waiters[key] {
		wake(ch)
	}
}

// NotifyAll wakes every waiter: notifications may have been lost.
func (h *Hub) NotifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.waiters {
		for ch := range set {
			wake(ch)
		}
	}
}

// Waiting is the number of registered waiters.
func (h *Hub) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // already woken
	}
}

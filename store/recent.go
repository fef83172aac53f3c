package store

import (
	"context"
	"sync"
	"time"
)

// RecentDocuments is a node's short memory of the documents saved through
// the API: a list of one environment's documents of one kind is reused for
// TTL, so that the configuration read on a hot path (templates and
// channels on every passcode, mobile applications on every enrollment
// start) costs a round trip every TTL and not on every request. A change
// made through another node arrives within TTL; one made through this node
// at once (Forget).
type RecentDocuments struct {
	Store Documents
	TTL   time.Duration // 0: every call reads

	mu     sync.Mutex
	recent map[recentKey]recentList
	// generation counts the changes this node made to each kind: a list
	// read while it changed may predate the change, and is not kept.
	generation map[recentKey]uint64
}

type recentKey struct {
	env  string
	kind Kind
}

type recentList struct {
	readAt time.Time
	docs   []Document
}

// List returns the environment's documents of kind, reusing a list read
// less than TTL ago.
func (c *RecentDocuments) List(ctx context.Context, envID string, kind Kind) ([]Document, error) {
	key := recentKey{envID, kind}
	c.mu.Lock()
	r, ok := c.recent[key]
	gen := c.generation[key]
	c.mu.Unlock()
	if ok && time.Since(r.readAt) < c.TTL {
		return r.docs, nil
	}
	// The time the read began: what it returns is at least that recent.
	readAt := time.Now()
	docs, err := c.Store.ListDocuments(ctx, envID, kind)
	if err != nil {
		return nil, err
	}
	if c.TTL > 0 {
		c.mu.Lock()
		if c.recent == nil {
			c.recent, c.generation = map[recentKey]recentList{}, map[recentKey]uint64{}
		}
		if c.generation[key] == gen {
			c.recent[key] = recentList{readAt: readAt, docs: docs}
		}
		c.mu.Unlock()
	}
	return docs, nil
}

// Forget drops what List kept of a kind after this node changed it, so
// that the change applies to the next request, and stops a read under way
// from keeping what it read before the change.
func (c *RecentDocuments) Forget(envID string, kind Kind) {
	key := recentKey{envID, kind}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generation == nil {
		c.recent, c.generation = map[recentKey]recentList{}, map[recentKey]uint64{}
	}
	delete(c.recent, key)
	c.generation[key]++
}

package redis

import (
	"context"
	"errors"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/enrollflow/enrollflow/store"
)

func (s *Store) PairingKeyValid(ctx context.Context, envID, userID, hash string) (bool, error) {
	exp, err := s.client.ZScore(ctx, s.pairingKeysKey(envID, userID), hash).Result()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, unavailable(err)
	}
	return int64(exp) > s.nowMs(), nil
}

func (s *Store) PutIndex(ctx context.Context, envID string, name store.IndexName, key, value string, expiresAt time.Time) error {
	// The entry expires with what it points at (EXAT, rounded up to the
	// second); the value carries the expiry in milliseconds too, so that
	// an injected clock is obeyed as for executions.
	err := s.client.SetArgs(ctx, s.indexKey(envID, name, key), strconv.FormatInt(expiresAt.UnixMilli(), 10)+":"+value,
		goredis.SetArgs{ExpireAt: expiresAt.Add(time.Second)}).Err()
	return unavailableOrNil(err)
}

func (s *Store) GetIndex(ctx context.Context, envID string, name store.IndexName, key string) (string, error) {
	val, err := s.client.Get(ctx, s.indexKey(envID, name, key)).Result()
	if errors.Is(err, goredis.Nil) {
		return "", store.ErrNotFound
	}
	if err != nil {
		return "", unavailable(err)
	}
	exp, value, ok := cutVersion(val)
	if !ok || exp <= s.nowMs() {
		return "", store.ErrNotFound
	}
	return value, nil
}

// cutVersion splits "<number>:<rest>".
func cutVersion(val string) (int64, string, bool) {
	for i := 0; i < len(val); i++ {
		if val[i] == ':' {
			n, err := strconv.ParseInt(val[:i], 10, 64)
			return n, val[i+1:], err == nil
		}
	}
	return 0, "", false
}

func unavailableOrNil(err error) error {
	if err == nil {
		return nil
	}
	return unavailable(err)
}

// WatchExecution registers a waiter with this node's hub. The node's one
// subscription to the changes channel starts with the first waiter and
// lives until Close: ten thousand waiters are ten thousand channels in a
// map, and one Redis connection.
func (s *Store) WatchExecution(envID, id string) (<-chan struct{}, func()) {
	s.watchOnce.Do(s.startWatching)
	key, ok := s.execKey(envID, id)
	if !ok {
		ch := make(chan struct{})
		return ch, func() {}
	}
	return s.hub.Watch(key)
}

// Waiting is the number of long polls waiting on this node (for metrics).
func (s *Store) Waiting() int { return s.hub.Waiting() }

func (s *Store) startWatching() {
	ctx, cancel := context.WithCancel(context.Background())
	s.watchDone = make(chan struct{})
	ps := s.client.Subscribe(ctx, s.changesChannel())
	// A blocked Receive does not watch its context; closing the
	// subscription is what ends it.
	s.stopWatch = func() { cancel(); _ = ps.Close() }
	go func() {
		defer close(s.watchDone)
		backoff := 50 * time.Millisecond
		for {
			msg, err := ps.Receive(ctx)
			if ctx.Err() != nil {
				return
			}
			switch m := msg.(type) {
			case *goredis.Message:
				s.hub.Notify(m.Payload)
				backoff = 50 * time.Millisecond
				continue
			case *goredis.Subscription:
				// (Re)subscribed: what was published while the connection
				// was down is lost, so every waiter reads again.
				s.hub.NotifyAll()
				continue
			case *goredis.Pong:
				continue
			}
			if err != nil {
				// go-redis reconnects and subscribes again on the next
				// Receive; until then nothing can be heard.
				s.hub.NotifyAll()
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
			}
		}
	}()
}

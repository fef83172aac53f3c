package redis

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
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

// putIndexScript: KEYS[1] the entry; ARGV now, value ("<expiry ms>:<v>"),
// expiry ms. A live entry is kept (0); else the value is set (1). The
// value carries its expiry so that an injected clock is obeyed, as for
// executions; PEXPIREAT lets Redis drop it.
var putIndexScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
	local sep = string.find(cur, ':', 1, true)
	if sep and tonumber(string.sub(cur, 1, sep - 1)) > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
`)

func (s *Store) PutIndex(ctx context.Context, envID string, name store.IndexName, key, value string, expiresAt time.Time) (bool, error) {
	exp := expiresAt.UnixMilli()
	n, err := putIndexScript.Run(ctx, s.client, []string{s.indexKey(envID, name, key)},
		s.nowMs(), strconv.FormatInt(exp, 10)+":"+value, exp).Int()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
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

// deleteIndexScript: KEYS[1] the entry; ARGV the value it must map to.
var deleteIndexScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
	local sep = string.find(cur, ':', 1, true)
	if sep and string.sub(cur, sep + 1) == ARGV[1] then redis.call('DEL', KEYS[1]) end
end
return 0
`)

func (s *Store) DeleteIndex(ctx context.Context, envID string, name store.IndexName, key, value string) error {
	if err := deleteIndexScript.Run(ctx, s.client, []string{s.indexKey(envID, name, key)}, value).Err(); err != nil {
		return unavailable(err)
	}
	return nil
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

// watchPing is how long the subscription may be silent before it is
// pinged; a ping unanswered for as long means the connection is dead
// (half-open connections send no error), and it is replaced.
const watchPing = 15 * time.Second

func (s *Store) startWatching() {
	ctx, cancel := context.WithCancel(context.Background())
	s.watchDone = make(chan struct{})
	var mu sync.Mutex
	ps := s.client.Subscribe(ctx, s.changesChannel())
	current := func() *goredis.PubSub { mu.Lock(); defer mu.Unlock(); return ps }
	// A blocked Receive does not watch its context; closing the
	// subscription is what ends it.
	s.stopWatch = func() { cancel(); _ = current().Close() }
	go func() {
		defer close(s.watchDone)
		backoff := 50 * time.Millisecond
		pinged := false
		for {
			sub := current()
			msg, err := sub.ReceiveTimeout(ctx, watchPing)
			if ctx.Err() != nil {
				return
			}
			switch m := msg.(type) {
			case *goredis.Message:
				s.hub.Notify(m.Payload)
				backoff, pinged = 50*time.Millisecond, false
				continue
			case *goredis.Subscription:
				// (Re)subscribed: what was published while the connection
				// was down is lost, so every waiter reads again.
				s.hub.NotifyAll()
				pinged = false
				continue
			case *goredis.Pong:
				pinged = false
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = sub.Ping(ctx) == nil
					if pinged {
						continue
					}
				}
				// Silent after a ping: a dead connection. Subscribe anew.
				_ = sub.Close()
				mu.Lock()
				ps = s.client.Subscribe(ctx, s.changesChannel())
				mu.Unlock()
				pinged = false
			}
			// go-redis reconnects and subscribes again on the next Receive;
			// until then nothing can be heard.
			s.hub.NotifyAll()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}()
}

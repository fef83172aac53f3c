// Package redis is the store.Store backend for running several enrollflow
// nodes against one Redis (standalone or Redis Cluster).
//
// # Key layout
//
// Every key starts with Options.Prefix (default "ef") and carries a hash tag
// ({...}) so that the keys one Lua script touches always live in one cluster
// slot:
//
//	ef:{p<partition>}:x:<env>:<execution id>   HASH  v=version e=expiresAt (unix ms) d=data w=write token
//	ef:{p<partition>}:d:<env>:<user>           HASH  device id -> "<version>:<device data>"
//	ef:{e:<env>}:<kind>                        HASH  document id -> data (kind: flows, templates, channels, applications)
//	ef:{p<partition>}:pk:<env>:<user>          ZSET  valid pairing-key hashes, scored by expiry (unix ms)
//	ef:{i<key>}:<index>:<env>:<key>            STRING an index entry (pairing-key hash -> execution id), PEXPIREAT
//	ef:changes                                 pub/sub channel: the key of every execution written
//
// <partition> is the user's store.Partition. An execution id carries it (see
// store.NewExecutionID), so a request that names only the execution still
// finds its slot, and an execution shares its slot with the registry of the
// user it enrolls: Commit updates both in one script. A device value
// written before devices had versions (plain JSON, starting with '{') reads
// as version 1. In <env>, ':'
// and '%' are percent-escaped so that env and user ids cannot run into each
// other; ordinary ids appear unchanged.
//
// # Executions
//
// An execution is a small HASH rather than an encoded blob so that a
// compare-and-set script can check the version and expiry without decoding
// the data. The key expires in Redis at ExpiresAt (PEXPIREAT), which bounds
// memory; reads and scripts also compare e with Options.Now, so an injected
// clock is obeyed and a record is never served past ExpiresAt even if Redis
// has not evicted it yet.
//
// Every write is one Lua script (EVALSHA, falling back to EVAL), never a
// WATCH/MULTI loop. Each write also stores a random token (w) unique to the
// call: go-redis re-sends a command whose reply was lost (timeout, broken
// connection), and a script seeing its own token at the version it meant to
// write knows its first attempt already went through and reports success
// instead of a false ErrConflict or ErrExists.
//
// # Errors
//
// Every failure to reach Redis (network errors, timeouts, context errors,
// LOADING, CLUSTERDOWN, TRYAGAIN, MASTERDOWN, READONLY, BUSY, ...) is returned
// wrapping store.ErrUnavailable. The Store keeps no connection state of its
// own: go-redis redials, so the same Store works again once Redis is back.
package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/enrollflow/enrollflow/store"
)

// Options configure a Store.
type Options struct {
	// Prefix starts every key (default "ef"). It must not contain '{'.
	Prefix string
	// Now is the clock used for expiry (default time.Now).
	Now func() time.Time
}

// Store is a store.Store on Redis; safe for concurrent use.
type Store struct {
	client goredis.UniversalClient
	prefix string
	now    func() time.Time

	// The one subscription of this node to the changes channel, started
	// by the first WatchExecution; hub hands its messages to the waiters.
	hub       *store.Hub
	watchOnce sync.Once
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// New returns a Store that uses client, which it takes over: Close closes it.
func New(client goredis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "ef"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{client: client, prefix: opts.Prefix, now: opts.Now, hub: store.NewHub()}
}

// Open connects to the Redis named by url and returns a Store on it (with the
// default prefix). url is either
//
//   - one redis:// or rediss:// URL, as goredis.ParseURL reads it
//     (redis://[user:password@]host:port[/db][?dial_timeout=3s&...]): a
//     standalone server; or
//   - a comma-separated list of redis://host:port (or rediss://) seed nodes of
//     a Redis Cluster, e.g. "redis://10.0.0.1:6379,redis://10.0.0.2:6379".
//     Credentials and query options are taken from the first URL, as
//     goredis.ParseClusterURL reads it; the others contribute host:port only.
//
// Unless the URL sets them, timeouts are DialTimeout 2s and Read/WriteTimeout
// 1s, and a request's context deadline also bounds its Redis calls. now is
// the clock used for expiry (nil: time.Now).
func Open(url string, now func() time.Time) (*Store, error) {
	client, err := newClient(url)
	if err != nil {
		return nil, err
	}
	return New(client, Options{Now: now}), nil
}

const (
	defaultDialTimeout = 2 * time.Second
	defaultIOTimeout   = time.Second
	// go-redis retries a failed dial 5 times inside every one of a command's
	// (1+MaxRetries) attempts, so a refused connection took ~1.7s to report.
	// The command-level retries are enough; fail over to ErrUnavailable fast.
	dialerRetries = 1
)

func newClient(rawURL string) (goredis.UniversalClient, error) {
	if !strings.Contains(rawURL, ",") {
		opt, err := goredis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("store/redis: %w", err)
		}
		opt.DialTimeout = orDefault(opt.DialTimeout, defaultDialTimeout)
		opt.ReadTimeout = orDefault(opt.ReadTimeout, defaultIOTimeout)
		opt.WriteTimeout = orDefault(opt.WriteTimeout, defaultIOTimeout)
		opt.DialerRetries = dialerRetries
		opt.ContextTimeoutEnabled = true
		return goredis.NewClient(opt), nil
	}

	urls := strings.Split(rawURL, ",")
	for i := range urls {
		urls[i] = strings.TrimSpace(urls[i])
	}
	opt, err := goredis.ParseClusterURL(urls[0])
	if err != nil {
		return nil, fmt.Errorf("store/redis: %w", err)
	}
	for _, u := range urls[1:] {
		addr, err := seedAddr(u)
		if err != nil {
			return nil, err
		}
		opt.Addrs = append(opt.Addrs, addr)
	}
	opt.DialTimeout = orDefault(opt.DialTimeout, defaultDialTimeout)
	opt.ReadTimeout = orDefault(opt.ReadTimeout, defaultIOTimeout)
	opt.WriteTimeout = orDefault(opt.WriteTimeout, defaultIOTimeout)
	if opt.DialerRetries == 0 {
		opt.DialerRetries = dialerRetries
	}
	opt.ContextTimeoutEnabled = true
	return goredis.NewClusterClient(opt), nil
}

// seedAddr reads host:port from one redis://host:port of a cluster list.
func seedAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("store/redis: cluster node %q: %w", raw, err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return "", fmt.Errorf("store/redis: cluster node %q: scheme must be redis or rediss", raw)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", fmt.Errorf("store/redis: cluster node %q: no host", raw)
	}
	if port == "" {
		port = "6379"
	}
	return net.JoinHostPort(host, port), nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// unavailable reports err as store.ErrUnavailable when it means Redis could
// not be reached or could not serve the request right now. Other server
// errors (WRONGTYPE, a script error, CROSSSLOT, NOAUTH) mean a bug or a
// misconfiguration and are returned as they are.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) && !transientServerError(err) {
		return fmt.Errorf("store/redis: %w", err)
	}
	return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
}

func transientServerError(err error) bool {
	return goredis.IsLoadingError(err) ||
		goredis.IsClusterDownError(err) ||
		goredis.IsTryAgainError(err) ||
		goredis.IsMasterDownError(err) ||
		goredis.IsReadOnlyError(err) || // talking to a replica during failover
		goredis.IsMaxClientsError(err) ||
		goredis.IsOOMError(err) ||
		goredis.IsNoReplicasError(err) ||
		goredis.HasErrorPrefix(err, "BUSY") // a slow script is blocking the server
}

// Keys.

func (s *Store) execKey(envID, id string) (string, bool) {
	p, ok := store.ExecutionPartition(id)
	if !ok {
		return "", false
	}
	return s.prefix + ":{p" + p + "}:x:" + escapeEnv(envID) + ":" + id, true
}

func (s *Store) registryKey(envID, userID string) string {
	return s.prefix + ":{p" + store.Partition(envID, userID) + "}:d:" + escapeEnv(envID) + ":" + userID
}

func (s *Store) pairingKeysKey(envID, userID string) string {
	return s.prefix + ":{p" + store.Partition(envID, userID) + "}:pk:" + escapeEnv(envID) + ":" + userID
}

func (s *Store) indexKey(envID string, name store.IndexName, key string) string {
	return s.prefix + ":{i" + key + "}:" + string(name) + ":" + escapeEnv(envID) + ":" + key
}

// changesChannel is where every execution write is published.
func (s *Store) changesChannel() string { return s.prefix + ":changes" }

// docsKey is one environment's documents of one kind: "flows",
// "templates" or "channels" (store.Kind is a closed set).
func (s *Store) docsKey(envID string, kind store.Kind) string {
	return s.prefix + ":{e:" + envID + "}:" + string(kind)
}

// escapeEnv percent-escapes '%' and ':' so that "<env>:<user>" is
// unambiguous even for ids containing ':'.
func escapeEnv(envID string) string {
	if !strings.ContainsAny(envID, "%:") {
		return envID
	}
	return strings.NewReplacer("%", "%25", ":", "%3A").Replace(envID)
}

// Executions.

// Script results.
const (
	statusOK       = 0
	statusExists   = 1
	statusConflict = 2
	statusNotFound = 3
	statusLimit    = 4
)

// createScript: KEYS[1] execution; ARGV now, version, expiresAt, data, token.
var createScript = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'e', 'w')
if cur[1] and tonumber(cur[1]) > tonumber(ARGV[1]) then
	if cur[2] == ARGV[5] then return 0 end -- our own earlier attempt
	return 1
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[3], 'd', ARGV[4], 'w', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 0
`)

// casCheck is the shared head of the update scripts: the execution must be
// live and at version ARGV[2]-1. It returns from the script when the write
// must not happen (or already did).
const casCheck = `
local cur = redis.call('HMGET', KEYS[1], 'v', 'e', 'w')
if not cur[1] or tonumber(cur[2]) <= tonumber(ARGV[1]) then return 3 end
local v, want = tonumber(cur[1]), tonumber(ARGV[2])
if v ~= want - 1 then
	if v == want and cur[3] == ARGV[5] then return 0 end -- our own earlier attempt
	return 2
end
`

// casWrite writes the execution and publishes its key on the changes
// channel (the prefix is the key's text before its hash tag), so that the
// long polls waiting for it on every node wake up. Classic PUBLISH reaches
// the subscribers of every node of a cluster, and a script may call it
// whatever slot its keys are in.
const casWrite = `
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[3], 'd', ARGV[4], 'w', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('PUBLISH', string.match(KEYS[1], '^(.-):{') .. ':changes', KEYS[1])
return 0
`

// updateScript: KEYS[1] execution; ARGV now, version, expiresAt, data, token.
var updateScript = goredis.NewScript(casCheck + casWrite)

// deviceVersion is the Lua function that reads a registry value's version.
const deviceVersion = `
local function device_version(val)
	local sep = string.find(val, ':', 1, true)
	if string.sub(val, 1, 1) == '{' or not sep then return 1 end
	return tonumber(string.sub(val, 1, sep - 1))
end
`

// commitScript: KEYS[1] execution, KEYS[1+i] the registry of write i;
// ARGV now, version, expiresAt, data, token, then per write: op, device id,
// device version, device data, max devices. A Settle (op 4) names the
// regulation key and carries the fields to clear, one per line, as its
// data. The pairing-key ops (5 add, 6 claim, 7 drop) name the user's
// pairing-key set and carry the key's hash as the id and its expiry as
// the version. Every write is checked before any is applied.
var commitScript = goredis.NewScript(deviceVersion + casCheck + `
local writes = (#ARGV - 5) / 5
local counts = {}
for i = 1, writes do
	local b, key = 5 + (i - 1) * 5, KEYS[1 + i]
	local op, id, ver, max = tonumber(ARGV[b + 1]), ARGV[b + 2], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 5])
	if op == 6 then
		local exp = redis.call('ZSCORE', key, id)
		if not exp or tonumber(exp) <= tonumber(ARGV[1]) then return 2 end
	end
	local device = op <= 3
	if counts[key] == nil and device then counts[key] = redis.call('HLEN', key) end
	local cur = device and redis.call('HGET', key, id)
	if op == 1 then
		if cur then return 1 end
		if max > 0 and counts[key] >= max then return 4 end
		counts[key] = counts[key] + 1
	elseif op == 2 then
		if not cur then return 3 end
		if device_version(cur) ~= ver - 1 then return 2 end
	elseif op == 3 then
		if cur then counts[key] = counts[key] - 1 end
	end
end
for i = 1, writes do
	local b, key = 5 + (i - 1) * 5, KEYS[1 + i]
	local op = tonumber(ARGV[b + 1])
	if op == 3 then
		redis.call('HDEL', key, ARGV[b + 2])
	elseif op == 4 then
		for field in string.gmatch(ARGV[b + 4], '[^\n]+') do redis.call('HDEL', key, field) end
	elseif op == 5 then
		local max = tonumber(ARGV[b + 5])
		redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
		redis.call('ZADD', key, ARGV[b + 3], ARGV[b + 2])
		local n = redis.call('ZCARD', key)
		if max > 0 and n > max then
			-- Void the ones that expire first, never the key being added.
			local drop = n - max
			for _, h in ipairs(redis.call('ZRANGE', key, 0, drop)) do
				if drop > 0 and h ~= ARGV[b + 2] then
					redis.call('ZREM', key, h)
					drop = drop - 1
				end
			end
		end
		local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
		redis.call('PEXPIREAT', key, last[2])
	elseif op == 6 or op == 7 then
		redis.call('ZREM', key, ARGV[b + 2])
	else
		redis.call('HSET', key, ARGV[b + 2], ARGV[b + 3] .. ':' .. ARGV[b + 4])
	end
end
` + casWrite)

// writeToken identifies one write call across go-redis's internal retries.
func writeToken() []byte {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return b[:]
}

func (s *Store) nowMs() int64 { return s.now().UnixMilli() }

func (s *Store) execArgs(exec store.Execution) []any {
	return []any{s.nowMs(), exec.Version, exec.ExpiresAt.UnixMilli(), exec.Data, writeToken()}
}

func scriptStatus(res any, err error) error {
	if err != nil {
		return unavailable(err)
	}
	code, ok := res.(int64)
	if !ok {
		return fmt.Errorf("store/redis: unexpected script reply %v", res)
	}
	switch code {
	case statusOK:
		return nil
	case statusExists:
		return store.ErrExists
	case statusConflict:
		return store.ErrConflict
	case statusNotFound:
		return store.ErrNotFound
	case statusLimit:
		return store.ErrDeviceLimit
	}
	return fmt.Errorf("store/redis: unexpected script status %d", code)
}

func (s *Store) CreateExecution(ctx context.Context, exec store.Execution) error {
	key, ok := s.execKey(exec.EnvID, exec.ID)
	if !ok {
		return fmt.Errorf("store/redis: execution id %q was not made by store.NewExecutionID", exec.ID)
	}
	return scriptStatus(createScript.Run(ctx, s.client, []string{key}, s.execArgs(exec)...).Result())
}

func (s *Store) GetExecution(ctx context.Context, envID, id string) (store.Execution, error) {
	key, ok := s.execKey(envID, id)
	if !ok {
		return store.Execution{}, store.ErrNotFound
	}
	vals, err := s.client.HMGet(ctx, key, "v", "e", "d").Result()
	if err != nil {
		return store.Execution{}, unavailable(err)
	}
	v, vok := vals[0].(string)
	e, eok := vals[1].(string)
	d, dok := vals[2].(string)
	if !vok || !eok || !dok {
		return store.Execution{}, store.ErrNotFound
	}
	version, err1 := strconv.ParseInt(v, 10, 64)
	expires, err2 := strconv.ParseInt(e, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return store.Execution{}, fmt.Errorf("store/redis: corrupt execution %s: %w", key, err)
	}
	if expires <= s.nowMs() {
		return store.Execution{}, store.ErrNotFound
	}
	return store.Execution{
		EnvID:     envID,
		ID:        id,
		Version:   version,
		ExpiresAt: time.UnixMilli(expires),
		Data:      []byte(d),
	}, nil
}

func (s *Store) UpdateExecution(ctx context.Context, exec store.Execution) error {
	key, ok := s.execKey(exec.EnvID, exec.ID)
	if !ok {
		return store.ErrNotFound
	}
	return scriptStatus(updateScript.Run(ctx, s.client, []string{key}, s.execArgs(exec)...).Result())
}

func (s *Store) Commit(ctx context.Context, exec store.Execution, writes ...store.Write) error {
	if err := store.CheckWrites(exec, writes); err != nil {
		return err
	}
	key, _ := s.execKey(exec.EnvID, exec.ID)
	keys := make([]string, 1, 1+len(writes))
	keys[0] = key
	args := s.execArgs(exec)
	for _, w := range writes {
		d := w.Device
		if w.Op == store.Settle {
			var fields []string
			for _, f := range settleFields(*w.Settle) {
				fields = append(fields, f.(string))
			}
			keys = append(keys, s.regulationKey(d.EnvID, d.UserID))
			args = append(args, int(w.Op), "", 0, strings.Join(fields, "\n"), 0)
			continue
		}
		if k := w.PairingKey; k != nil {
			keys = append(keys, s.pairingKeysKey(d.EnvID, d.UserID))
			args = append(args, int(w.Op), k.Hash, k.ExpiresAt.UnixMilli(), "", max(k.Max, 0))
			continue
		}
		keys = append(keys, s.registryKey(d.EnvID, d.UserID))
		args = append(args, int(w.Op), d.ID, d.Version, d.Data, max(w.MaxDevices, 0))
	}
	return scriptStatus(commitScript.Run(ctx, s.client, keys, args...).Result())
}

// deviceValue is a device as the registry hash holds it.
func deviceValue(dev store.Device) string {
	return strconv.FormatInt(dev.Version, 10) + ":" + string(dev.Data)
}

// parseDevice reads a registry value back.
func parseDevice(envID, userID, id, val string) (store.Device, error) {
	d := store.Device{EnvID: envID, UserID: userID, ID: id, Version: 1}
	v, data, ok := strings.Cut(val, ":")
	if strings.HasPrefix(val, "{") || !ok {
		d.Data = []byte(val) // written before devices had versions
		return d, nil
	}
	version, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return store.Device{}, fmt.Errorf("store/redis: corrupt device %s of a registry: %w", id, err)
	}
	d.Version, d.Data = version, []byte(data)
	return d, nil
}

// Devices.

func (s *Store) ListDevices(ctx context.Context, envID, userID string) ([]store.Device, error) {
	all, err := s.client.HGetAll(ctx, s.registryKey(envID, userID)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]store.Device, 0, len(all))
	for id, val := range all {
		d, err := parseDevice(envID, userID, id, val)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.Device) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *Store) GetDevice(ctx context.Context, envID, userID, deviceID string) (store.Device, error) {
	val, err := s.client.HGet(ctx, s.registryKey(envID, userID), deviceID).Result()
	if errors.Is(err, goredis.Nil) {
		return store.Device{}, store.ErrNotFound
	}
	if err != nil {
		return store.Device{}, unavailable(err)
	}
	return parseDevice(envID, userID, deviceID, val)
}

// updateDeviceScript: KEYS[1] registry; ARGV device id, version, value.
// HSET over an existing field at version-1.
var updateDeviceScript = goredis.NewScript(deviceVersion + `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 3 end
if device_version(cur) ~= tonumber(ARGV[2]) - 1 then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 0
`)

func (s *Store) UpdateDevice(ctx context.Context, dev store.Device) error {
	key := s.registryKey(dev.EnvID, dev.UserID)
	return scriptStatus(updateDeviceScript.Run(ctx, s.client, []string{key}, dev.ID, dev.Version, deviceValue(dev)).Result())
}

func (s *Store) DeleteDevice(ctx context.Context, envID, userID, deviceID string) error {
	n, err := s.client.HDel(ctx, s.registryKey(envID, userID), deviceID).Result()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (s *Store) CountDevices(ctx context.Context, envID, userID string) (int, error) {
	n, err := s.client.HLen(ctx, s.registryKey(envID, userID)).Result()
	if err != nil {
		return 0, unavailable(err)
	}
	return int(n), nil
}

// Documents.

func (s *Store) ListDocuments(ctx context.Context, envID string, kind store.Kind) ([]store.Document, error) {
	all, err := s.client.HGetAll(ctx, s.docsKey(envID, kind)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]store.Document, 0, len(all))
	for id, data := range all {
		out = append(out, store.Document{EnvID: envID, Kind: kind, ID: id, Data: []byte(data)})
	}
	slices.SortFunc(out, func(a, b store.Document) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *Store) GetDocument(ctx context.Context, envID string, kind store.Kind, id string) (store.Document, error) {
	data, err := s.client.HGet(ctx, s.docsKey(envID, kind), id).Bytes()
	if errors.Is(err, goredis.Nil) {
		return store.Document{}, store.ErrNotFound
	}
	if err != nil {
		return store.Document{}, unavailable(err)
	}
	return store.Document{EnvID: envID, Kind: kind, ID: id, Data: data}, nil
}

func (s *Store) PutDocument(ctx context.Context, doc store.Document, onlyIfAbsent bool) (bool, error) {
	key := s.docsKey(doc.EnvID, doc.Kind)
	if onlyIfAbsent {
		created, err := s.client.HSetNX(ctx, key, doc.ID, doc.Data).Result()
		if err != nil {
			return false, unavailable(err)
		}
		return created, nil
	}
	added, err := s.client.HSet(ctx, key, doc.ID, doc.Data).Result()
	if err != nil {
		return false, unavailable(err)
	}
	return added == 1, nil
}

func (s *Store) DeleteDocument(ctx context.Context, envID string, kind store.Kind, id string) error {
	n, err := s.client.HDel(ctx, s.docsKey(envID, kind), id).Result()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return unavailable(s.client.Ping(ctx).Err())
}

// Close closes the client.
func (s *Store) Close() error {
	if s.stopWatch != nil {
		s.stopWatch()
		<-s.watchDone
	}
	return s.client.Close()
}

var _ store.Store = (*Store)(nil)

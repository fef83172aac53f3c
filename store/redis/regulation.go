package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"

	"github.com/enrollflow/enrollflow/store"
)

// regulationKey is one user's regulation record, in the user's partition
// slot (so that Commit can settle it with the enrollment):
//
//	ef:{p<partition>}:r:<env>:<user>   HASH  n=attempts u=locked until (unix ms)
//	                                         n:<subject> u:<subject> the same per subject
//	rate:ef:{b:<budget key>}           STRING redis_rate's GCRA state (its "rate:" comes first)
//
// The record expires (PEXPIRE) Attempt.Forget after the last attempt, and
// never before a lockout it holds ends. Budgets count on the Redis server's
// clock (redis_rate reads TIME), so every node shares one clock for them.
func (s *Store) regulationKey(envID, userID string) string {
	return s.prefix + ":{p" + store.Partition(envID, userID) + "}:r:" + escapeEnv(envID) + ":" + userID
}

// attemptScript: KEYS[1] regulation; ARGV now, user limit, user lockout
// ms, subject, subject limit, subject cool-down ms, stays void (0/1), keep
// ms. Returns {refusal, attempts, locked until, subject attempts, subject
// locked until}; the rules are store.Attempt's.
var attemptScript = goredis.NewScript(`
local k, now = KEYS[1], tonumber(ARGV[1])
local subj, slimit = ARGV[4], tonumber(ARGV[5])
local n = tonumber(redis.call('HGET', k, 'n') or '0')
local u = tonumber(redis.call('HGET', k, 'u') or '0')
local sn, su = 0, 0
if subj ~= '' then
	sn = tonumber(redis.call('HGET', k, 'n:' .. subj) or '0')
	su = tonumber(redis.call('HGET', k, 'u:' .. subj) or '0')
end
if u > now then return {1, n, u, sn, su} end
if u > 0 then n, u = 0, 0 end
-- Every attempt that gets past a user's lockout counts towards it, even
-- one its subject then refuses: it is a guess at the user all the same.
n = n + 1
local ulimit = tonumber(ARGV[2])
if ulimit > 0 and n >= ulimit then u = now + tonumber(ARGV[3]) end
redis.call('HSET', k, 'n', n, 'u', u)
local refusal = 0
if subj ~= '' and slimit > 0 then
	if su > now then refusal = 2
	elseif sn >= slimit then
		if ARGV[7] == '1' then refusal = 3 else sn, su = 0, 0 end
	end
end
if subj ~= '' and refusal == 0 then
	sn, su = sn + 1, 0
	if slimit > 0 and sn >= slimit then su = now + tonumber(ARGV[6]) end
	redis.call('HSET', k, 'n:' .. subj, sn, 'u:' .. subj, su)
end
local keep = tonumber(ARGV[8])
local pt = redis.call('PTTL', k)
if pt < keep then redis.call('PEXPIRE', k, keep) end
return {refusal, n, u, sn, su}
`)

func (s *Store) Attempt(ctx context.Context, a store.Attempt) (store.AttemptResult, error) {
	forget := a.Forget
	if forget <= 0 {
		forget = store.DefaultForget
	}
	keep := max(forget, a.UserLockout, a.SubjectCoolDown)
	void := 0
	if a.SubjectStaysVoid {
		void = 1
	}
	res, err := attemptScript.Run(ctx, s.client, []string{s.regulationKey(a.EnvID, a.UserID)},
		s.nowMs(), a.UserLimit, a.UserLockout.Milliseconds(), a.Subject, a.SubjectLimit,
		a.SubjectCoolDown.Milliseconds(), void, keep.Milliseconds()).Int64Slice()
	if err != nil {
		return store.AttemptResult{}, unavailable(err)
	}
	if len(res) != 5 {
		return store.AttemptResult{}, fmt.Errorf("store/redis: unexpected attempt reply %v", res)
	}
	return store.AttemptResult{Refusal: store.Refusal(res[0]), UserAttempts: int(res[1]), UserLockedUntil: msTime(res[2]),
		SubjectAttempts: int(res[3]), SubjectLockedUntil: msTime(res[4])}, nil
}

func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (s *Store) ReadRegulation(ctx context.Context, envID, userID string) (store.RegulationRecord, error) {
	all, err := s.client.HGetAll(ctx, s.regulationKey(envID, userID)).Result()
	if err != nil {
		return store.RegulationRecord{}, unavailable(err)
	}
	out := store.RegulationRecord{Subjects: map[string]store.SubjectRecord{}}
	for field, val := range all {
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return store.RegulationRecord{}, fmt.Errorf("store/redis: corrupt regulation field %s: %w", field, err)
		}
		kind, subj, _ := strings.Cut(field, ":")
		if subj == "" {
			switch kind {
			case "n":
				out.UserAttempts = int(n)
			case "u":
				out.UserLockedUntil = msTime(n)
			}
			continue
		}
		rec := out.Subjects[subj]
		switch kind {
		case "n":
			rec.Attempts = int(n)
		case "u":
			rec.LockedUntil = msTime(n)
		}
		out.Subjects[subj] = rec
	}
	return out, nil
}

// settleFields are the regulation fields a settlement clears.
func settleFields(st store.Settlement) []any {
	var fields []any
	if st.User {
		fields = append(fields, "n", "u")
	}
	for _, subj := range st.Subjects {
		fields = append(fields, "n:"+subj, "u:"+subj)
	}
	return fields
}

func (s *Store) Settle(ctx context.Context, envID, userID string, st store.Settlement) error {
	fields := settleFields(st)
	if len(fields) == 0 {
		return nil
	}
	strs := make([]string, len(fields))
	for i, f := range fields {
		strs[i] = f.(string)
	}
	return unavailable(s.client.HDel(ctx, s.regulationKey(envID, userID), strs...).Err())
}

// Spend takes from every budget or from none. On one Redis it is one
// script over all the keys: each budget is checked with redis_rate's GCRA
// (the same state, under redis_rate's own key, on the server's clock) and
// only if all allow are they all written, so a refused spend takes
// nothing, from anyone. A cluster keeps each budget in a slot of its own,
// where no script can span them: there the first budget is decided alone
// by redis_rate, then the others together, and what they took is given
// back when one refuses.
func (s *Store) Spend(ctx context.Context, budgets ...store.Budget) (store.Spent, error) {
	if len(budgets) == 0 {
		return store.Spent{OK: true}, nil
	}
	if _, cluster := s.client.(*goredis.ClusterClient); !cluster {
		return s.spendAtOnce(ctx, budgets)
	}
	limiter := redis_rate.NewLimiter(s.client)
	first, err := limiter.Allow(ctx, s.budgetKey(budgets[0].Key), rateLimit(budgets[0]))
	if err != nil {
		return store.Spent{}, unavailable(err)
	}
	if first.Allowed == 0 {
		return store.Spent{Refused: 0, RetryAfter: first.RetryAfter}, nil
	}
	rest := budgets[1:]
	results := make([]*redis_rate.Result, len(rest))
	errs := make([]error, len(rest))
	var wg sync.WaitGroup
	for i, b := range rest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = limiter.Allow(ctx, s.budgetKey(b.Key), rateLimit(b))
		}()
	}
	wg.Wait()
	refused, spent := -1, store.Spent{OK: true}
	for i, r := range results {
		switch {
		case errs[i] != nil && refused < 0:
			refused = i
		case errs[i] == nil && r.Allowed == 0 && refused < 0:
			refused, spent = i, store.Spent{Refused: i + 1, RetryAfter: r.RetryAfter}
		}
	}
	if refused < 0 {
		return spent, nil
	}
	_ = s.Refund(ctx, budgets[0])
	for i, r := range results {
		if errs[i] == nil && r.Allowed > 0 {
			_ = s.Refund(ctx, rest[i])
		}
	}
	for _, err := range errs {
		if err != nil {
			return store.Spent{}, unavailable(err)
		}
	}
	return spent, nil
}

// spendScript: KEYS the budgets' redis_rate keys; ARGV per budget: burst,
// rate, period in seconds. redis_rate's GCRA, all checked before any is
// written. Returns {0} when spent, or {i, retry after seconds} for the
// first budget (1-based) that refused.
var spendScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tats = {}
for i = 1, #KEYS do
	local burst, rate, period = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
	local emission = period / rate
	local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
	local new_tat = tat + emission
	local allow_at = new_tat - emission * burst
	if now < allow_at then return {i, tostring(allow_at - now)} end
	tats[i] = new_tat
end
for i = 1, #KEYS do
	redis.call('SET', KEYS[i], tats[i], 'EX', math.ceil(tats[i] - now))
end
return {0, '0'}
`)

func (s *Store) spendAtOnce(ctx context.Context, budgets []store.Budget) (store.Spent, error) {
	keys := make([]string, len(budgets))
	args := make([]any, 0, 3*len(budgets))
	for i, b := range budgets {
		keys[i] = "rate:" + s.budgetKey(b.Key)
		args = append(args, b.Limit, b.Limit, b.Period.Seconds())
	}
	res, err := spendScript.Run(ctx, s.client, keys, args...).Slice()
	if err != nil {
		return store.Spent{}, unavailable(err)
	}
	if len(res) != 2 {
		return store.Spent{}, fmt.Errorf("store/redis: unexpected spend reply %v", res)
	}
	which, _ := res[0].(int64)
	if which == 0 {
		return store.Spent{OK: true}, nil
	}
	secs, _ := res[1].(string)
	wait, err := strconv.ParseFloat(secs, 64)
	if err != nil {
		return store.Spent{}, fmt.Errorf("store/redis: unexpected spend wait %v", res[1])
	}
	return store.Spent{Refused: int(which) - 1, RetryAfter: time.Duration(wait * float64(time.Second))}, nil
}

// refundScript gives one unit back to a redis_rate GCRA key: its value is
// the theoretical arrival time in seconds since 2017-01-01, which moves
// back by one emission interval (ARGV[1] seconds); a key that is then not
// ahead of now is a full budget and is deleted. A refund that fails leaves
// the budget one unit short for its period: the safe side.
var refundScript = goredis.NewScript(`
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local back = tat - tonumber(ARGV[1])
if back <= now then redis.call('DEL', KEYS[1]) return 1 end
redis.call('SET', KEYS[1], back, 'EX', math.ceil(back - now))
return 1
`)

func (s *Store) Refund(ctx context.Context, b store.Budget) error {
	emission := (b.Period / time.Duration(b.Limit)).Seconds()
	return unavailable(refundScript.Run(ctx, s.client, []string{"rate:" + s.budgetKey(b.Key)}, emission).Err())
}

func (s *Store) budgetKey(key string) string { return s.prefix + ":{b:" + key + "}" }

func rateLimit(b store.Budget) redis_rate.Limit {
	return redis_rate.Limit{Rate: b.Limit, Burst: b.Limit, Period: b.Period}
}

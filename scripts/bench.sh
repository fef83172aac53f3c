#!/usr/bin/env bash
# Full-enrollment load benchmarks of enrollflow on this machine (make
# bench-load): the memory store, then a throw-away Redis. For each store:
# TOTP at maximum throughput, TOTP at half that rate (open loop, for p99),
# and EMAIL with passcodes read from the outbox. On Redis also the commands
# (round trips) per action, the Redis memory per live execution, and long
# polls (1,000 and 10,000 waiters on one node while pairings complete).
#
# Everything runs on loopback: servers on free ports found here, never
# Redis's 6379. All processes started here are stopped on exit. Exits
# non-zero when anything fails, including any failed enrollment.
#
# Tunables (environment): BENCH_DURATION (10s), BENCH_WARMUP (1s),
# BENCH_CONCURRENCY (32), BENCH_EMAIL_CONCURRENCY (16),
# BENCH_LIVE_EXECUTIONS (10000), BENCH_WAITERS ("1000 10000": the long-poll
# runs), BENCH_OUT (a directory to keep the JSON
# reports and logs in; default: a temporary one, removed).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
BIN=bin/enrollflow
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-1s}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
EMAIL_CONCURRENCY=${BENCH_EMAIL_CONCURRENCY:-16}
LIVE=${BENCH_LIVE_EXECUTIONS:-10000}

export ENROLLFLOW_API_KEY=bench-api-key-0123456789abcdef
export ENROLLFLOW_SECRET=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
export ENROLLFLOW_RATE_LIMIT=0 # one client address drives all the load
export ENROLLFLOW_LOG_LEVEL=warn ENROLLFLOW_LOG_FORMAT=json
unset ENROLLFLOW_REDIS_URL ENROLLFLOW_CONFIG ENROLLFLOW_LISTEN ENROLLFLOW_OUTBOX ENROLLFLOW_PUBLIC_URL
# The demo environment with send budgets raised out of the load's way.
export ENROLLFLOW_CONFIG=$PWD/testdata/config/bench.yaml

for tool in redis-server redis-cli curl awk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench.sh: $tool is required (apt-get install redis-server curl)" >&2
    exit 1
  fi
done

if [ -n "${BENCH_OUT:-}" ]; then
  work=$BENCH_OUT
  mkdir -p "$work"
  keep=1
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/enrollflow-bench.XXXXXX")
  keep=0
fi

# pids holds the processes this script started and has not reaped yet;
# cleanup stops exactly those.
pids=()
forget() {
  local keep_pids=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep_pids+=("$p"); done
  pids=("${keep_pids[@]}")
}
# run_fg runs a command as a child and waits for it. `wait` is interrupted
# by a trapped signal, where a plain foreground command would first run to
# its end, so Ctrl-C or a TERM stops the script at once.
run_fg() {
  "$@" &
  local p=$!
  pids+=("$p")
  local rc=0
  wait "$p" || rc=$?
  forget "$p"
  return "$rc"
}
exec 4>&2 # the script's own stderr, for cleanup whatever is redirected then
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    echo "bench.sh: FAILED (exit $rc)" >&4
    for log in "$work"/*.log; do
      [ -s "$log" ] || continue
      echo "--- tail of $log" >&4
      tail -n 15 "$log" >&4
    done
  fi
  if [ "$keep" = 0 ]; then rm -rf "$work"; else echo "reports and logs kept in $work" >&4; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a port nobody listens on, below Linux's ephemeral range
# and never 6379. Racy by nature: starters retry on a new port.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    [ "$p" -eq 6379 ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "bench.sh: no free port found" >&2
  return 1
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

start_redis() {
  local attempt
  for attempt in 1 2 3 4 5; do
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$work" --logfile "$work/redis.log" --daemonize no &
    REDIS_PID=$!
    pids+=("$REDIS_PID")
    for _ in $(seq 100); do
      if [ "$(rcli ping 2>/dev/null)" = PONG ]; then return 0; fi
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    forget "$REDIS_PID"
    REDIS_PID=
  done
  echo "bench.sh: redis-server did not start" >&2
  return 1
}

# start_server NAME [serve flags...] starts bin/enrollflow serve and sets
# URL, SERVER_PID and OUTBOX.
start_server() {
  local name=$1 attempt
  shift
  OUTBOX=$work/outbox-$name
  for attempt in 1 2 3 4 5; do
    local port
    port=$(free_port)
    "$BIN" serve --listen "127.0.0.1:$port" --outbox "$OUTBOX" "$@" >"$work/server-$name.log" 2>&1 &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
    for _ in $(seq 100); do
      if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
        URL=http://127.0.0.1:$port
        return 0
      fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.05
    done
    stop_server
  done
  echo "bench.sh: enrollflow serve did not start" >&2
  return 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  forget "$SERVER_PID"
  SERVER_PID=
}

# cpu_snapshot prints "busy idle steal" jiffies of the whole machine.
cpu_snapshot() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6, $9 }' /proc/stat; }
proc_ticks() { if [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }

# run_bench ID LABEL [bench flags...]: one run, text to the terminal, JSON
# to $work/ID.json, then where the machine's CPU went meanwhile: the load
# generator shares the cores with the server and Redis, and anything else
# running on the machine (or the hypervisor: steal) takes from all three.
run_bench() {
  local id=$1 label=$2
  shift 2
  echo
  echo "== $label"
  local m0 m1 s0 s1 r0 r1 t0 t1 lg
  m0=$(cpu_snapshot)
  s0=$(proc_ticks "$SERVER_PID")
  r0=$(proc_ticks "${REDIS_PID:-}")
  t0=$(date +%s.%N)
  run_fg "$BIN" bench --url "$URL" --json-out "$work/$id.json" "$@"
  t1=$(date +%s.%N)
  m1=$(cpu_snapshot)
  s1=$(proc_ticks "$SERVER_PID")
  r1=$(proc_ticks "${REDIS_PID:-}")
  lg=$(json_number loadgenCpuSeconds "$work/$id.json")
  CPU_LINE=$(awk -v m0="$m0" -v m1="$m1" -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v lg="$lg" -v w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') \
    -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" 'BEGIN {
      split(m0, a, " "); split(m1, b, " "); cap = cores * w
      busy = (b[1] - a[1]) / hz; steal = (b[3] - a[3]) / hz
      other = busy - s / hz - r / hz - lg; if (other < 0) other = 0
      printf "server %.0f%%, redis %.0f%%, loadgen %.0f%%, everything else %.0f%%, steal %.0f%%, idle %.0f%%",
        100 * s / hz / cap, 100 * r / hz / cap, 100 * lg / cap, 100 * other / cap, 100 * steal / cap, 100 * (b[2] - a[2]) / hz / cap }')
  echo "  cpu          $CPU_LINE (of $(nproc) cores x wall time)"
  echo "$CPU_LINE" >"$work/$id.cpu"
  LABELS+=("$id|$label")
}

json_number() { sed -n "s/^ *\"$1\": *\([0-9.eE+-]*\),*\$/\1/p" "$2" | head -n 1; }

# p99s FILE prints "start=… device.create=… device.activate=…" (p99, ms).
p99s() {
  awk '/"name":/ { gsub(/[",]/, "", $2); n = $2 }
       /"p99Ms":/ { gsub(/,/, "", $2); if (n == "start" || n == "device.create" || n == "device.activate") printf "%s=%.2f ", n, $2 }' "$1"
}

# The three runs of one store.
store_runs() {
  local store=$1 max half
  run_bench "$store-totp-max" "$store: TOTP, maximum throughput" \
    --type TOTP --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP"
  max=$(json_number enrollmentsPerSec "$work/$store-totp-max.json")
  half=$(awk -v m="$max" 'BEGIN { h = int(m / 2); if (h < 1) h = 1; print h }')
  run_bench "$store-totp-half" "$store: TOTP at half the maximum, $half enrollments/s (open loop)" \
    --type TOTP --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --rate "$half"
  run_bench "$store-email-max" "$store: EMAIL through the outbox, maximum throughput" \
    --type EMAIL --outbox "$OUTBOX" --concurrency "$EMAIL_CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP"
}

# reads_processed prints how many requests Redis has read from clients.
# The store sends one command per round trip (no pipelining), so the count
# is the number of round trips; total_commands_processed would not do, as it
# also counts the commands Lua scripts run inside Redis.
reads_processed() { rcli info stats | tr -d '\r' | awk -F: '$1 == "total_reads_processed" { print $2 }'; }

# executed_per N prints the commands Redis executed per enrollment since the
# last RESETSTAT, including those inside Lua scripts.
executed_per() {
  rcli info commandstats | tr -d '\r' | awk -F'[:,=]' -v n="$1" '
    /^cmdstat_/ { c = substr($1, 9); if (c == "info" || c ~ /^config/) next
                  printf "%s%s=%.2f", sep, c, $3 / n; sep = " " }
    END { print "" }'
}

LABELS=()
REDIS_PID=
SERVER_PID=
echo "== building $BIN"
run_fg "$GO" build -o "$BIN" ./cmd/enrollflow
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $("$GO" version | awk '{ print $3 }'), $(redis-server --version | awk '{ print $3 }')"
echo "note: the load generator, the server and Redis share these cores"

# --- memory store ---------------------------------------------------------
start_server memory
store_runs memory
stop_server

# --- Redis ----------------------------------------------------------------
start_redis
start_server redis --redis-url "redis://127.0.0.1:$REDIS_PORT/0"

echo
echo "== redis: round trips per action (1000 enrollments per stage, concurrency 8)"
echo "   (new connections add a HELLO each: a few per thousand)"
ROUND_TRIPS=()
prev=0
for stop in start device.create device.activate; do
  rcli config resetstat >/dev/null
  c0=$(reads_processed)
  run_fg "$BIN" bench --url "$URL" --type TOTP --concurrency 8 --enrollments 1000 --stop-after "$stop" --json >/dev/null
  c1=$(reads_processed)
  # Less the INFO that read c1.
  total=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", (b - a - 1) / 1000 }')
  this=$(awk -v t="$total" -v p="$prev" 'BEGIN { printf "%.2f", t - p }')
  prev=$total
  line="$stop: $this (cumulative $total per enrollment); commands executed per enrollment up to here, incl. inside scripts: $(executed_per 1000)"
  echo "  $line"
  ROUND_TRIPS+=("$line")
done

store_runs redis

echo
echo "== redis: memory per live execution ($LIVE executions left in ACTIVATION_REQUIRED with a TOTP device)"
stop_server
rcli flushall >/dev/null
start_server redis-memory --redis-url "redis://127.0.0.1:$REDIS_PORT/0"
# Warm the server's connection pool first, so client buffers are in both readings.
run_fg "$BIN" bench --url "$URL" --type TOTP --concurrency 8 --enrollments 200 --stop-after device.create --json >/dev/null
before=$(rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')
keys_before=$(rcli dbsize | tr -d '\r')
run_fg "$BIN" bench --url "$URL" --type TOTP --concurrency 8 --enrollments "$LIVE" --stop-after device.create \
  --json-out "$work/redis-live.json" >/dev/null
after=$(rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')
keys_after=$(rcli dbsize | tr -d '\r')
added=$((keys_after - keys_before))
if [ "$added" -ne "$LIVE" ]; then
  echo "bench.sh: expected $LIVE new execution keys, found $added" >&2
  exit 1
fi
per_exec=$(( (after - before) / LIVE ))
rcli --scan --pattern 'ef:*:x:*' >"$work/exec-keys.txt"
sample=$(head -n 200 "$work/exec-keys.txt")
usage_sum=0 data_sum=0 n=0
for k in $sample; do
  usage_sum=$((usage_sum + $(rcli memory usage "$k" samples 0 | tr -d '\r')))
  data_sum=$((data_sum + $(rcli hstrlen "$k" d | tr -d '\r')))
  n=$((n + 1))
done
MEMORY_LINE="used_memory +$((after - before)) bytes for $added executions: $per_exec bytes per live execution (MEMORY USAGE of $n keys: mean $((usage_sum / n)) bytes, of which execution JSON $((data_sum / n)) bytes)"
echo "  $MEMORY_LINE"

# --- long polls -------------------------------------------------------------
# N clients long-poll executions in PAIRING_REQUIRED while 200 of them are
# paired: wake-up latency, and what waiting costs the server and Redis.
WAITERS=${BENCH_WAITERS:-1000 10000}
WAITER_LINES=()
stop_server
rcli flushall >/dev/null
start_server redis-waiters --redis-url "redis://127.0.0.1:$REDIS_PORT/0"
for n in $WAITERS; do
  echo
  echo "== redis: $n long polls while 200 pairings complete"
  run_fg "$BIN" bench --url "$URL" --waiters "$n" --pairings 200 --concurrency 32 \
    --redis-url "redis://127.0.0.1:$REDIS_PORT/0" --json-out "$work/waiters-$n.json" | tee "$work/waiters-$n.txt"
  WAITER_LINES+=("$n waiters: $(tr '\n' ';' <"$work/waiters-$n.txt" | tr -s ' ')")
done

# --- summary --------------------------------------------------------------
echo
echo "== summary"
printf '%-62s %10s %10s %7s  %s\n' run "enroll/s" "req/s" failed "p99 ms per action"
for entry in "${LABELS[@]}"; do
  id=${entry%%|*}
  label=${entry#*|}
  f=$work/$id.json
  printf '%-62s %10.1f %10.1f %7d  %s\n' "$label" "$(json_number enrollmentsPerSec "$f")" \
    "$(json_number requestsPerSec "$f")" "$(json_number failed "$f")" "$(p99s "$f")"
  printf '%-62s cpu: %s\n' "" "$(cat "$work/$id.cpu")"
done
for line in "${ROUND_TRIPS[@]}"; do echo "redis round trips, $line"; done
echo "redis memory: $MEMORY_LINE"
for line in "${WAITER_LINES[@]}"; do echo "long polls, $line"; done

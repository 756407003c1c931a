#!/usr/bin/env bash
# Runs the same load scenarios against hafi-realtime and the reference Node Socket.IO server
# (benches/reference-node), one fresh server process per run, and prints the figures side by side
# with ratios (hafi / node). Loopback only; every run is bounded by the load generator's
# --duration and by `timeout`.
#
#   benches/compare.sh                       # all four scenarios at moderate sizes (~10 min)
#   SCENARIOS="idle storm" IDLE_N=19000 STORM_N=10000 benches/compare.sh
#   REPEAT=3 benches/compare.sh              # medians of 3 runs per server
#   HAFI_CONFIG=benches/fill-config.toml SERVERS=hafi SCENARIOS=fill REPEAT=3 benches/compare.sh
#                                            # a big room refilled; default limits but per-IP caps
#   FANOUT_TRANSPORT=polling SCENARIOS=fanout benches/compare.sh
#                                            # fan-out to long-polling guests (the liker stays websocket)
#   SCENARIOS="floor fanout" benches/compare.sh
#                                            # first the machine's own cost of fan-out, no server
#   SERVERS=hafi SCENARIOS="disk likes" LIKES_RATE=20000 LIKES_SECS=30 benches/compare.sh
#                                            # a like storm (open loop), with the disk's fsync rate
#
# `floor` needs no server: it runs once per invocation (before any server starts, whatever
# SERVERS and REPEAT say) and writes floor.json. One writer thread of the load generator sends a
# 60-byte frame to each of FLOOR_N loopback sockets FLOOR_RATE times a second for FLOOR_SECS
# seconds; its CPU per delivery is what fan-out costs on this machine before any server work.
#
# Parameters (environment):
#   SCENARIOS      "idle fanout storm churn"
#   SERVERS        "hafi node"
#   REPEAT         1            runs per scenario and server; the table shows medians
#   IDLE_N=5000 IDLE_ROOMS=100 IDLE_WINDOW=30
#   FANOUT_GUESTS=1000 FANOUT_RATE=20 FANOUT_SECS=20 FANOUT_LIKERS=1 FANOUT_SETTLE_MAX=180
#   FANOUT_TRANSPORT=websocket   or polling: the guests long-poll (two keep-alive HTTP/1.1
#                  connections each, one GET outstanding, never upgrading)
#   CONN_TIMEOUT=30  (seconds for one connect + handshake + join)
#   STORM_N=5000 STORM_ROOMS=100
#   CHURN_CYCLES=10000 CHURN_SLUGS=2500 CHURN_CONCURRENCY=200 CHURN_SETTLE=30
#   CHURN_SOAKS=1  soaks per server process (later ones: churn-<server>-<run>-soak<k>.json)
#   FILL_GUESTS=1000 FILL_WINDOW=2 FILL_SETTLE=5   (fill is not in the default SCENARIOS)
#   FLOOR_N=1000 FLOOR_RATE=100 FLOOR_SECS=10       (floor is not in the default SCENARIOS)
#   LIKES_SENDERS=200 LIKES_READERS=4 LIKES_RATE=10000 LIKES_SECS=30   (likes: not in the default
#                  SCENARIOS; S sender sockets outside the room like distinct photos at R/s in
#                  total, asking for acknowledgements, R readers in the room time the broadcasts;
#                  the hafi server runs with LIKES_CONFIG, default benches/likes-config.toml)
#   DISK_DIR=$TMPDIR DISK_SECS=5   (disk: no server, once per invocation like floor: the rate of
#                  a 4 KB write + fdatasync loop in DISK_DIR)
#   LOADGEN_THREADS=2 SOURCES=16 PER_PROCESS=9000
#   HAFI_BIN / LOADGEN_BIN  prebuilt binaries (default: build both packages, hafi-realtime and
#                  hafi-loadgen (tools/loadgen), with cargo into $CARGO_TARGET_DIR)
#   HAFI_CONFIG    benches/bench-config.toml
#   OUT_DIR        $TMPDIR/hafi-bench-<UTC timestamp>   (one JSON file per run, and summary.txt)
#   HAFI_EXTRA_ENV extra "K=V ..." for the hafi server (e.g. MALLOC_ARENA_MAX=2)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

SCENARIOS="${SCENARIOS:-idle fanout storm churn}"
SERVERS="${SERVERS:-hafi node}"
REPEAT="${REPEAT:-1}"
IDLE_N="${IDLE_N:-5000}"; IDLE_ROOMS="${IDLE_ROOMS:-100}"; IDLE_WINDOW="${IDLE_WINDOW:-30}"
FANOUT_GUESTS="${FANOUT_GUESTS:-1000}"; FANOUT_RATE="${FANOUT_RATE:-20}"; FANOUT_SECS="${FANOUT_SECS:-20}"
FANOUT_LIKERS="${FANOUT_LIKERS:-1}"; FANOUT_SETTLE_MAX="${FANOUT_SETTLE_MAX:-180}"
FANOUT_TRANSPORT="${FANOUT_TRANSPORT:-websocket}"
CONN_TIMEOUT="${CONN_TIMEOUT:-30}"
STORM_N="${STORM_N:-5000}"; STORM_ROOMS="${STORM_ROOMS:-100}"
CHURN_CYCLES="${CHURN_CYCLES:-10000}"; CHURN_SLUGS="${CHURN_SLUGS:-2500}"
CHURN_CONCURRENCY="${CHURN_CONCURRENCY:-200}"; CHURN_SETTLE="${CHURN_SETTLE:-30}"; CHURN_SOAKS="${CHURN_SOAKS:-1}"
FILL_GUESTS="${FILL_GUESTS:-1000}"; FILL_WINDOW="${FILL_WINDOW:-2}"; FILL_SETTLE="${FILL_SETTLE:-5}"
FLOOR_N="${FLOOR_N:-1000}"; FLOOR_RATE="${FLOOR_RATE:-100}"; FLOOR_SECS="${FLOOR_SECS:-10}"
LIKES_SENDERS="${LIKES_SENDERS:-200}"; LIKES_READERS="${LIKES_READERS:-4}"; LIKES_RATE="${LIKES_RATE:-10000}"; LIKES_SECS="${LIKES_SECS:-30}"
LIKES_CONFIG="${LIKES_CONFIG:-$here/likes-config.toml}"
DISK_DIR="${DISK_DIR:-${TMPDIR:-/tmp}}"; DISK_SECS="${DISK_SECS:-5}"
LOADGEN_THREADS="${LOADGEN_THREADS:-2}"; SOURCES="${SOURCES:-16}"; PER_PROCESS="${PER_PROCESS:-9000}"
HAFI_CONFIG="${HAFI_CONFIG:-$here/bench-config.toml}"
OUT_DIR="${OUT_DIR:-${TMPDIR:-/tmp}/hafi-bench-$(date -u +%Y%m%dT%H%M%SZ)}"
HAFI_EXTRA_ENV="${HAFI_EXTRA_ENV:-}"
SECRET="${NEXTAUTH_SECRET:-bench-secret-0123456789abcdef0123456789abcdef}"

mkdir -p "$OUT_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ -z "${HAFI_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -p hafi-realtime -p hafi-loadgen --bins) >&2
  HAFI_BIN="${HAFI_BIN:-$target/release/hafi-realtime}"
  LOADGEN_BIN="${LOADGEN_BIN:-$target/release/hafi-loadgen}"
fi
if [[ " $SERVERS " == *" node "* && ! -d "$here/reference-node/node_modules" ]]; then
  (cd "$here/reference-node" && npm ci --no-audit --no-fund) >&2
fi

log() { echo "[compare $(date -u +%H:%M:%S)] $*" >&2; }

server_pid=""
server_port=""
server_dir=""

start_server() { # $1 = hafi | node, $2 = the hafi config file (default HAFI_CONFIG)
  local kind="$1" config="${2:-$HAFI_CONFIG}" out
  out="$(mktemp)"
  case "$kind" in
    hafi)
      server_dir="$(mktemp -d)"
      env SOCKET_GUEST_SESSION_VALIDATION_DISABLED=true NEXTAUTH_SECRET="$SECRET" RUST_LOG=warn $HAFI_EXTRA_ENV \
        "$HAFI_BIN" serve --host 127.0.0.1 --port 0 --data-dir "$server_dir" --config "$config" \
        >"$out" 2>"$OUT_DIR/server-$kind.log" &
      ;;
    node)
      server_dir=""
      (cd "$here/reference-node" && exec node server.js --host 127.0.0.1 --port 0) >"$out" 2>"$OUT_DIR/server-$kind.log" &
      ;;
  esac
  server_pid=$!
  for _ in $(seq 1 200); do
    if grep -q '^listening on ' "$out"; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then log "$kind server died"; cat "$OUT_DIR/server-$kind.log" >&2; exit 1; fi
    sleep 0.05
  done
  server_port="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$out" | grep -o '[0-9]*$')"
  rm -f "$out"
  [[ -n "$server_port" ]] || { log "$kind server did not print its ready line"; exit 1; }
  log "$kind server pid $server_pid on port $server_port"
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  [[ -n "$server_dir" ]] && rm -rf "$server_dir"
  server_pid=""
}
trap '[[ -n "$server_pid" ]] && stop_server' EXIT

loadgen_args() { # $1 = scenario
  local common=(--port "$server_port" --server-pid "$server_pid" --threads "$LOADGEN_THREADS" --sources "$SOURCES" --per-process "$PER_PROCESS" --conn-timeout "$CONN_TIMEOUT")
  case "$1" in
    idle)   echo "idle ${common[*]} --connections $IDLE_N --rooms $IDLE_ROOMS --window $IDLE_WINDOW --duration $((IDLE_WINDOW + 150))" ;;
    fanout) echo "fanout ${common[*]} --guests $FANOUT_GUESTS --rate $FANOUT_RATE --send-secs $FANOUT_SECS --likers $FANOUT_LIKERS --transport $FANOUT_TRANSPORT --settle-max $FANOUT_SETTLE_MAX --duration $((FANOUT_SECS + FANOUT_SETTLE_MAX + 240))" ;;
    storm)  echo "storm ${common[*]} --connections $STORM_N --rooms $STORM_ROOMS --duration 120" ;;
    churn)  echo "churn ${common[*]} --cycles $CHURN_CYCLES --slugs $CHURN_SLUGS --concurrency $CHURN_CONCURRENCY --settle $CHURN_SETTLE --duration $((CHURN_SETTLE + 900))" ;;
    fill)   echo "fill ${common[*]} --guests $FILL_GUESTS --window $FILL_WINDOW --settle $FILL_SETTLE --duration $((FILL_WINDOW + FILL_SETTLE + CONN_TIMEOUT + 60))" ;;
    likes)  echo "likes ${common[*]} --senders $LIKES_SENDERS --readers $LIKES_READERS --rate $LIKES_RATE --secs $LIKES_SECS --duration $((LIKES_SECS + CONN_TIMEOUT + 60))" ;;
  esac
}

# The floor: no server, so once per invocation, before any server runs.
if [[ " $SCENARIOS " == *" floor "* ]]; then
  args="floor --connections $FLOOR_N --rate $FLOOR_RATE --secs $FLOOR_SECS --threads $LOADGEN_THREADS --sources $SOURCES --duration $((FLOOR_SECS + 120))"
  log "floor (no server): hafi-loadgen $args"
  echo "machine: hafi-loadgen $args" >>"$OUT_DIR/commands.txt"
  # shellcheck disable=SC2086
  timeout 600 "$LOADGEN_BIN" $args >"$OUT_DIR/floor.json" 2>"$OUT_DIR/floor.log" \
    || log "loadgen exited with $? (see $OUT_DIR/floor.log)"
fi

# The disk's physical limit: no server either.
if [[ " $SCENARIOS " == *" disk "* ]]; then
  args="disk --dir $DISK_DIR --secs $DISK_SECS"
  log "disk (no server): hafi-loadgen $args"
  echo "machine: hafi-loadgen $args" >>"$OUT_DIR/commands.txt"
  # shellcheck disable=SC2086
  timeout 120 "$LOADGEN_BIN" $args >"$OUT_DIR/disk.json" 2>"$OUT_DIR/disk.log" || log "loadgen exited with $? (see $OUT_DIR/disk.log)"
fi

for scenario in $SCENARIOS; do
  [[ "$scenario" == floor || "$scenario" == disk ]] && continue
  for rep in $(seq 1 "$REPEAT"); do
    for kind in $SERVERS; do
      if [[ "$scenario" == likes ]]; then start_server "$kind" "$LIKES_CONFIG"; else start_server "$kind"; fi
      args="$(loadgen_args "$scenario")"
      log "$scenario run $rep on $kind: hafi-loadgen $args"
      echo "$kind: hafi-loadgen $args" >>"$OUT_DIR/commands.txt"
      # TCP counters around the run (listen-queue overflows show up as SYN retransmits and
      # 1 s / 3 s steps in the join latencies).
      nstat -n >/dev/null 2>&1 || true
      # shellcheck disable=SC2086
      timeout 1200 "$LOADGEN_BIN" $args >"$OUT_DIR/$scenario-$kind-$rep.json" 2>"$OUT_DIR/$scenario-$kind-$rep.log" \
        || log "loadgen exited with $? (see $OUT_DIR/$scenario-$kind-$rep.log)"
      nstat 2>/dev/null | grep -E 'ListenOverflows|ListenDrops|TCPSynRetrans' >"$OUT_DIR/$scenario-$kind-$rep.nstat" || true
      # Further soaks against the same process: does memory settle, or keep growing per soak?
      if [[ "$scenario" == churn ]]; then
        for soak in $(seq 2 "$CHURN_SOAKS"); do
          f="$OUT_DIR/$scenario-$kind-$rep-soak$soak"
          # shellcheck disable=SC2086
          timeout 1200 "$LOADGEN_BIN" $args --prefix "soak$soak" >"$f.json" 2>"$f.log" || log "loadgen exited with $? (see $f.log)"
          log "$kind soak $soak: $(grep -o '"rss_before_kib":[0-9]*' "$f.json") $(grep -o '"rss_after_kib":[0-9]*' "$f.json")"
        done
      fi
      stop_server
    done
  done
done

# Side-by-side table: medians over the repeats, ratio = hafi / node.
node - "$OUT_DIR" "$SCENARIOS" "$REPEAT" <<'EOF' | tee "$OUT_DIR/summary.txt"
const fs = require('fs');
const [dir, scenarios, repeat] = process.argv.slice(2);
const metrics = {
  idle: ['joined', 'failed', 'server.rss_per_conn_bytes', 'server.rss_connected_kib', 'server.rss_after_close_kib',
    'server.cpu_per_conn_ms', 'server.idle_cpu_pct', 'join_latency.p99_ms', 'loadgen.cpu_s', 'machine_busy_pct_connect'],
  fanout: ['guests', 'likers', 'likes_sent', 'expected', 'delivered', 'loss_pct', 'delivered_per_s', 'latency.p50_ms', 'latency.p99_ms',
    'latency.max_ms', 'server.cpu_per_delivery_us', 'server.cpu_pct', 'loadgen.cpu_pct', 'setup_s', 'server.setup_cpu_s', 'machine_busy_pct'],
  storm: ['joined', 'refused', 'failed', 'all_joined_s', 'joined_within_5s', 'join_latency.p50_ms', 'join_latency.p99_ms',
    'server.cpu_per_conn_ms', 'server.rss_per_conn_bytes', 'loadgen.cpu_s', 'machine_busy_pct_connect'],
  churn: ['cycles_ok', 'failed', 'cycles_per_s', 'server.rss_start_kib', 'server.rss_before_kib', 'server.rss_max_during_kib',
    'server.rss_after_kib', 'server.rss_after_vs_before_pct', 'server.cpu_per_cycle_ms', 'machine_busy_pct'],
  fill: ['joined', 'failed', 'disconnected_by_server', 'holding_final_count', 'stale', 'server_count_probe',
    'presence_msgs_total', 'presence_msgs_per_guest.median', 'presence_msgs_per_guest.max', 'fill_s', 'presence_settled_s',
    'server.cpu_s', 'server.rss_before_kib', 'server.rss_after_kib', 'loadgen.cpu_s', 'machine_busy_pct'],
  likes: ['offered_per_s', 'sent', 'accepted', 'busy', 'failed', 'unanswered', 'accepted_per_s', 'ack_latency.p99_ms',
    'busy_latency.p99_ms', 'busy_latency.max_ms', 'broadcast_latency.p50_ms', 'broadcast_latency.p99_ms', 'readers_dropped',
    'senders_dropped', 'health_not_200', 'breaker_opened', 'fsyncs_per_s', 'likes_per_flush', 'server.cpu_per_durable_like_us',
    'server.cpu_pct', 'loadgen.cpu_pct', 'machine_busy_pct'],
  floor: ['connections', 'connected', 'rate_per_s', 'sent', 'received', 'lost', 'write_stalls', 'writer.cpu_per_delivery_us',
    'writer.sched_cpu_per_delivery_us', 'writer.cpu_pct', 'writer.tick_write_mean_ms', 'latency.p50_ms', 'latency.p99_ms',
    'loadgen.readers_cpu_s', 'machine_busy_pct'],
};
const get = (o, path) => path.split('.').reduce((v, k) => (v == null ? undefined : v[k]), o);
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const load = (s, k) => {
  const out = [];
  for (let r = 1; r <= Number(repeat); r++) {
    try { out.push(JSON.parse(fs.readFileSync(`${dir}/${s}-${k}-${r}.json`, 'utf8').trim().split('\n').pop())); } catch {}
  }
  return out;
};
const fmt = (x) => (x === undefined ? '-' : Math.abs(x) >= 1000 ? x.toFixed(0) : String(Math.round(x * 1000) / 1000));
for (const s of scenarios.split(/\s+/).filter(Boolean)) {
  if (s === 'disk') {
    let d;
    try { d = JSON.parse(fs.readFileSync(`${dir}/disk.json`, 'utf8').trim().split('\n').pop()); } catch {}
    console.log(`\n## disk  (no server; one run)`);
    console.log(`| metric | this machine |`);
    console.log(`|---|---:|`);
    for (const m of ['writes', 'secs', 'fdatasync_per_s', 'latency.p50_ms', 'latency.p99_ms']) console.log(`| ${m} | ${fmt(d && get(d, m))} |`);
    continue;
  }
  if (s === 'floor') {
    let f;
    try { f = JSON.parse(fs.readFileSync(`${dir}/floor.json`, 'utf8').trim().split('\n').pop()); } catch {}
    console.log(`\n## floor  (no server; one run)`);
    console.log(`| metric | this machine |`);
    console.log(`|---|---:|`);
    for (const m of metrics.floor) console.log(`| ${m} | ${fmt(f && get(f, m))} |`);
    continue;
  }
  const h = load(s, 'hafi'), n = load(s, 'node');
  console.log(`\n## ${s}  (median of ${repeat} run(s); ratio = hafi / node)`);
  console.log(`| metric | hafi-realtime | node socket.io | ratio |`);
  console.log(`|---|---:|---:|---:|`);
  for (const m of metrics[s] || []) {
    const a = median(h.map((o) => get(o, m))), b = median(n.map((o) => get(o, m)));
    const ratio = a !== undefined && b ? fmt(a / b) : '-';
    console.log(`| ${m} | ${fmt(a)} | ${fmt(b)} | ${ratio} |`);
  }
}
EOF
log "results in $OUT_DIR"

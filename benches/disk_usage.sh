#!/usr/bin/env bash
# What one like, one guest session and one guest's first join cost on disk, and what the like
# book costs in memory, measured on the release server over loopback.
#
# Each measurement gets a fresh data directory: the server starts (benches/disk-config.toml),
# the workload runs, the server is stopped with SIGTERM (it flushes and exits), and the directory
# is measured; then the server is started again on the same directory, asked for
# `/api/admin/rooms` (which builds the like book of every event from the counts on disk; its RSS
# is read before and after), stopped again, and measured again. Two sizes per workload separate
# the fixed cost from the cost per item: per item = (size₂ − size₁) / (n₂ − n₁).
#
#   HAFI_BIN=target/release/hafi-realtime LOADGEN_BIN=target/release/hafi-loadgen benches/disk_usage.sh
#   PHASES=likes LIKES="100000 300000" benches/disk_usage.sh
#
# Workloads (PHASES, default "empty likes sessions joins"):
#   empty     start and stop with nothing: the size of an empty database
#   likes     `hafi-loadgen likes` at LIKES_RATE (default 10000/s) until each size of LIKES
#             (default "100000 300000") was offered; every like names a new photo of one event,
#             so each is a fact and a count record
#   sessions  SESSIONS (default "20000 60000") guest sessions registered with
#             `POST /api/admin/guest-sessions` (curl, 16 in parallel), as the web app does
#   joins     `hafi-loadgen churn` with JOINS (default "50000 150000") cycles, every guest new,
#             all in one room: each first join adds the guest to the room's distinct guests
#
# The like book's RSS is read BOOK_SETTLE seconds (default 15) after `/api/admin/rooms`
# answered, so that memory the build only borrowed is given back (jemalloc returns freed pages
# after about 10 s).
#
# Sizes are `du -sb` (bytes of the files) and `du -sk` (blocks allocated). sled writes a log in
# segments and reclaims space by rewriting live pages into new segments, so a directory also
# holds superseded versions of pages until their segment is reclaimed. Loopback only; every
# run is bounded by `timeout` and the load generator's --duration. Prints one line per
# measurement and writes them to $OUT_DIR/disk.txt.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
HAFI_BIN="${HAFI_BIN:-$root/target/release/hafi-realtime}"
LOADGEN_BIN="${LOADGEN_BIN:-$root/target/release/hafi-loadgen}"
CONFIG="${CONFIG:-$here/disk-config.toml}"
PHASES="${PHASES:-empty likes sessions joins}"
LIKES="${LIKES:-100000 300000}"; LIKES_RATE="${LIKES_RATE:-10000}"
SESSIONS="${SESSIONS:-20000 60000}"
JOINS="${JOINS:-50000 150000}"
BOOK_SETTLE="${BOOK_SETTLE:-15}"
OUT_DIR="${OUT_DIR:-${TMPDIR:-/tmp}/hafi-disk-$(date -u +%Y%m%dT%H%M%SZ)}"
SECRET="${NEXTAUTH_SECRET:-bench-secret-0123456789abcdef0123456789abcdef}"
export NEXTAUTH_SECRET="$SECRET"

mkdir -p "$OUT_DIR"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log() { echo "[disk $(date -u +%H:%M:%S)] $*" >&2; }

pid="" port="" dir=""

start() {
  local out="$OUT_DIR/ready.txt"
  : >"$out"
  env SOCKET_GUEST_SESSION_VALIDATION_DISABLED=true RUST_LOG=warn \
    "$HAFI_BIN" serve --host 127.0.0.1 --port 0 --data-dir "$dir" --config "$CONFIG" >"$out" 2>>"$OUT_DIR/server.log" &
  pid=$!
  for _ in $(seq 1 200); do
    grep -q '^listening on ' "$out" && break
    kill -0 "$pid" 2>/dev/null || { log "server died"; tail -n 20 "$OUT_DIR/server.log" >&2; exit 1; }
    sleep 0.05
  done
  port="$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$out" | grep -o '[0-9]*$')"
  [[ -n "$port" ]] || { log "no ready line"; exit 1; }
}

stop() { # SIGTERM: the server flushes and exits 0; anything else is reported.
  kill -TERM "$pid"
  local rc=0
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "server still running 30 s after SIGTERM: killing it"; kill -KILL "$pid"; fi
  wait "$pid" || rc=$?
  [[ "$rc" == 0 ]] || log "server exited with $rc"
  pid=""
}
trap '[[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null; [[ -n "$dir" ]] && rm -rf "$dir"' EXIT

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
sizes() { echo "${1}_bytes=$(du -sb "$dir" | cut -f1) ${1}_alloc_kib=$(du -sk "$dir" | cut -f1)"; }
likes_total() { { grep -o '"likes":[0-9]*' "$1" || true; } | awk -F: '{ s += $2 } END { print s + 0 }'; }
field() { grep -o "\"$1\":[0-9]*" "$2" | head -n 1 | cut -d: -f2; }

# Stop, measure, start again, build the like book, stop, measure again.
measure() { # $1 = workload, $2 = items
  stop
  local first; first="$(sizes stopped)"
  start
  sleep 2
  local r0 r1 token rooms="$OUT_DIR/rooms-$1-$2.json"
  r0="$(rss_kib)"
  token="$("$HAFI_BIN" token --user disk-bench --role ADMIN --ttl 1h)"
  curl -sS --max-time 120 -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/admin/rooms" >"$rooms"
  sleep "$BOOK_SETTLE"
  r1="$(rss_kib)"
  stop
  local line
  line="$1 n=$2 $first $(sizes restarted) rss_restart_kib=$r0 rss_book_kib=$r1 likes_in_rooms=$(likes_total "$rooms")"
  echo "$line" | tee -a "$OUT_DIR/disk.txt"
  rm -rf "$dir"; dir=""
}

fresh() { dir="$(mktemp -d)"; start; }

for phase in $PHASES; do
  case "$phase" in
    empty)
      fresh
      measure empty 0
      ;;
    likes)
      for n in $LIKES; do
        fresh
        secs="$(echo "scale=3; $n / $LIKES_RATE" | bc)"
        log "likes: $n at $LIKES_RATE/s ($secs s), server pid $pid"
        timeout 600 "$LOADGEN_BIN" likes --port "$port" --server-pid "$pid" --senders 200 --readers 1 \
          --rate "$LIKES_RATE" --secs "$secs" --duration "$(echo "$secs + 120" | bc)" \
          >"$OUT_DIR/likes-$n.json" 2>"$OUT_DIR/likes-$n.log"
        accepted="$(field accepted "$OUT_DIR/likes-$n.json")"
        log "likes: accepted $accepted, busy $(field busy "$OUT_DIR/likes-$n.json")"
        measure likes "$accepted"
      done
      ;;
    sessions)
      for n in $SESSIONS; do
        fresh
        token="$("$HAFI_BIN" token --user disk-bench --role ADMIN --ttl 1h)"
        log "sessions: registering $n, server pid $pid"
        # One URL glob, n transfers, 16 at a time over kept-alive connections; the query string
        # only makes the URLs distinct (the route ignores it).
        timeout 600 curl -sS --no-progress-meter -Z --parallel-max 16 -X POST \
          -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
          -d '{"eventSlug":"disk-sessions"}' -w '\n%{http_code}\n' \
          "http://127.0.0.1:$port/api/admin/guest-sessions?n=[1-$n]" >"$OUT_DIR/sessions-$n.out" 2>"$OUT_DIR/sessions-$n.log" || true
        created="$(grep -c '^201$' "$OUT_DIR/sessions-$n.out" || true)"
        log "sessions: $created answered 201"
        measure sessions "$created"
      done
      ;;
    joins)
      for n in $JOINS; do
        fresh
        log "joins: $n new guests join one room, server pid $pid"
        timeout 600 "$LOADGEN_BIN" churn --port "$port" --server-pid "$pid" --cycles "$n" --slugs 1 --warmup 0 \
          --concurrency 200 --settle 0 --duration 300 >"$OUT_DIR/joins-$n.json" 2>"$OUT_DIR/joins-$n.log"
        measure joins "$(field cycles_ok "$OUT_DIR/joins-$n.json")"
      done
      ;;
    *) log "unknown phase $phase"; exit 2 ;;
  esac
done

# Per item: the difference between the two sizes of each workload.
awk '
  { w = $1; c[w]++; i = c[w]
    for (f = 2; f <= NF; f++) { split($f, kv, "="); v[w, i, kv[1]] = kv[2] } }
  END { for (w in c) if (c[w] >= 2) {
    dn = v[w, 2, "n"] - v[w, 1, "n"]; if (dn <= 0) continue
    d = "per item (n " v[w, 1, "n"] " -> " v[w, 2, "n"] "):"
    printf "%s %s stopped %.1f B (%.1f B allocated), restarted %.1f B (%.1f B allocated), like book %.1f B of RSS\n", w, d,
      (v[w, 2, "stopped_bytes"] - v[w, 1, "stopped_bytes"]) / dn,
      (v[w, 2, "stopped_alloc_kib"] - v[w, 1, "stopped_alloc_kib"]) * 1024 / dn,
      (v[w, 2, "restarted_bytes"] - v[w, 1, "restarted_bytes"]) / dn,
      (v[w, 2, "restarted_alloc_kib"] - v[w, 1, "restarted_alloc_kib"]) * 1024 / dn,
      ((v[w, 2, "rss_book_kib"] - v[w, 2, "rss_restart_kib"]) - (v[w, 1, "rss_book_kib"] - v[w, 1, "rss_restart_kib"])) * 1024 / dn } }
' "$OUT_DIR/disk.txt" | tee -a "$OUT_DIR/disk.txt"
log "results in $OUT_DIR/disk.txt"

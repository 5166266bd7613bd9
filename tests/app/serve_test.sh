#!/usr/bin/env bash
# `pullthrough serve` starts, says what it runs, and stops cleanly (exit 0) on SIGTERM and SIGINT:
# the handover, a second signal cutting it short, the drain that waits for work in flight until
# its 10 s deadline, and a third signal ending the drain at once.
set -euo pipefail
bin=$1
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"

cat > "$work/pt.yaml" <<YAML
state_dir: $work/state
log: {level: debug, format: json}
appliance: {addresses: [127.0.0.77]}
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["127.0.0.1:1"]
proxy:
  listen: ["127.0.0.1:0"]
  http_listen: []
  handover: 0s
admin: {listen: "127.0.0.1:0"}
YAML

# logged PATTERN: the log ($log) has a line whose "msg" starts with PATTERN (an ERE).
logged() { grep -qE "\"msg\":\"$1" "$log"; }
# logged_or_dead PATTERN: logged, or $pid is gone (no use waiting any longer).
logged_or_dead() { logged "$1" || ! kill -0 "$pid" 2>/dev/null; }

# admin_get PATH: the admin listener's answer ("STATUS BODY"), its port taken from the log.
admin_get() {
  curl -s --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$(bound_port "$log" http)$1"
}

# run_until_ready SIGNAL ROLE [CHECK]: starts serve, waits for "ready", runs CHECK, sends SIGNAL,
# checks a clean exit. Leaves the log file's name in $log.
run_until_ready() {
  local signal=$1 role=$2 check=${3:-}
  log="$work/serve-$1-$2.log"
  : >"$log"
  "$bin" serve --config "$work/pt.yaml" --role "$role" 2>"$log" &
  pid=$!
  wait_until 30 logged_or_dead ready || true
  grep -q '"msg":"ready' "$log" || { fail "$signal/$role: never ready: $(cat "$log")"; return; }
  [ -z "$check" ] || "$check"
  kill -"$signal" "$pid"
  # Nothing is in flight: the drain ends at once. 15 s = the drain deadline (10 s) + 5 s for the
  # exit under ASan on a loaded machine, so only a stop that hangs fails here.
  local rc=0
  if ! wait_until 15 exited "$pid"; then fail "$signal/$role: still running 15s after SIG$signal"; return; fi
  wait "$pid" || rc=$?
  pid=
  [ "$rc" -eq 0 ] || fail "$signal/$role: exit $rc, want 0: $(cat "$log")"
  no_sanitizer_report "$log" || fail "$signal/$role: sanitizer report"
  grep -q '"msg":"stopped"' "$log" || fail "$signal/$role: no stopped line"
  # Every line is one JSON object from the configured format.
  if grep -qv '^{"time":"[^"]*","level":"[a-z]*","component":"[a-z]*","msg":".*"}$' "$log"; then
    fail "$signal/$role: a log line is not JSON: $(grep -v '^{' "$log" | head -3)"
  fi
}

# Nothing listens on 127.0.0.77:443, so the gate stays closed: /healthz says 503 and why.
check_admin_all() {
  local out
  out=$(admin_get /healthz)
  [ "$(tail -n 1 <<<"$out")" = 503 ] || fail "all: /healthz status: $out"
  grep -q '"status": "unhealthy"' <<<"$out" || fail "all: /healthz body: $out"
  grep -q '"endpoint": "127.0.0.77:443"' <<<"$out" || fail "all: /healthz names no cache host: $out"
  out=$(admin_get /metrics)
  [ "$(tail -n 1 <<<"$out")" = 200 ] || fail "all: /metrics status: $(tail -n 1 <<<"$out")"
  grep -q '^pullthrough_dns_rewriting 0$' <<<"$out" || fail "all: /metrics has no rewriting gauge"
  grep -q '^pullthrough_storage_healthy 1$' <<<"$out" || fail "all: /metrics has no storage gauge"
  [ "$(tail -n 1 <<<"$(admin_get /nothing)")" = 404 ] || fail "all: unknown admin path not 404"
}
# The proxy alone is healthy when its store is.
check_admin_proxy() {
  local out
  out=$(admin_get /healthz)
  [ "$(tail -n 1 <<<"$out")" = 200 ] || fail "proxy: /healthz status: $out"
  grep -q '"storage": {' <<<"$out" || fail "proxy: /healthz has no storage: $out"
  if grep -q '"cache_hosts"' <<<"$out"; then fail "proxy: /healthz lists cache hosts: $out"; fi
}

run_until_ready TERM all check_admin_all
[ -d "$work/state" ] || fail "state_dir was not created"
grep -q '"component":"dns"' "$log" || fail "no dns component line"
grep -q 'forwarding to: 127.0.0.1:1' "$log" || fail "upstreams not logged"
grep -q 'intercepted names resolve to: 127.0.0.77' "$log" || fail "addresses not logged"
grep -q '"component":"proxy"' "$log" || fail "no proxy component line"
grep -q 'SIGTERM received' "$log" || fail "signal not logged"

run_until_ready INT dns
grep -q '"component":"proxy"' "$log" && fail "role dns started proxy parts"
run_until_ready TERM proxy check_admin_proxy
grep -q '"component":"dns"' "$log" && fail "role proxy started dns parts"

# The handover before a stop (proxy.handover): after SIGTERM the cache serves on for that long,
# saying it is leaving to health checks and on /healthz; a second signal cuts it short, a third
# one the drain that follows (README, Command line; app/supervisor.cpp).
sed 's/handover: 0s/handover: 2s/' "$work/pt.yaml" >"$work/handover.yaml"
sed 's/handover: 0s/handover: 30s/' "$work/pt.yaml" >"$work/long-handover.yaml"
# start_proxy NAME CONFIG: starts --role proxy; sets $log, $pid and $tls.
start_proxy() {
  log="$work/serve-$1.log"
  : >"$log"
  "$bin" serve --config "$2" --role proxy 2>"$log" &
  pid=$!
  wait_until 30 logged_or_dead ready || true
  logged ready || fail "$1: never ready: $(cat "$log")"
  tls=$(bound_port "$log" https)
  [ -n "$tls" ] || fail "$1: no https port in the log"
}
# wait_logged NAME PATTERN: waits (30 s at most) for a log line; a failure when none comes.
wait_logged() {
  wait_until 30 logged_or_dead "$2" || true
  logged "$2" || fail "$1: no log line \"$2\""
}
# stopped_within NAME SECONDS: waits up to SECONDS for $pid to exit; it must exit 0 with no
# sanitizer report in its log.
stopped_within() {
  local rc=0
  if ! wait_until "$2" exited "$pid"; then fail "$1: still running after $2 s"; kill -9 "$pid"; fi
  wait "$pid" || rc=$?
  pid=
  [ "$rc" -eq 0 ] || fail "$1: exit $rc, want 0"
  no_sanitizer_report "$log" || fail "$1: sanitizer report"
}
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# between T LOW HIGH: LOW <= T <= HIGH.
between() { awk -v t="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(t >= lo && t <= hi) }'; }
# v2_leaving: the Pullthrough-Leaving field of a 200 answer to GET /v2/ as the DNS side's health
# check asks it (its User-Agent: clients get upstream's answer to /v2/, without the field); ""
# when there is none. Fails when there is no 200 answer, so a dead cache cannot pass for one that
# is not leaving.
v2_leaving() {
  local out
  out=$(curl -sSk --max-time 5 -A pullthrough-health-check -D - -o /dev/null \
    --resolve "quay.io:$tls:127.0.0.1" \
    "https://quay.io:$tls/v2/" | tr -d '\r') || return 1
  head -n 1 <<<"$out" | grep -q '^HTTP/1.1 200 ' || return 1
  awk 'tolower($1) == "pullthrough-leaving:" { print $2 }' <<<"$out"
}

start_proxy handover "$work/handover.yaml"
leaving=$(v2_leaving) || fail "handover: no 200 answer to GET /v2/ before the signal"
[ -z "$leaving" ] || fail "handover: /v2/ says leaving ($leaving) before any signal"
t_term=$(now)
kill -TERM "$pid"
wait_logged handover 'SIGTERM received: handing over for 2s'
out=$(admin_get /healthz)
[ "$(tail -n 1 <<<"$out")" = 503 ] || fail "handover: /healthz status during the handover: $out"
grep -q '"status": "leaving"' <<<"$out" || fail "handover: /healthz body during the handover: $out"
leaving=$(v2_leaving) || fail "handover: no 200 answer to GET /v2/ during the handover"
[ "$leaving" = shutdown ] || fail "handover: /v2/ does not say the cache is leaving ('$leaving')"
kill -0 "$pid" 2>/dev/null || fail "handover: exited before the handover was over"
stopped_within handover 15
took=$(since "$t_term")
# The handover lasts 2 s; then nothing is in flight, so the drain ends at once. Bound: 2 s + 3 s
# for the drain and the exit under ASan on a loaded machine.
between "$took" 2 5 || fail "handover: exit $took s after SIGTERM, want 2 to 5 s"
logged "handover done" || fail "handover: end not logged"
echo "handover: exited $took s after SIGTERM (proxy.handover 2s)"

# A second signal cuts a 30 s handover short: the exit comes well before the handover's end.
start_proxy handover-cut "$work/long-handover.yaml"
kill -TERM "$pid"
wait_logged handover-cut 'SIGTERM received: handing over for 30s'
t_second=$(now)
kill -TERM "$pid"
stopped_within handover-cut 15
took=$(since "$t_second")
# Nothing is in flight: the drain ends at once. Bound: 3 s for the exit under ASan on a loaded
# machine, far below the 30 s the handover would have lasted.
between "$took" 0 3 || fail "handover-cut: exit $took s after the second SIGTERM, want under 3 s"
logged 'second SIGTERM received: cutting the handover short' || fail "handover-cut: not logged"

# The drain waits for work in flight, for 10 s at most (the drain deadline). The work: a client
# that completed its TLS handshake and sent the first lines of a request, and then nothing (a
# request may take 60 s to arrive).
# hold_start NAME: starts that client ($hold_pid), its stdin the fifo on fd 3, and waits until
# the cache has completed its handshake (the first and only one of this process): s_client sends
# the lines it was given right after it.
hold_start() {
  rm -f "$work/hold.in"
  mkfifo "$work/hold.in"
  openssl s_client -quiet -connect "127.0.0.1:$tls" -servername quay.io <"$work/hold.in" \
    >"$work/hold.out" 2>&1 &
  hold_pid=$!
  exec 3>"$work/hold.in"
  printf 'GET /v2/ HTTP/1.1\r\nHost: quay.io\r\n' >&3
  wait_until 30 handshakes 1 || fail "$1: the held connection's handshake was not counted"
}
handshakes() {
  grep -q "^pullthrough_proxy_front_door_handshakes_completed_total $1\$" <<<"$(admin_get /metrics)"
}
hold_stop() {
  exec 3>&-
  kill "$hold_pid" 2>/dev/null || true
  wait "$hold_pid" 2>/dev/null || true
}

# A third signal ends a drain that is held up, at once.
start_proxy drain-cut "$work/long-handover.yaml"
hold_start drain-cut
kill -TERM "$pid"
wait_logged drain-cut 'SIGTERM received: handing over'
kill -TERM "$pid"
wait_logged drain-cut 'closing listeners and draining \(deadline 10s\)'
# Only a drain that does not wait for the held request ends within a second.
if wait_until 1 exited "$pid"; then fail "drain-cut: the held request did not hold the drain up"; fi
t_third=$(now)
kill -TERM "$pid"
stopped_within drain-cut 15
took=$(since "$t_third")
# At least 9 s of the drain deadline were left; 3 s is the exit under ASan on a loaded machine.
between "$took" 0 3 || fail "drain-cut: exit $took s after the third SIGTERM, want under 3 s"
logged 'SIGTERM received while draining: stopping without waiting' || fail "drain-cut: not logged"
hold_stop
echo "drain-cut: exited $took s after the third SIGTERM"

# Without it, the drain ends at its deadline: 10 s after the drain begins.
start_proxy drain-deadline "$work/pt.yaml"
hold_start drain-deadline
t_term=$(now)
kill -TERM "$pid"
stopped_within drain-deadline 20
took=$(since "$t_term")
# No handover (0s): the drain starts at the signal and lasts the 10 s deadline. Bound: 10 s + 3 s
# for the exit under ASan on a loaded machine.
between "$took" 10 13 || fail "drain-deadline: exit $took s after SIGTERM, want 10 to 13 s"
logged 'drain deadline passed' || fail "drain-deadline: the deadline was not logged"
hold_stop
echo "drain-deadline: exited $took s after SIGTERM (drain deadline 10 s)"

# A dns role started before the proxy role ever made its CA picks the CA up once it exists.
sed "s#^state_dir: .*#state_dir: $work/fresh#" "$work/pt.yaml" >"$work/fresh.yaml"
log="$work/serve-fresh-dns.log"
: >"$log"
"$bin" serve --config "$work/fresh.yaml" --role dns 2>"$log" &
pid=$!
wait_logged fresh-dns ready
grep -q 'no CA certificate at' "$log" || fail "fresh dns: no warning about the missing CA"
"$bin" ca export --config "$work/fresh.yaml" >/dev/null || fail "fresh dns: ca export failed"
# The CA is looked for again before each health check (every 1 s).
wait_until 30 grep -q 'found the CA certificate' "$log" || fail "fresh dns: the CA was not picked up"
kill -TERM "$pid"
stopped_within fresh-dns 15

# registries[].share_private is logged at start, saying what it means, and so is a share_private
# that has no effect for want of credentials.
echo secret >"$work/quay-password"
cp "$work/pt.yaml" "$work/share.yaml"
cat >> "$work/share.yaml" <<YAML
registries:
  - host: quay.io
    credentials: {username: bot, password_file: $work/quay-password}
    share_private: true
  - host: ghcr.io
    share_private: true
YAML
start_proxy share-private "$work/share.yaml"
grep 'registries\[0\].share_private' "$log" | grep -q 'served to every client without checking their credentials' ||
  fail "share-private: no warning for quay.io: $(grep share_private "$log")"
grep 'registries\[1\].share_private' "$log" | grep -q 'has no credentials, so share_private has no effect' ||
  fail "share-private: no warning for ghcr.io: $(grep share_private "$log")"
grep 'share_private' "$log" | grep -q '"level":"warn' || fail "share-private: not logged as a warning"
kill -TERM "$pid"
stopped_within share-private 15

# A configuration error stops start-up with exit 2 and the error on stderr.
printf 'dns: {answer_ttl: soon}\n' > "$work/bad.yaml"
rc=0; out=$("$bin" serve --config "$work/bad.yaml" 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "bad config: exit $rc, want 2"
grep -qF "bad.yaml:1:19: dns.answer_ttl" <<<"$out" || fail "bad config message: $out"

# An upstream resolver that is this appliance itself is refused at start.
cat > "$work/loop.yaml" <<YAML
state_dir: $work/state
dns: {listen: ["127.0.0.1:5399"], upstreams: ["127.0.0.1:5399"]}
YAML
rc=0; out=$(timeout 10 "$bin" serve --config "$work/loop.yaml" --role dns 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "self upstream: exit $rc, want 2"
grep -qF "own DNS listener" <<<"$out" || fail "self upstream message: $out"

if [ "$failures" -ne 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "serve lifecycle: all checks passed"

#!/usr/bin/env bash
# `pullthrough serve` starts, says what it runs, and stops cleanly (exit 0) on SIGTERM and SIGINT.
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

# admin_get PATH: the admin listener's answer ("STATUS BODY"), its port taken from the log.
admin_get() {
  curl -s --max-time 5 -w '\n%{http_code}' "http://127.0.0.1:$(bound_port "$log" http)$1"
}

# run_until_ready SIGNAL ROLE [CHECK]: starts serve, waits for "ready", runs CHECK, sends SIGNAL,
# checks a clean exit. Leaves the log file's name in $log.
run_until_ready() {
  local signal=$1 role=$2 check=${3:-}
  log="$work/serve-$1-$2.log"
  "$bin" serve --config "$work/pt.yaml" --role "$role" 2>"$log" &
  pid=$!
  for _ in $(seq 100); do grep -q '"msg":"ready' "$log" && break; sleep 0.1; done
  grep -q '"msg":"ready' "$log" || { fail "$signal/$role: never ready: $(cat "$log")"; return; }
  [ -z "$check" ] || "$check"
  kill -"$signal" "$pid"
  local rc=0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then fail "$signal/$role: still running 15s after SIG$signal"; return; fi
  wait "$pid" || rc=$?
  pid=
  [ "$rc" -eq 0 ] || fail "$signal/$role: exit $rc, want 0: $(cat "$log")"
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
# saying it is leaving to health checks and on /healthz; a second signal cuts it short.
sed 's/handover: 0s/handover: 2s/' "$work/pt.yaml" >"$work/handover.yaml"
# start_handover NAME: starts --role proxy with the 2 s handover; sets $log, $pid and $tls.
start_handover() {
  log="$work/serve-$1.log"
  "$bin" serve --config "$work/handover.yaml" --role proxy 2>"$log" &
  pid=$!
  for _ in $(seq 100); do grep -q '"msg":"ready' "$log" && break; sleep 0.1; done
  tls=$(bound_port "$log" https)
  [ -n "$tls" ] || fail "$1: no https port in the log"
}
# exit_within NAME SECONDS: waits up to SECONDS for $pid to exit 0.
exit_within() {
  local rc=0
  for _ in $(seq "$(($2 * 20))"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then fail "$1: still running after $2 s"; kill -9 "$pid"; fi
  wait "$pid" || rc=$?
  pid=
  [ "$rc" -eq 0 ] || fail "$1: exit $rc, want 0"
}
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
v2_leaving() {
  curl -sk --max-time 5 -D - -o /dev/null --resolve "quay.io:$tls:127.0.0.1" "https://quay.io:$tls/v2/" |
    tr -d '\r' | awk 'tolower($1) == "pullthrough-leaving:" { print $2 }'
}

start_handover handover
[ -z "$(v2_leaving)" ] || fail "handover: /v2/ says leaving before any signal"
t_term=$(date +%s.%N)
kill -TERM "$pid"
sleep 0.5
out=$(admin_get /healthz)
[ "$(tail -n 1 <<<"$out")" = 503 ] || fail "handover: /healthz status during the handover: $out"
grep -q '"status": "leaving"' <<<"$out" || fail "handover: /healthz body during the handover: $out"
[ "$(v2_leaving)" = shutdown ] || fail "handover: /v2/ does not say the cache is leaving"
kill -0 "$pid" 2>/dev/null || fail "handover: exited before the handover was over"
exit_within handover 10
took=$(since "$t_term")
awk -v t="$took" 'BEGIN { exit !(t >= 2 && t < 5) }' || fail "handover: exit $took s after SIGTERM, want 2 to 5 s"
grep -q 'handing over for 2s' "$log" || fail "handover: not logged"
grep -q '"msg":"handover done"' "$log" || fail "handover: end not logged"
echo "handover: exited $took s after SIGTERM (proxy.handover 2s)"

start_handover handover-cut
kill -TERM "$pid"
sleep 0.3
t_second=$(date +%s.%N)
kill -TERM "$pid"
exit_within handover-cut 10
took=$(since "$t_second")
awk -v t="$took" 'BEGIN { exit !(t < 1.5) }' || fail "handover-cut: exit $took s after the second SIGTERM"
grep -q 'cutting the handover short' "$log" || fail "handover-cut: not logged"

# A dns role started before the proxy role ever made its CA picks the CA up once it exists.
sed "s#^state_dir: .*#state_dir: $work/fresh#" "$work/pt.yaml" >"$work/fresh.yaml"
log="$work/serve-fresh-dns.log"
"$bin" serve --config "$work/fresh.yaml" --role dns 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q '"msg":"ready' "$log" && break; sleep 0.1; done
grep -q 'no CA certificate at' "$log" || fail "fresh dns: no warning about the missing CA"
"$bin" ca export --config "$work/fresh.yaml" >/dev/null || fail "fresh dns: ca export failed"
for _ in $(seq 50); do grep -q 'found the CA certificate' "$log" && break; sleep 0.1; done
grep -q 'found the CA certificate' "$log" || fail "fresh dns: the CA was not picked up"
kill -TERM "$pid"
exit_within fresh-dns 10

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

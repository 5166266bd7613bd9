#!/usr/bin/env bash
# The DNS responder against real peers, in a network namespace of its own: dnsmasq as the
# upstream resolver, dig as the client. Only loopback addresses are used.
set -uo pipefail
pt_bin=$1
. "$(dirname "$0")/../lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
ns="pt-dns-$$"
work=$(mktemp -d)
cleanup() {
  # Every process in the namespace, not just the wrappers that started them.
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns" || exit 1
ip netns exec "$ns" ip link set lo up
in_ns() { ip netns exec "$ns" "$@"; }

# Upstream: dnsmasq with local data only, on 127.0.0.53:53.
big_txt=()
for i in $(seq 1 12); do big_txt+=(--txt-record="big.example.test,record $i padding padding padding padding padding padding")
done
in_ns dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
  --listen-address=127.0.0.53 --port=53 --log-facility=- --pid-file="$work/dnsmasq.pid" \
  --host-record=web.example.test,198.51.100.7,2001:db8::7 \
  --host-record=quay.io,203.0.113.5 \
  --cname=mirror.example.test,quay.io \
  --local=/example.test/ "${big_txt[@]}" 2>"$work/dnsmasq.log" &

cat > "$work/pt.yaml" <<YAML
state_dir: $work/state
appliance: {addresses: [127.0.0.10]}
dns:
  listen: ["127.0.0.1:53"]
  upstreams: ["127.0.0.53"]
  allow: ["127.0.0.1/32"]
  rate_limit: {per_client_qps: 0}
proxy: {listen: ["127.0.0.10:443"], http_listen: [], allow: ["127.0.0.0/8"], handover: 0s}
health: {interval: 100ms, timeout: 100ms}
YAML
log="$work/serve.log"
ip netns exec "$ns" "$pt_bin" serve --config "$work/pt.yaml" 2>"$log" &
pt_pid=$!
for _ in $(seq 100); do grep -q 'ready: ' "$log" && break; sleep 0.1; done
check "pullthrough ready" grep -q 'ready: ' "$log"
# Intercepted names are rewritten once the health check has seen the cache on 127.0.0.10 pass.
healthz() { in_ns curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9090/healthz; }
for _ in $(seq 100); do [ "$(healthz)" = 200 ] && break; sleep 0.1; done
check "the health check opened the gate" test "$(healthz)" = 200

q() { in_ns dig +time=3 +tries=1 "$@"; }

# Non-intercepted names: the answer section is what dnsmasq gives.
for spec in "web.example.test A" "web.example.test AAAA" "nothing.example.test A" "big.example.test TXT"; do
  # shellcheck disable=SC2086
  direct=$(q @127.0.0.53 +tcp $spec +noall +answer | awk '{$2=""; print}' | sort)
  # shellcheck disable=SC2086
  via=$(q @127.0.0.1 +tcp $spec +noall +answer | awk '{$2=""; print}' | sort)
  check "answer for '$spec' equals dnsmasq's" test "$direct" = "$via"
done
status=$(q @127.0.0.1 nothing.example.test A | sed -nE 's/.*status: ([A-Z]+).*/\1/p')
check "NXDOMAIN relayed (got $status)" test "$status" = NXDOMAIN

# Intercepted names are answered by pullthrough.
check "quay.io rewritten" test "$(q @127.0.0.1 quay.io A +short)" = "127.0.0.10"
check "QUAY.IO rewritten too" test "$(q @127.0.0.1 QUAY.IO A +short)" = "127.0.0.10"
aaaa=$(q @127.0.0.1 quay.io AAAA)
check "AAAA of an intercepted name is NOERROR" grep -q 'status: NOERROR' <<<"$aaaa"
check "AAAA of an intercepted name has no answer (NODATA)" grep -q 'ANSWER: 0,' <<<"$aaaa"
check "NODATA carries an SOA" grep -q 'IN[[:space:]]*SOA' <<<"$aaaa"
check "HTTPS of an intercepted name is NODATA" grep -q 'status: NOERROR' <(q @127.0.0.1 quay.io TYPE65)
check "no AD on synthesized answers" bash -c "! grep -q ' ad' <<<\"\$(ip netns exec $ns dig @127.0.0.1 quay.io A +dnssec | grep flags:)\""
check "CNAME into quay.io rewritten" grep -q '127.0.0.10' <(q @127.0.0.1 mirror.example.test A +short)

# TCP, and a truncated UDP answer retried over TCP by dig itself.
check "TCP works" test "$(q @127.0.0.1 +tcp web.example.test A +short)" = "198.51.100.7"
udp=$(q @127.0.0.1 +noedns big.example.test TXT)
check "dig saw TC and retried over TCP" grep -q 'Truncated, retrying in TCP mode' <<<"$udp"
check "the TCP retry got all 12 records" test "$(grep -v '^;' <<<"$udp" | grep -c 'IN[[:space:]]*TXT')" = 12

# A client outside dns.allow.
status=$(q @127.0.0.1 -b 127.0.0.2 web.example.test A | sed -nE 's/.*status: ([A-Z]+).*/\1/p')
check "REFUSED from a disallowed source (got $status)" test "$status" = REFUSED

# The responder keeps answering after garbage.
in_ns bash -c 'printf "\x00\x01garbage" > /dev/udp/127.0.0.1/53'
check "still answering after garbage" test "$(q @127.0.0.1 quay.io A +short)" = "127.0.0.10"

kill -TERM "$pt_pid"
wait "$pt_pid"
rc=$?
pt_pid=
check "clean stop (exit $rc)" test "$rc" -eq 0
finish

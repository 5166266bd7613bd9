#!/usr/bin/env bash
# The DNS responder against real peers, in a network namespace of its own: dnsmasq as the
# upstream resolver, dig as the client. Only loopback addresses are used.
set -uo pipefail
pt_bin=$1
# shellcheck source-path=SCRIPTDIR source=../lib.sh
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

q() { in_ns dig +time=3 +tries=1 "$@"; }
# dnsmasq answers before anything is compared with it.
dnsmasq_answers() { [ "$(q @127.0.0.53 web.example.test A +short)" = 198.51.100.7 ]; }
check "dnsmasq answers" wait_until 30 dnsmasq_answers

# The health checks run at the defaults' pace (1 s, timeout 1 s): a TLS handshake with an ASan
# build on a loaded machine can take longer than 100 ms. rise 1 opens the gate at the first
# passed check; fall 100 keeps it open through a few slow checks, since this test is not about
# failover.
cat > "$work/pt.yaml" <<YAML
state_dir: $work/state
appliance: {addresses: [127.0.0.10]}
dns:
  listen: ["127.0.0.1:53"]
  upstreams: ["127.0.0.53"]
  allow: ["127.0.0.1/32"]
  rate_limit: {per_client_qps: 0}
proxy: {listen: ["127.0.0.10:443"], http_listen: [], allow: ["127.0.0.0/8"], handover: 0s}
health: {interval: 1s, timeout: 1s, rise: 1, fall: 100}
YAML
pt_log="$work/serve.log"
ip netns exec "$ns" "$pt_bin" serve --config "$work/pt.yaml" 2>"$pt_log" &
pt_pid=$!
check "pullthrough ready" wait_until 30 ready_or_dead
check "pullthrough ready (ready line)" grep -q 'ready: ' "$pt_log"
# Intercepted names are rewritten once the health check has seen the cache on 127.0.0.10 pass.
# The first check starts at once and ends within its 1 s timeout; 20 s leave room for a slow
# start and for checks that fail while the proxy's TLS context warms up.
healthz() { in_ns curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9090/healthz; }
gate_open() { [ "$(healthz)" = 200 ]; }
check "the health check opened the gate" wait_until 20 gate_open

# answer SERVER SPEC...: the answer section of a TCP query (TTLs left out, sorted); fails unless
# dig got an answer with status NOERROR or NXDOMAIN. The output of dig at a server that does not
# answer is empty, or dig's error text, alike on both sides: so the status is checked too.
answer() {
  local server=$1 out
  shift
  out=$(q "$server" +tcp "$@" +noall +comments +answer) || return 1
  grep -qE 'status: (NOERROR|NXDOMAIN)' <<<"$out" || return 1
  grep -v '^;' <<<"$out" | grep -v '^$' | awk '{ $2 = ""; print }' | sort
}
# status SERVER SPEC...: the rcode of the answer ("" when there is none).
status() { q "$@" | sed -nE 's/.*status: ([A-Z]+).*/\1/p'; }

# Non-intercepted names: the answer section is what dnsmasq gives, and it has records.
for spec in "web.example.test A" "web.example.test AAAA" "big.example.test TXT"; do
  # shellcheck disable=SC2086
  direct=$(answer @127.0.0.53 $spec)
  # shellcheck disable=SC2086
  via=$(answer @127.0.0.1 $spec)
  check "dnsmasq has records for '$spec'" test -n "$direct"
  check "answer for '$spec' equals dnsmasq's" test "$direct" = "$via"
done
status_direct=$(status @127.0.0.53 nothing.example.test A)
status_via=$(status @127.0.0.1 nothing.example.test A)
check "dnsmasq says NXDOMAIN for nothing.example.test (got '$status_direct')" test "$status_direct" = NXDOMAIN
check "NXDOMAIN relayed (got '$status_via')" test "$status_via" = NXDOMAIN

# Intercepted names are answered by pullthrough.
check "quay.io rewritten" test "$(q @127.0.0.1 quay.io A +short)" = "127.0.0.10"
check "QUAY.IO rewritten too" test "$(q @127.0.0.1 QUAY.IO A +short)" = "127.0.0.10"
# The SOA pullthrough synthesizes for NODATA (dns/answers.cpp): the name as its own apex,
# hostmaster.<name>, serial 1. dnsmasq, asked directly, gives no such record: only pullthrough's
# answer passes.
own_soa='^quay\.io\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+SOA[[:space:]]+quay\.io\. hostmaster\.quay\.io\. 1 '
# nodata TYPE: true when pullthrough's answer for quay.io TYPE is NOERROR, no answer, its SOA.
nodata() {
  local out
  out=$(q @127.0.0.1 quay.io "$1" +noall +comments +authority) || return 1
  grep -q 'status: NOERROR' <<<"$out" && grep -q 'ANSWER: 0,' <<<"$out" && grep -qE "$own_soa" <<<"$out"
}
check "AAAA of an intercepted name is NODATA with pullthrough's SOA" nodata AAAA
check "HTTPS of an intercepted name is NODATA with pullthrough's SOA" nodata TYPE65
# dnsmasq_lacks_soa: dnsmasq answers quay.io HTTPS itself (with REFUSED here: it has no upstream)
# and its answer lacks that SOA, so the checks above tell the two apart.
dnsmasq_lacks_soa() {
  local out
  out=$(q @127.0.0.53 quay.io TYPE65 +noall +comments +authority) || return 1
  grep -q 'status: ' <<<"$out" && ! grep -qE "$own_soa" <<<"$out"
}
check "dnsmasq's own answer for quay.io HTTPS lacks that SOA" dnsmasq_lacks_soa
# no_ad: pullthrough's answer to a DNSSEC-OK query is the rewritten one, and its header has no AD.
no_ad() {
  local out flags
  out=$(q @127.0.0.1 quay.io A +dnssec) || return 1
  grep -q 'status: NOERROR' <<<"$out" || return 1
  grep -qE '^quay\.io\.[[:space:]].*IN[[:space:]]+A[[:space:]]+127\.0\.0\.10$' <<<"$out" || return 1
  flags=$(sed -nE 's/^;; flags:([a-z ]*);.*/\1/p' <<<"$out")
  [ -n "$flags" ] || return 1
  ! grep -qw ad <<<"$flags"
}
check "no AD on synthesized answers" no_ad
check "CNAME into quay.io rewritten" grep -q '127.0.0.10' <(q @127.0.0.1 mirror.example.test A +short)

# TCP, and a truncated UDP answer retried over TCP by dig itself.
check "TCP works" test "$(q @127.0.0.1 +tcp web.example.test A +short)" = "198.51.100.7"
udp=$(q @127.0.0.1 +noedns big.example.test TXT)
check "dig saw TC and retried over TCP" grep -q 'Truncated, retrying in TCP mode' <<<"$udp"
check "the TCP retry got all 12 records" test "$(grep -v '^;' <<<"$udp" | grep -c 'IN[[:space:]]*TXT')" = 12

# A client outside dns.allow.
st=$(status @127.0.0.1 -b 127.0.0.2 web.example.test A)
check "REFUSED from a disallowed source (got '$st')" test "$st" = REFUSED

# The responder keeps answering after garbage.
in_ns bash -c 'printf "\x00\x01garbage" > /dev/udp/127.0.0.1/53'
check "still answering after garbage" test "$(q @127.0.0.1 quay.io A +short)" = "127.0.0.10"

check "clean stop (exit 0, no sanitizer report)" stop_pullthrough
finish

#!/usr/bin/env bash
# No client is broken by the interception (issue #13), end to end in one network namespace against
# real peers: a docker-registry upstream with TLS from a test CA, dnsmasq as the real DNS, skopeo
# and curl as clients. Each client is its own machine as the appliance sees it: it runs as its own
# uid, and a routing rule per uid gives its sockets their own loopback source address, for DNS
# queries and connections alike:
#   laptop 127.0.0.21  trusts only the public roots (here: the upstream CA), until it "installs" the
#                      appliance's CA next to them and enrolls
#   node   127.0.0.22  trusts the public roots and the appliance's CA
#   noisy  127.0.0.23  sends garbage to the front door instead of a TLS handshake
# Sections: the learned fallback (clients: [all]), enrollment, `clients: [enrolled]` with the
# enrolled set managed by `pullthrough clients`, and the same fallback with split roles.
#   rollout_test.sh PULLTHROUGH_BINARY
# Exit 0 pass, 1 fail, 77 skip (not root, or a peer or client missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pt_bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$here/../testbed/lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
if ! missing=$(e2e_have_tools); then echo "skipped: $missing"; exit 77; fi
command -v setpriv >/dev/null 2>&1 || { echo "skipped: missing: setpriv"; exit 77; }

t_start=$(e2e_now)
section() { echo "== $* ($(e2e_since "$t_start")s)"; }

pt_addr=127.0.0.2
admin=127.0.0.1:9090
proxy_admin=127.0.0.2:9091 # --role proxy in the split section
ttl=2                      # dns.answer_ttl: how long a client may keep an old answer
quay=$(e2e_addr quay.io)

# The clients: name, uid, source address.
declare -A uid=([laptop]=2001 [node]=2002 [noisy]=2003 [later]=2004)
declare -A src=([laptop]=127.0.0.21 [node]=127.0.0.22 [noisy]=127.0.0.23 [later]=127.0.0.24)

# client_addresses: a routing rule per client uid whose table gives loopback destinations the
# client's own source address. The local table moves after the uid rules, so they come first.
client_addresses() {
  e2e_ns ip rule del pref 0 && e2e_ns ip rule add pref 100 lookup local || return 1
  local name table=200
  for name in "${!uid[@]}"; do
    table=$((table + 1))
    e2e_ns ip route add local 127.0.0.0/8 dev lo src "${src[$name]}" table "$table" &&
      e2e_ns ip rule add pref 10 uidrange "${uid[$name]}-${uid[$name]}" lookup "$table" || return 1
    mkdir -p "$E2E_WORK/client-$name/home" "$E2E_WORK/client-$name/tmp" "$E2E_WORK/client-$name/out"
    chown -R "${uid[$name]}:${uid[$name]}" "$E2E_WORK/client-$name"
  done
  # The clients read the test bed's policy and registries files and the CA bundles: the
  # appliance's as /ca.crt would give it (its state_dir is the appliance's alone).
  e2e_ns curl -sS --max-time 5 -o "$E2E_WORK/appliance-ca.pem" "http://$pt_addr/ca.crt" || return 1
  # A machine that installed the CA trusts it next to the public roots.
  cat "$E2E_UPSTREAM_CA" "$E2E_WORK/appliance-ca.pem" >"$E2E_WORK/with-appliance-ca.pem"
  chmod o+rx "$E2E_WORK" "$E2E_WORK/etc"
  chmod o+r "$E2E_UPSTREAM_CA" "$E2E_WORK/with-appliance-ca.pem"
}
# as NAME CMD...: CMD in the namespace as client NAME.
as() {
  local name=$1
  shift
  e2e_ns setpriv --reuid="${uid[$name]}" --regid="${uid[$name]}" --clear-groups "$@"
}
# trust NAME FILE: the CA bundle client NAME trusts from now on.
declare -A trusts=()
trust() { trusts[$1]=$2; }
# pull NAME IMAGE: skopeo copy as client NAME into its own directory, trusting only its bundle.
pull() {
  local name=$1 dir=$E2E_WORK/client-$1
  rm -rf "${dir:?}/out/image"
  as "$name" env -i PATH="$PATH" HOME="$dir/home" TMPDIR="$dir/tmp" \
    SSL_CERT_FILE="${trusts[$name]}" SSL_CERT_DIR="$E2E_WORK/etc/empty-certs" \
    skopeo --policy "$E2E_WORK/etc/policy.json" --registries-conf "$E2E_WORK/etc/registries.conf" \
    --tmpdir "$dir/tmp" copy --retry-times 0 "docker://$2" "oci:$dir/out/image:x" \
    >"$dir/last.log" 2>&1 || { echo "skopeo as $name: $(tail -n 1 "$dir/last.log")"; return 1; }
}
pull_error() { cat "$E2E_WORK/client-$1/last.log"; }
# resolves NAME: the address quay.io resolves to for client NAME (its own query, its own source).
resolves() { as "$1" dig +short +time=1 +tries=2 quay.io A; }
# enroll NAME [HOST]: POST /enroll as client NAME; prints the answer, fails on anything but 200.
enroll() {
  as "$1" curl -sS --max-time 5 -X POST -w '\n%{http_code}' "http://${2:-$pt_addr}/enroll" >"$E2E_WORK/enroll.out" &&
    tail -n 1 "$E2E_WORK/enroll.out" | grep -qx 200
}
# upstream_lines FROM PATTERN: the registry's access log lines from address FROM matching PATTERN.
upstream_lines() { grep -E "^$1 .*$2" "$E2E_WORK/logs/registry-quay.io.log"; }
upstream_count() { upstream_lines "$1" "$2" | wc -l; }
healthz() { e2e_ns curl -sS --max-time 5 "http://${1:-$admin}/healthz"; }
metric() {
  e2e_ns curl -sS --max-time 5 "http://${1:-$admin}/metrics" |
    awk -v n="$2" '$1 == n { print $2; f = 1 } END { exit !f }'
}
# bypassed ADDRESS [ADMIN]: the alert /healthz lists for ADDRESS among the bypassed clients.
bypassed() {
  healthz "${2:-$admin}" | jq -er --arg a "$1" '.clients.bypassed[] | select(.address == $a) | .alert'
}
# garbage NAME: bytes that are no TLS handshake, sent to the front door as client NAME.
garbage() {
  as "$1" /usr/bin/python3 -c '
import socket
s = socket.create_connection(("'"$pt_addr"'", 443), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: quay.io\r\n\r\n")
try:
    s.recv(100)
except OSError:
    pass'
}
clients_cli() { e2e_ns "$pt_bin" clients "$@" --config "$E2E_WORK/pt.yaml"; }
# bypass_lasts_an_hour ADDRESS: /healthz gives ADDRESS's bypass an until one hour after its since.
bypass_lasts_an_hour() {
  healthz | jq -e --arg a "$1" '.clients.bypassed[] | select(.address == $a) |
    def t: sub("\\.[0-9]+Z$"; "Z") | fromdate;
    ((.until | t) - (.since | t)) == 3600'
}
listed_none() { clients_cli ls --json | jq -e '.enrolled == [] and .intercept == "enrolled"'; }
listed_both() {
  local out
  out=$(clients_cli ls) || return 1
  echo "$out"
  grep -q '^2 enrolled' <<<"$out" && grep -Eq "^${src[node]} .*enroll\$" <<<"$out" &&
    grep -Eq "^${src[laptop]} .*admin\$" <<<"$out"
}
reported_by_proxy() {
  healthz "$proxy_admin" | jq -e --arg a "$1" '.clients.reported_untrusted | map(.address) | index($a) != null'
}

# write_config FILE CLIENTS [ADMIN]: the test bed's configuration with the CA page on
# $pt_addr:80, answer_ttl $ttl and dns.intercept.clients CLIENTS.
write_config() {
  e2e_write_config "$1" "$pt_addr" "${3:-$admin}" 0s 60s info
  sed -i -e "s|^  rate_limit: .*|&\n  answer_ttl: ${ttl}s\n  intercept: {clients: $2, untrusted_bypass: 1h}|" \
    -e "s|^  http_listen: \[\]|  http_listen: [\"$pt_addr:80\"]|" "$1"
}
start_appliance() {
  _e2e_bg pullthrough ns "$pt_bin" serve --config "$E2E_WORK/pt.yaml"
  e2e_wait_ready pullthrough _e2e_http_status 200 "http://$admin/healthz"
}
stop_appliance() {
  local pid
  pid=$(e2e_pid "${1:-pullthrough}") || return 0
  kill -TERM "$pid"
  e2e_exited "${1:-pullthrough}" 15
}

setup "namespace and upstream CA" e2e_init
setup "dnsmasq" e2e_start_dns
setup "registry quay.io (anonymous)" e2e_start_registry quay.io "$quay"
setup "registry ghcr.io (token) + token service, for the seeded images" e2e_start_registry ghcr.io "$(e2e_addr ghcr.io)" token
setup "seed images (layers of ${E2E_LAYER_KIB} KiB)" e2e_seed_images
write_config "$E2E_WORK/pt.yaml" "[all]"
setup "pullthrough (clients: [all])" start_appliance
setup "clients resolve through the appliance" e2e_client_dns 127.0.0.1
setup "a source address per client" client_addresses
trust laptop "$E2E_UPSTREAM_CA"
trust node "$E2E_WORK/with-appliance-ca.pem"
trust later "$E2E_UPSTREAM_CA"

# --- The learned fallback -------------------------------------------------------------------------
section "learned fallback: the laptop does not trust the CA, the node does"
check "every client is intercepted at first (laptop resolves quay.io to $pt_addr)" \
  test "$(resolves laptop)" = "$pt_addr"
check "the node pulls small:v1 through the cache" pull node quay.io/e2e/small:v1
check "... and upstream never saw the node" test "$(upstream_count "${src[node]}" 'GET /v2/')" = 0
check "the laptop's first pull fails: it does not trust the appliance's CA" fails pull laptop quay.io/e2e/small:v1
check "... with a certificate error ($(pull_error laptop | grep -o 'x509: [^"]*' | head -1))" \
  grep -q 'x509: certificate signed by unknown authority' "$E2E_WORK/client-laptop/last.log"
# Go's crypto/tls (skopeo) says bad_certificate for an authority it does not know.
check "/healthz lists the laptop as bypassed, alert bad_certificate" \
  test "$(bypassed "${src[laptop]}")" = bad_certificate
check "... with since and until an hour apart" bypass_lasts_an_hour "${src[laptop]}"
check "the bypass is counted: bypass_events_total{alert=\"bad_certificate\"} = 1" \
  test "$(metric "" 'pullthrough_dns_bypass_events_total{alert="bad_certificate"}')" = 1
check "... and the front door counted the alert" \
  test "$(metric "" pullthrough_proxy_front_door_handshakes_untrusted_bad_certificate_total)" -ge 1
check "the laptop is logged once" test "$(grep -c "client ${src[laptop]} does not trust" "$E2E_WORK/logs/pullthrough.log")" = 1
check "the laptop now resolves quay.io to the real registry ($quay)" test "$(resolves laptop)" = "$quay"
check "the node still resolves quay.io to the cache" test "$(resolves node)" = "$pt_addr"
check "the laptop's retry succeeds" pull laptop quay.io/e2e/small:v1
check "... straight from the real registry, with the laptop's own User-Agent" \
  upstream_lines "${src[laptop]}" 'GET /v2/e2e/small/manifests/v1 .*"skopeo/[0-9.]+"$'
check "meanwhile the node keeps pulling through the cache (multi:v1)" pull node quay.io/e2e/multi:v1
check "... and upstream still never saw the node" test "$(upstream_count "${src[node]}" 'GET /v2/')" = 0
check "garbage instead of a handshake is no certificate alert" garbage noisy
check "... so the noisy client is not bypassed" fails bypassed "${src[noisy]}"
check "... and still resolves quay.io to the cache" test "$(resolves noisy)" = "$pt_addr"
check "/metrics: one client bypassed" test "$(metric "" pullthrough_dns_clients_bypassed)" = 1

# --- Enrollment -------------------------------------------------------------------------------------
section "enrollment: the laptop installs the CA and enrolls"
trust laptop "$E2E_WORK/with-appliance-ca.pem"
laptop_gets=$(upstream_count "${src[laptop]}" 'GET /v2/')
check "POST /enroll from the laptop answers 200" enroll laptop
check "... and says so ($(head -n 1 "$E2E_WORK/enroll.out"))" grep -q "enrolled ${src[laptop]}" "$E2E_WORK/enroll.out"
check "the laptop's bypass is cleared at once" fails bypassed "${src[laptop]}"
check "the laptop resolves quay.io to the cache again" test "$(resolves laptop)" = "$pt_addr"
check "the laptop pulls small:v1 through the cache" pull laptop quay.io/e2e/small:v1
check "... and upstream saw no more of the laptop" test "$(upstream_count "${src[laptop]}" 'GET /v2/')" = "$laptop_gets"
check "a second POST /enroll at once is rate-limited (429)" \
  test "$(as laptop curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X POST "http://$pt_addr/enroll")" = 429
check "/metrics: enrolled 1, intercepted in the last hour 3 (laptop, node, noisy)" \
  test "$(metric "" pullthrough_dns_clients_enrolled) $(metric "" pullthrough_dns_clients_intercepted)" = "1 3"
check "the appliance stops on SIGTERM" stop_appliance

# --- clients: [enrolled] ----------------------------------------------------------------------------
section "clients: [enrolled]: nobody is intercepted until they enroll"
rm -f "$E2E_WORK/pt/enrolled-clients"
write_config "$E2E_WORK/pt.yaml" "[enrolled]"
setup "pullthrough (clients: [enrolled], empty set)" start_appliance
check "the laptop resolves quay.io to the real registry" test "$(resolves laptop)" = "$quay"
check "the node resolves quay.io to the real registry" test "$(resolves node)" = "$quay"
check "\`pullthrough clients ls\` lists no one" listed_none
check "the node enrolls" enroll node
check "now only the node is intercepted: node -> cache" test "$(resolves node)" = "$pt_addr"
check "... laptop -> the real registry" test "$(resolves laptop)" = "$quay"
node_gets=$(upstream_count "${src[node]}" 'GET /v2/')
laptop_gets=$(upstream_count "${src[laptop]}" 'GET /v2/')
check "the node pulls through the cache" pull node quay.io/e2e/small:v1
check "... upstream saw no more of the node" test "$(upstream_count "${src[node]}" 'GET /v2/')" = "$node_gets"
check "the laptop pulls from the real registry" pull laptop quay.io/e2e/small:v1
check "... upstream saw the laptop" test "$(upstream_count "${src[laptop]}" 'GET /v2/')" -gt "$laptop_gets"
check "\`pullthrough clients add\` enrolls the laptop" clients_cli add "${src[laptop]}"
check "... which then resolves quay.io to the cache" test "$(resolves laptop)" = "$pt_addr"
check "\`pullthrough clients ls\` lists both (text)" listed_both
check "\`pullthrough clients rm\` removes the node" clients_cli rm "${src[node]}"
check "... which then resolves quay.io to the real registry" test "$(resolves node)" = "$quay"
check "\`pullthrough clients rm\` of a client not enrolled fails" fails clients_cli rm 127.0.0.99
check "the appliance stops on SIGTERM" stop_appliance
setup "pullthrough again" start_appliance
check "the enrolled set survived the restart: laptop -> cache" test "$(resolves laptop)" = "$pt_addr"
check "... node -> the real registry" test "$(resolves node)" = "$quay"
check "the appliance stops on SIGTERM" stop_appliance

# --- Split roles --------------------------------------------------------------------------------------
section "split roles: the proxy tells the DNS side through the health check"
write_config "$E2E_WORK/split-dns.yaml" "[all]"
write_config "$E2E_WORK/split-proxy.yaml" "[all]" "$proxy_admin"
start_split() {
  _e2e_bg pt-proxy ns "$pt_bin" serve --config "$E2E_WORK/split-proxy.yaml" --role proxy &&
    e2e_wait_ready pt-proxy _e2e_http_status 200 "http://$proxy_admin/healthz" &&
    _e2e_bg pt-dns ns "$pt_bin" serve --config "$E2E_WORK/split-dns.yaml" --role dns &&
    e2e_wait_ready pt-dns _e2e_http_status 200 "http://$admin/healthz"
}
setup "pullthrough --role proxy and --role dns" start_split
check "a new laptop resolves quay.io to the cache" test "$(resolves later)" = "$pt_addr"
check "its first pull fails (it does not trust the CA)" fails pull later quay.io/e2e/small:v1
t_failed=$(e2e_now)
# The DNS side hears at its next health check: within an interval (1 s) and a check.
learned() { [ "$(resolves later)" = "$quay" ]; }
check "within 3 s the DNS side gives it the real registry" wait_until 3 learned
echo "split: the DNS side answered with the real registry $(e2e_since "$t_failed") s after the failed pull"
check "the proxy lists it as reported untrusted" reported_by_proxy "${src[later]}"
check "the dns role lists it as bypassed" test "$(bypassed "${src[later]}")" = bad_certificate
check "its retry succeeds from the real registry" pull later quay.io/e2e/small:v1
check "the dns role counted one event received" test "$(metric "" pullthrough_dns_clients_events_received_total)" = 1
check "--role proxy stops on SIGTERM" stop_appliance pt-proxy
check "--role dns stops on SIGTERM" stop_appliance pt-dns

echo "total $(e2e_since "$t_start")s"
finish

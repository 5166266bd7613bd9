#!/usr/bin/env bash
# The registry cache end to end, against real peers in one network namespace: docker-registry
# upstreams with TLS from a test CA (quay.io anonymous, ghcr.io behind a bearer-token service),
# dnsmasq as the real DNS, and skopeo, podman, ctr and docker as clients whose resolver is the
# appliance and whose only trusted CA is the appliance's. Only loopback addresses are used.
#   proxy_test.sh PULLTHROUGH_BINARY
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

t_start=$(e2e_now)

# The appliance: DNS on 127.0.0.1, the cache on 127.0.0.2 (the address it hands out), dnsmasq
# (127.0.0.53) as its real resolver, the upstream CA trusted for both registries.
pt_addr=127.0.0.2
ttl=2
start_appliance() {
  _e2e_bg pullthrough ns "$pt_bin" serve --config "$E2E_WORK/pt.yaml"
  # Intercepted names are rewritten once the health check has seen the cache pass: /healthz
  # answers 200 from then on.
  e2e_wait_ready pullthrough _e2e_http_status 200 http://127.0.0.1:9090/healthz
}
pt_log() { cat "$E2E_WORK/logs/pullthrough.log"; }
# upstream_gets REGISTRY PATTERN: how many GETs matching PATTERN the registry has served so far.
upstream_gets() {
  grep -cE "\"GET [^\"]*$2[^\"]* HTTP" "$E2E_WORK/logs/registry-$1.log"
}
blob_file() { echo "$E2E_WORK/pt/cache/blobs/sha256/${1:7:2}/${1:7}"; }

setup "namespace and upstream CA" e2e_init
setup "dnsmasq" e2e_start_dns
setup "registry quay.io (anonymous)" e2e_start_registry quay.io "$(e2e_addr quay.io)"
setup "registry ghcr.io (token) + token service" e2e_start_registry ghcr.io "$(e2e_addr ghcr.io)" token
setup "seed images (layers of ${E2E_LAYER_KIB} KiB)" e2e_seed_images

# A short write timeout, so that the stalled-clients section below takes seconds.
write_timeout=2
e2e_write_config "$E2E_WORK/pt.yaml" "$pt_addr" 127.0.0.1:9090 0s "${ttl}s" debug "${write_timeout}s"
setup "pullthrough" start_appliance
setup "clients trust only the appliance's CA" e2e_client_trust "$E2E_WORK/pt/ca/ca.crt"
setup "clients resolve through the appliance" e2e_client_dns 127.0.0.1
check "quay.io resolves to the appliance in the namespace" \
  test "$(e2e_ns getent hosts quay.io | awk '{ print $1 }')" = "$pt_addr"

oci=$E2E_WORK/pulled
mkdir -p "$oci"
oci_digest() { jq -r '.manifests[0].digest' "$1/index.json"; }
small=$(e2e_digest small)
small_layers=$(e2e_oci_blob "$E2E_WORK/images/small" "$small" | jq -r '.layers[].digest')
# e2e_seed_images gives small:v1 two layers; the loops below check each, so they must have some.
check "small:v1's manifest lists its 2 layers ($(wc -w <<<"$small_layers"))" \
  test "$(wc -w <<<"$small_layers")" -eq 2

# Cold pull: everything comes from upstream once, and is stored verified.
check "cold: skopeo copies quay.io/e2e/small:v1" timed "skopeo cold copy small:v1" \
  e2e_skopeo_copy quay.io/e2e/small:v1 "$oci/small:v1"
check "cold: skopeo got small:v1's manifest" test "$(oci_digest "$oci/small")" = "$small"
for layer in $small_layers; do
  check "cold: layer ${layer:0:19} is stored" test -s "$(blob_file "$layer")"
done
gets_before=$(upstream_gets quay.io /v2/e2e/small/blobs/)
# A count that did not grow proves nothing unless the cold pull was counted: config and 2 layers.
check "cold: upstream served small's blobs (GETs: $gets_before)" test "${gets_before:-0}" -ge 3

# Warm pull: no blob leaves upstream again.
rm -rf "$oci/small"
check "warm: skopeo copies small:v1 again" timed "skopeo warm copy small:v1" \
  e2e_skopeo_copy quay.io/e2e/small:v1 "$oci/small:v1"
check "warm: no blob was fetched upstream again" \
  test "$(upstream_gets quay.io /v2/e2e/small/blobs/)" = "$gets_before"

# By digest.
check "by digest: skopeo copies quay.io/e2e/small@$small" timed "skopeo copy by digest" \
  e2e_skopeo_copy "quay.io/e2e/small@$small" "$oci/bydigest"
check "by digest: same manifest" test "$(oci_digest "$oci/bydigest")" = "$small"

# Multi-arch index through podman: it picks linux/amd64.
check "podman pulls the multi-arch quay.io/e2e/multi:v1" timed "podman pull multi:v1" \
  e2e_podman_pull quay.io/e2e/multi:v1
arch=$(e2e_podman_arch quay.io/e2e/multi:v1)
check "podman picked linux/amd64 from the index (got $arch)" test "$arch" = amd64
digests=$(e2e_podman image inspect --format '{{join .RepoDigests " "}}' quay.io/e2e/multi:v1)
check "podman's multi:v1 is the amd64 manifest" grep -q "@$(e2e_digest multi-amd64)" <<<"$digests"

# Token-protected upstream, through ctr and skopeo.
setup "containerd" e2e_start_containerd
check "ctr pulls quay.io/e2e/small:v1" timed "ctr pull small:v1" e2e_ctr_pull quay.io/e2e/small:v1
check "ctr pulls token-protected ghcr.io/e2e/private:v1" timed "ctr pull private:v1 (token)" \
  e2e_ctr_pull ghcr.io/e2e/private:v1
check "the appliance fetched a token from the realm" \
  grep -q 'GET /token?' "$E2E_WORK/logs/nginx-auth.ghcr.io.log"
target=$(e2e_ctr images ls | awk '$1 == "ghcr.io/e2e/private:v1" { print $3 }')
check "ctr's private:v1 is the pushed manifest ($target)" test "$target" = "$(e2e_digest private)"

# docker (dockerd does not verify certificates for 127/8 registries; this proves the protocol).
setup "dockerd" e2e_start_dockerd
check "docker pulls quay.io/e2e/small:v1" timed "docker pull small:v1" e2e_docker_pull quay.io/e2e/small:v1
repo_digest=$(e2e_docker image inspect --format '{{index .RepoDigests 0}}' quay.io/e2e/small:v1)
check "docker's small:v1 is the pushed manifest" test "$repo_digest" = "quay.io/e2e/small@$small"

# Coalescing: 8 concurrent GETs of a blob nobody has pulled (multi's arm64 layer) reach upstream once.
arm_layer=$(e2e_oci_blob "$E2E_WORK/images/multi" "$(e2e_digest multi-arm64)" | jq -r '.layers[0].digest')
curls=()
for i in $(seq 8); do
  e2e_curl -o "$E2E_WORK/coalesced.$i" "https://quay.io/v2/e2e/multi/blobs/$arm_layer" &
  curls+=($!)
done
wait "${curls[@]}"
ok=0
for i in $(seq 8); do
  [ "$(sha256sum <"$E2E_WORK/coalesced.$i" | cut -d' ' -f1)" = "${arm_layer#sha256:}" ] && ok=$((ok + 1))
done
check "8 concurrent clients got the right bytes ($ok of 8)" test "$ok" = 8
check "upstream served that blob once ($(upstream_gets quay.io "$arm_layer"))" \
  test "$(upstream_gets quay.io "$arm_layer")" = 1

# Corruption: an upstream serving wrong bytes is caught and nothing is stored.
bad=$(e2e_digest corrupt-layer)
out=$(timed "skopeo copy corrupt:v1 (must fail)" e2e_skopeo_copy quay.io/e2e/corrupt:v1 "$oci/corrupt:v1" 2>&1)
rc=$?
check "corrupt: skopeo's pull fails" test "$rc" -ne 0
check "corrupt: the appliance logged the mismatch" grep -q "hash to .*: discarded" <(pt_log)
check "corrupt: the bad blob is not in the store" test ! -e "$(blob_file "$bad")"
code=$(e2e_curl -o "$E2E_WORK/corrupt.body" -w '%{http_code}' "https://quay.io/v2/e2e/corrupt/blobs/$bad" 2>/dev/null)
# The appliance answers (a status line: curl's 000 would be no answer at all), and the transfer
# is an error or cut off before it completes with the right bytes.
check "corrupt: a direct GET reaches the appliance (status '$code')" grep -qE '^[1-5][0-9]{2}$' <<<"$code"
check "corrupt: ... and does not complete normally" test "$code" != 200 -o \
  "$(sha256sum <"$E2E_WORK/corrupt.body" | cut -d' ' -f1)" != "${bad#sha256:}"

# Traversal in a repository name: a 400 with an OCI error, before any disk or upstream access.
code=$(e2e_curl -o "$E2E_WORK/traversal.body" -w '%{http_code}' --path-as-is \
  "https://quay.io/v2/e2e/../../etc/manifests/v1")
check "traversal: 400 (got $code)" test "$code" = 400
check "traversal: OCI NAME_INVALID body" grep -q '"code":"NAME_INVALID"' "$E2E_WORK/traversal.body"

# Stalled clients: 50 clients each read 64 KiB of a cached 32 MiB blob and then stop reading, as a
# hung or suspended machine would. Each must lose its connection after proxy.write_timeout, and
# the appliance's connections and file descriptors must return to what they were before.
# (Regression: after the first chunk, nothing bounded a stalled write.)
big=$E2E_WORK/big.blob
head -c $((32 * 1024 * 1024)) /dev/urandom >"$big"
big_digest=sha256:$(sha256sum <"$big" | cut -d' ' -f1)
setup "a 32 MiB blob in quay.io/e2e/big" e2e_push_blob quay.io e2e/big "$big" "$big_digest"
check "stalled: the blob is pulled once through the appliance" test \
  "$(e2e_curl --max-time 60 "https://quay.io/v2/e2e/big/blobs/$big_digest" | sha256sum | cut -d' ' -f1)" \
  = "${big_digest#sha256:}"
pt_pid=$(e2e_pid pullthrough)
fds() { find "/proc/$pt_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
open_connections() {
  e2e_ns curl -sS --max-time 5 http://127.0.0.1:9090/metrics |
    awk '$1 == "pullthrough_proxy_connections_open" { print $2 }'
}
at_baseline() { [ "$(fds)" -le "$fds_before" ] && [ "$(open_connections)" = 0 ]; }
no_connections() { [ "$(open_connections)" = 0 ]; }
check "stalled: no client connection is open before" wait_until 15 no_connections
fds_before=$(fds)
disconnects() {
  e2e_ns curl -sS --max-time 5 http://127.0.0.1:9090/metrics |
    awk '$1 == "pullthrough_proxy_client_disconnects_total" { print $2 }'
}
disconnects_before=$(disconnects)
stalled_out=$E2E_WORK/stalled.out
rm -f "$E2E_WORK/stalled.ready"
e2e_ns python3 "$here/stalled_clients.py" --host "$pt_addr" --sni quay.io --ca "$E2E_CLIENT_CA" \
  --path "/v2/e2e/big/blobs/$big_digest" --clients 50 --read 65536 --hold 20 \
  --ready "$E2E_WORK/stalled.ready" >"$stalled_out" 2>&1 &
stalled_pid=$!
wait_until 30 test -e "$E2E_WORK/stalled.ready"
held=$(open_connections)
check "stalled: the appliance holds the 50 connections while they stall (gauge $held)" \
  test "${held:-0}" -ge 50
# While the clients still hold their connections (for 20 s), the appliance must have let go of
# them. Bound: the write timeout of the chunk in hand, plus the time the kernel buffers take to
# fill and a 3 s margin for a loaded 2-core machine under ASan.
check "stalled: within ${write_timeout} s + 3 s the appliance's connections and file descriptors are back to the baseline ($fds_before fds)" \
  wait_until $((write_timeout + 3)) at_baseline
wait "$stalled_pid"
check "stalled: the client program ran (exit 0)" test $? -eq 0
ended=$(grep -c 'server ended it' "$stalled_out")
check "stalled: every client saw its connection reset ($ended of 50)" test "$ended" = 50
disconnects=$(( $(disconnects) - disconnects_before ))
check "stalled: the 50 cut transfers were counted as client disconnects ($disconnects)" \
  test "$disconnects" = 50

# Upstream down: warm pulls by tag still work (tag expired: stale-if-error), cold ones fail fast.
setup "stop quay.io" e2e_stop registry-quay.io
sleep $((ttl + 1))
rm -rf "$oci/small"
check "upstream down: skopeo copies small:v1 by tag" timed "skopeo copy small:v1 (upstream down)" \
  e2e_skopeo_copy quay.io/e2e/small:v1 "$oci/small:v1"
check "upstream down: the appliance said it served the tag stale" \
  grep -q 'serving the cached mapping' <(pt_log)
e2e_podman rmi -f quay.io/e2e/multi:v1 >/dev/null 2>&1
check "upstream down: podman pulls multi:v1 by tag" timed "podman pull multi:v1 (upstream down)" \
  e2e_podman_pull quay.io/e2e/multi:v1
e2e_docker rmi -f quay.io/e2e/small:v1 >/dev/null 2>&1
check "upstream down: docker pulls small:v1 by tag" timed "docker pull small:v1 (upstream down)" \
  e2e_docker_pull quay.io/e2e/small:v1
t0=$(e2e_now)
code=$(e2e_curl -o "$E2E_WORK/down.body" -w '%{http_code}' "https://quay.io/v2/e2e/never/manifests/v1")
took=$(e2e_since "$t0")
check "upstream down: an uncached tag is a 503 (got $code)" test "$code" = 503
check "upstream down: the 503 is an OCI UNAVAILABLE error" grep -q '"code":"UNAVAILABLE"' "$E2E_WORK/down.body"
check "upstream down: the 503 came within 5 s (took ${took}s)" awk -v t="$took" 'BEGIN { exit !(t < 5) }'

check "pullthrough is still running" kill -0 "$(e2e_pid pullthrough)"
# stop_appliance: SIGTERM (proxy.handover 0s: the drain starts at once); true when it exits 0
# within the drain deadline (10 s) + 5 s for the exit under ASan, and its log has no sanitizer
# report (LeakSanitizer speaks only at exit).
stop_appliance() {
  local pid
  pid=$(e2e_pid pullthrough) || { e2e_err "pullthrough is not running"; return 1; }
  kill -TERM "$pid"
  e2e_exited pullthrough 15
}
check "the appliance stops on SIGTERM: exit 0, no sanitizer report in its log" stop_appliance
echo "total $(e2e_since "$t_start")s"
finish

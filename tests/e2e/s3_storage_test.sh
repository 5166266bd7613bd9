#!/usr/bin/env bash
# The cache on the S3 backend end to end (issue #16), against real peers in one network
# namespace: docker-registry upstreams with TLS from a test CA, dnsmasq, Moto's S3 server with
# SigV4 enforced behind tests/e2e/s3_fault_proxy.py, then npm's s3rver; skopeo, podman and docker
# as clients that resolve through the appliance and trust only its CA. Only loopback addresses.
#   - cold and warm pulls with each client: upstream serves each blob once, the bucket holds the
#     verified bytes under cache/blobs/sha256/<hex>, and a warm pull makes exactly one S3 GET per
#     blob (the fault proxy's log, and pullthrough_s3_requests_total);
#   - a layer above 64 MiB goes up as a multipart upload;
#   - restarted with an empty spool, the appliance serves warm pulls from the bucket with no
#     upstream GET;
#   - named faults: a SlowDown burst, a stalled GET, a reset in the middle of an upload, wrong
#     credentials, a missing bucket, the S3 server killed while serving. Pulls get through or fail
#     cleanly, no client gets a truncated 200, /healthz names the cause and DNS falls back;
#   - a corrupt upstream blob never reaches the bucket, and every object in the bucket hashes to
#     its key;
#   - the same pulls on s3rver, and the hot tier serving warm pulls without a request.
#   s3_storage_test.sh PULLTHROUGH_BINARY
# Exit 0 pass, 1 fail, 77 skip (not root, or a peer or client missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pt_bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$here/../testbed/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/s3.sh
. "$here/../testbed/s3.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
if ! missing=$(e2e_have_tools); then echo "skipped: $missing"; exit 77; fi
e2e_s3_pythons
if ! missing=$(e2e_have_s3_tools); then echo "skipped: $missing"; exit 77; fi

t_start=$(e2e_now)
pt_addr=127.0.0.2
admin=127.0.0.1:9090
moto_addr=127.0.3.21
proxy_addr=127.0.3.22
bucket=pt-cache
# The S3 client's per-request timeout and retry budget: short, so the stalled and killed cases
# take seconds. Health: checks every second, a host moves after two results in a row.
s3_timeout=2 s3_retries=3 interval=1 fall=2
# DNS falls back within: the next probe (probe_interval 1 s) failing after at most the client's
# timeout, then `fall` storage checks on the health beat, plus 1 s of margin for ASan and the
# dig polls on a loaded 2-core machine.
fallback_bound=$((1 + s3_timeout + interval * fall + 1))
big_kib=$((80 * 1024))  # a layer above the 64 MiB single-PUT limit: a multipart upload

# --- Helpers -------------------------------------------------------------------------------------
pt_log() { cat "$E2E_WORK/logs/pullthrough.log"; }
proxy_log() { cat "$E2E_WORK/logs/$E2E_S3_PROXY_NAME.log"; }
# upstream_gets REGISTRY PATTERN: GETs matching PATTERN that REGISTRY has served so far.
upstream_gets() { grep -cE "\"GET [^\"]*$2[^\"]* HTTP" "$E2E_WORK/logs/registry-$1.log"; }
# s3_gets DIGEST: GETs of DIGEST's object that went through the fault proxy and were answered.
s3_gets() { proxy_log | grep -cE "GET [^ ]*/cache/blobs/sha256/${1#sha256:} -> [0-9]"; }
# metric SAMPLE: the value of SAMPLE (name and labels, as exposed) in /metrics (0 when absent).
metric() {
  e2e_ns curl -sS --max-time 5 "http://$admin/metrics" |
    awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}
s3_get_ok() { metric 'pullthrough_s3_requests_total{operation="get",status="2xx"}'; }
healthz() { e2e_ns curl -sS --max-time 5 "http://$admin/healthz" 2>/dev/null; }
healthz_code() {
  e2e_ns curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$admin/healthz" 2>/dev/null
}
resolve() { e2e_ns dig +short +time=1 +tries=1 @127.0.0.1 quay.io A 2>/dev/null; }
# answer_within SECONDS ADDR: true when quay.io resolves to ADDR within SECONDS.
answer_within() { wait_until "$1" test_answer "$2"; }
test_answer() { [ "$(resolve)" = "$1" ]; }
# reason_has TEXT: /healthz is 503 and its storage reason holds TEXT.
reason_has() {
  [ "$(healthz_code)" = 503 ] && grep -qF "$1" <<<"$(healthz | jq -r '.storage.reason // empty')"
}
# in_bucket DIGEST: the bucket holds DIGEST's object and its bytes hash to DIGEST.
in_bucket() {
  local f=$E2E_WORK/tmp/check.blob
  e2e_s3_get "cache/blobs/sha256/${1#sha256:}" "$f" >/dev/null 2>&1 || return 1
  [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "${1#sha256:}" ] ||
    { e2e_err "${1:0:19}: the bucket's $(stat -c %s "$f") bytes hash otherwise"; return 1; }
}
# bucket_verified: every object under cache/blobs/ hashes to the digest its key names (echoes the
# count); fails on the first that does not.
bucket_verified() {
  local key n=0
  while read -r key; do
    [ -n "$key" ] || continue
    in_bucket "sha256:${key##*/}" || { e2e_err "$key does not hash to its name"; return 1; }
    n=$((n + 1))
  done < <(e2e_s3_keys cache/blobs/)
  echo "$n"
}
# blobs_of LAYOUT MANIFEST_DIGEST: the digests of the manifest's config and layers.
blobs_of() { e2e_oci_blob "$1" "$2" | jq -r '.config.digest, .layers[].digest'; }
# each_is COUNTER EXPECTED DIGEST...: `COUNTER DIGEST` prints EXPECTED for every DIGEST.
each_is() {
  local fn=$1 want=$2 d got
  shift 2
  for d in "$@"; do
    got=$("$fn" "$d")
    [ "$got" = "$want" ] || { e2e_err "$fn $d: $got, not $want"; return 1; }
  done
}
quay_gets() { upstream_gets quay.io "/blobs/$1"; }
# snapshot DIGEST...: records s3_gets of each DIGEST in before[DIGEST].
declare -A before=()
snapshot() {
  local d
  before=()
  for d in "$@"; do before[$d]=$(s3_gets "$d"); done
}
# one_more_get DIGEST...: each DIGEST had exactly one more S3 GET since the snapshot.
one_more_get() {
  local d now
  for d in "$@"; do
    now=$(s3_gets "$d")
    [ "$now" = "$((before[$d] + 1))" ] || { e2e_err "S3 GETs of $d: ${before[$d]} -> $now"; return 1; }
  done
}

# write_config FILE ENDPOINT BUCKET SECRET_FILE [HOT_TIER]
write_config() {
  e2e_write_config "$1" "$pt_addr" "$admin" 0s 1h info
  cat >>"$1" <<YAML
health: {interval: ${interval}s, timeout: 1s, fall: $fall, rise: 2}
storage:
  backend: s3
  min_free: 0
  spool: $E2E_WORK/pt/spool
  s3:
    endpoint: $2
    region: $E2E_S3_REGION
    bucket: $3
    prefix: cache/
    access_key_file: $E2E_S3_KEY_FILE
    secret_key_file: $4
    timeout: ${s3_timeout}s
    max_retries: $s3_retries
    probe_interval: 1s
    hot_tier: ${5:-0}
YAML
}
start_pt() { _e2e_bg pullthrough ns "$pt_bin" serve --config "$E2E_WORK/pt.yaml"; }
# start_healthy: starts the appliance and waits for /healthz 200 (the cache rewrites from then on).
start_healthy() {
  start_pt && e2e_wait_ready pullthrough _e2e_http_status 200 "http://$admin/healthz"
}
# stop_pt: SIGTERM; true when it exits 0 within 15 s with no sanitizer report in its log.
stop_pt() {
  local pid
  pid=$(e2e_pid pullthrough) || { e2e_err "pullthrough is not running"; return 1; }
  kill -TERM "$pid"
  e2e_exited pullthrough 15
}
# rewrite ENDPOINT BUCKET SECRET_FILE: stops the appliance and rewrites its configuration.
rewrite() { stop_pt && write_config "$E2E_WORK/pt.yaml" "$@"; }

pulled=$E2E_WORK/pulled
copy() { rm -rf "${2:?}" && e2e_skopeo_copy "$1" "$2:v1"; }
same_manifest() { [ "$(jq -r '.manifests[0].digest' "$1/index.json")" = "$2" ]; }

# --- Set-up --------------------------------------------------------------------------------------
setup "namespace and upstream CA" e2e_init
mkdir -p "$pulled"
setup "dnsmasq" e2e_start_dns
setup "registry quay.io (anonymous)" e2e_start_registry quay.io "$(e2e_addr quay.io)"
setup "registry ghcr.io (token) + token service" e2e_start_registry ghcr.io "$(e2e_addr ghcr.io)" token
setup "seed images (layers of ${E2E_LAYER_KIB} KiB)" e2e_seed_images
build_big() {
  E2E_LAYER_KIB=$big_kib e2e_build_image "$E2E_WORK/images/big" v1 amd64 1 &&
    e2e_push "oci:$E2E_WORK/images/big:v1" quay.io/e2e/big:v1 &&
    cp "$E2E_WORK/push.digest" "$E2E_WORK/big.digest"
}
setup "big:v1, one layer of $big_kib KiB" build_big
setup "moto (S3, SigV4 enforced)" e2e_start_moto "$moto_addr" 9000 "$bucket"
setup "S3 fault proxy in front of moto" e2e_start_s3_fault_proxy "$proxy_addr" 9000 9001
good_secret=$E2E_S3_SECRET_FILE
write_config "$E2E_WORK/pt.yaml" "$E2E_S3_PROXY_ENDPOINT" "$bucket" "$good_secret"
setup "pullthrough (S3 backend through the fault proxy)" start_healthy
setup "clients trust only the appliance's CA" e2e_client_trust "$E2E_WORK/pt/ca/ca.crt"
setup "clients resolve through the appliance" e2e_client_dns 127.0.0.1
check "quay.io resolves to the appliance" test_answer "$pt_addr"

small=$(e2e_digest small)
mapfile -t small_blobs < <(blobs_of "$E2E_WORK/images/small" "$small")
mapfile -t small_layers < <(printf '%s\n' "${small_blobs[@]:1}")
check "small:v1 has a config and 2 layers (${#small_blobs[@]} blobs)" test "${#small_blobs[@]}" = 3

# --- Cold and warm, skopeo -----------------------------------------------------------------------
check "cold: skopeo copies small:v1" timed "skopeo cold copy (S3)" \
  copy quay.io/e2e/small:v1 "$pulled/small"
check "cold: skopeo got small:v1's manifest" same_manifest "$pulled/small" "$small"
check "cold: upstream served each of small's blobs once" each_is quay_gets 1 "${small_blobs[@]}"
# A client has its last byte once the blob is verified; the upload follows.
for d in "${small_blobs[@]}"; do
  check "cold: the bucket holds ${d:0:19} with its verified bytes" wait_until 10 in_bucket "$d"
done
check "cold: the manifest is in the bucket too" wait_until 10 in_bucket "$small"
spooled=$(find "$E2E_WORK/pt/spool" -type f -name '[0-9a-f]*' 2>/dev/null | grep -c .)
check "cold: the spool keeps no blob once uploaded (hot tier 0; $spooled files)" test "$spooled" = 0

snapshot "${small_blobs[@]}"
gets_ok=$(s3_get_ok)
check "warm: skopeo copies small:v1 again" timed "skopeo warm copy (S3)" \
  copy quay.io/e2e/small:v1 "$pulled/small"
check "warm: skopeo got the same manifest" same_manifest "$pulled/small" "$small"
check "warm: no blob was fetched upstream again" each_is quay_gets 1 "${small_blobs[@]}"
check "warm: exactly one S3 GET per blob (fault proxy's log)" one_more_get "${small_blobs[@]}"
gets_now=$(s3_get_ok)
check "warm: pullthrough_s3_requests_total{get,2xx} grew by 3 ($gets_ok -> $gets_now)" \
  test "$gets_now" = "$((gets_ok + 3))"
check "warm: no HEAD or LIST of a blob went to the bucket" \
  fails grep -qE "(HEAD [^ ]*/blobs/|GET [^ ]*list-type)" <(proxy_log)

# --- podman (a multi-arch index) -----------------------------------------------------------------
mapfile -t multi_blobs < <(blobs_of "$E2E_WORK/images/multi" "$(e2e_digest multi-amd64)")
check "multi:v1's amd64 image has a config and 2 layers (${#multi_blobs[@]} blobs)" \
  test "${#multi_blobs[@]}" = 3
check "podman pulls multi:v1 (cold)" timed "podman cold pull (S3)" e2e_podman_pull quay.io/e2e/multi:v1
check "podman picked linux/amd64" test "$(e2e_podman_arch quay.io/e2e/multi:v1)" = amd64
check "cold: upstream served each amd64 blob once" each_is quay_gets 1 "${multi_blobs[@]}"
e2e_podman rmi -f quay.io/e2e/multi:v1 >/dev/null 2>&1
snapshot "${multi_blobs[@]:1}"
check "podman pulls multi:v1 again (warm)" timed "podman warm pull (S3)" \
  e2e_podman_pull quay.io/e2e/multi:v1
check "warm: podman's layers came from the bucket, one GET each" one_more_get "${multi_blobs[@]:1}"
check "warm: no amd64 blob was fetched upstream again" each_is quay_gets 1 "${multi_blobs[@]}"

# --- docker ----------------------------------------------------------------------------------------
setup "dockerd" e2e_start_dockerd
snapshot "${small_layers[@]}"
check "docker pulls small:v1 (warm)" timed "docker warm pull (S3)" e2e_docker_pull quay.io/e2e/small:v1
check "docker's small:v1 is the pushed manifest" test \
  "$(e2e_docker image inspect --format '{{index .RepoDigests 0}}' quay.io/e2e/small:v1)" = \
  "quay.io/e2e/small@$small"
check "docker: one S3 GET per layer" one_more_get "${small_layers[@]}"
check "docker: no blob was fetched upstream again" each_is quay_gets 1 "${small_blobs[@]}"

# --- A multipart upload, reset in the middle ------------------------------------------------------
big=$(e2e_digest big)
mapfile -t big_blobs < <(blobs_of "$E2E_WORK/images/big" "$big")
big_layer=${big_blobs[1]:-none}
# The reset hits the first part of the big layer (about 1 MiB in); the part is sent again.
check "reset_upload armed for the big layer" e2e_s3_fault reset_upload 1048576 match "${big_layer#sha256:}"
check "multipart: skopeo copies big:v1 while a part upload is reset" timed "skopeo cold copy big:v1" \
  copy quay.io/e2e/big:v1 "$pulled/big"
check "multipart: the bucket holds the layer's verified bytes" wait_until 30 in_bucket "$big_layer"
check "multipart: the fault proxy reset one upload" \
  test "$(e2e_s3_fault_status | jq -r '.faults.reset_upload // 0')" = 1
check "multipart: the layer went up in parts (uploadId, partNumber)" \
  grep -qE "PUT [^ ]*${big_layer#sha256:}[?].*partNumber=" <(proxy_log)
check "multipart: never as one PUT" \
  fails grep -qE "PUT [^ ]*${big_layer#sha256:} " <(proxy_log)
check "multipart: upstream served the layer once" test "$(quay_gets "$big_layer")" = 1
retries=$(metric 'pullthrough_s3_retries_total{operation="upload_part"}')
check "multipart: the reset part was retried ($retries)" test "$retries" -ge 1

# --- SlowDown burst, stalled GET ------------------------------------------------------------------
retries0=$(metric 'pullthrough_s3_retries_total{operation="get"}')
check "slowdown: 3 SlowDowns armed for blob GETs" e2e_s3_fault slowdown 3 GET match /blobs/
check "slowdown: skopeo copies small:v1 through a SlowDown burst" timed "skopeo copy (SlowDown)" \
  copy quay.io/e2e/small:v1 "$pulled/small"
check "slowdown: skopeo got the right manifest" same_manifest "$pulled/small" "$small"
check "slowdown: the proxy sent 3 SlowDowns" \
  test "$(e2e_s3_fault_status | jq -r '.faults.slowdown // 0')" = 3
retries1=$(metric 'pullthrough_s3_retries_total{operation="get"}')
check "slowdown: the 3 were retried ($retries0 -> $retries1)" test "$retries1" = "$((retries0 + 3))"
check "slowdown: no blob was fetched upstream again" each_is quay_gets 1 "${small_blobs[@]}"

check "stall: one stalled blob GET armed" e2e_s3_fault stall_get 1 match /blobs/
t0=$(e2e_now)
check "stall: skopeo copies small:v1 though a GET stalls" timed "skopeo copy (stalled GET)" \
  copy quay.io/e2e/small:v1 "$pulled/small"
took=$(e2e_since "$t0")
check "stall: the proxy stalled one GET" \
  test "$(e2e_s3_fault_status | jq -r '.faults.stall_get // 0')" = 1
check "stall: the copy took the timeout and not much more (${took}s; timeout ${s3_timeout}s)" \
  awk -v t="$took" -v b="$((s3_timeout + 8))" 'BEGIN { exit !(t >= 2 && t < b) }'
check "stall: no blob was fetched upstream again" each_is quay_gets 1 "${small_blobs[@]}"

# --- Nothing unverified ---------------------------------------------------------------------------
bad=$(e2e_digest corrupt-layer)
check "corrupt: skopeo's pull of corrupt:v1 fails" fails copy quay.io/e2e/corrupt:v1 "$pulled/corrupt"
check "corrupt: the appliance logged the mismatch" grep -q "hash to .*: discarded" <(pt_log)
check "corrupt: the bad blob is not in the bucket" fails e2e_s3_exists "cache/blobs/sha256/${bad#sha256:}"
n=$(bucket_verified)
check "every object under cache/blobs/ hashes to its name (${n:-?} objects)" test "${n:-0}" -ge 10

# --- Restart with an empty spool ------------------------------------------------------------------
gets_before=$(upstream_gets quay.io /blobs/)
restart_empty_spool() {
  stop_pt && rm -rf "$E2E_WORK/pt/spool" && start_healthy
}
check "restart with the spool removed" restart_empty_spool
snapshot "${small_blobs[@]}"
check "after restart: skopeo copies small:v1" timed "skopeo copy after restart (S3)" \
  copy quay.io/e2e/small:v1 "$pulled/small"
check "after restart: the right manifest" same_manifest "$pulled/small" "$small"
check "after restart: each blob came from the bucket, one GET each" one_more_get "${small_blobs[@]}"
e2e_docker rmi -f quay.io/e2e/small:v1 >/dev/null 2>&1
check "after restart: docker pulls small:v1" e2e_docker_pull quay.io/e2e/small:v1
e2e_podman rmi -f quay.io/e2e/multi:v1 >/dev/null 2>&1
check "after restart: podman pulls multi:v1" e2e_podman_pull quay.io/e2e/multi:v1
check "after restart: skopeo copies big:v1" copy quay.io/e2e/big:v1 "$pulled/big"
check "after restart: upstream served no blob ($gets_before GETs before)" \
  test "$(upstream_gets quay.io /blobs/)" = "$gets_before"

# --- The S3 server killed while serving -----------------------------------------------------------
# The big layer's GET: its head and 4 MiB reach the appliance, which has answered 200 and streams;
# then moto is killed. The appliance's read times out, its resumed GETs find no server: the client
# must see the transfer cut short, never a complete-looking 200.
check "killed: a stalled body armed for the big layer" \
  e2e_s3_fault stall_get_body 1 4194304 match "${big_layer#sha256:}"
big_size=$(stat -c %s "$E2E_WORK/images/big/blobs/sha256/${big_layer#sha256:}")
e2e_curl --max-time 60 -o "$E2E_WORK/killed.body" -w '%{http_code}' \
  "https://quay.io/v2/e2e/big/blobs/$big_layer" >"$E2E_WORK/killed.code" 2>/dev/null &
curl_pid=$!
wait_until 10 grep -q "fault stall_get_body" "$E2E_WORK/logs/$E2E_S3_PROXY_NAME.log"
t0=$(e2e_now)
kill -KILL "$E2E_S3_PID"
wait "$curl_pid"
curl_rc=$?
got=$(stat -c %s "$E2E_WORK/killed.body" 2>/dev/null || echo 0)
# curl: 18 a body shorter than its Content-Length, 56 a connection cut; 28 would be curl's own
# deadline, which would mean the appliance left the client waiting.
check "killed: the appliance cut the client's transfer (curl exit $curl_rc, status $(cat "$E2E_WORK/killed.code"))" \
  grep -qxE '18|56' <<<"$curl_rc"
check "killed: the client got less than the layer ($got of $big_size bytes)" test "$got" -lt "$big_size"
check "killed: DNS falls back to the real quay.io within ${fallback_bound}s" \
  answer_within "$fallback_bound" "$(e2e_addr quay.io)"
echo "killed: DNS fell back after $(e2e_since "$t0")s"
check "killed: /healthz is 503 and names the bucket's failure" \
  reason_has "$bucket"
check "pullthrough is still running" kill -0 "$(e2e_pid pullthrough)"

# Moto restarted is empty (same keys, same bucket): the index still lists the blobs. A pull finds
# each copy lost, forgets it and fetches it again.
# The restart creates moto's user, key and bucket again from the same random seed: the same key,
# as long as no other request reaches moto in between (the appliance's probes would: the fault
# proxy answers them SlowDown meanwhile).
restart_moto() {
  e2e_s3_fault slowdown 1000000 >/dev/null && e2e_start_moto "$moto_addr" 9000 "$bucket" &&
    e2e_s3_fault pass >/dev/null
}
check "moto restarted (empty bucket)" restart_moto
check "restarted: the cache is healthy again" wait_until 15 test_answer "$pt_addr"
gets_before=$(quay_gets "${small_layers[0]}")
check "restarted: skopeo copies small:v1 (the bucket lost it)" copy quay.io/e2e/small:v1 "$pulled/small"
check "restarted: the right manifest" same_manifest "$pulled/small" "$small"
check "restarted: the lost layer was fetched upstream again" \
  test "$(quay_gets "${small_layers[0]}")" = "$((gets_before + 1))"
check "restarted: and is in the bucket again" in_bucket "${small_layers[0]}"
check "restarted: the appliance said it forgot the lost copy" grep -q "missing from the store: fetching it again" <(pt_log)

# --- Wrong credentials, missing bucket ------------------------------------------------------------
printf 'wrong-secret-key' >"$E2E_WORK/wrong.secret"
chmod 600 "$E2E_WORK/wrong.secret"
check "wrong credentials: restarted with a wrong secret key" \
  rewrite "$E2E_S3_PROXY_ENDPOINT" "$bucket" "$E2E_WORK/wrong.secret"
check "wrong credentials: started" start_pt
check "wrong credentials: /healthz 503 names SignatureDoesNotMatch" \
  wait_until 15 reason_has SignatureDoesNotMatch
check "wrong credentials: DNS answers the real quay.io" answer_within 5 "$(e2e_addr quay.io)"
sleep 4  # four more probes, all failing
said=$(pt_log | grep -c SignatureDoesNotMatch)
check "wrong credentials: the log names the cause once, not every second ($said lines)" \
  test "$said" = 1
check "wrong credentials: the secret is not in the log" fails grep -q wrong-secret-key <(pt_log)

check "missing bucket: restarted with bucket pt-missing" \
  rewrite "$E2E_S3_PROXY_ENDPOINT" pt-missing "$good_secret"
check "missing bucket: started" start_pt
check "missing bucket: /healthz 503 names NoSuchBucket" wait_until 15 reason_has NoSuchBucket
check "missing bucket: DNS answers the real quay.io" answer_within 5 "$(e2e_addr quay.io)"

# --- s3rver, with a hot tier -----------------------------------------------------------------------
check "s3rver: stopped the appliance" stop_pt
setup "s3rver" e2e_start_s3rver 127.0.3.23 9000 pt-s3rver
write_config "$E2E_WORK/pt.yaml" "$E2E_S3_ENDPOINT" pt-s3rver "$E2E_S3_SECRET_FILE" 64MiB
# A new state directory: the index of the moto runs does not describe this bucket.
sed -i "s|^state_dir: .*|state_dir: $E2E_WORK/pt-s3rver|" "$E2E_WORK/pt.yaml"
check "s3rver: the appliance starts healthy" start_healthy
e2e_client_trust "$E2E_WORK/pt-s3rver/ca/ca.crt"
check "s3rver: skopeo copies small:v1 (cold)" copy quay.io/e2e/small:v1 "$pulled/small"
check "s3rver: the right manifest" same_manifest "$pulled/small" "$small"
for d in "${small_blobs[@]}"; do
  check "s3rver: the bucket holds ${d:0:19} with its verified bytes" in_bucket "$d"
done
gets_ok=$(s3_get_ok)
check "s3rver: skopeo copies small:v1 (warm)" copy quay.io/e2e/small:v1 "$pulled/small"
check "hot tier: the warm pull made no S3 GET ($gets_ok -> $(s3_get_ok))" test "$(s3_get_ok)" = "$gets_ok"
hot=$(metric pullthrough_s3_hot_tier_blobs)
check "hot tier: holds small's blobs ($hot)" test "$hot" -ge 3

check "the appliance stops on SIGTERM: exit 0, no sanitizer report in its log" stop_pt
echo "total $(e2e_since "$t_start")s"
finish

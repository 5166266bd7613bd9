#!/usr/bin/env bash
# Image lifetime end to end (issue #15), against real peers in one network namespace:
# docker-registry upstreams for quay.io and ghcr.io with TLS from a test CA, dnsmasq as the real
# DNS, skopeo as the client, and `pullthrough cache` as the operator. Only loopback addresses.
#   - an image expires per its rule while a layer it shares with a kept image (in another
#     registry) survives; with the upstreams stopped, the kept image still pulls;
#   - `cache ls --json` and `cache du --json` match what is on disk;
#   - a pinned image, the least recently used of all, survives a size squeeze that evicts the
#     least recently used unpinned image, within seconds of the write that crossed the bound;
#   - 100 pulls racing `cache gc` (whose rule removes the image every time) never get wrong bytes;
#   - `prefetch` of one platform of an index, then the upstream stopped: the image still pulls.
# With `s3` the cache keeps its content in a bucket of Moto's S3 server (SigV4 enforced, keys
# under the prefix cache/), and every check of what is stored asks the bucket (issue #16).
#   lifecycle_test.sh PULLTHROUGH_BINARY [filesystem|s3]
# Exit 0 pass, 1 fail, 77 skip (not root, or a peer or client missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pt_bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
backend=${2:-filesystem}
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$here/../testbed/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/s3.sh
. "$here/../testbed/s3.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
if ! missing=$(e2e_have_tools); then echo "skipped: $missing"; exit 77; fi
if [ "$backend" = s3 ]; then
  e2e_s3_pythons
  if ! missing=$(e2e_have_s3_tools); then echo "skipped: $missing"; exit 77; fi
fi

t_start=$(e2e_now)
pt_addr=127.0.0.2
kib=${E2E_LAYER_KIB}

# layer FILE KIB: a file of KIB KiB of random bytes (a layer no other image has).
layer() { head -c "$(($2 * 1024))" /dev/urandom >"$1"; }
# build_images: one OCI layout with the tags the test pushes. `base` has the shared layer S;
# old = base + X, kept = base + K (so old and kept share S), pinned = one layer, fresh = two
# layers, race = one small layer.
build_images() {
  local l=$img/layout src=$E2E_WORK/tmp/src
  mkdir -p "$src" && umoci init --layout "$l" || return 1
  umoci new --image "$l:empty" &&
    umoci config --image "$l:empty" --os linux --architecture amd64 --config.cmd /bin/true || return 1
  layer "$src/s" "$kib" && umoci insert --image "$l:empty" --tag base "$src/s" /data/s.bin || return 1
  layer "$src/x" "$kib" && umoci insert --image "$l:base" --tag old "$src/x" /data/x.bin || return 1
  layer "$src/k" "$kib" && umoci insert --image "$l:base" --tag kept "$src/k" /data/k.bin || return 1
  layer "$src/p" "$kib" && umoci insert --image "$l:empty" --tag pinned "$src/p" /data/p.bin || return 1
  layer "$src/f1" "$kib" && umoci insert --image "$l:empty" --tag fresh1 "$src/f1" /data/f1.bin &&
    layer "$src/f2" "$kib" && umoci insert --image "$l:fresh1" --tag fresh "$src/f2" /data/f2.bin ||
    return 1
  layer "$src/r" 64 && umoci insert --image "$l:empty" --tag race "$src/r" /data/r.bin || return 1
  layer "$src/c" 64 && umoci insert --image "$l:empty" --tag sched "$src/c" /data/c.bin || return 1
  # warm: an index of an amd64 and an arm64 image, for prefetch.
  layer "$src/wa" "$kib" && umoci insert --image "$l:empty" --tag warm-amd64 "$src/wa" /data/wa.bin &&
    layer "$src/wb" "$kib" && umoci insert --image "$l:empty" --tag warm-arm64 "$src/wb" /data/wb.bin &&
    umoci config --image "$l:warm-arm64" --architecture arm64 || return 1
  local amd arm index d
  amd=$(e2e_oci_manifest "$l" warm-amd64) && arm=$(e2e_oci_manifest "$l" warm-arm64) || return 1
  index=$(jq -cn --argjson a "$amd" --argjson b "$arm" '{schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [($a | del(.annotations) | .platform = {architecture: "amd64", os: "linux"}),
                ($b | del(.annotations) | .platform = {architecture: "arm64", os: "linux"})]}')
  d=$(printf %s "$index" | sha256sum | cut -d' ' -f1)
  printf %s "$index" >"$l/blobs/sha256/$d"
  jq -c --arg d "sha256:$d" --argjson s "${#index}" '.manifests += [{
    mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "warm"}}]' "$l/index.json" >"$l/index.new" &&
    mv "$l/index.new" "$l/index.json" || return 1
  e2e_push "oci:$l:warm" quay.io/e2e/warm:v1 --all || return 1
  e2e_push "oci:$l:old" quay.io/e2e/old:v1 && e2e_push "oci:$l:kept" ghcr.io/e2e/kept:v1 &&
    e2e_push "oci:$l:pinned" quay.io/e2e/pinned:v1 && e2e_push "oci:$l:fresh" quay.io/e2e/fresh:v1 &&
    e2e_push "oci:$l:race" quay.io/e2e/race:v1 && e2e_push "oci:$l:sched" quay.io/e2e/sched:v1
}
# manifest_of TAG, digests TAG (manifest, config, layers), bytes DIGEST...: from the layout.
manifest_of() { e2e_oci_manifest "$img/layout" "$1" | jq -r .digest; }
digests() {
  local m
  m=$(manifest_of "$1")
  echo "$m"
  e2e_oci_blob "$img/layout" "$m" | jq -r '.config.digest, .layers[].digest'
}
bytes() {
  local d total=0
  for d in "$@"; do total=$((total + $(stat -c %s "$img/layout/blobs/sha256/${d#sha256:}"))); done
  echo "$total"
}
image_bytes() {
  local list
  mapfile -t list < <(digests "$1")
  bytes "${list[@]}"
}

setup "namespace and upstream CA" e2e_init
img=$E2E_WORK/images  # E2E_WORK exists from e2e_init on
setup "dnsmasq" e2e_start_dns
setup "registry quay.io" e2e_start_registry quay.io "$(e2e_addr quay.io)"
setup "registry ghcr.io" e2e_start_registry ghcr.io "$(e2e_addr ghcr.io)"
setup "images (layers of $kib KiB)" build_images
storage_extra=
if [ "$backend" = s3 ]; then
  setup "moto (S3, SigV4 enforced)" e2e_start_moto 127.0.3.21 9000 pt-cache
  storage_extra=", backend: s3, spool: $E2E_WORK/pt/spool, s3: {endpoint: $E2E_S3_ENDPOINT,
  region: $E2E_S3_REGION, bucket: $E2E_S3_BUCKET, prefix: cache/,
  access_key_file: $E2E_S3_KEY_FILE, secret_key_file: $E2E_S3_SECRET_FILE}"
fi

shared=$(e2e_oci_blob "$img/layout" "$(manifest_of base)" | jq -r '.layers[0].digest')
old_layer=$(e2e_oci_blob "$img/layout" "$(manifest_of old)" | jq -r '.layers[1].digest')
kept_layer=$(e2e_oci_blob "$img/layout" "$(manifest_of kept)" | jq -r '.layers[1].digest')
old_bytes=$(image_bytes old)
kept_bytes=$(image_bytes kept)
pinned_bytes=$(image_bytes pinned)
fresh_bytes=$(image_bytes fresh)
shared_bytes=$(bytes "$shared")
# The bound: crossed by pulling `fresh` once `old` has expired (pinned + kept + fresh), not before
# (pinned + old + kept while old is cached, fresh being twice a layer); evicting `kept` alone
# brings the store under the low watermark, evicting `pinned` is never allowed.
max_size=$((pinned_bytes + kept_bytes + fresh_bytes * 3 / 4))
low_watermark=$((pinned_bytes + fresh_bytes + kept_bytes / 4))

e2e_write_config "$E2E_WORK/pt.yaml" "$pt_addr" 127.0.0.1:9090 0s 1h info
cat >>"$E2E_WORK/pt.yaml" <<YAML
storage: {max_size: $max_size, low_watermark: $low_watermark, min_free: 0$storage_extra}
retention:
  rules:
    - {match: "quay.io/e2e/old", expire_unused_after: 3s}
    - {match: "quay.io/e2e/race", expire_unused_after: 1ms}
prefetch: {interval: 1h, refs: [quay.io/e2e/sched:v1], platforms: [linux/amd64]}
YAML
start_appliance() {
  _e2e_bg pullthrough ns "$pt_bin" serve --config "$E2E_WORK/pt.yaml"
  e2e_wait_ready pullthrough _e2e_http_status 200 http://127.0.0.1:9090/healthz
}
setup "pullthrough" start_appliance
setup "clients trust only the appliance's CA" e2e_client_trust "$E2E_WORK/pt/ca/ca.crt"
setup "clients resolve through the appliance" e2e_client_dns 127.0.0.1

cache() { e2e_ns "$pt_bin" cache "$@" --config "$E2E_WORK/pt.yaml"; }
pull() { rm -rf "$E2E_WORK/pulled/$2" && mkdir -p "$E2E_WORK/pulled" && e2e_skopeo_copy "$1" "$E2E_WORK/pulled/$2"; }
# pull_arch ARCH REF DIR: as pull, choosing ARCH from an index (skopeo's global --override-arch).
pull_arch() {
  rm -rf "$E2E_WORK/pulled/$3" && mkdir -p "$E2E_WORK/pulled" && _e2e_client_env &&
    e2e_skopeo --override-arch "$1" copy --quiet --retry-times 0 "docker://$2" "oci:$E2E_WORK/pulled/$3"
}
# stored DIGEST: the store holds it; stored_bytes: what the store holds, in bytes (on disk, or
# in the bucket).
if [ "$backend" = s3 ]; then
  stored() { e2e_s3_exists "cache/blobs/sha256/${1:7}"; }
  stored_bytes() { e2e_s3_keys --sizes cache/blobs/ | awk '{ s += $2 } END { print s + 0 }'; }
else
  stored() { test -s "$E2E_WORK/pt/cache/blobs/sha256/${1:7:2}/${1:7}"; }
  stored_bytes() {
    find "$E2E_WORK/pt/cache/blobs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
  }
fi
ref_field() { jq -r --arg r "$2" ".[] | select(.ref == \$r) | .$3" <<<"$1"; }

# --- The configuration's prefetch ------------------------------------------------------------------
sched_digest=$(manifest_of sched)
sched_bytes=$(image_bytes sched)
sched_pinned() {
  cache pins --json | jq -e --arg p "quay.io/e2e/sched@$sched_digest" \
    '.[] | select(.pattern == $p and .source == "prefetch" and .expires_at != null)' >/dev/null
}
check "prefetch (configuration): sched:v1 is fetched and pinned until after its next refresh" \
  wait_until 20 sched_pinned
check "prefetch (configuration): its layer is stored" \
  stored "$(e2e_oci_blob "$img/layout" "$sched_digest" | jq -r '.layers[0].digest')"

# --- Expiry with a shared layer -------------------------------------------------------------------
check "pull quay.io/e2e/pinned:v1, then pin it" pull quay.io/e2e/pinned:v1 pinned
check "cache pin quay.io/e2e/pinned:v1" cache pin quay.io/e2e/pinned:v1
check "pull quay.io/e2e/old:v1" pull quay.io/e2e/old:v1 old
check "pull ghcr.io/e2e/kept:v1 (shares a layer with old, in another registry)" pull ghcr.io/e2e/kept:v1 kept

ls_json=$(cache ls --json)
du_json=$(cache du --json)
echo "$ls_json" | jq -c '.[] | {ref, size, unique_size, pinned}'
check "ls: four references" test "$(jq length <<<"$ls_json")" = 4
check "ls: old's size is its manifest, config and layers ($old_bytes)" \
  test "$(ref_field "$ls_json" quay.io/e2e/old:v1 size)" = "$old_bytes"
check "ls: old's unique size leaves out the shared layer" \
  test "$(ref_field "$ls_json" quay.io/e2e/old:v1 unique_size)" = "$((old_bytes - shared_bytes))"
check "ls: kept's size ($kept_bytes) and unique size" \
  test "$(ref_field "$ls_json" ghcr.io/e2e/kept:v1 size)/$(ref_field "$ls_json" ghcr.io/e2e/kept:v1 unique_size)" = \
  "$kept_bytes/$((kept_bytes - shared_bytes))"
check "ls: the pinned image is marked pinned" \
  test "$(ref_field "$ls_json" quay.io/e2e/pinned:v1 pinned)" = true
check "ls: old's rule is named" \
  test "$(ref_field "$ls_json" quay.io/e2e/old:v1 rule)" = "rule 1: quay.io/e2e/old"
all_stored() {
  local d
  for d in $(jq -r '.[].digest' <<<"$1"); do stored "$d" || return 1; done
}
check "ls: every digest listed is stored" all_stored "$ls_json"
total=$(jq .total <<<"$du_json")
check "du: total ($total) is what the store holds ($(stored_bytes))" test "$total" = "$(stored_bytes)"
check "du: total counts the shared layer once" \
  test "$total" = "$((pinned_bytes + old_bytes + kept_bytes - shared_bytes + sched_bytes))"
check "du: max_size is the configured one" test "$(jq .max_size <<<"$du_json")" = "$max_size"
check "du: pinned bytes are the pinned images' (by the CLI and by prefetch)" \
  test "$(jq .pinned <<<"$du_json")" = "$((pinned_bytes + sched_bytes))"
check "du: by registry" test "$(jq -c '.by_registry' <<<"$du_json")" = \
  "{\"ghcr.io\":$kept_bytes,\"quay.io\":$((pinned_bytes + old_bytes + sched_bytes))}"

sleep 4  # old's rule: unused for 3 s
gc_json=$(cache gc --json)
echo "$gc_json" | jq -c '.references[]'
check "gc: old expired by its rule" \
  test "$(jq -r '[.references[] | select(.cause == "expired") | .ref] | join(",")' <<<"$gc_json")" = \
  quay.io/e2e/old:v1
check "gc: old's own layer went" fails stored "$old_layer"
check "gc: the layer old shares with kept stays" stored "$shared"
check "gc: kept's own layer stays" stored "$kept_layer"
check "gc: the pinned image stays" stored "$(manifest_of pinned)"
check "after gc: du still matches the store" test "$(cache du --json | jq .total)" = "$(stored_bytes)"

setup "stop registry quay.io" e2e_stop registry-quay.io
setup "stop registry ghcr.io" e2e_stop registry-ghcr.io
check "upstreams down: kept:v1 still pulls from the cache" pull ghcr.io/e2e/kept:v1 kept
check "upstreams down: the expired old:v1 does not" fails pull quay.io/e2e/old:v1 old
setup "restart registry quay.io" e2e_start_registry quay.io "$(e2e_addr quay.io)"
setup "restart registry ghcr.io" e2e_start_registry ghcr.io "$(e2e_addr ghcr.io)"

# --- A size squeeze -------------------------------------------------------------------------------
# Last uses: pinned (oldest, pinned), kept (just pulled), then fresh, whose pull crosses max_size.
t0=$(e2e_now)
check "pull quay.io/e2e/fresh:v1 (crosses max_size $max_size)" pull quay.io/e2e/fresh:v1 fresh
kept_gone() { ! cache ls --json | jq -e '.[] | select(.ref == "ghcr.io/e2e/kept:v1")' >/dev/null; }
check "squeeze: the least recently used unpinned image (kept) is evicted within 10 s" \
  wait_until 10 kept_gone
echo "  evicted after $(e2e_since "$t0") s"
ls_json=$(cache ls --json)
check "squeeze: the pinned image, least recently used of all, survives" \
  test "$(ref_field "$ls_json" quay.io/e2e/pinned:v1 pinned)" = true
check "squeeze: the image just pulled stays" test -n "$(ref_field "$ls_json" quay.io/e2e/fresh:v1 size)"
check "squeeze: kept's layers went with it" fails stored "$kept_layer"
total=$(cache du --json | jq .total)
check "squeeze: the store ($total) is at or below the low watermark ($low_watermark)" \
  test "$total" -le "$low_watermark"
check "squeeze: du matches the store" test "$total" = "$(stored_bytes)"
metric() { e2e_ns curl -s http://127.0.0.1:9090/metrics | awk -v m="$1" '$1 == m { print $2 }'; }
check "squeeze: the eviction is counted" test "$(metric pullthrough_retention_references_evicted_total)" = 1

# --- Pulls racing collections ---------------------------------------------------------------------
race_layer=$(e2e_oci_blob "$img/layout" "$(manifest_of race)" | jq -r '.layers[0].digest')
gc_loop() { while [ ! -e "$E2E_WORK/race.done" ]; do cache gc >/dev/null 2>&1; done; }
gc_loop &
gc_pid=$!
ok=0
wrong=0
failed=0
for round in $(seq 100); do
  if out=$(pull quay.io/e2e/race:v1 race 2>&1); then
    ok=$((ok + 1))
    # skopeo checked every digest; check the layer's bytes again, as written.
    got=$(sha256sum "$E2E_WORK/pulled/race/blobs/sha256/${race_layer#sha256:}" | cut -d' ' -f1)
    [ "sha256:$got" = "$race_layer" ] || wrong=$((wrong + 1))
  elif grep -qi 'digest' <<<"$out"; then
    # skopeo refuses bytes that do not match their digest: that is a wrong answer, not a retry.
    wrong=$((wrong + 1))
    echo "  round $round: wrong bytes: $out"
  else
    failed=$((failed + 1))
    echo "  round $round: the pull failed: $out"
  fi
done
touch "$E2E_WORK/race.done"
wait "$gc_pid"
removed=$(metric pullthrough_retention_references_expired_total)
echo "  race: $ok pulls complete, $failed failed, $wrong with wrong bytes; references expired: $removed"
check "race: no pull got wrong bytes" test "$wrong" = 0
check "race: every pull completed ($ok of 100)" test "$ok" = 100
check "race: the collections removed the image again and again ($removed times)" test "${removed:-0}" -ge 10
check "race: the appliance never served unverified bytes" \
  fails grep -q 'digest mismatch\|hash to' "$E2E_WORK/logs/pullthrough.log"

# --- Prefetch --------------------------------------------------------------------------------------
warm_amd64_layer=$(e2e_oci_blob "$img/layout" "$(manifest_of warm-amd64)" | jq -r '.layers[0].digest')
warm_arm64_layer=$(e2e_oci_blob "$img/layout" "$(manifest_of warm-arm64)" | jq -r '.layers[0].digest')
prefetch_out=$E2E_WORK/prefetch.out
check "prefetch: one platform of quay.io/e2e/warm:v1 (exit 0)" \
  e2e_ns "$pt_bin" prefetch quay.io/e2e/warm:v1 --platform linux/arm64 --config "$E2E_WORK/pt.yaml" \
  >"$prefetch_out" 2>&1
cat "$prefetch_out"
check "prefetch: a line per layer as it completes" \
  grep -q "quay.io/e2e/warm:v1 ${warm_arm64_layer:0:19} .* fetched" "$prefetch_out"
check "prefetch: a summary" grep -q '^1 of 1 references prefetched' "$prefetch_out"
check "prefetch: the arm64 layer is stored" stored "$warm_arm64_layer"
check "prefetch: the amd64 layer is not (another platform)" fails stored "$warm_amd64_layer"
check "prefetch: an unknown image fails, named, exit 1" \
  fails_with 'quay.io/e2e/nothing:v1' e2e_ns "$pt_bin" prefetch quay.io/e2e/nothing:v1 \
  --config "$E2E_WORK/pt.yaml"
setup "stop registry quay.io" e2e_stop registry-quay.io
check "prefetched, upstream down: skopeo pulls warm:v1 for arm64 from the cache" \
  pull_arch arm64 quay.io/e2e/warm:v1 warm

stop_appliance() {
  local pid
  pid=$(e2e_pid pullthrough) || { e2e_err "pullthrough is not running"; return 1; }
  kill -TERM "$pid"
  e2e_exited pullthrough 15
}
check "the appliance stops on SIGTERM: exit 0, no sanitizer report in its log" stop_appliance
echo "total $(e2e_since "$t_start")s"
finish

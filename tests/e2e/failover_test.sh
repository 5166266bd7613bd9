#!/usr/bin/env bash
# Health-gated rewriting end to end: for each fault, a pull made after the fault succeeds, and the
# upstream access log, the appliance's /metrics and /healthz and the DNS answers show which path
# served it (the cache, or the real registry directly). Same test bed as proxy_test.sh (one network
# namespace on loopback only: docker-registry upstreams, dnsmasq as the real DNS, skopeo, podman,
# ctr and docker as clients resolving through the appliance). Clients trust the appliance's CA AND
# the upstream CA, because after a failover they talk to the real registries.
#   1. the proxy process of a split deployment (--role dns + --role proxy) is killed (SIGKILL)
#   2. the split proxy stops answering but keeps its port (SIGSTOP, then SIGCONT)
#   2b. the split proxy is stopped on purpose (SIGTERM): its handover takes it out of DNS answers
#      at the next check while it still serves, then it exits
#   3. the cache's store becomes unwritable (--role all from here on)
#   4. the cache's store is full (free space below storage.min_free)
#   5. the appliance restarts (SIGTERM and start): its DNS forwards during the handover, the gate is
#      closed at start, then warm pulls from the cache
#   6. the upstream registry is down: the gate stays open, warm pulls still work, also after a restart
# Sections 1 to 4 measure the failover (fault -> the DNS answers the real registry) and the
# recovery (fault gone -> the DNS answers the cache again) with the DEFAULT health settings.
#   failover_test.sh PULLTHROUGH_BINARY
# Exit 0 pass, 1 fail, 77 skip (not root, or a peer, client or tool missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pt_bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$here/../testbed/lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
if ! missing=$(e2e_have_tools); then echo "skipped: $missing"; exit 77; fi
for t in promtool chattr fallocate mount stat; do
  command -v "$t" >/dev/null 2>&1 || { echo "skipped: missing: $t"; exit 77; }
done

t_start=$(e2e_now)
section() { echo "== $* ($(e2e_since "$t_start")s)"; }

# The appliance: DNS on 127.0.0.1, the cache on 127.0.0.2 (the address it hands out), dnsmasq
# (127.0.0.53) as its real resolver. The split roles share one state_dir (so one CA, which the dns
# role then verifies the proxy's certificate with); --role all keeps its store on a small tmpfs.
pt_addr=127.0.0.2
dns_admin=127.0.0.1:9090   # --role dns and --role all
proxy_admin=127.0.0.2:9091 # --role proxy
ttl=2                      # manifest_ttl: tags expire quickly, so stale-if-error shows
min_free=16MiB
# The health settings are the defaults (the configurations below have no health section).
interval=1 fall=2 rise=2
# Bounds: the design's worst case plus a margin. The health checks start on a fixed beat, one
# every interval, and a host moves after `fall` (or `rise`) results in a row
# (health/monitor.cpp).
#   failover: interval x fall + timeout = 2 + 1 = 3 s. The fault comes just after a check passed;
#     the checks of the next `fall` beats fail, the last one only when its timeout ends (a cache
#     that hangs). A refused connection fails at once, a store fault shows within the storage
#     check's beat (half an interval): both are quicker.
#   recovery: interval x rise + 1 s = 3 s: the `rise` passed checks, after up to one interval for
#     the first beat (or a timeout, or the storage check's half-interval beat).
#   after SIGTERM: interval + timeout = 2 s: the next check hears the cache is leaving.
# Margin, 1 s, for what the figures add to the design: each is the end of the first dig poll that
# sees the new answer; polls run every 50 ms and one (ip netns exec + dig) takes 0.05 to 0.3 s on
# a loaded 2-core machine, so up to 0.35 s; the other 0.65 s cover the appliance's timers and
# threads running late under ASan while clients pull on the same two cores.
margin=1
fail_bound=$(awk -v i="$interval" -v n="$fall" -v m="$margin" 'BEGIN { print i * n + 1 + m }')
leave_bound=$(awk -v i="$interval" -v m="$margin" 'BEGIN { print i + 1 + m }')
rec_bound=$(awk -v i="$interval" -v n="$rise" -v m="$margin" 'BEGIN { print i * n + 1 + m }')
# proxy.handover of the split proxy and of --role all (s): the handover must outlast the failover
# after SIGTERM (leave_bound, 3 s) and the checks made while the cache still serves (a /healthz,
# a manifest and a blob from the cache: each a curl of well under a second): 3 + 5 = 8 s.
handover=8
# How long a stopped appliance may take to exit: the rest of its handover, the drain deadline
# (10 s), and 5 s for the exit itself under ASan (LeakSanitizer's scan) on a loaded machine.
exit_wait=$((handover + 10 + 5))

# write_config FILE ADMIN_LISTEN HANDOVER [STORAGE_PATH]
write_config() {
  e2e_write_config "$1" "$pt_addr" "$2" "$3" "${ttl}s" info
  if [ -n "${4:-}" ]; then printf 'storage: {path: "%s", min_free: %s}\n' "$4" "$min_free" >>"$1"; fi
}

# start_pt NAME ROLE CONFIG: starts the appliance in the background as peer NAME.
start_pt() { _e2e_bg "$1" ns "$pt_bin" serve --config "$3" --role "$2"; }
# stop_pt NAME: SIGTERM to appliance NAME; true when it exits 0 within exit_wait (then SIGKILL).
stop_pt() {
  local pid
  pid=$(e2e_pid "$1") || { e2e_err "$1 is not running"; return 1; }
  kill -TERM "$pid"
  exited "$1"
}
# exited NAME: true when appliance NAME exits 0 within exit_wait seconds (else SIGKILL) and its
# log has no sanitizer report.
exited() { e2e_exited "$1" "$exit_wait"; }
# healthy ADMIN: true when ADMIN's /healthz answers 200.
healthy() { _e2e_http_status 200 "http://$1/healthz"; }
healthz() { e2e_ns curl -sS --max-time 5 "http://$1/healthz"; }
healthz_code() { e2e_ns curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$1/healthz"; }
# metric ADMIN SAMPLE: the value of SAMPLE (name and labels, exactly as exposed) in ADMIN's /metrics.
metric() {
  e2e_ns curl -sS --max-time 5 "http://$1/metrics" | awk -v n="$2" '$1 == n { print $2; f = 1 } END { exit !f }'
}
up_sample="pullthrough_health_cache_host_up{host=\"$pt_addr:443\"}"
# promtool_ok ADMIN: promtool accepts ADMIN's /metrics (format and naming lint).
promtool_ok() {
  local text
  text=$(e2e_ns curl -sS --max-time 5 "http://$1/metrics") && [ -n "$text" ] &&
    promtool check metrics <<<"$text"
}
num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
# grew A B N: A and B are numbers and B - A >= N.
grew() { num "$1" && num "$2" && awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { exit !(b - a >= n) }'; }
same() { num "$1" && num "$2" && [ "$1" = "$2" ]; }
# below T BOUND: T is a number not above BOUND.
below() { num "$1" && awk -v t="$1" -v b="$2" 'BEGIN { exit !(t <= b) }'; }

# resolve: what the appliance answers for quay.io (fails when it does not answer).
resolve() { e2e_ns dig +short +time=1 +tries=1 @127.0.0.1 quay.io A 2>/dev/null; }
# answer_after T0 ADDR: polls resolve every 50 ms until the answer is exactly ADDR, then prints the
# seconds since T0 (from e2e_now); fails after 15 s.
answer_after() {
  local deadline=$((SECONDS + 15))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if [ "$(resolve)" = "$2" ]; then e2e_since "$1"; return 0; fi
    sleep 0.05
  done
  return 1
}
quay_addr=$(e2e_addr quay.io)

# Measured figures: took[KEY/failover|recovery], printed as a table at the end.
declare -A took=() what=()
keys=()
# measure KEY KIND T0 ADDR [BOUND]: waits until quay.io resolves to ADDR, records the seconds since
# T0 as KEY's KIND (failover: the fault; recovery: the fault gone) and checks them against BOUND
# (default: the bound of the kind).
measure() {
  local s bound=$fail_bound
  [ "$2" = recovery ] && bound=$rec_bound
  bound=${5:-$bound}
  s=$(answer_after "$3" "$4") || s=timeout
  took[$1/$2]=$s
  check "${what[$1]}: $2 to $4 within $bound s (took $s s)" below "$s" "$bound"
}
# report KEY: prints KEY's figures.
report() { echo "  failover (${what[$1]}): ${took[$1/failover]:--} s; recovery: ${took[$1/recovery]:--} s"; }

# fault KEY DESCRIPTION: starts the section of measured figures KEY.
fault() {
  key=$1
  what[$1]=$2
  keys+=("$1")
}

# upstream_gets REGISTRY PATH_RE [UA_RE]: how many GETs of a path matching PATH_RE with a User-Agent
# matching UA_RE (default any) the registry's access log shows so far.
upstream_gets() {
  awk -F'"' -v p="$2" -v ua="${3:-}" '$2 ~ ("^GET " p) && $6 ~ ua { n++ } END { print n + 0 }' \
    "$E2E_WORK/logs/registry-$1.log"
}
# The User-Agents in the upstream's access log: the appliance's own upstream client, and each client.
ua_pt='^pullthrough$'
ua_skopeo='^skopeo/'
ua_podman='^containers/.*github.com/containers/image'
ua_ctr='^containerd/'
ua_docker='^docker/'
# blobs_served ADMIN: blob requests the cache answered so far (hits and misses).
blobs_served() {
  local h m
  h=$(metric "$1" pullthrough_proxy_blob_hits_total) && m=$(metric "$1" pullthrough_proxy_blob_misses_total) &&
    echo $((h + m))
}

# direct_pull LABEL REPO UA CACHE_ADMIN CMD...: runs the pull CMD and checks it went to the real
# registry: upstream served REPO's blobs (config and two layers at least) to the client itself
# (User-Agent UA), the appliance fetched none of them, and the cache (its admin CACHE_ADMIN, "-"
# when it is dead) served no blob. The dns role forwarded the client's lookups.
direct_pull() {
  local label=$1 repo=$2 ua=$3 admin=$4 c0 c1 p0 p1 s0=- s1=- f0 f1
  shift 4
  c0=$(upstream_gets quay.io "/v2/$repo/blobs/" "$ua")
  p0=$(upstream_gets quay.io "/v2/$repo/blobs/" "$ua_pt")
  f0=$(metric "$dns_admin" pullthrough_dns_intercepted_forwarded_total)
  [ "$admin" = - ] || s0=$(blobs_served "$admin")
  check "$label: the pull succeeds" timed "$label" "$@"
  c1=$(upstream_gets quay.io "/v2/$repo/blobs/" "$ua")
  p1=$(upstream_gets quay.io "/v2/$repo/blobs/" "$ua_pt")
  f1=$(metric "$dns_admin" pullthrough_dns_intercepted_forwarded_total)
  check "$label: upstream served $repo's blobs to the client itself ($((c1 - c0)) GETs, User-Agent $ua)" \
    test "$((c1 - c0))" -ge 3
  check "$label: the appliance fetched none of them upstream ($p0 -> $p1)" test "$p1" = "$p0"
  check "$label: the appliance forwarded quay.io lookups ($f0 -> $f1)" grew "$f0" "$f1" 1
  if [ "$admin" != - ]; then
    s1=$(blobs_served "$admin")
    check "$label: the cache served no blob ($s0 -> $s1)" same "$s0" "$s1"
  fi
  echo "            path: upstream direct ($((c1 - c0)) blob GETs by the client, $((p1 - p0)) by the appliance)"
}

# cached_pull LABEL REPO CACHE_ADMIN CMD...: runs the pull CMD and checks the cache served it: its
# blob hits grew by 3 at least (config and two layers), no blob of REPO left upstream for anyone,
# and the appliance answered quay.io lookups with its own address.
cached_pull() {
  local label=$1 repo=$2 admin=$3 h0 h1 g0 g1 r0 r1
  shift 3
  h0=$(metric "$admin" pullthrough_proxy_blob_hits_total)
  g0=$(upstream_gets quay.io "/v2/$repo/blobs/")
  r0=$(metric "$dns_admin" pullthrough_dns_rewritten_total)
  check "$label: the pull succeeds" timed "$label" "$@"
  h1=$(metric "$admin" pullthrough_proxy_blob_hits_total)
  g1=$(upstream_gets quay.io "/v2/$repo/blobs/")
  r1=$(metric "$dns_admin" pullthrough_dns_rewritten_total)
  check "$label: the cache served the blobs (blob hits $h0 -> $h1)" grew "$h0" "$h1" 3
  check "$label: no blob of $repo was fetched upstream ($g0 -> $g1)" test "$g1" = "$g0"
  check "$label: the appliance rewrote quay.io lookups ($r0 -> $r1)" grew "$r0" "$r1" 1
  echo "            path: cache (blob hits $h0 -> $h1, $((g1 - g0)) blob GETs upstream)"
}

# Client pulls that start from nothing local, so every blob is fetched.
pulls=0
oci_digest() { jq -r '.manifests[0].digest' "$1/index.json"; }
# skopeo_pull REF [DIGEST]: skopeo copy into a new OCI layout under $oci; checks the manifest when DIGEST is given.
skopeo_pull() {
  pulls=$((pulls + 1))
  e2e_skopeo_copy "$1" "$oci/$pulls:x" || return 1
  [ -z "${2:-}" ] || [ "$(oci_digest "$oci/$pulls")" = "$2" ] ||
    e2e_err "skopeo got $(oci_digest "$oci/$pulls") for $1, not $2"
}
podman_pull() { e2e_podman rmi -f "$1" >/dev/null 2>&1; e2e_podman_pull "$1" >/dev/null; }
ctr_pull() { e2e_ctr images rm --sync "$1" >/dev/null 2>&1; e2e_ctr_pull "$1"; }
docker_pull() { e2e_docker rmi -f "$1" >/dev/null 2>&1; e2e_docker_pull "$1" >/dev/null; }

# log_mark NAME: the number of lines in peer NAME's log; log_after NAME MARK: the lines after it.
log_mark() { wc -l <"$E2E_WORK/logs/$1.log"; }
log_after() { tail -n "+$(($2 + 1))" "$E2E_WORK/logs/$1.log"; }
# ready_at NAME MARK: when peer NAME logged "ready" after line MARK of its log (seconds since the
# epoch; the appliance logs local time to the millisecond).
ready_at() {
  local stamp
  stamp=$(log_after "$1" "$2" | awk '/\[app\] ready: / { print $1 " " $2; exit }')
  [ -n "$stamp" ] && date -d "$stamp" +%s.%N
}

setup "namespace and upstream CA" e2e_init
store=$E2E_WORK/store
oci=$E2E_WORK/pulled
mkdir -p "$oci"
setup "dnsmasq" e2e_start_dns
setup "registry quay.io (anonymous)" e2e_start_registry quay.io "$quay_addr"
setup "registry ghcr.io (token) + token service" e2e_start_registry ghcr.io "$(e2e_addr ghcr.io)" token
setup "seed images (layers of ${E2E_LAYER_KIB} KiB)" e2e_seed_images
small=$(e2e_digest small)

write_config "$E2E_WORK/split-dns.yaml" "$dns_admin" auto # (no cache: no handover)
write_config "$E2E_WORK/split-proxy.yaml" "$proxy_admin" "${handover}s"
write_config "$E2E_WORK/all.yaml" "$dns_admin" "${handover}s" "$store/cache"

# --- Split roles -----------------------------------------------------------------------------------
section "split roles: --role proxy on $pt_addr:443 (admin $proxy_admin), --role dns on 127.0.0.1:53 (admin $dns_admin)"
start_proxy() { start_pt pt-proxy proxy "$E2E_WORK/split-proxy.yaml" && e2e_wait_ready pt-proxy healthy "$proxy_admin"; }
start_dns() { start_pt pt-dns dns "$E2E_WORK/split-dns.yaml" && e2e_wait_ready pt-dns healthy "$dns_admin"; }
setup "pullthrough --role proxy (creates the CA)" start_proxy
setup "pullthrough --role dns (gate opens)" start_dns
check "split: the dns role checks with the default health settings" grep -q \
  "checking $pt_addr:443 every ${interval}s (timeout 1s; down after $fall failed checks, up after $rise passed)" \
  "$E2E_WORK/logs/pt-dns.log"
check "split: the dns role verifies the proxy's certificate (found the CA)" \
  test -s "$E2E_WORK/logs/pt-dns.log" -a -z "$(grep "no CA certificate at" "$E2E_WORK/logs/pt-dns.log")"
cat "$E2E_WORK/pt/ca/ca.crt" "$E2E_UPSTREAM_CA" >"$E2E_WORK/clients-ca.pem"
setup "clients trust the appliance's CA and the upstream CA" e2e_client_trust "$E2E_WORK/clients-ca.pem"
setup "clients resolve through the appliance" e2e_client_dns 127.0.0.1
setup "containerd" e2e_start_containerd
setup "dockerd" e2e_start_dockerd
check "split: quay.io resolves to the cache" test "$(resolve)" = "$pt_addr"
check "split: promtool accepts the dns role's /metrics" promtool_ok "$dns_admin"
check "split: promtool accepts the proxy role's /metrics" promtool_ok "$proxy_admin"
check "split: the proxy role's /healthz has no dns part" \
  test "$(healthz "$proxy_admin" | jq -r '.role + " " + (.dns == null | tostring)')" = "proxy true"
check "split: warm-up: skopeo copies small:v1 through the cache" timed "skopeo copy small:v1 (cold, fills the cache)" \
  skopeo_pull quay.io/e2e/small:v1 "$small"
check "split: warm-up: the appliance fetched small's blobs upstream" \
  test "$(upstream_gets quay.io /v2/e2e/small/blobs/ "$ua_pt")" -ge 3

# 1. The proxy process is killed.
section "1. proxy process killed (SIGKILL of --role proxy)"
fault kill "proxy killed (split)"
mark=$(log_mark pt-dns)
pid=$(e2e_pid pt-proxy)
disown "$pid" # no "Killed" notice from bash
t0=$(e2e_now)
kill -KILL "$pid"
measure "$key" failover "$t0" "$quay_addr"
check "killed: the dns role logged the cache down (connect refused)" \
  grep -q "cache $pt_addr:443 is down: connect: Connection refused" <(log_after pt-dns "$mark")
check "killed: the dns role logged that it forwards intercepted names" \
  grep -q "no healthy cache: intercepted names are forwarded to the real registries" <(log_after pt-dns "$mark")
check "killed: the dns role's /metrics: rewriting 0, cache host down" \
  test "$(metric "$dns_admin" pullthrough_dns_rewriting) $(metric "$dns_admin" "$up_sample")" = "0 0"
check "killed: the dns role's /healthz is 503" test "$(healthz_code "$dns_admin")" = 503
direct_pull "killed: skopeo copies small:v1 (direct)" e2e/small "$ua_skopeo" - skopeo_pull quay.io/e2e/small:v1 "$small"
mark=$(log_mark pt-dns)
proxy_mark=$(log_mark pt-proxy)
setup "restart pullthrough --role proxy" start_proxy
# Recovery counts from the restarted proxy's "ready" line (its /healthz answers 200 from then on).
t0=$(ready_at pt-proxy "$proxy_mark") || { echo "FAIL: setup: no ready line from the restarted proxy"; exit 1; }
measure "$key" recovery "$t0" "$pt_addr"
check "killed: the dns role logged the cache up and rewriting" grep -q \
  "rewriting intercepted names to $pt_addr" <(log_after pt-dns "$mark")
check "killed: the dns role's /metrics: rewriting 1" test "$(metric "$dns_admin" pullthrough_dns_rewriting)" = 1
cached_pull "killed: ctr pulls small:v1 (cache)" e2e/small "$proxy_admin" ctr_pull quay.io/e2e/small:v1
report "$key"

# 2. The proxy stops answering but keeps its port.
section "2. proxy stops answering (SIGSTOP of --role proxy)"
fault stop "proxy stopped (split)"
mark=$(log_mark pt-dns)
t0=$(e2e_now)
kill -STOP "$(e2e_pid pt-proxy)"
measure "$key" failover "$t0" "$quay_addr"
check "stopped: the dns role logged the cache down for a timeout" \
  grep -q "cache $pt_addr:443 is down: no answer within 1s" <(log_after pt-dns "$mark")
check "stopped: the dns role's /healthz names the timeout" \
  grep -q "no answer within" <(healthz "$dns_admin" | jq -r '.cache_hosts[0].reason')
check "stopped: the dns role's /metrics: rewriting 0" test "$(metric "$dns_admin" pullthrough_dns_rewriting)" = 0
direct_pull "stopped: podman pulls multi:v1 (direct)" e2e/multi "$ua_podman" - podman_pull quay.io/e2e/multi:v1
t0=$(e2e_now)
kill -CONT "$(e2e_pid pt-proxy)"
measure "$key" recovery "$t0" "$pt_addr"
cached_pull "stopped: docker pulls small:v1 (cache)" e2e/small "$proxy_admin" docker_pull quay.io/e2e/small:v1
report "$key"

# cache_serves_blob: a layer of small:v1 straight from the cache's address, as a client whose
# rewritten answer has not expired yet: a cache hit.
cache_serves_blob() {
  local layer hit
  layer=$(e2e_ns curl -sS --max-time 5 --cacert "$E2E_WORK/clients-ca.pem" --resolve "quay.io:443:$pt_addr" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' \
    "https://quay.io/v2/e2e/small/manifests/$small" | jq -r '.layers[0].digest')
  [[ $layer == sha256:* ]] || { e2e_err "no layer digest in small's manifest from the cache"; return 1; }
  hit=$(e2e_ns curl -sS --max-time 5 --cacert "$E2E_WORK/clients-ca.pem" --resolve "quay.io:443:$pt_addr" \
    -o /dev/null -D - "https://quay.io/v2/e2e/small/blobs/$layer" | tr -d '\r' |
    awk 'tolower($1) == "pullthrough-cache:" { print $2 }')
  [ "$hit" = hit ] || { e2e_err "layer $layer from the cache: Pullthrough-Cache '$hit', not hit"; return 1; }
}

# 2b. The proxy is stopped on purpose: the handover. Its answers to health checks say it is leaving,
# so the dns role takes it out at the next check (no fall count), while it still serves clients
# that hold its address; after proxy.handover it exits.
section "2b. planned stop of --role proxy (SIGTERM, proxy.handover ${handover}s)"
fault leave "proxy SIGTERM (split)"
mark=$(log_mark pt-dns)
proxy_mark=$(log_mark pt-proxy)
t0=$(e2e_now)
kill -TERM "$(e2e_pid pt-proxy)"
measure "$key" failover "$t0" "$quay_addr" "$leave_bound"
check "leaving: the dns role logged the cache down because it is leaving" \
  grep -q "cache $pt_addr:443 is down: the cache is leaving (shutdown)" <(log_after pt-dns "$mark")
check "leaving: the proxy role's /healthz is 503 leaving" \
  test "$(healthz_code "$proxy_admin") $(healthz "$proxy_admin" | jq -r .status)" = "503 leaving"
check "leaving: a client still holding the cache's address gets a blob from it" cache_serves_blob
check "leaving: the proxy role still runs $(e2e_since "$t0") s after SIGTERM" kill -0 "$(e2e_pid pt-proxy)"
check "leaving: the proxy role exits 0 after its handover" exited pt-proxy
took_exit=$(e2e_since "$t0")
check "leaving: it exited after the ${handover}s handover, not before ($took_exit s after SIGTERM)" \
  awk -v t="$took_exit" -v h="$handover" 'BEGIN { exit !(t >= h) }'
check "leaving: the proxy role logged the handover" \
  grep -q "handing over for ${handover}s" <(log_after pt-proxy "$proxy_mark")
report "$key"

check "split: promtool accepts the dns role's /metrics after the faults" promtool_ok "$dns_admin"
check "split: the dns role exits 0 on SIGTERM, at once (no cache, no handover)" stop_pt pt-dns

# --- One process (--role all), its store on a 64 MiB tmpfs ----------------------------------------
section "--role all, storage.path on a tmpfs, storage.min_free $min_free"
mount_store() {
  mkdir -p "$store" && mount -t tmpfs -o size=64m tmpfs "$store" || return 1
  # The unwritable store is made with chattr +i (tmpfs has it since Linux 6.0); see section 3.
  mkdir "$store/probe" && chattr +i "$store/probe" && chattr -i "$store/probe" && rmdir "$store/probe"
}
# (e2e_cleanup unmounts everything under the work directory, this tmpfs included.)
setup "tmpfs for the store" mount_store
start_all() { start_pt pt-all all "$E2E_WORK/all.yaml" && e2e_wait_ready pt-all healthy "$dns_admin"; }
setup "pullthrough --role all" start_all
check "all: quay.io resolves to the cache" test "$(resolve)" = "$pt_addr"
check "all: promtool accepts /metrics" promtool_ok "$dns_admin"
check "all: warm-up: skopeo copies small:v1 through the cache" timed "skopeo copy small:v1 (cold)" \
  skopeo_pull quay.io/e2e/small:v1 "$small"
check "all: warm-up: skopeo copies multi:v1 through the cache" timed "skopeo copy multi:v1 (cold)" \
  skopeo_pull quay.io/e2e/multi:v1
check "all: the store holds the blobs" test "$(metric "$dns_admin" pullthrough_proxy_blob_fetches_stored_total)" -ge 6

# 3. The store becomes unwritable. `mount -o remount,ro` cannot do it: the kernel refuses (EBUSY)
# while the appliance holds its metadata database in storage.path open for writing, and a
# kernel-forced read-only file system (ext4 errors=remount-ro) cannot go back to read-write
# without an unmount. An immutable directory fails every file creation in it (EPERM, root
# included), as a read-only store would (EROFS), and can be undone: chattr +i on the probe's and
# the blobs' directories.
section "3. storage unwritable (chattr +i on storage.path/tmp and blobs)"
fault ro "storage unwritable"
mark=$(log_mark pt-all)
t0=$(e2e_now)
chattr +i "$store/cache/tmp" "$store/cache/blobs/sha256"
measure "$key" failover "$t0" "$quay_addr"
check "unwritable: /healthz is 503 with storage unwritable" \
  test "$(healthz_code "$dns_admin") $(healthz "$dns_admin" | jq -r '.storage.state')" = "503 unwritable"
check "unwritable: the cache host is down for its storage" \
  grep -q "reports its storage unwritable" <(healthz "$dns_admin" | jq -r '.cache_hosts[0].reason')
check "unwritable: the storage check logged it" grep -q "storage unhealthy (unwritable)" <(log_after pt-all "$mark")
check "unwritable: the health check logged the cache down for it" \
  grep -q "cache $pt_addr:443 is down: the cache reports its storage unwritable" <(log_after pt-all "$mark")
check "unwritable: /metrics: storage_healthy 0, rewriting 0" test \
  "$(metric "$dns_admin" pullthrough_storage_healthy) $(metric "$dns_admin" pullthrough_dns_rewriting)" = "0 0"
direct_pull "unwritable: ctr pulls multi:v1 (direct)" e2e/multi "$ua_ctr" "$dns_admin" ctr_pull quay.io/e2e/multi:v1
t0=$(e2e_now)
chattr -i "$store/cache/tmp" "$store/cache/blobs/sha256"
measure "$key" recovery "$t0" "$pt_addr"
check "unwritable: logged healthy again" grep -q "storage healthy again" <(log_after pt-all "$mark")
cached_pull "unwritable: podman pulls small:v1 (cache)" e2e/small "$dns_admin" podman_pull quay.io/e2e/small:v1
report "$key"

# 4. The store is full: a filler leaves 8 MiB free, below storage.min_free.
section "4. storage full (free space below storage.min_free)"
fault full "storage full"
free=$(stat -f -c '%a * %S' "$store" | awk '{ print $1 * $3 }')
mark=$(log_mark pt-all)
t0=$(e2e_now)
fallocate -l "$((free - 8 * 1024 * 1024))" "$store/filler"
measure "$key" failover "$t0" "$quay_addr"
check "full: /healthz is 503 with storage full" \
  test "$(healthz_code "$dns_admin") $(healthz "$dns_admin" | jq -r '.storage.state')" = "503 full"
check "full: the reason names storage.min_free" \
  grep -q "below storage.min_free" <(healthz "$dns_admin" | jq -r '.storage.reason')
check "full: the storage check logged it" grep -q "storage unhealthy (full)" <(log_after pt-all "$mark")
check "full: the health check logged the cache down for it" \
  grep -q "cache $pt_addr:443 is down: the cache reports its storage full" <(log_after pt-all "$mark")
check "full: /metrics: storage_healthy 0, rewriting 0" test \
  "$(metric "$dns_admin" pullthrough_storage_healthy) $(metric "$dns_admin" pullthrough_dns_rewriting)" = "0 0"
direct_pull "full: docker pulls multi:v1 (direct)" e2e/multi "$ua_docker" "$dns_admin" docker_pull quay.io/e2e/multi:v1
t0=$(e2e_now)
rm -f "$store/filler"
measure "$key" recovery "$t0" "$pt_addr"
cached_pull "full: skopeo copies multi:v1 (cache)" e2e/multi "$dns_admin" skopeo_pull quay.io/e2e/multi:v1 \
  "$(e2e_digest multi-amd64)"
report "$key"

# restart_all KEY: SIGTERM, the handover (measured as KEY's failover) and the exit, then start
# again; the first answer of the new process must be the real registry's (every host starts down),
# /healthz 503 then; measures the time from that first answer to the rewrite (rise x interval).
restart_all() {
  local key=$1 first="" t0 deadline pid s
  # The handover: the process's own DNS forwards quay.io at the next check, while it runs on.
  pid=$(e2e_pid pt-all)
  t0=$(e2e_now)
  kill -TERM "$pid"
  s=$(answer_after "$t0" "$quay_addr") || s=timeout
  took[$key/failover]=$s
  check "${what[$key]}: after SIGTERM quay.io resolves to the real registry within $leave_bound s (took $s s)" \
    below "$s" "$leave_bound"
  check "${what[$key]}: ... while the appliance hands over (still running)" kill -0 "$pid"
  check "${what[$key]}: the appliance exits 0 after its handover" exited pt-all
  restart_mark=$(log_mark pt-all)
  start_pt pt-all all "$E2E_WORK/all.yaml"
  deadline=$((SECONDS + E2E_START_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ] && e2e_pid pt-all >/dev/null; do
    first=$(resolve) && [ -n "$first" ] && [[ $first != *";;"* ]] && break
    first=""
    sleep 0.05
  done
  t0=$(e2e_now)
  check "${what[$key]}: right after the start quay.io resolves to the real registry (got '$first')" \
    test "$first" = "$quay_addr"
  check "${what[$key]}: right after the start /healthz is 503" test "$(healthz_code "$dns_admin")" = 503
  measure "$key" recovery "$t0" "$pt_addr"
}
ca_fingerprint() { openssl x509 -in "$E2E_WORK/pt/ca/ca.crt" -noout -fingerprint -sha256; }
# appliance_ca_only: GET https://quay.io/v2/ trusting only the appliance's CA file.
appliance_ca_only() {
  [ "$(e2e_ns curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --cacert "$E2E_WORK/pt/ca/ca.crt" \
    https://quay.io/v2/)" = 200 ]
}

# 5. The appliance restarts.
section "5. appliance restarts (SIGTERM, start)"
fault restart "restart"
fp_before=$(ca_fingerprint)
restart_all "$key"
check "restart: the CA is unchanged ($fp_before)" test "$(ca_fingerprint)" = "$fp_before"
check "restart: the certificate served chains to that CA" appliance_ca_only
check "restart: the CA was loaded, not generated" grep -q "CA loaded" <(log_after pt-all "$restart_mark")
cached_pull "restart: skopeo copies small:v1 (cache)" e2e/small "$dns_admin" skopeo_pull quay.io/e2e/small:v1 "$small"
report "$key"

# 6. The upstream registry is down: the cache stays healthy, so the gate stays open.
section "6. upstream registry down (quay.io stopped)"
setup "stop registry quay.io" e2e_stop registry-quay.io
samples=0 open=0
end=$((SECONDS + 4 * interval))
while [ "$SECONDS" -lt "$end" ]; do
  samples=$((samples + 1))
  [ "$(resolve) $(metric "$dns_admin" pullthrough_dns_rewriting)" = "$pt_addr 1" ] && open=$((open + 1))
  sleep 0.2
done
check "upstream down: the gate stayed open for 4 health intervals ($open of $samples samples)" \
  test "$open" = "$samples"
check "upstream down: /healthz 200, cache host up" test \
  "$(healthz_code "$dns_admin") $(healthz "$dns_admin" | jq -r '.cache_hosts[0].state')" = "200 up"
stale0=$(metric "$dns_admin" pullthrough_proxy_stale_tags_served_total)
cached_pull "upstream down: podman pulls multi:v1 (cache)" e2e/multi "$dns_admin" podman_pull quay.io/e2e/multi:v1
cached_pull "upstream down: docker pulls small:v1 (cache)" e2e/small "$dns_admin" docker_pull quay.io/e2e/small:v1
check "upstream down: stale tags served ($stale0 -> $(metric "$dns_admin" pullthrough_proxy_stale_tags_served_total))" \
  grew "$stale0" "$(metric "$dns_admin" pullthrough_proxy_stale_tags_served_total)" 2

# ... and after a restart: tags and blobs persist.
fault restart-down "restart, upstream down"
restart_all "$key"
cached_pull "restart, upstream down: skopeo copies small:v1 by tag (cache)" e2e/small "$dns_admin" \
  skopeo_pull quay.io/e2e/small:v1 "$small"
cached_pull "restart, upstream down: ctr pulls multi:v1 by tag (cache)" e2e/multi "$dns_admin" \
  ctr_pull quay.io/e2e/multi:v1
check "restart, upstream down: the tags were served stale from the persisted mappings" \
  grew 0 "$(metric "$dns_admin" pullthrough_proxy_stale_tags_served_total)" 2
report "$key"
check "all: promtool accepts /metrics after the faults" promtool_ok "$dns_admin"
check "all: the appliance exits 0 on SIGTERM" stop_pt pt-all

check "no crash or sanitizer report in the appliance's logs" \
  fails grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$E2E_WORK"/logs/pt-*.log

echo "measured with interval ${interval}s, timeout 1s, fall $fall, rise $rise (bounds: failover $fail_bound s, after SIGTERM $leave_bound s, recovery $rec_bound s, each with a $margin s margin):"
printf '  %-26s %10s %10s\n' fault failover recovery
for key in "${keys[@]}"; do
  printf '  %-26s %10s %10s\n' "${what[$key]}" "${took[$key/failover]:--}" "${took[$key/recovery]:--}"
done
echo "total $(e2e_since "$t_start")s"
finish

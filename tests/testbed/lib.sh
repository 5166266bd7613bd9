# shellcheck shell=bash
# End-to-end test bed for pullthrough: real upstream registries (Debian's docker-registry), real
# token services (nginx serving a static RS256 JWT, or telling users apart by their credentials),
# real DNS (dnsmasq) and real clients (skopeo, podman, ctr, docker), all in ONE private network
# namespace that only uses 127.0.0.0/8.
# Shared by the end-to-end tests (tests/e2e/) and the benchmarks (scripts/bench-proxy,
# scripts/bench-dns). Source it from bash (set -u safe, does not set -e), then call e2e_init.
# Needs root.
#
# State for the tests (set by e2e_init and the start functions):
#   E2E_NS            the namespace (pt-e2e-PID); /etc/netns/$E2E_NS/{resolv.conf,hosts} is its /etc view
#   E2E_WORK          the work directory (removed by e2e_cleanup unless E2E_KEEP=1)
#   E2E_UPSTREAM_CA   the CA of the upstream registries and token service ($E2E_WORK/upstream-ca.pem)
#   E2E_CLIENT_CA     the only bundle clients trust (see e2e_client_trust); starts as E2E_UPSTREAM_CA
#   E2E_CLIENT_DNS    the resolver clients use (see e2e_client_dns); starts as E2E_DNS_ADDR
#   $E2E_WORK/NAME.digest  digests recorded by e2e_seed_images (read them with e2e_digest NAME)
#
# How clients see changes (checked on Debian 12: docker.io 20.10, containerd 1.6, podman 4.3):
#   - Trust: skopeo, podman and ctr are per-command (containerd 1.6's `ctr images pull` resolves and
#     fetches in the ctr process, not in containerd), so e2e_client_trust applies to the next command.
#     dockerd does NOT verify certificates here at all: it hard-codes 127.0.0.0/8 as an insecure
#     registry range (registry/config.go, no flag removes it), so for any registry name resolving into
#     127/8 it skips verification and would even fall back to plain http://NAME:80. Prove CA handling
#     with skopeo/podman/ctr; docker pulls prove protocol compatibility only.
#   - DNS: /etc/netns/$E2E_NS/resolv.conf is rewritten in place (same inode), so the bind mounts of
#     `ip netns exec` and e2e_ns_daemon show the new text at once; but Go's resolver in a running
#     dockerd re-reads it only every 5 s (measured), so e2e_client_dns restarts a running dockerd.

# The resolver every client in the namespace uses until e2e_client_dns says otherwise.
E2E_DNS_ADDR=${E2E_DNS_ADDR:-127.0.0.53}
# Upstream names dnsmasq answers (A only) and the loopback address of the peer behind each: NAME=ADDR.
# Append entries after sourcing and before e2e_start_dns, or later with e2e_dns_set.
E2E_UPSTREAMS=(
  quay.io=127.0.1.10      # anonymous registry
  ghcr.io=127.0.1.12      # token-auth registry
  auth.ghcr.io=127.0.1.13 # its token service (realm https://auth.ghcr.io/token)
  gcr.io=127.0.1.14       # user-aware registry behind nginx, realm on its own host (e2e_start_registry_own_realm)
)
# Repositories the static JWT grants pull and push on (the token registry checks every scope).
E2E_TOKEN_REPOS=(e2e/private e2e/small e2e/multi e2e/corrupt e2e/pushed e2e/scratch)
# The user-aware registries (e2e_start_registry NAME ADDR users, e2e_start_registry_own_realm): a
# client without credentials gets a token for pull on E2E_PUBLIC_REPOS only; user E2E_USER with
# password E2E_PASSWORD gets pull and push on E2E_PUBLIC_REPOS and E2E_PRIVATE_REPOS; any other
# credentials get 401. The registry checks every scope against the token's claims.
E2E_PUBLIC_REPOS=(e2e/public)
E2E_PRIVATE_REPOS=(e2e/private e2e/private-docker e2e/pushed-docker e2e/pushed-podman
  e2e/pushed-skopeo e2e/pushed-down e2e/pushed-denied e2e/bench)
E2E_USER=${E2E_USER:-tester}
E2E_PASSWORD=${E2E_PASSWORD:-pt-e2e-Tester-7f3c}
export E2E_USER E2E_PASSWORD
# Size of each random layer of the seeded images, in KiB.
E2E_LAYER_KIB=${E2E_LAYER_KIB:-2048}
# Poll timeout for a peer to come up, in seconds.
E2E_START_TIMEOUT=${E2E_START_TIMEOUT:-30}
# Snapshotter for ctr pulls (native needs no overlay mounts).
E2E_CTR_SNAPSHOTTER=${E2E_CTR_SNAPSHOTTER:-native}
E2E_NS=${E2E_NS:-}
E2E_WORK=${E2E_WORK:-}

# e2e_err MESSAGE...: prints "e2e: MESSAGE" on stderr and returns 1.
e2e_err() {
  echo "e2e: $*" >&2
  return 1
}

# e2e_log MESSAGE...: prints a progress line on stderr.
e2e_log() { echo "e2e: $*" >&2; }

# timed LABEL CMD...: runs CMD and prints how long it took; returns CMD's status.
timed() {
  local label=$1 t0 rc
  shift
  t0=$(e2e_now)
  "$@"
  rc=$?
  printf '  %7ss  %s%s\n' "$(e2e_since "$t0")" "$label" "$([ "$rc" -eq 0 ] || echo " (exit $rc)")"
  return "$rc"
}
# setup LABEL CMD...: a test bed step that must work; the test ends when it does not.
setup() { timed "$@" || { echo "FAIL: setup: $1"; exit 1; }; }
# fails CMD...: true when CMD fails, for `check`.
fails() { ! "$@"; }
# fails_with PATTERN CMD...: true when CMD fails and its output (stdout and stderr, shown
# indented) matches the extended regular expression PATTERN: it failed for the reason the check
# is about, not because something else is down.
fails_with() {
  local pattern=$1 out rc
  shift
  out=$("$@" 2>&1)
  rc=$?
  printf '%s\n' "$out" | tail -n 5 | sed 's/^/    | /'
  [ "$rc" -ne 0 ] && grep -qE "$pattern" <<<"$out"
}

# e2e_have_tools: returns 1 (naming the first missing one) unless every tool the test bed uses exists.
e2e_have_tools() {
  local t
  for t in ip nsenter unshare openssl curl jq dig dnsmasq nginx docker-registry umoci skopeo podman \
    containerd ctr dockerd docker; do
    command -v "$t" >/dev/null 2>&1 || { echo "missing: $t"; return 1; }
  done
}

# e2e_ns CMD...: runs CMD in the namespace with `ip netns exec` (its /etc/netns view applied).
e2e_ns() { ip netns exec "$E2E_NS" "$@"; }

# e2e_ns_daemon CMD...: runs CMD in the namespace's network with a private mount namespace in which
# every file of /etc/netns/$E2E_NS is bind-mounted over /etc; unlike `ip netns exec` it keeps /sys
# and the cgroup mounts (dockerd needs them). Everything in the chain execs: the pid is CMD's.
e2e_ns_daemon() {
  _e2e_daemon_prefix ""
  "${_e2e_pre[@]}" "$@"
}

# _e2e_daemon_prefix RUNDIR: sets _e2e_pre, the command prefix of e2e_ns_daemon; a non-empty RUNDIR
# is bind-mounted over /run first (dockerd creates /run/docker/plugins whatever its flags say).
_e2e_daemon_prefix() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  _e2e_pre=(nsenter --net="/run/netns/$E2E_NS" unshare --mount --propagation private sh -c '
    etc=$0 run=$1
    shift
    if [ -n "$run" ]; then mount --bind "$run" /run || exit 1; fi
    for f in "$etc"/*; do
      [ -f "$f" ] || continue
      t=$(readlink -f "/etc/${f##*/}")
      case $t in /run/*) [ -e "$t" ] || { mkdir -p "${t%/*}" && : >"$t"; } ;; esac
      mount --bind "$f" "$t" || exit 1
    done
    exec "$@"' "/etc/netns/$E2E_NS" "$1")
}
_e2e_pre=()

# e2e_addr NAME: the address E2E_UPSTREAMS gives NAME (returns 1 when there is none).
e2e_addr() {
  local e
  for e in "${E2E_UPSTREAMS[@]}"; do
    if [ "${e%%=*}" = "$1" ]; then echo "${e#*=}"; return 0; fi
  done
  e2e_err "no address for $1 in E2E_UPSTREAMS"
}

# e2e_now: seconds since the epoch with microseconds (for timings).
e2e_now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }

# e2e_since START: seconds elapsed since START (from e2e_now), two decimals.
e2e_since() { awk -v a="$1" -v b="$(e2e_now)" 'BEGIN { printf "%.2f", b - a }'; }

# _e2e_bg NAME ns|daemon CMD...: starts CMD in the background in the namespace (as e2e_ns or as
# e2e_ns_daemon does; a daemon gets $E2E_WORK/run/NAME as its /run), output to
# $E2E_WORK/logs/NAME.log; CMD's own pid goes to $E2E_WORK/pids/NAME.
_e2e_bg() {
  local name=$1 mode=$2 log=$E2E_WORK/logs/$1.log
  shift 2
  if [ "$mode" = daemon ]; then
    mkdir -p "$E2E_WORK/run/$name"
    _e2e_daemon_prefix "$E2E_WORK/run/$name"
    "${_e2e_pre[@]}" "$@" >>"$log" 2>&1 &
  else
    ip netns exec "$E2E_NS" "$@" >>"$log" 2>&1 &
  fi
  echo $! >"$E2E_WORK/pids/$name"
}

# e2e_pid NAME: the pid of background peer NAME if it is alive (returns 1 otherwise).
e2e_pid() {
  local pid
  pid=$(cat "$E2E_WORK/pids/$1" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# e2e_log_tail NAME [LINES]: the last lines of peer NAME's log, indented.
e2e_log_tail() {
  echo "--- last lines of $E2E_WORK/logs/$1.log:" >&2
  tail -n "${2:-25}" "$E2E_WORK/logs/$1.log" 2>/dev/null | sed 's/^/  | /' >&2
}

# e2e_wait_ready NAME CMD...: polls CMD every 0.1 s until it succeeds; fails (with NAME's log tail)
# after E2E_START_TIMEOUT seconds or as soon as peer NAME has died.
e2e_wait_ready() {
  local name=$1 deadline
  shift
  deadline=$((SECONDS + E2E_START_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    if ! e2e_pid "$name" >/dev/null; then
      e2e_err "$name died while starting"
      e2e_log_tail "$name"
      return 1
    fi
    sleep 0.1
  done
  e2e_err "$name not ready within ${E2E_START_TIMEOUT}s (probe: $*)"
  e2e_log_tail "$name"
  return 1
}

# e2e_stop NAME: SIGTERM to peer NAME, SIGKILL after 10 s; no error when it is not running.
e2e_stop() {
  local pid
  pid=$(e2e_pid "$1") || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$E2E_WORK/pids/$1"
  return 0
}

# e2e_exited NAME SECONDS: waits up to SECONDS for the daemon NAME (started by _e2e_bg, stopped
# by the caller) to exit, SIGKILLs it after that; true when it exited 0 and its log
# ($E2E_WORK/logs/NAME.log) has no sanitizer report (LeakSanitizer speaks only at exit). Uses
# wait_until and no_sanitizer_report from tests/lib.sh.
e2e_exited() {
  local pid rc
  pid=$(e2e_pid "$1") || { e2e_err "$1 is not running"; return 1; }
  wait_until "$2" _e2e_gone "$pid" || e2e_err "$1 still running $2 s on: SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  rm -f "$E2E_WORK/pids/$1"
  [ "$rc" -eq 0 ] || e2e_err "$1 exited $rc"
  no_sanitizer_report "$E2E_WORK/logs/$1.log" && [ "$rc" -eq 0 ]
}
_e2e_gone() { ! kill -0 "$1" 2>/dev/null; }

# e2e_init [WORKDIR]: creates the work directory (mktemp when none), the namespace with lo up, its
# /etc/netns view (resolv.conf -> E2E_DNS_ADDR, a minimal hosts), the upstream CA and the client
# configuration; installs `trap e2e_cleanup EXIT` (and exit on INT/TERM) unless E2E_NO_TRAP=1.
e2e_init() {
  [ "$(id -u)" -eq 0 ] || { e2e_err "e2e_init needs root"; return 1; }
  if [ -n "${1:-}" ]; then
    mkdir -p "$1" || return 1
    E2E_WORK=$(cd "$1" && pwd)
  else
    E2E_WORK=$(mktemp -d "${TMPDIR:-/tmp}/pt-e2e.XXXXXX") || return 1
  fi
  e2e_reap_stale
  E2E_NS=pt-e2e-$$
  echo "$E2E_NS" >"$E2E_WORK/namespace"
  if [ "${E2E_NO_TRAP:-0}" != 1 ]; then
    trap e2e_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
  fi
  mkdir -p "$E2E_WORK"/{logs,pids,tmp,home,etc/empty-certs,etc/registries.d} || return 1
  ip netns add "$E2E_NS" || { e2e_err "ip netns add $E2E_NS failed"; return 1; }
  e2e_ns ip link set lo up || { e2e_err "cannot bring lo up in $E2E_NS"; return 1; }
  mkdir -p "/etc/netns/$E2E_NS" || return 1
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"/etc/netns/$E2E_NS/hosts"
  E2E_CLIENT_DNS=$E2E_DNS_ADDR
  printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$E2E_CLIENT_DNS" >"/etc/netns/$E2E_NS/resolv.conf"

  E2E_UPSTREAM_CA=$E2E_WORK/upstream-ca.pem
  E2E_CLIENT_CA=$E2E_UPSTREAM_CA
  e2e_make_ca "$E2E_WORK/upstream-ca" "pullthrough e2e upstream CA" || return 1

  local etc=$E2E_WORK/etc
  echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$etc/policy.json"
  echo 'unqualified-search-registries = []' >"$etc/registries.conf"
  echo '{"auths": {}}' >"$etc/auth.json"
  mkdir -p "$E2E_WORK/podman/root" "$E2E_WORK/podman/run" "$E2E_WORK/podman/tmp" "$E2E_WORK/podman/net"
  cat >"$etc/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$E2E_WORK/podman/tmp/events.log"
image_copy_tmp_dir = "$E2E_WORK/tmp"
tmp_dir = "$E2E_WORK/podman/tmp"
[network]
network_config_dir = "$E2E_WORK/podman/net"
EOF
  cat >"$etc/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$E2E_WORK/podman/root"
runroot = "$E2E_WORK/podman/run"
EOF
  _e2e_client_env
  e2e_log "namespace $E2E_NS, work directory $E2E_WORK"
}

# e2e_cleanup: kills every process in the namespace (TERM, then KILL), deletes the namespace and
# /etc/netns/$E2E_NS, unmounts anything left under the work directory and removes it (kept when
# E2E_KEEP=1). Idempotent; safe from a trap and after a partial e2e_init.
e2e_cleanup() {
  local ns=${E2E_NS:-} pids i
  if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then
    pids=$(ip netns pids "$ns" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -TERM $pids 2>/dev/null
    for i in $(seq 50); do
      pids=$(ip netns pids "$ns" 2>/dev/null)
      [ -z "$pids" ] && break
      # shellcheck disable=SC2086
      [ "$i" -ge 30 ] && kill -KILL $pids 2>/dev/null
      sleep 0.1
    done
    ip netns del "$ns" 2>/dev/null || e2e_err "could not delete namespace $ns"
  fi
  [ -n "$ns" ] && rm -rf "/etc/netns/${ns:?}"
  if [ -n "${E2E_WORK:-}" ] && [ -d "$E2E_WORK" ]; then
    awk -v w="$E2E_WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount -l "$m"; done
    if [ "${E2E_KEEP:-0}" = 1 ]; then
      e2e_log "kept $E2E_WORK"
    else
      rm -rf "${E2E_WORK:?}"
    fi
  fi
  E2E_NS=
  E2E_WORK=
}

# e2e_reap_stale: cleans up after test beds whose shell was killed without running e2e_cleanup
# (SIGKILL, e.g. a test-runner timeout): every pt-e2e-PID namespace whose PID is gone, its
# processes, /etc/netns entry and the ${TMPDIR:-/tmp}/pt-e2e.* work directory that names it.
e2e_reap_stale() {
  local ns d
  for ns in $(ip netns list 2>/dev/null | grep -oE '^pt-e2e-[0-9]+'); do
    kill -0 "${ns#pt-e2e-}" 2>/dev/null && continue
    e2e_log "reaping stale test bed $ns"
    # shellcheck disable=SC2046
    kill -KILL $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null
    sleep 0.2
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/${ns:?}"
    for d in "${TMPDIR:-/tmp}"/pt-e2e.*; do
      [ "$(cat "$d/namespace" 2>/dev/null)" = "$ns" ] && rm -rf "${d:?}"
    done
  done
  return 0
}

# e2e_make_ca PREFIX CN: a self-signed EC CA certificate PREFIX.pem with key PREFIX.key.
e2e_make_ca() {
  cat >"$1.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = ca
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 30 \
    -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" -config "$1.cnf" 2>"$1.log"; then
    cat "$1.log" >&2
    e2e_err "cannot create CA $1"
  fi
}

# e2e_make_cert CA_PREFIX OUT_PREFIX NAME...: a server certificate OUT.pem (key OUT.key) for the DNS
# names and IPv4 addresses given, signed by the CA at CA_PREFIX.{pem,key}.
e2e_make_cert() {
  local ca=$1 out=$2 san="" n
  shift 2
  for n in "$@"; do
    case $n in
      *[!0-9.]*) san+="${san:+,}DNS:$n" ;;
      *) san+="${san:+,}IP:$n" ;;
    esac
  done
  cat >"$out.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
EOF
  if ! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$out.key" \
    -out "$out.csr" -subj "/CN=$1" 2>"$out.log" ||
    ! openssl x509 -req -in "$out.csr" -CA "$ca.pem" -CAkey "$ca.key" -sha256 -days 30 \
      -set_serial "0x$(openssl rand -hex 12)" -out "$out.pem" -extfile "$out.ext" 2>>"$out.log"; then
    cat "$out.log" >&2
    e2e_err "cannot create certificate $out"
  fi
}

# e2e_curl ARGS...: curl in the namespace, trusting only E2E_CLIENT_CA.
e2e_curl() { e2e_ns curl -sS --max-time 10 --cacert "$E2E_CLIENT_CA" "$@"; }

# e2e_upstream_curl NAME CURL_ARGS...: curl in the namespace straight to the upstream registry NAME
# (its E2E_UPSTREAMS address), trusting the upstream CA; fails on an HTTP error.
e2e_upstream_curl() {
  local name=$1
  shift
  e2e_ns curl -sS --fail --max-time 60 --cacert "$E2E_UPSTREAM_CA" \
    --resolve "$name:443:$(e2e_addr "$name")" "$@"
}

# e2e_push_blob NAME REPO FILE DIGEST [CURL_ARGS...]: FILE as the blob DIGEST of REPO in the
# upstream registry NAME, by the two-step upload (POST for a location, PUT of the body with
# ?digest=); CURL_ARGS (an Authorization field, say) go with both requests.
e2e_push_blob() {
  local name=$1 repo=$2 file=$3 digest=$4 location
  shift 4
  location=$(e2e_upstream_curl "$name" "$@" -X POST -o /dev/null -D - \
    "https://$name/v2/$repo/blobs/uploads/" | tr -d '\r' |
    awk 'tolower($1) == "location:" { print $2 }') || return 1
  [ -n "$location" ] || { e2e_err "no upload location from $name"; return 1; }
  case $location in /*) location=https://$name$location ;; esac
  case $location in *\?*) location="$location&digest=$digest" ;; *) location="$location?digest=$digest" ;; esac
  e2e_upstream_curl "$name" "$@" -o /dev/null -H 'Content-Type: application/octet-stream' \
    -T "$file" "$location"
}

# --- DNS -----------------------------------------------------------------------------------------

# e2e_start_dns: dnsmasq on E2E_DNS_ADDR:53 in the namespace answering the E2E_UPSTREAMS names from
# $E2E_WORK/dns/hosts: TTL 0, NODATA for other types of those names, NXDOMAIN for every other name
# (--local=/#/: nothing is forwarded). Logs every query to $E2E_WORK/logs/dnsmasq.log.
# Note: glibc's getaddrinfo with AI_ADDRCONFIG (e.g. `getent ahosts`) finds nothing in a namespace
# that has only lo; gethostbyname, curl and Go's resolver are fine.
e2e_start_dns() {
  local e
  mkdir -p "$E2E_WORK/dns"
  : >"$E2E_WORK/dns/hosts"
  for e in "${E2E_UPSTREAMS[@]}"; do printf '%s %s\n' "${e#*=}" "${e%%=*}" >>"$E2E_WORK/dns/hosts"; done
  _e2e_bg dnsmasq ns dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --bind-interfaces --listen-address="$E2E_DNS_ADDR" --port=53 --user=root \
    --pid-file="$E2E_WORK/dns/dnsmasq.pid" --addn-hosts="$E2E_WORK/dns/hosts" --local-ttl=0 \
    --local='/#/' --log-facility=- --log-queries
  local first=${E2E_UPSTREAMS[0]}
  e2e_wait_ready dnsmasq _e2e_dns_answers "${first%%=*}" "${first#*=}"
}

# _e2e_dns_answers NAME ADDR: true when dnsmasq answers NAME with ADDR.
_e2e_dns_answers() {
  [ "$(e2e_ns dig +time=1 +tries=1 +short "@$E2E_DNS_ADDR" "$1" A)" = "$2" ]
}

# e2e_dns_set NAME ADDR: adds or changes NAME in dnsmasq's data (and E2E_UPSTREAMS); reloads it.
e2e_dns_set() {
  local e kept=()
  for e in "${E2E_UPSTREAMS[@]}"; do [ "${e%%=*}" = "$1" ] || kept+=("$e"); done
  E2E_UPSTREAMS=("${kept[@]}" "$1=$2")
  awk -v n="$1" '$2 != n' "$E2E_WORK/dns/hosts" >"$E2E_WORK/dns/hosts.new"
  printf '%s %s\n' "$2" "$1" >>"$E2E_WORK/dns/hosts.new"
  mv "$E2E_WORK/dns/hosts.new" "$E2E_WORK/dns/hosts"
  local pid
  pid=$(e2e_pid dnsmasq) || return 0
  kill -HUP "$pid"
  e2e_wait_ready dnsmasq _e2e_dns_answers "$1" "$2"
}

# --- Upstream registries and token service -------------------------------------------------------

# e2e_start_registry NAME ADDR [token|users]: docker-registry (distribution 2.8) serving https://NAME
# on ADDR:443 with a certificate from the upstream CA, storage in $E2E_WORK/registry/NAME/data.
# With `token`, it requires bearer tokens from https://auth.NAME/token (started here, see
# e2e_start_token_service), and the function checks the 401 challenge and that the token works.
# With `users`, the token service at https://auth.NAME/token tells users apart (see
# e2e_start_users_token_service), and the function checks the challenge, that the anonymous token
# opens /v2/ and that a wrong password gets no token.
e2e_start_registry() {
  local name=$1 addr=$2 mode=${3:-} dir=$E2E_WORK/registry/$1
  mkdir -p "$dir/data"
  e2e_make_cert "$E2E_WORK/upstream-ca" "$dir/tls" "$name" || return 1
  {
    _e2e_registry_config "$name" "$addr:443"
    echo "  tls: {certificate: $dir/tls.pem, key: $dir/tls.key}"
  } >"$dir/config.yml"
  case $mode in
    token) e2e_start_token_service "$name" || return 1 ;;
    users) e2e_start_users_token_service "$name" || return 1 ;;
    "") ;;
    *) e2e_err "unknown registry mode '$mode'"; return 1 ;;
  esac
  [ -z "$mode" ] || _e2e_registry_auth "$name" "https://auth.$name/token" >>"$dir/config.yml"
  _e2e_bg "registry-$name" ns env -i PATH="$PATH" docker-registry serve "$dir/config.yml"
  local want=200
  [ -n "$mode" ] && want=401
  e2e_wait_ready "registry-$name" _e2e_http_status "$want" --resolve "$name:443:$addr" \
    "https://$name/v2/" || return 1
  case $mode in
    token)
      _e2e_challenged "$name" "https://auth.$name/token" --resolve "$name:443:$addr" || return 1
      _e2e_http_status 200 --resolve "$name:443:$addr" -H "Authorization: Bearer $(e2e_token "$name")" \
        "https://$name/v2/" ||
        { e2e_err "registry $name rejects the static token"; e2e_log_tail "registry-$name"; return 1; }
      ;;
    users)
      _e2e_users_registry_works "$name" "https://auth.$name/token" --resolve "$name:443:$addr" \
        --resolve "auth.$name:443:$(e2e_addr "auth.$name")" || return 1
      ;;
  esac
  e2e_log "registry https://$name on $addr:443${mode:+ ($mode auth)}"
}

# _e2e_registry_config NAME LISTEN [HOST_URL]: docker-registry's configuration up to its http
# section (addr LISTEN, http.host HOST_URL if given); TLS and auth are appended by the caller.
_e2e_registry_config() {
  cat <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog: {disabled: false}
storage:
  filesystem: {rootdirectory: $E2E_WORK/registry/$1/data}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http:
  addr: $2
  secret: pullthrough-e2e-not-a-secret
EOF
  [ -z "${3:-}" ] || echo "  host: $3"
}

# _e2e_registry_auth NAME REALM: docker-registry's auth section: bearer tokens from REALM signed by
# $E2E_WORK/token-NAME/signer.pem's key.
_e2e_registry_auth() {
  cat <<EOF
auth:
  token:
    realm: $2
    service: $1
    issuer: pullthrough-e2e-token-issuer
    rootcertbundle: $E2E_WORK/token-$1/signer.pem
EOF
}

# _e2e_challenged NAME REALM CURL_ARGS...: true when registry NAME's anonymous /v2/ answers with a
# Bearer challenge naming REALM and service NAME.
_e2e_challenged() {
  local name=$1 realm=$2 hdr
  shift 2
  hdr=$(e2e_ns curl -sS -o /dev/null -D - --max-time 10 --cacert "$E2E_UPSTREAM_CA" "$@" "https://$name/v2/")
  grep -qi "^www-authenticate: Bearer realm=\"$realm\",service=\"$name\"" <<<"$hdr" ||
    { e2e_err "registry $name: no Bearer challenge for $realm in: $hdr"; return 1; }
}

# _e2e_users_registry_works NAME REALM CURL_ARGS...: the user-aware registry NAME challenges with
# REALM, whose anonymous token opens /v2/, and which refuses a wrong password.
_e2e_users_registry_works() {
  local name=$1 realm=$2
  shift 2
  _e2e_challenged "$name" "$realm" "$@" || return 1
  _e2e_http_status 200 "$@" -H "Authorization: Bearer $(e2e_user_token "$name" anonymous)" \
    "https://$name/v2/" ||
    { e2e_err "registry $name rejects the anonymous token"; e2e_log_tail "registry-$name"; return 1; }
  _e2e_http_status 401 "$@" -u "$E2E_USER:wrong-$E2E_PASSWORD" "$realm?service=$name" ||
    { e2e_err "token service $realm does not refuse a wrong password"; return 1; }
}

# _e2e_http_status CODE CURL_ARGS...: true when an upstream-CA-trusting GET answers CODE.
_e2e_http_status() {
  local want=$1 got
  shift
  got=$(e2e_ns curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --cacert "$E2E_UPSTREAM_CA" "$@")
  [ "$got" = "$want" ]
}

# _e2e_b64url: base64url without padding of stdin.
_e2e_b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# e2e_token NAME: the static JWT that the token service of registry NAME hands out.
e2e_token() { cat "$E2E_WORK/token-$1/token.jwt"; }

# _e2e_signer PREFIX: an RSA key PREFIX.key and its self-signed certificate PREFIX.pem to sign tokens.
_e2e_signer() {
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -keyout "$1.key" -out "$1.pem" \
    -subj "/CN=pullthrough e2e token signer" 2>"$1.log" ||
    { cat "$1.log" >&2; e2e_err "cannot create the token signer $1"; }
}

# _e2e_access ACTIONS_JSON REPO...: a token's access claim: ACTIONS (e.g. '["pull"]') on each REPO.
_e2e_access() {
  local actions=$1
  shift
  [ "$#" -gt 0 ] || { echo '[]'; return 0; }
  printf '%s\n' "$@" | jq -R --argjson a "$actions" '{type: "repository", name: ., actions: $a}' | jq -cs .
}

# _e2e_jwt SIGNER_PREFIX AUD SUB ACCESS_JSON NBF EXP: an RS256 JWT (iss pullthrough-e2e-token-issuer,
# iat = NBF, times in seconds since the epoch) signed with SIGNER_PREFIX.key, whose header carries
# SIGNER_PREFIX.pem in x5c (docker-registry accepts it when that certificate is in its
# rootcertbundle).
_e2e_jwt() {
  local x5c header claims input sig
  x5c=$(openssl x509 -in "$1.pem" -outform DER | openssl base64 -A) || return 1
  header=$(jq -cn --arg x5c "$x5c" '{typ: "JWT", alg: "RS256", x5c: [$x5c]}')
  claims=$(jq -cn --arg aud "$2" --arg sub "$3" --argjson access "$4" --argjson nbf "$5" \
    --argjson exp "$6" --arg jti "pullthrough-e2e-$(openssl rand -hex 8)" \
    '{iss: "pullthrough-e2e-token-issuer", sub: $sub, aud: $aud, exp: $exp, nbf: $nbf, iat: $nbf,
      jti: $jti, access: $access}')
  input="$(printf %s "$header" | _e2e_b64url).$(printf %s "$claims" | _e2e_b64url)"
  sig=$(printf %s "$input" | openssl dgst -sha256 -sign "$1.key" | _e2e_b64url) || return 1
  printf %s "$input.$sig"
}

# _e2e_token_json JWT: the token service's answer for JWT.
_e2e_token_json() { jq -cn --arg t "$1" '{token: $t, access_token: $t, expires_in: 300}'; }

# e2e_start_token_service NAME: nginx on the address of auth.NAME:443 answering GET /token with a
# static RS256 JWT {"token": JWT, "access_token": JWT, "expires_in": 300}. The JWT (iss
# pullthrough-e2e-token-issuer, aud NAME, nbf/iat now - 60 s, exp in 10 years) grants pull and
# push on every E2E_TOKEN_REPOS repository; its header carries the signing certificate in x5c.
e2e_start_token_service() {
  local name=$1 auth=auth.$1 dir=$E2E_WORK/token-$1 addr now jwt
  addr=$(e2e_addr "$auth") || return 1
  mkdir -p "$dir/tmp"
  _e2e_signer "$dir/signer" || return 1
  e2e_make_cert "$E2E_WORK/upstream-ca" "$dir/tls" "$auth" || return 1
  now=$(date +%s)
  jwt=$(_e2e_jwt "$dir/signer" "$name" "" "$(_e2e_access '["pull", "push"]' "${E2E_TOKEN_REPOS[@]}")" \
    "$((now - 60))" "$((now + 315360000))") || return 1
  printf %s "$jwt" >"$dir/token.jwt"
  _e2e_token_json "$jwt" >"$dir/token.json"
  _e2e_nginx_conf "$auth" "$dir" "$addr:443" "" "
    location = /token {
      default_type application/json;
      alias $dir/token.json;
    }
    location / { return 404; }" >"$dir/nginx.conf"
  _e2e_bg "nginx-$auth" ns nginx -p "$dir" -e "$E2E_WORK/logs/nginx-$auth.log" -c "$dir/nginx.conf"
  e2e_wait_ready "nginx-$auth" _e2e_http_status 200 --resolve "$auth:443:$addr" \
    "https://$auth/token?service=$name&scope=repository:e2e/private:pull" || return 1
  e2e_log "token service https://$auth/token on $addr:443"
}

# _e2e_nginx_conf SERVER_NAME DIR LISTEN HTTP_EXTRA SERVER_BODY: an nginx configuration with one TLS
# server SERVER_NAME on LISTEN (certificate DIR/tls.{pem,key}), pid and temporary files under DIR,
# both logs to $E2E_WORK/logs/nginx-SERVER_NAME.log; HTTP_EXTRA goes in the http block,
# SERVER_BODY in the server block.
_e2e_nginx_conf() {
  cat <<EOF
daemon off;
master_process on;
worker_processes 1;
user root;
pid $2/nginx.pid;
error_log $E2E_WORK/logs/nginx-$1.log info;
events { worker_connections 256; }
http {
  access_log $E2E_WORK/logs/nginx-$1.log;
  client_body_temp_path $2/tmp/body;
  proxy_temp_path $2/tmp/proxy;
  fastcgi_temp_path $2/tmp/fastcgi;
  uwsgi_temp_path $2/tmp/uwsgi;
  scgi_temp_path $2/tmp/scgi;$4
  server {
    listen $3 ssl;
    server_name $1;
    ssl_certificate $2/tls.pem;
    ssl_certificate_key $2/tls.key;$5
  }
}
EOF
}

# e2e_basic_auth PASSWORD: the Basic credentials of E2E_USER with PASSWORD, base64 as in an
# Authorization field.
e2e_basic_auth() { printf '%s:%s' "$E2E_USER" "$1" | openssl base64 -A; }

# e2e_user_token NAME anonymous|user|forged|expired: a JWT for the user-aware registry NAME (see
# _e2e_users_tokens).
e2e_user_token() { cat "$E2E_WORK/token-$1/$2.jwt"; }

# _e2e_users_tokens NAME: the tokens of a user-aware registry, in $E2E_WORK/token-NAME: the signer
# the registry trusts (signer.pem); anonymous.jwt (pull on E2E_PUBLIC_REPOS); user.jwt (sub
# E2E_USER, pull and push on E2E_PUBLIC_REPOS and E2E_PRIVATE_REPOS); forged.jwt (user.jwt's claims
# signed by another key, whose certificate, same subject, is in its x5c); expired.jwt (user.jwt's
# claims and signer, expired an hour ago). tokens/{anonymous,user}.json are the token service's
# answers. All valid tokens live 10 years, so the test bed needs no clock.
_e2e_users_tokens() {
  local name=$1 dir=$E2E_WORK/token-$1 now public all jwt
  mkdir -p "$dir/tmp" "$dir/tokens"
  _e2e_signer "$dir/signer" && _e2e_signer "$dir/forger" || return 1
  now=$(date +%s)
  public=$(_e2e_access '["pull"]' "${E2E_PUBLIC_REPOS[@]}")
  all=$(_e2e_access '["pull", "push"]' "${E2E_PUBLIC_REPOS[@]}" "${E2E_PRIVATE_REPOS[@]}")
  jwt=$(_e2e_jwt "$dir/signer" "$name" "" "$public" "$((now - 60))" "$((now + 315360000))") || return 1
  printf %s "$jwt" >"$dir/anonymous.jwt"
  _e2e_token_json "$jwt" >"$dir/tokens/anonymous.json"
  jwt=$(_e2e_jwt "$dir/signer" "$name" "$E2E_USER" "$all" "$((now - 60))" "$((now + 315360000))") ||
    return 1
  printf %s "$jwt" >"$dir/user.jwt"
  _e2e_token_json "$jwt" >"$dir/tokens/user.json"
  _e2e_jwt "$dir/forger" "$name" "$E2E_USER" "$all" "$((now - 60))" "$((now + 315360000))" \
    >"$dir/forged.jwt" || return 1
  _e2e_jwt "$dir/signer" "$name" "$E2E_USER" "$all" "$((now - 7200))" "$((now - 3600))" \
    >"$dir/expired.jwt" || return 1
}

# _e2e_users_token_http NAME: the http-block part of a user-aware token service: the identity of
# the client by its Authorization field (no field: anonymous; E2E_USER's right Basic value: user;
# anything else: denied). A map value may not exceed about 4 KiB: it names a file, not a token.
_e2e_users_token_http() {
  # shellcheck disable=SC2016 # $http_authorization and $e2e_identity are nginx variables
  printf '\n  map $http_authorization $e2e_identity {\n    default denied;\n    "" anonymous;\n    "Basic %s" user;\n  }' \
    "$(e2e_basic_auth "$E2E_PASSWORD")"
}

# _e2e_users_token_locations NAME: the server-block part of a user-aware token service: GET /token
# answers anonymous.json or user.json by identity, or 401 with a JSON error body. POST /token (the
# OAuth form containerd tries first when it has credentials) gets 405, on which containerd falls
# back to GET with Basic.
_e2e_users_token_locations() {
  local dir=$E2E_WORK/token-$1
  cat <<EOF

    location = /token {
      if (\$request_method = POST) { return 405; }
      rewrite ^ /_tokens/\$e2e_identity.json last;
    }
    location = /_tokens/denied.json {
      internal;
      default_type application/json;
      return 401 '{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}';
    }
    location /_tokens/ {
      internal;
      default_type application/json;
      alias $dir/tokens/;
    }
EOF
}

# e2e_start_users_token_service NAME: nginx on the address of auth.NAME:443, the user-aware token
# service of registry NAME (tokens: _e2e_users_tokens; answers: _e2e_users_token_locations).
e2e_start_users_token_service() {
  local name=$1 auth=auth.$1 dir=$E2E_WORK/token-$1 addr
  addr=$(e2e_addr "$auth") || return 1
  _e2e_users_tokens "$name" || return 1
  e2e_make_cert "$E2E_WORK/upstream-ca" "$dir/tls" "$auth" || return 1
  _e2e_nginx_conf "$auth" "$dir" "$addr:443" "$(_e2e_users_token_http)" \
    "$(_e2e_users_token_locations "$name")
    location / { return 404; }" >"$dir/nginx.conf"
  _e2e_bg "nginx-$auth" ns nginx -p "$dir" -e "$E2E_WORK/logs/nginx-$auth.log" -c "$dir/nginx.conf"
  e2e_wait_ready "nginx-$auth" _e2e_http_status 200 --resolve "$auth:443:$addr" \
    "https://$auth/token?service=$name&scope=repository:e2e/public:pull" || return 1
  e2e_log "user-aware token service https://$auth/token on $addr:443"
}

# e2e_start_registry_own_realm NAME BACKEND_ADDR: a user-aware registry whose token realm is on
# its own host, as ghcr.io's and quay.io's are: nginx on NAME's E2E_UPSTREAMS address, port 443,
# answers /token as e2e_start_users_token_service does and proxies everything else (request
# buffering off, no body size limit) to docker-registry on http://BACKEND_ADDR:5000, whose http.host
# is https://NAME so that its Location headers name NAME. Peers nginx-NAME and registry-NAME (an
# outage of registry and token service: stop both). Logs: nginx-NAME.log, registry-NAME.log.
e2e_start_registry_own_realm() {
  local name=$1 backend=$2 dir=$E2E_WORK/registry/$1 tdir=$E2E_WORK/token-$1 addr
  addr=$(e2e_addr "$name") || return 1
  mkdir -p "$dir/data"
  _e2e_users_tokens "$name" || return 1
  {
    _e2e_registry_config "$name" "$backend:5000" "https://$name"
    _e2e_registry_auth "$name" "https://$name/token"
  } >"$dir/config.yml"
  _e2e_bg "registry-$name" ns env -i PATH="$PATH" docker-registry serve "$dir/config.yml"
  e2e_wait_ready "registry-$name" _e2e_http_status 401 "http://$backend:5000/v2/" || return 1
  e2e_make_cert "$E2E_WORK/upstream-ca" "$tdir/tls" "$name" || return 1
  _e2e_nginx_conf "$name" "$tdir" "$addr:443" "$(_e2e_users_token_http)" \
    "$(_e2e_users_token_locations "$name")
    client_max_body_size 0;
    location / {
      proxy_pass http://$backend:5000;
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-Proto https;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }" >"$tdir/nginx.conf"
  _e2e_bg "nginx-$name" ns nginx -p "$tdir" -e "$E2E_WORK/logs/nginx-$name.log" -c "$tdir/nginx.conf"
  e2e_wait_ready "nginx-$name" _e2e_http_status 401 --resolve "$name:443:$addr" "https://$name/v2/" ||
    return 1
  _e2e_users_registry_works "$name" "https://$name/token" --resolve "$name:443:$addr" || return 1
  e2e_log "registry https://$name (users auth, realm https://$name/token) on $addr:443, backend $backend:5000"
}

# --- Images --------------------------------------------------------------------------------------

# e2e_build_image LAYOUT TAG ARCH LAYERS: adds TAG to the OCI layout LAYOUT (created if needed): an
# image for linux/ARCH with LAYERS layers, each one file of E2E_LAYER_KIB KiB of random data.
e2e_build_image() {
  local layout=$1 tag=$2 arch=$3 n=$4 i src
  [ -d "$layout" ] || umoci init --layout "$layout" || return 1
  umoci new --image "$layout:$tag" || return 1
  umoci config --image "$layout:$tag" --os linux --architecture "$arch" \
    --config.cmd /bin/true || return 1
  src=$(mktemp -d "$E2E_WORK/tmp/layer.XXXXXX")
  for i in $(seq "$n"); do
    head -c "$((E2E_LAYER_KIB * 1024))" /dev/urandom >"$src/blob$i" || return 1
    umoci insert --image "$layout:$tag" "$src/blob$i" "/data/$tag-$i.bin" >/dev/null || return 1
  done
  rm -rf "$src"
}

# e2e_oci_manifest LAYOUT TAG: the manifest descriptor (JSON) TAG names in the OCI layout.
e2e_oci_manifest() {
  jq -ce --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)' \
    "$1/index.json"
}

# e2e_oci_blob LAYOUT DIGEST: the content of a blob of the OCI layout.
e2e_oci_blob() { cat "$1/blobs/${2%%:*}/${2#*:}"; }

# _e2e_ns_varlib CMD...: e2e_ns with $E2E_WORK/var-lib mounted over /var/lib (in the private mount
# namespace of `ip netns exec`): as root, containers/image keeps a blob info cache in
# /var/lib/containers/cache, and neither skopeo nor podman 4.3 has a flag to move it.
_e2e_ns_varlib() {
  mkdir -p "$E2E_WORK/var-lib"
  # shellcheck disable=SC2016 # expanded by the inner sh
  e2e_ns sh -c 'mount --bind "$0" /var/lib && exec "$@"' "$E2E_WORK/var-lib" "$@"
}

# e2e_skopeo ARGS...: skopeo in the namespace with the client environment (e2e_client_trust).
e2e_skopeo() {
  _e2e_ns_varlib env "${_e2e_env[@]}" skopeo --policy "$E2E_WORK/etc/policy.json" \
    --registries-conf "$E2E_WORK/etc/registries.conf" --registries.d "$E2E_WORK/etc/registries.d" \
    --tmpdir "$E2E_WORK/tmp" "$@"
}

# e2e_push SRC DEST [SKOPEO_COPY_ARGS...]: skopeo copy SRC docker://DEST trusting the upstream CA
# directly (whatever e2e_client_trust says); records the pushed manifest digest in $E2E_WORK/push.digest.
e2e_push() {
  local src=$1 dst=$2
  shift 2
  _e2e_client_env "$E2E_UPSTREAM_CA"
  e2e_skopeo copy --quiet --retry-times 0 --digestfile "$E2E_WORK/push.digest" "$@" "$src" "docker://$dst"
  local rc=$?
  _e2e_client_env
  [ "$rc" -eq 0 ] || e2e_err "push of $src to $dst failed"
}

# e2e_digest NAME: a digest recorded by e2e_seed_images: small, multi (the index), multi-amd64,
# multi-arm64, private, corrupt, corrupt-layer (the corrupted blob).
e2e_digest() { cat "$E2E_WORK/$1.digest"; }

# e2e_seed_images: builds and pushes quay.io/e2e/small:v1 (linux/amd64, 2 layers), quay.io/e2e/multi:v1
# (an OCI index of linux/amd64 and linux/arm64 images, 2 layers each), ghcr.io/e2e/private:v1 (token
# registry, 2 layers) and quay.io/e2e/corrupt:v1 (2 layers) whose last layer blob is then overwritten
# on quay.io's disk with as many different bytes. Records the digests (see e2e_digest).
e2e_seed_images() {
  local img=$E2E_WORK/images d
  mkdir -p "$img"
  e2e_build_image "$img/small" v1 amd64 2 || return 1
  e2e_push "oci:$img/small:v1" quay.io/e2e/small:v1 || return 1
  cp "$E2E_WORK/push.digest" "$E2E_WORK/small.digest"

  e2e_build_image "$img/multi" amd64 amd64 2 || return 1
  e2e_build_image "$img/multi" arm64 arm64 2 || return 1
  local amd arm index
  amd=$(e2e_oci_manifest "$img/multi" amd64) && arm=$(e2e_oci_manifest "$img/multi" arm64) || return 1
  index=$(jq -cn --argjson a "$amd" --argjson b "$arm" '{schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [($a | del(.annotations) | .platform = {architecture: "amd64", os: "linux"}),
                ($b | del(.annotations) | .platform = {architecture: "arm64", os: "linux", variant: "v8"})]}')
  d=$(printf %s "$index" | sha256sum | cut -d' ' -f1)
  printf %s "$index" >"$img/multi/blobs/sha256/$d"
  jq -cn --arg d "sha256:$d" --argjson s "${#index}" '{schemaVersion: 2, manifests: [{
    mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "v1"}}]}' >"$img/multi/index.json"
  jq -r .digest <<<"$amd" >"$E2E_WORK/multi-amd64.digest"
  jq -r .digest <<<"$arm" >"$E2E_WORK/multi-arm64.digest"
  e2e_push "oci:$img/multi:v1" quay.io/e2e/multi:v1 --all || return 1
  cp "$E2E_WORK/push.digest" "$E2E_WORK/multi.digest"
  [ "$(e2e_digest multi)" = "sha256:$d" ] ||
    { e2e_err "multi:v1 index was rewritten on push ($(e2e_digest multi) != sha256:$d)"; return 1; }

  e2e_build_image "$img/private" v1 amd64 2 || return 1
  e2e_push "oci:$img/private:v1" ghcr.io/e2e/private:v1 || return 1
  cp "$E2E_WORK/push.digest" "$E2E_WORK/private.digest"

  e2e_build_image "$img/corrupt" v1 amd64 2 || return 1
  e2e_push "oci:$img/corrupt:v1" quay.io/e2e/corrupt:v1 || return 1
  cp "$E2E_WORK/push.digest" "$E2E_WORK/corrupt.digest"
  d=$(e2e_oci_blob "$img/corrupt" "$(e2e_digest corrupt)" | jq -r '.layers[-1].digest')
  echo "$d" >"$E2E_WORK/corrupt-layer.digest"
  e2e_corrupt_blob quay.io "$d" || return 1
  e2e_log "seeded: small $(e2e_digest small), multi $(e2e_digest multi), private $(e2e_digest private), corrupt $(e2e_digest corrupt) (layer $d corrupted)"
}

# e2e_corrupt_blob REGISTRY DIGEST: overwrites the blob's data file on REGISTRY's disk (started by
# e2e_start_registry) with as many random bytes, so the registry serves wrong bytes for DIGEST.
e2e_corrupt_blob() {
  local hex=${2#sha256:} f size
  f=$E2E_WORK/registry/$1/data/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data
  [ -f "$f" ] || { e2e_err "no blob file $f"; return 1; }
  size=$(stat -c %s "$f")
  head -c "$size" /dev/urandom >"$f"
  [ "$(sha256sum <"$f" | cut -d' ' -f1)" != "$hex" ] || { e2e_err "blob $2 still intact"; return 1; }
}

# --- Clients -------------------------------------------------------------------------------------

# _e2e_client_env [CA]: sets _e2e_env, the environment of every client and daemon: trust only CA
# (default E2E_CLIENT_CA) through SSL_CERT_FILE (SSL_CERT_DIR is an empty directory, so Go adds no
# system roots), no proxies, HOME/TMPDIR/auth/containers configuration under $E2E_WORK.
_e2e_client_env() {
  local etc=$E2E_WORK/etc
  _e2e_env=(-u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY
    -u no_proxy -u NO_PROXY -u DOCKER_HOST -u CONTAINERD_ADDRESS -u XDG_RUNTIME_DIR
    SSL_CERT_FILE="${1:-$E2E_CLIENT_CA}" SSL_CERT_DIR="$etc/empty-certs"
    HOME="$E2E_WORK/home" TMPDIR="$E2E_WORK/tmp" REGISTRY_AUTH_FILE="$etc/auth.json"
    CONTAINERS_CONF="$etc/containers.conf" CONTAINERS_REGISTRIES_CONF="$etc/registries.conf"
    CONTAINERS_STORAGE_CONF="$etc/storage.conf" DOCKER_CONFIG="$E2E_WORK/home/.docker")
}
_e2e_env=()

# e2e_write_config FILE CACHE_ADDR ADMIN_LISTEN HANDOVER MANIFEST_TTL LOG_LEVEL [WRITE_TIMEOUT]: the
# appliance's configuration in the test bed (proxy.write_timeout WRITE_TIMEOUT, default 60s): DNS on 127.0.0.1:53 forwarding to dnsmasq, the cache on
# CACHE_ADDR:443 (the address handed out), quay.io and ghcr.io upstream with the upstream CA,
# clients from 127.0.0.0/8 only, state under $E2E_WORK/pt.
e2e_write_config() {
  cat >"$1" <<YAML
state_dir: $E2E_WORK/pt
log: {level: $6}
appliance: {addresses: [$2]}
dns:
  listen: ["127.0.0.1:53"]
  upstreams: ["$E2E_DNS_ADDR"]
  allow: ["127.0.0.0/8"]
  rate_limit: {per_client_qps: 0}
proxy:
  listen: ["$2:443"]
  http_listen: []
  allow: ["127.0.0.0/8"]
  handover: $4
  write_timeout: ${7:-60s}
admin: {listen: "$3"}
registries:
  - {host: quay.io, ca_file: "$E2E_UPSTREAM_CA", manifest_ttl: $5}
  - {host: ghcr.io, ca_file: "$E2E_UPSTREAM_CA", manifest_ttl: $5}
YAML
}

# e2e_client_trust FILE: from now on clients trust only the CA bundle FILE (dockerd: see the header;
# it gets FILE as SSL_CERT_FILE when it is next started, which changes nothing for 127/8 registries).
e2e_client_trust() {
  [ -s "$1" ] || { e2e_err "no CA bundle $1"; return 1; }
  E2E_CLIENT_CA=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
  _e2e_client_env
}

# e2e_client_dns IP: from now on the namespace's resolv.conf (clients and daemons) names IP; rewritten
# in place so bind mounts see it; restarts a running dockerd so it cannot use the old server.
e2e_client_dns() {
  E2E_CLIENT_DNS=$1
  printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$1" >"/etc/netns/$E2E_NS/resolv.conf"
  if e2e_pid dockerd >/dev/null; then e2e_stop dockerd && e2e_start_dockerd; fi
}

# e2e_skopeo_copy REF DEST [SKOPEO_COPY_ARGS...]: skopeo copy docker://REF oci:DEST as a client
# (client trust and DNS); DEST is DIR or DIR:TAG of an OCI layout, DIR's parent must exist.
e2e_skopeo_copy() {
  local ref=$1 dest=$2
  shift 2
  _e2e_client_env
  e2e_skopeo copy --quiet --retry-times 0 "$@" "docker://$ref" "oci:$dest"
}

# e2e_podman ARGS...: podman as root in the namespace, vfs storage and all state under $E2E_WORK/podman.
e2e_podman() {
  _e2e_client_env
  _e2e_ns_varlib env "${_e2e_env[@]}" podman --root "$E2E_WORK/podman/root" --runroot "$E2E_WORK/podman/run" \
    --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --tmpdir "$E2E_WORK/podman/tmp" \
    "$@"
}

# e2e_podman_pull REF [PODMAN_PULL_ARGS...]: podman pull REF (client trust and DNS).
e2e_podman_pull() {
  local ref=$1
  shift
  e2e_podman pull --quiet --signature-policy "$E2E_WORK/etc/policy.json" "$@" "$ref"
}

# e2e_podman_arch REF: the architecture of podman's local image REF.
e2e_podman_arch() { e2e_podman image inspect --format '{{.Architecture}}' "$1"; }

# e2e_start_containerd: containerd (CRI plugin off) with root, state, socket and config under
# $E2E_WORK/containerd, in the namespace. ctr talks to it with e2e_ctr.
e2e_start_containerd() {
  local dir=$E2E_WORK/containerd
  mkdir -p "$dir/root" "$dir/state" "$dir/opt"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
  _e2e_client_env
  _e2e_bg containerd daemon env "${_e2e_env[@]}" containerd --config "$dir/config.toml" \
    --root "$dir/root" --state "$dir/state" --address "$dir/containerd.sock"
  e2e_wait_ready containerd e2e_ctr version || return 1
  e2e_log "containerd on $dir/containerd.sock"
}

# e2e_ctr ARGS...: ctr (namespace "e2e") against the test bed's containerd, run in the network
# namespace with the client environment (containerd 1.6's ctr pulls in its own process).
e2e_ctr() {
  _e2e_client_env
  e2e_ns env "${_e2e_env[@]}" ctr --address "$E2E_WORK/containerd/containerd.sock" --namespace e2e "$@"
}

# e2e_ctr_pull REF [CTR_PULL_ARGS...]: ctr images pull REF, unpacked with E2E_CTR_SNAPSHOTTER.
e2e_ctr_pull() {
  local ref=$1
  shift
  e2e_ctr images pull --snapshotter "$E2E_CTR_SNAPSHOTTER" "$@" "$ref" >"$E2E_WORK/logs/ctr-pull.log" 2>&1 ||
    { tail -n 15 "$E2E_WORK/logs/ctr-pull.log" >&2; return 1; }
}

# e2e_start_dockerd: dockerd (no iptables, no bridge, vfs) in the namespace via e2e_ns_daemon, its
# data, exec root, pid file, socket, trust key and config under $E2E_WORK/docker; it uses the test
# bed's containerd (started here if needed; its own would create /opt/containerd). Trusts
# E2E_CLIENT_CA and resolves through the namespace's resolv.conf; pulls happen in dockerd itself.
e2e_start_dockerd() {
  local dir=$E2E_WORK/docker
  e2e_pid containerd >/dev/null || e2e_start_containerd || return 1
  mkdir -p "$dir/data" "$dir/exec"
  jq -n --arg k "$dir/key.json" '{"deprecated-key-path": $k}' >"$dir/daemon.json"
  _e2e_client_env
  _e2e_bg dockerd daemon env "${_e2e_env[@]}" dockerd --config-file "$dir/daemon.json" \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    -H "unix://$dir/docker.sock" --iptables=false --ip6tables=false --ip-forward=false \
    --ip-masq=false --bridge=none --storage-driver=vfs --containerd "$E2E_WORK/containerd/containerd.sock"
  e2e_wait_ready dockerd e2e_docker version || return 1
  e2e_log "dockerd on $dir/docker.sock"
}

# e2e_docker ARGS...: the docker CLI against the test bed's dockerd (it needs no network itself).
e2e_docker() {
  _e2e_client_env
  env "${_e2e_env[@]}" docker -H "unix://$E2E_WORK/docker/docker.sock" "$@"
}

# e2e_docker_pull REF: docker pull REF through the test bed's dockerd.
e2e_docker_pull() { e2e_docker pull --quiet "$1"; }

# --- Credentials and pushes ----------------------------------------------------------------------
# Every client keeps its credentials under $E2E_WORK: docker in $E2E_WORK/home/.docker/config.json,
# podman and skopeo in $E2E_WORK/etc/auth.json (REGISTRY_AUTH_FILE, shared by both); skopeo
# (--src-creds, --dest-creds) and ctr (--user) also take them per command.

# The manifest types a client accepts (for curl).
E2E_MANIFEST_TYPES='application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json'

# e2e_creds: E2E_USER:E2E_PASSWORD, as skopeo's --src-creds/--dest-creds and ctr's --user take it.
e2e_creds() { printf '%s:%s' "$E2E_USER" "$E2E_PASSWORD"; }

# e2e_docker_login REGISTRY [PASSWORD]: docker login REGISTRY as E2E_USER, the password (default
# E2E_PASSWORD) on stdin. The daemon checks it against the registry's /v2/ and token service.
# Prints docker's output (stdout) without the warning about an unencrypted config file.
e2e_docker_login() {
  local out rc
  out=$(printf '%s\n' "${2:-$E2E_PASSWORD}" |
    e2e_docker login --username "$E2E_USER" --password-stdin "$1" 2>&1)
  rc=$?
  # Not news here: the config file lives in $E2E_WORK.
  grep -vE 'WARNING! Your credentials are stored|credential helper|credential-store|^$' <<<"$out"
  return "$rc"
}

# e2e_docker_logout REGISTRY: forgets docker's credentials for REGISTRY.
e2e_docker_logout() { e2e_docker logout "$1"; }

# e2e_docker_load LAYOUT TAG REF: loads TAG of the OCI layout LAYOUT into dockerd as REF (through a
# docker-archive that skopeo writes).
e2e_docker_load() {
  local archive=$E2E_WORK/tmp/docker-load.tar rc
  rm -f "$archive"
  e2e_skopeo copy --quiet "oci:$1:$2" "docker-archive:$archive:$3" || return 1
  e2e_docker load --quiet --input "$archive" >/dev/null
  rc=$?
  rm -f "$archive"
  return "$rc"
}

# e2e_docker_push REF: docker push REF (with the credentials docker login stored); records the
# pushed manifest digest in $E2E_WORK/push.digest, the output in $E2E_WORK/logs/docker-push.log.
e2e_docker_push() {
  local out rc
  rm -f "$E2E_WORK/push.digest"
  out=$(e2e_docker push "$1" 2>&1)
  rc=$?
  printf '%s\n' "$out" >>"$E2E_WORK/logs/docker-push.log"
  [ "$rc" -eq 0 ] || { tail -n 5 <<<"$out" >&2; e2e_err "docker push $1 failed"; return 1; }
  sed -nE 's/.*digest: (sha256:[0-9a-f]{64}) size.*/\1/p' <<<"$out" | tail -n 1 >"$E2E_WORK/push.digest"
  [ -s "$E2E_WORK/push.digest" ] || { e2e_err "docker push $1 printed no digest: $out"; return 1; }
}

# e2e_podman_login REGISTRY [PASSWORD]: podman login REGISTRY as E2E_USER (password on stdin;
# stored in $E2E_WORK/etc/auth.json, which skopeo reads too).
e2e_podman_login() {
  printf '%s\n' "${2:-$E2E_PASSWORD}" | e2e_podman login --username "$E2E_USER" --password-stdin "$1"
}

# e2e_podman_logout REGISTRY: forgets podman's (and skopeo's) stored credentials for REGISTRY.
e2e_podman_logout() { e2e_podman logout "$1"; }

# e2e_podman_push LAYOUT TAG DEST: podman loads TAG of the OCI layout LAYOUT into its storage (as
# localhost/e2e/push:TAG, through a docker-archive: podman 4.3 names an image pulled from oci: after
# the layout's path, which may not be a valid name) and pushes it to docker://DEST with the
# credentials podman login stored; records the pushed manifest digest in $E2E_WORK/push.digest.
e2e_podman_push() {
  local archive=$E2E_WORK/tmp/podman-load.tar local_ref=localhost/e2e/push:$2 rc
  rm -f "$archive" "$E2E_WORK/push.digest"
  e2e_skopeo copy --quiet "oci:$1:$2" "docker-archive:$archive:$local_ref" || return 1
  e2e_podman load --quiet --input "$archive" >/dev/null
  rc=$?
  rm -f "$archive"
  [ "$rc" -eq 0 ] || return 1
  e2e_podman push --quiet --digestfile "$E2E_WORK/push.digest" "$local_ref" "docker://$3"
}

# e2e_skopeo_push LAYOUT TAG DEST [SKOPEO_COPY_ARGS...]: skopeo copy oci:LAYOUT:TAG docker://DEST as
# a client (client trust and DNS; credentials e.g. --dest-creds "$(e2e_creds)"); records the pushed
# manifest digest in $E2E_WORK/push.digest.
e2e_skopeo_push() {
  local src=oci:$1:$2 dst=$3
  shift 3
  _e2e_client_env
  rm -f "$E2E_WORK/push.digest"
  e2e_skopeo copy --quiet --retry-times 0 --digestfile "$E2E_WORK/push.digest" "$@" "$src" "docker://$dst"
}

# e2e_upstream_image_intact NAME REPO DIGEST LAYOUT TAG: fetches the manifest DIGEST of REPO
# straight from the upstream registry NAME (with E2E_USER's token when NAME is a user-aware
# registry, with no credentials otherwise) and checks:
# its bytes hash to DIGEST; every blob it names (config, layers) is there with the digest and size
# the manifest gives; the config's diff_ids are those of TAG in the OCI layout LAYOUT (the image
# that was pushed, whatever compression the client chose); each layer, decompressed, hashes to its
# diff_id. Says what differs.
e2e_upstream_image_intact() {
  local name=$1 repo=$2 digest=$3 layout=$4 tag=$5 dir cred_args got want d size mt i=0 src
  dir=$(mktemp -d "$E2E_WORK/tmp/verify.XXXXXX") || return 1
  cred_args=()
  if [ -s "$E2E_WORK/token-$name/user.jwt" ]; then
    cred_args=(-H "Authorization: Bearer $(e2e_user_token "$name" user)")
  fi
  e2e_upstream_curl "$name" "${cred_args[@]}" -H "Accept: $E2E_MANIFEST_TYPES" \
    -o "$dir/manifest" "https://$name/v2/$repo/manifests/$digest" ||
    { e2e_err "upstream $name has no manifest $repo@$digest"; return 1; }
  got=sha256:$(sha256sum <"$dir/manifest" | cut -d' ' -f1)
  [ "$got" = "$digest" ] || { e2e_err "upstream's manifest $repo@$digest hashes to $got"; return 1; }
  src=$(e2e_oci_manifest "$layout" "$tag" | jq -r .digest) || return 1
  src=$(e2e_oci_blob "$layout" "$src" | jq -r .config.digest) || return 1
  want=$(e2e_oci_blob "$layout" "$src" | jq -c .rootfs.diff_ids) || return 1
  jq -r '.config, .layers[] | "\(.digest) \(.size) \(.mediaType)"' "$dir/manifest" >"$dir/blobs" ||
    { e2e_err "upstream's manifest $repo@$digest is not an image manifest"; return 1; }
  while read -r d size mt; do
    e2e_upstream_curl "$name" "${cred_args[@]}" -o "$dir/blob" \
      "https://$name/v2/$repo/blobs/$d" </dev/null || { e2e_err "upstream $name has no blob $repo@$d"; return 1; }
    got=sha256:$(sha256sum <"$dir/blob" | cut -d' ' -f1)
    [ "$got" = "$d" ] || { e2e_err "upstream's blob $d hashes to $got"; return 1; }
    [ "$(stat -c %s "$dir/blob")" = "$size" ] ||
      { e2e_err "upstream's blob $d has $(stat -c %s "$dir/blob") bytes, the manifest says $size"; return 1; }
    if [ "$i" -eq 0 ]; then
      got=$(jq -c .rootfs.diff_ids "$dir/blob")
      [ "$got" = "$want" ] || { e2e_err "pushed config's diff_ids $got, pushed image's $want"; return 1; }
    else
      case $mt in
        *gzip) got=$(gzip -dc <"$dir/blob" | sha256sum) ;;
        *zstd) got=$(zstd -dcq <"$dir/blob" | sha256sum) ;;
        *) got=$(sha256sum <"$dir/blob") ;;
      esac
      got=sha256:${got%% *}
      [ "$got" = "$(jq -r --argjson i "$((i - 1))" '.[$i]' <<<"$want")" ] ||
        { e2e_err "layer $((i - 1)) ($d, $mt) decompresses to $got, not the pushed image's layer"; return 1; }
    fi
    i=$((i + 1))
  done <"$dir/blobs"
  [ "$i" -eq "$(($(jq length <<<"$want") + 1))" ] ||
    { e2e_err "upstream's manifest names $((i - 1)) layers, the pushed image has $(jq length <<<"$want")"; return 1; }
  rm -rf "$dir"
}

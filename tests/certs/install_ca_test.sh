#!/usr/bin/env bash
# scripts/install-ca.sh as a client runs it: fetched from the appliance's /install.sh and piped
# to sh as root, inside a private mount namespace whose /etc and /usr/local/share/ca-certificates
# are scratch copies, so the host is left untouched. Afterwards curl must trust the appliance with
# no --cacert, and Docker, containerd and podman must have their certs.d entries. The script ends
# by enrolling the machine (POST /enroll); tests/certs/enroll_stub.py stands in for an appliance
# that accepts, refuses (429) or drops that request, through curl and through wget, and the script
# must install the CA and exit 0 whatever the answer.
set -uo pipefail
pt_bin=$1
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (mount namespace)"; exit 77; fi
work=$(mktemp -d)
stub_pid=
trap 'stop_pullthrough; [ -z "$stub_pid" ] || kill "$stub_pid"; rm -rf "$work"' EXIT

cat > "$work/pt.yaml" <<YAML
state_dir: $work/state
proxy: {listen: ["127.0.0.1:0"], http_listen: ["127.0.0.1:0"], handover: 0s}
admin: {listen: "127.0.0.1:0"}
YAML
start_pullthrough "$work/serve.log" serve --config "$work/pt.yaml" --role proxy || exit 1
tls=$(bound_port "$work/serve.log" https)
web=$(bound_port "$work/serve.log" http)
url="http://127.0.0.1:$web"
check "GET /ca.crt" curl -fsS -o "$work/ca.crt" "$url/ca.crt"
check "/ca.crt is a certificate" openssl x509 -in "$work/ca.crt" -noout

python3 "$(dirname "$0")/enroll_stub.py" "$work/ca.crt" "$work/stub.log" "$work/stub.port" &
stub_pid=$!
wait_until 10 test -s "$work/stub.port" || { echo "enroll_stub.py did not start"; exit 1; }
stub="http://127.0.0.1:$(cat "$work/stub.port")"

host_bundle=$(sha256sum /etc/ssl/certs/ca-certificates.crt)
host_docker=$(test -e /etc/docker && echo present || echo absent)

root="$work/root"
mkdir -p "$root/local-ca"
cp -a /etc "$root/etc"
cp -a /usr/local/share/ca-certificates/. "$root/local-ca/"
mkdir -p "$root/etc/docker" "$root/etc/containers" "$root/etc/containerd"
# A PATH without curl, so that the script takes its wget branch.
if command -v wget >/dev/null; then
  mkdir "$root/nocurl"
  for tool in /usr/bin/*; do [ "${tool##*/}" = curl ] || ln -s "$tool" "$root/nocurl/"; done
else
  echo "no wget here: its branch of install-ca.sh is not run"
fi

# shellcheck disable=SC2016 # expanded by the inner bash
unshare -m bash -c '
  set -u -o pipefail # a failed download is a failed run, not an empty script run by sh
  root=$1 url=$2 tls=$3 stub=$4
  mount --make-rprivate /
  mount --bind "$root/etc" /etc
  mount --bind "$root/local-ca" /usr/local/share/ca-certificates
  curl -fsSL "$url/install.sh" | sh >"$root/out1" 2>&1; echo $? >"$root/rc1"
  curl -fsSL "$url/install.sh" | sh >"$root/out2" 2>&1; echo $? >"$root/rc2"
  # Each run below names the stub as the appliance; the CA it serves is the real one.
  curl -fsSL "$url/install.sh" | sh -s "$stub/200" >"$root/out_200" 2>&1; echo $? >"$root/rc_200"
  # A refused enroll must not undo or skip the install: start it from no trust store entry.
  rm -f /usr/local/share/ca-certificates/pullthrough.crt
  curl -fsSL "$url/install.sh" | sh -s "$stub/429" >"$root/out_429" 2>&1; echo $? >"$root/rc_429"
  cp /usr/local/share/ca-certificates/pullthrough.crt "$root/after_429.crt"
  curl -fsSL "$url/install.sh" | sh -s "$stub/drop" >"$root/out_drop" 2>&1
  echo $? >"$root/rc_drop"
  if [ -d "$root/nocurl" ]; then
    curl -fsSL "$url/install.sh" | PATH="$root/nocurl:/usr/sbin" sh -s "$stub/200" \
      >"$root/out_wget_200" 2>&1; echo $? >"$root/rc_wget_200"
    curl -fsSL "$url/install.sh" | PATH="$root/nocurl:/usr/sbin" sh -s "$stub/429" \
      >"$root/out_wget_429" 2>&1; echo $? >"$root/rc_wget_429"
  fi
  curl -s -o /dev/null -w "%{http_code}" --resolve "quay.io:$tls:127.0.0.1" \
    "https://quay.io:$tls/v2/" >"$root/curl" 2>&1
  # Not root: refused before touching anything.
  curl -fsSL "$url/install.sh" | setpriv --reuid=65534 --regid=65534 --clear-groups sh \
    >"$root/out_user" 2>&1; echo $? >"$root/rc_user"
' _ "$root" "$url" "$tls" "$stub"

check "install.sh exits 0 (output: $(cat "$root/out1"))" test "$(cat "$root/rc1")" = 0
check "a second run exits 0 too" test "$(cat "$root/rc2")" = 0
check "OS trust store entry is the CA" cmp -s "$root/local-ca/pullthrough.crt" "$work/ca.crt"
check "the OS bundle now holds the CA" \
  grep -qF "$(sed -n 2p "$work/ca.crt")" "$root/etc/ssl/certs/ca-certificates.crt"
check "curl without --cacert trusts https://quay.io on the appliance (got $(cat "$root/curl"))" \
  test "$(cat "$root/curl")" = 200
for name in registry-1.docker.io docker.io quay.io ghcr.io mcr.microsoft.com; do
  check "Docker certs.d for $name" cmp -s "$root/etc/docker/certs.d/$name/ca.crt" "$work/ca.crt"
  check "podman certs.d for $name" cmp -s "$root/etc/containers/certs.d/$name/ca.crt" "$work/ca.crt"
  check "containerd hosts.toml for $name" test -s "$root/etc/containerd/certs.d/$name/hosts.toml"
done
check "containerd's docker.io entry points at registry-1.docker.io" \
  grep -q 'server = "https://registry-1.docker.io"' "$root/etc/containerd/certs.d/docker.io/hosts.toml"
check "output says what to restart" grep -q 'restart to pick up the OS trust store: docker containerd' "$root/out1"
rc_user=$(cat "$root/rc_user" 2>/dev/null)
check "a non-root run is refused (exit '$rc_user')" test -n "$rc_user" -a "$rc_user" != 0
check "the refusal says why" grep -q 'run as root' "$root/out_user"

# Enrolling. The appliance under test (--role proxy, dns.allow private) enrolls the machine and
# says it tells the DNS side at its next health check.
later="pullthrough: the CA is installed; to enroll this machine later:"
check "install.sh enrolls the machine with the appliance" \
  grep -qE "^pullthrough: enrolled: the appliance says: enrolled 127\.0\.0\.1: " "$root/out1"
check "accepted: exits 0 (output: $(cat "$root/out_200"))" test "$(cat "$root/rc_200")" = 0
check "accepted: prints the appliance's answer" \
  grep -qx 'pullthrough: enrolled: the appliance says: stub answer 200' "$root/out_200"
check "refused: exits 0 (output: $(cat "$root/out_429"))" test "$(cat "$root/rc_429")" = 0
check "refused: the CA is installed all the same" cmp -s "$root/after_429.crt" "$work/ca.crt"
check "refused: prints the status and the appliance's answer" \
  grep -qx "pullthrough: not enrolled: $stub/429/enroll answered 429: stub answer 429" \
  "$root/out_429"
check "refused: says how to enroll later" \
  grep -qx "$later curl -X POST $stub/429/enroll" "$root/out_429"
check "dropped: exits 0 (output: $(cat "$root/out_drop"))" test "$(cat "$root/rc_drop")" = 0
check "dropped: says how to enroll later" \
  grep -qx "$later curl -X POST $stub/drop/enroll" "$root/out_drop"
# curl -X POST sends no body and no Content-Length: the appliance refuses a request with a body.
for status in 200 429 drop; do
  check "curl posted to /$status/enroll once, without a body" \
    test "$(grep -c "^POST /$status/enroll length=none\$" "$work/stub.log")" = 1
done
if [ -d "$root/nocurl" ]; then
  check "wget accepted: exits 0 (output: $(cat "$root/out_wget_200"))" \
    test "$(cat "$root/rc_wget_200")" = 0
  check "wget accepted: prints the appliance's answer" \
    grep -qx 'pullthrough: enrolled: the appliance says: stub answer 200' "$root/out_wget_200"
  check "wget refused: exits 0 (output: $(cat "$root/out_wget_429"))" \
    test "$(cat "$root/rc_wget_429")" = 0
  check "wget refused: says how to enroll later with wget" \
    grep -qx "$later wget -qO- --post-data= $stub/429/enroll" "$root/out_wget_429"
  for status in 200 429; do
    check "wget posted to /$status/enroll once, with an empty body" \
      test "$(grep -c "^POST /$status/enroll length=0\$" "$work/stub.log")" = 1
  done
fi

check "host CA bundle untouched" test "$(sha256sum /etc/ssl/certs/ca-certificates.crt)" = "$host_bundle"
check "host /etc/docker untouched" test "$(test -e /etc/docker && echo present || echo absent)" = "$host_docker"
check "clean stop (exit 0, no sanitizer report)" stop_pullthrough

finish

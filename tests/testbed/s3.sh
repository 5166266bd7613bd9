# shellcheck shell=bash
# S3-compatible peers for the end-to-end tests, in the test bed's network namespace (loopback
# addresses only): Moto's server with SigV4 authentication enforced, npm's s3rver, and
# tests/e2e/s3_fault_proxy.py between a client and either of them. Source it after
# tests/testbed/lib.sh, then call e2e_init; set -u safe, does not set -e.
#
# Each start function names its peer NAME after its address (moto-ADDR-PORT, s3rver-ADDR-PORT,
# s3proxy-ADDR-PORT; like the registries, several peers may share a port): its log is
# $E2E_WORK/logs/NAME.log, its pid $E2E_WORK/pids/NAME (e2e_stop NAME stops it, e2e_cleanup kills
# it with everything else in the namespace). e2e_start_moto and e2e_start_s3rver make that server
# the current one, whose state is exported:
#   E2E_S3_NAME         the peer's name (moto-ADDR-PORT or s3rver-ADDR-PORT)
#   E2E_S3_ENDPOINT     http://ADDR:PORT (https://ADDR:PORT when started with `tls`)
#   E2E_S3_BUCKET       the bucket the start function created
#   E2E_S3_KEY_FILE     $E2E_WORK/s3-NAME.key: the access key id
#   E2E_S3_SECRET_FILE  $E2E_WORK/s3-NAME.secret: the secret access key
#                       (both mode 0600, the bare value with NO trailing newline)
#   E2E_S3_PID          the server's pid (the process itself: ip netns exec and env exec it)
#   E2E_S3_CA           with `tls`, the CA that signed the server's certificate (E2E_UPSTREAM_CA);
#                       empty for http
#   E2E_S3_REGION       the signing region, us-east-1
# e2e_s3_use NAME makes an earlier one current again. The e2e_s3* helpers sign their requests
# with the current server's keys (path-style URLs: ENDPOINT/BUCKET/KEY).
#
# Moto (5.2): authentication is off until INITIAL_NO_AUTH_ACTION_COUNT (moto/settings.py, default
# infinity) actions have been served (moto/core/authorization.py counts the actions that reach
# _authenticate_and_authorize_*); POST /moto-api/reset-auth with a number as body sets that limit
# and zeroes the count (moto/moto_api/_internal/responses.py). Once on, every action must carry a
# SigV4 Authorization whose access key belongs to an IAM user of moto's IAM backend
# (moto/iam/access_control.py; unknown key: 403 InvalidAccessKeyId), whose signature moto
# recomputes with that user's secret (mismatch: 403 SignatureDoesNotMatch), and which a policy of
# the user allows (else 403 AccessDenied). So e2e_start_moto, while authentication is still off,
# seeds moto's random generator (POST /moto-api/seed, so a restart on the same address and port
# hands out the same keys), creates IAM user pt-e2e with an inline policy allowing s3:* on *, its access key and
# the bucket, then turns authentication on with reset-auth 0. Moto keeps everything in memory: a
# restarted moto has the same keys but an empty bucket. Anyone in the namespace could turn
# authentication off again through /moto-api/: the tests do not. Also seen in moto 5.2: it does
# not compare the signed x-amz-content-sha256 with the body it got (a body changed after signing
# is stored), its werkzeug server closes the connection after every response (Connection: close),
# and it checks signatures over a URL that werkzeug has partly decoded, which _E2E_MOTO_SERVER_PY
# below corrects.
# s3rver (3.7): accepts any request without an Authorization field; a signed one must use access
# key S3RVER (else 403 InvalidAccessKeyId), and it does not check SigV4 signatures at all (V2 only);
# it has no code to decode aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) bodies. Objects live on disk
# under $E2E_WORK/s3rver-ADDR-PORT/data, kept across a restart on the same address and port.

E2E_S3_REGION=${E2E_S3_REGION:-us-east-1}
export E2E_S3_REGION
E2E_S3_FAULT_PROXY=${E2E_S3_FAULT_PROXY:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../e2e" && pwd)/s3_fault_proxy.py}
# The Python 3 that imports botocore (the e2e_s3 client) and the one that imports moto.server;
# found by _e2e_s3_python when empty. Real interpreters, not pyenv shims: a shim picks its
# version by the current directory and the environment.
E2E_S3_PYTHON=${E2E_S3_PYTHON:-}
E2E_MOTO_PYTHON=${E2E_MOTO_PYTHON:-}
# The IAM user that owns moto's access key.
E2E_MOTO_USER=${E2E_MOTO_USER:-pt-e2e}

# _e2e_s3_python MODULE: the real path of the first Python 3 that imports MODULE: python3.11,
# python3 and newer ones on PATH, the interpreter of the moto_server script on PATH (through
# `pyenv which` when it is a pyenv shim; a virtualenv's, say), then every pyenv version (moto may
# live in only one of them).
_e2e_s3_python() {
  local py root c s cands=()
  for c in python3.11 python3 python3.12 python3.13; do
    py=$(command -v "$c" 2>/dev/null) && cands+=("$py")
  done
  if s=$(command -v moto_server 2>/dev/null); then
    case $s in */shims/*) s=$(pyenv which moto_server 2>/dev/null) || s= ;; esac
    py=$(sed -n '1s/^#! *\([^ ]*python[^ ]*\).*/\1/p' "$s" 2>/dev/null) && [ -n "$py" ] && cands+=("$py")
  fi
  root=$(pyenv root 2>/dev/null) || root=${PYENV_ROOT:-${HOME:-/root}/.pyenv}
  cands+=("$root"/versions/*/bin/python3)
  for py in "${cands[@]}"; do
    [ -x "$py" ] || continue
    "$py" -c "import sys, $1; print(sys.executable)" 2>/dev/null && return 0
  done
  return 1
}

# e2e_s3_pythons: sets E2E_S3_PYTHON and E2E_MOTO_PYTHON where they are empty and can be found
# (each look costs a Python start: a test calls it in its own shell first, so that
# `missing=$(e2e_have_s3_tools)` and the start functions find them set).
e2e_s3_pythons() {
  [ -n "$E2E_S3_PYTHON" ] || E2E_S3_PYTHON=$(_e2e_s3_python botocore.auth) || E2E_S3_PYTHON=
  [ -n "$E2E_MOTO_PYTHON" ] || E2E_MOTO_PYTHON=$(_e2e_s3_python moto.server) || E2E_MOTO_PYTHON=
}

# _e2e_s3rver_cmd: sets _e2e_s3rver, the command that runs s3rver: `s3rver` on PATH, else node
# with the script of npm's global s3rver package.
_e2e_s3rver_cmd() {
  local s root
  if s=$(command -v s3rver 2>/dev/null); then _e2e_s3rver=("$s"); return 0; fi
  root=$(npm root -g 2>/dev/null) && s=$root/s3rver/bin/s3rver.js && [ -f "$s" ] &&
    command -v node >/dev/null 2>&1 && { _e2e_s3rver=(node "$s"); return 0; }
  return 1
}
_e2e_s3rver=()

# e2e_have_s3_tools: returns 1 (naming the first missing one) unless everything this file uses is
# there: ip, nsenter, openssl, curl, a Python with botocore, one with moto, s3rver.
e2e_have_s3_tools() {
  local t
  for t in ip nsenter openssl curl; do
    command -v "$t" >/dev/null 2>&1 || { echo "missing: $t"; return 1; }
  done
  e2e_s3_pythons
  [ -n "$E2E_S3_PYTHON" ] || { echo "missing: a Python 3 with botocore"; return 1; }
  [ -n "$E2E_MOTO_PYTHON" ] || { echo "missing: a Python 3 with moto (moto_server)"; return 1; }
  _e2e_s3rver_cmd || { echo "missing: s3rver (scripts/deps installs it)"; return 1; }
}

# _e2e_s3_cert OUT ADDR: a server certificate OUT.pem (key OUT.key) for IP ADDR and localhost,
# signed by the upstream CA (clients use E2E_S3_CA = E2E_UPSTREAM_CA).
_e2e_s3_cert() { e2e_make_cert "$E2E_WORK/upstream-ca" "$1" "$2" localhost; }

# _e2e_s3_export NAME ENDPOINT BUCKET CA: makes peer NAME the current S3 server (the variables in
# the header), and records them in $E2E_WORK/s3-NAME.env for e2e_s3_use.
_e2e_s3_export() {
  E2E_S3_NAME=$1
  E2E_S3_ENDPOINT=$2
  E2E_S3_BUCKET=$3
  E2E_S3_CA=$4
  E2E_S3_KEY_FILE=$E2E_WORK/s3-$1.key
  E2E_S3_SECRET_FILE=$E2E_WORK/s3-$1.secret
  E2E_S3_PID=$(e2e_pid "$1") || E2E_S3_PID=
  export E2E_S3_NAME E2E_S3_ENDPOINT E2E_S3_BUCKET E2E_S3_CA E2E_S3_KEY_FILE E2E_S3_SECRET_FILE E2E_S3_PID
  local v
  for v in E2E_S3_NAME E2E_S3_ENDPOINT E2E_S3_BUCKET E2E_S3_CA E2E_S3_KEY_FILE E2E_S3_SECRET_FILE E2E_S3_PID; do
    printf '%s=%q\n' "$v" "${!v}"
  done >"$E2E_WORK/s3-$1.env"
}

# e2e_s3_use NAME: makes the S3 server NAME (started earlier) current again.
e2e_s3_use() {
  [ -f "$E2E_WORK/s3-$1.env" ] || { e2e_err "no S3 server $1 was started"; return 1; }
  # shellcheck source=/dev/null # written by _e2e_s3_export
  . "$E2E_WORK/s3-$1.env"
  export E2E_S3_NAME E2E_S3_ENDPOINT E2E_S3_BUCKET E2E_S3_CA E2E_S3_KEY_FILE E2E_S3_SECRET_FILE E2E_S3_PID
}

# _e2e_s3_answers URL [CA]: true when something answers HTTP at URL (any status; https trusting
# CA), for start-up probes.
_e2e_s3_answers() {
  local trust=()
  [ -z "${2:-}" ] || trust=(--cacert "$2")
  e2e_ns curl -sS -o /dev/null --max-time 2 "${trust[@]}" "$1"
}

# e2e_start_moto ADDR PORT BUCKET [tls]: Moto's server on ADDR:PORT in the namespace (plain http,
# or https with a certificate for IP ADDR from the upstream CA) with SigV4 authentication enforced
# (see the header): creates IAM user E2E_MOTO_USER allowed s3:*, its access key (written to the
# key files) and BUCKET, then turns authentication on and checks that the key opens BUCKET and an
# unknown key does not. Peer moto-ADDR-PORT; makes it the current S3 server.
e2e_start_moto() {
  local addr=$1 port=$2 bucket=$3 name=moto-$1-$2 scheme=http ca="" tls_args=() seed
  e2e_s3_pythons
  [ -n "$E2E_MOTO_PYTHON" ] || { e2e_err "no Python 3 with moto"; return 1; }
  [ -n "$E2E_S3_PYTHON" ] || { e2e_err "no Python 3 with botocore"; return 1; }
  mkdir -p "$E2E_WORK/$name"
  if [ "${4:-}" = tls ]; then
    _e2e_s3_cert "$E2E_WORK/$name/tls" "$addr" || return 1
    tls_args=(--ssl-cert "$E2E_WORK/$name/tls.pem" --ssl-key "$E2E_WORK/$name/tls.key")
    scheme=https
    ca=$E2E_UPSTREAM_CA
  fi
  # One seed per peer for the life of the test bed: a restart hands out the same access key.
  [ -s "$E2E_WORK/$name/seed" ] || echo "$((RANDOM * 32768 + RANDOM))" >"$E2E_WORK/$name/seed"
  seed=$(cat "$E2E_WORK/$name/seed")
  # moto.server's main() is what the moto_server script runs, here without a pyenv shim in
  # between (and with the canonical-form fix unless E2E_MOTO_PATCH=0). No AWS or moto settings
  # from the caller's environment (MOTO_ACCOUNT_ID would move the account,
  # INITIAL_NO_AUTH_ACTION_COUNT would count the set-up's actions).
  local run=(-m moto.server)
  [ "${E2E_MOTO_PATCH:-1}" = 0 ] || run=(-c "$_E2E_MOTO_SERVER_PY")
  _e2e_bg "$name" ns env -u INITIAL_NO_AUTH_ACTION_COUNT -u MOTO_ACCOUNT_ID -u AWS_ACCESS_KEY_ID \
    -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u http_proxy -u https_proxy \
    -u HTTP_PROXY -u HTTPS_PROXY -u no_proxy -u NO_PROXY PYTHONDONTWRITEBYTECODE=1 \
    "$E2E_MOTO_PYTHON" "${run[@]}" -H "$addr" -p "$port" "${tls_args[@]}"
  e2e_wait_ready "$name" _e2e_s3_answers "$scheme://$addr:$port/moto-api/reset-auth" "$ca" || return 1
  if ! _e2e_s3_client --endpoint "$scheme://$addr:$port" --ca "$ca" --bucket "$bucket" \
    moto-setup "$E2E_MOTO_USER" "$E2E_WORK/s3-$name.key" "$E2E_WORK/s3-$name.secret" "$seed"; then
    e2e_log_tail "$name"
    e2e_err "moto on $addr:$port: set-up failed"
    return 1
  fi
  _e2e_s3_export "$name" "$scheme://$addr:$port" "$bucket" "$ca"
  e2e_log "moto $scheme://$addr:$port (SigV4 enforced, IAM user $E2E_MOTO_USER, bucket $bucket)"
}

# e2e_start_s3rver ADDR PORT BUCKET [tls]: npm's s3rver on ADDR:PORT in the namespace (plain http,
# or https as for e2e_start_moto), objects under $E2E_WORK/s3rver-ADDR-PORT/data, BUCKET created at
# start-up (--configure-bucket), path-style only (--no-vhost-buckets: a Host that is a name would
# otherwise be taken for a bucket). Key files: S3RVER / S3RVER, the only key it knows. Peer
# s3rver-ADDR-PORT; makes it the current S3 server.
e2e_start_s3rver() {
  local addr=$1 port=$2 bucket=$3 name=s3rver-$1-$2 dir=$E2E_WORK/s3rver-$1-$2 scheme=http ca="" tls_args=()
  _e2e_s3rver_cmd || { e2e_err "no s3rver (scripts/deps installs it)"; return 1; }
  mkdir -p "$dir/data"
  if [ "${4:-}" = tls ]; then
    _e2e_s3_cert "$dir/tls" "$addr" || return 1
    tls_args=(--cert "$dir/tls.pem" --key "$dir/tls.key")
    scheme=https
    ca=$E2E_UPSTREAM_CA
  fi
  (umask 077 && printf %s S3RVER >"$E2E_WORK/s3-$name.key" && printf %s S3RVER >"$E2E_WORK/s3-$name.secret") ||
    return 1
  _e2e_bg "$name" ns env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
    "${_e2e_s3rver[@]}" --directory "$dir/data" --address "$addr" --port "$port" \
    --no-vhost-buckets --configure-bucket "$bucket" "${tls_args[@]}"
  # (_e2e_http_status trusts the upstream CA, which signed the certificate of `tls`.)
  e2e_wait_ready "$name" _e2e_http_status 200 "$scheme://$addr:$port/$bucket" ||
    return 1
  _e2e_s3_export "$name" "$scheme://$addr:$port" "$bucket" "$ca"
  e2e_log "s3rver $scheme://$addr:$port (bucket $bucket, data in $dir/data)"
}

# --- Requests ------------------------------------------------------------------------------------

# _e2e_s3_client ARGS...: the Python client below, in the namespace.
_e2e_s3_client() {
  e2e_s3_pythons
  [ -n "$E2E_S3_PYTHON" ] || { e2e_err "no Python 3 with botocore"; return 1; }
  e2e_ns env PYTHONDONTWRITEBYTECODE=1 "$E2E_S3_PYTHON" -c "$_E2E_S3_CLIENT_PY" "$@"
}

# _e2e_s3_current ARGS...: _e2e_s3_client with the current server's endpoint, CA, bucket and key
# files (ARGS may override them: later options win).
_e2e_s3_current() {
  [ -n "${E2E_S3_ENDPOINT:-}" ] || { e2e_err "no current S3 server (e2e_start_moto, e2e_start_s3rver)"; return 1; }
  _e2e_s3_client --endpoint "$E2E_S3_ENDPOINT" --ca "${E2E_S3_CA:-}" --bucket "$E2E_S3_BUCKET" \
    --key-file "$E2E_S3_KEY_FILE" --secret-file "$E2E_S3_SECRET_FILE" --region "$E2E_S3_REGION" "$@"
}

# e2e_s3 [OPTIONS] METHOD KEY: one SigV4-signed request for KEY of the current bucket (KEY "" is
# the bucket itself; a KEY that starts with "?" is a query on the bucket, e.g. "?list-type=2").
# Prints the response body; fails on a status other than 2xx (printing "STATUS CODE" and the body
# on stderr; exit 1) or when there is no response (connection refused or reset, timeout; exit 2).
# OPTIONS:
#   --body FILE          the request body (default none)
#   --chunked            send the body with Transfer-Encoding: chunked (64 KiB chunks)
#   --out FILE           the response body goes to FILE (on 2xx only)
#   --status             print "STATUS CODE" (CODE: the S3 error code, when the body has one)
#                        instead of the body, and succeed whatever the status
#   --header 'N: V'      an extra signed header (repeatable)
#   --path /P            the exact path and query instead of /BUCKET/KEY
#   --unsigned           send no Authorization
#   --access-key K, --secret-key S   sign with these instead of the key files
#   --endpoint URL       another endpoint (the fault proxy's, say): same keys, same bucket
#   --timeout S          seconds for the connection and for each read (default 30)
e2e_s3() { _e2e_s3_current request "$@"; }

# e2e_s3_keys [OPTIONS] PREFIX: the keys of the current bucket under PREFIX, one per line, in S3's
# order (ListObjectsV2, every page). OPTIONS: those of e2e_s3 that choose where and how to sign
# (--endpoint, --access-key, --secret-key, --timeout), and --sizes ("KEY SIZE" lines).
e2e_s3_keys() { _e2e_s3_current keys "$@"; }

# e2e_s3_count [OPTIONS] PREFIX: how many objects the current bucket has under PREFIX.
e2e_s3_count() {
  local keys
  keys=$(e2e_s3_keys "$@") || return 1
  if [ -z "$keys" ]; then echo 0; else wc -l <<<"$keys"; fi
}

# e2e_s3_get KEY FILE: downloads KEY of the current bucket to FILE.
e2e_s3_get() { e2e_s3 --out "$2" GET "$1"; }

# e2e_s3_put KEY FILE: uploads FILE as KEY of the current bucket (one PUT, payload signed).
e2e_s3_put() { e2e_s3 --body "$2" PUT "$1" >/dev/null; }

# e2e_s3_delete KEY: deletes KEY of the current bucket (S3 answers 204 whether it existed or not).
e2e_s3_delete() { e2e_s3 DELETE "$1" >/dev/null; }

# e2e_s3_exists KEY: true when a HEAD of KEY answers 200 (false on 404, and on any error).
e2e_s3_exists() { [ "$(e2e_s3 --status HEAD "$1")" = 200 ]; }

# e2e_s3_curl CURL_ARGS...: curl in the namespace (-sS, --max-time 30 unless CURL_ARGS say
# otherwise) signing with SigV4 (its --aws-sigv4, service s3, E2E_S3_REGION) with the current
# server's keys, handed over in a config file descriptor rather than on the command line; trusts
# E2E_S3_CA. The payload stays unsigned (x-amz-content-sha256: UNSIGNED-PAYLOAD): curl 7.88 sends
# no such field by itself and signs as if it had hashed the body, which Moto does not accept. No
# --fail: the caller looks at the status (-w '%{http_code}').
e2e_s3_curl() {
  local trust=()
  [ -z "${E2E_S3_CA:-}" ] || trust=(--cacert "$E2E_S3_CA")
  e2e_ns curl -sS --max-time 30 "${trust[@]}" --aws-sigv4 "aws:amz:$E2E_S3_REGION:s3" \
    --config <(printf 'user = "%s:%s"\n' "$(cat "$E2E_S3_KEY_FILE")" "$(cat "$E2E_S3_SECRET_FILE")") \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

# --- Fault proxy ---------------------------------------------------------------------------------

# e2e_start_s3_fault_proxy ADDR PORT CONTROL_PORT: tests/e2e/s3_fault_proxy.py on ADDR:PORT in
# front of the current S3 server (which must be plain http), its control on ADDR:CONTROL_PORT.
# Peer s3proxy-PORT. Exports E2E_S3_PROXY_ENDPOINT (http://ADDR:PORT, for clients: the same keys
# and bucket work through it), E2E_S3_PROXY_CONTROL (http://ADDR:CONTROL_PORT) and
# E2E_S3_PROXY_NAME. The current S3 server stays current.
e2e_start_s3_fault_proxy() {
  local addr=$1 port=$2 ctl=$3 up name=s3proxy-$1-$2
  case ${E2E_S3_ENDPOINT:-} in
    http://*) up=${E2E_S3_ENDPOINT#http://} ;;
    *) e2e_err "the fault proxy needs a current plain-http S3 server, not '${E2E_S3_ENDPOINT:-}'"; return 1 ;;
  esac
  e2e_s3_pythons
  _e2e_bg "$name" ns env PYTHONDONTWRITEBYTECODE=1 "${E2E_S3_PYTHON:-python3}" "$E2E_S3_FAULT_PROXY" \
    --listen "$addr:$port" --upstream "${up%%/*}" --control "$addr:$ctl"
  E2E_S3_PROXY_ENDPOINT=http://$addr:$port
  E2E_S3_PROXY_CONTROL=http://$addr:$ctl
  E2E_S3_PROXY_NAME=$name
  export E2E_S3_PROXY_ENDPOINT E2E_S3_PROXY_CONTROL E2E_S3_PROXY_NAME
  e2e_wait_ready "$name" _e2e_http_status 200 "$E2E_S3_PROXY_CONTROL/status" || return 1
  e2e_log "S3 fault proxy $E2E_S3_PROXY_ENDPOINT -> ${up%%/*}, control $E2E_S3_PROXY_CONTROL"
}

# e2e_s3_fault COMMAND...: sets the fault proxy's mode (pass | slowdown N [METHOD] | stall_get N |
# reset_upload BYTES | stall_get_body N BYTES | reset | status; a fault mode may end with
# "match TEXT", for requests whose target holds TEXT only); prints its JSON answer, fails when the
# proxy refuses the command.
e2e_s3_fault() {
  e2e_ns curl -sS --fail-with-body --max-time 5 -X POST --data-binary "$*" "$E2E_S3_PROXY_CONTROL/mode"
}

# e2e_s3_fault_status: the fault proxy's counters (JSON: mode, requests by method, faults by kind,
# responses by status, connections).
e2e_s3_fault_status() { e2e_ns curl -sS --fail --max-time 5 "$E2E_S3_PROXY_CONTROL/status"; }

# Moto's server with one fix (run with -c; arguments as moto_server's). To check a signature, moto
# 5.2 recomputes it over the URL as werkzeug rebuilds it (request.url), which decodes many
# percent-escapes that SigV4's canonical form keeps (%2F, %3A, %40, %21, %2A, ... in the query:
# prefix=a%2F becomes prefix=a/), so it refuses a correctly signed ListObjectsV2 with a prefix
# that holds "/". The fix puts the path and query back in SigV4's canonical form (S3: each byte
# but A-Z a-z 0-9 - _ . ~ and the path's "/" percent-encoded, once) before moto signs them.
_E2E_MOTO_SERVER_PY=$(
  cat <<'PY'
import sys
import urllib.parse

from moto.iam import access_control


def _canonical(part, safe):
    return urllib.parse.quote(urllib.parse.unquote(part), safe=safe)


_create = access_control.IAMRequestBase._create_aws_request


def _create_aws_request(self):
    request = _create(self)
    u = urllib.parse.urlsplit(request.url)
    query = "&".join("=".join(_canonical(x, "-_.~") for x in p.split("=", 1))
                     for p in u.query.split("&") if p)
    request.url = urllib.parse.urlunsplit(("", "", _canonical(u.path, "/-_.~"), query, ""))
    return request


access_control.IAMRequestBase._create_aws_request = _create_aws_request
from moto.server import main  # noqa: E402

sys.argv[0] = "moto_server"
main()
PY
)

# The client behind e2e_s3*, and moto's set-up (Python 3 with botocore; run with -c).
_E2E_S3_CLIENT_PY=$(
  cat <<'PY'
import argparse, http.client, json, os, socket, ssl, sys, urllib.parse
import xml.etree.ElementTree as ET
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class NoResponse(Exception):
    pass


def error_code(data):
    try:
        for el in ET.fromstring(data).iter():
            if el.tag.rsplit("}", 1)[-1] == "Code":
                return (el.text or "").strip()
    except ET.ParseError:
        pass
    return ""


def child(el, name):
    for c in el:
        if c.tag.rsplit("}", 1)[-1] == name:
            return c
    return None


class Client:
    def __init__(self, a):
        self.a = a
        self.endpoint = a.endpoint.rstrip("/")
        self.key = self.secret = None
        if a.access_key is not None:
            self.key = a.access_key
        elif a.key_file:
            with open(a.key_file) as f:
                self.key = f.read()
        if a.secret_key is not None:
            self.secret = a.secret_key
        elif a.secret_file:
            with open(a.secret_file) as f:
                self.secret = f.read()

    def send(self, method, path, body=b"", headers=(), service="s3", sign=True, out=None,
             chunked=False):
        u = urllib.parse.urlsplit(self.endpoint)
        h = dict(headers)
        if sign:
            req = AWSRequest(method=method, url=self.endpoint + path, data=body, headers=h)
            auth = S3SigV4Auth if service == "s3" else SigV4Auth
            auth(Credentials(self.key, self.secret), service, self.a.region).add_auth(req)
            h = dict(req.headers.items())
        if u.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.a.ca or None)
            c = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=self.a.timeout,
                                            context=ctx)
        else:
            c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=self.a.timeout)
        try:
            if chunked:
                # Transfer-Encoding is added here, after signing: S3 does not sign it.
                pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
                c.request(method, path, body=iter(pieces), headers=h, encode_chunked=True)
            else:
                c.request(method, path, body=body if body or method in ("PUT", "POST") else None,
                          headers=h)
            r = c.getresponse()
            if out and 200 <= r.status < 300:
                with open(out, "wb") as f:
                    while True:
                        piece = r.read(65536)
                        if not piece:
                            break
                        f.write(piece)
                return r.status, b""
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            raise NoResponse(f"{method} {self.endpoint}{path}: {type(e).__name__}: {e}") from None
        finally:
            c.close()

    def path(self, key):
        if self.a.path:
            return self.a.path
        base = "/" + self.a.bucket
        if key.startswith("?"):
            return base + key
        return base + ("/" + urllib.parse.quote(key, safe="/-_.~") if key else "")


def request(c, a):
    body = b""
    if a.body:
        with open(a.body, "rb") as f:
            body = f.read()
    headers = [tuple(s.strip() for s in h.split(":", 1)) for h in a.header]
    status, data = c.send(a.method.upper(), c.path(a.key), body, headers, sign=not a.unsigned,
                          out=a.out, chunked=a.chunked)
    if a.status:
        print(f"{status} {error_code(data)}".strip())
        return 0
    if 200 <= status < 300:
        sys.stdout.buffer.write(data)
        return 0
    print(f"{status} {error_code(data)}".strip(), file=sys.stderr)
    sys.stderr.buffer.write(data[:2000] + b"\n")
    return 1


def keys(c, a):
    token = None
    while True:
        q = {"list-type": "2", "prefix": a.prefix}
        if token:
            q["continuation-token"] = token
        status, data = c.send("GET", c.path("?" + urllib.parse.urlencode(sorted(q.items()))))
        if status != 200:
            print(f"list {a.prefix!r}: {status} {error_code(data)}", file=sys.stderr)
            return 1
        root = ET.fromstring(data)
        for el in root:
            if el.tag.rsplit("}", 1)[-1] == "Contents":
                if a.sizes:
                    print(f'{child(el, "Key").text} {child(el, "Size").text}')
                else:
                    print(child(el, "Key").text)
        trunc, nxt = child(root, "IsTruncated"), child(root, "NextContinuationToken")
        if trunc is None or trunc.text != "true" or nxt is None:
            return 0
        token = nxt.text


def moto_setup(c, a):
    def ok(what, status, data, want=200):
        if status != want:
            raise SystemExit(f"moto set-up: {what}: {status} {data[:500]!r}")

    def iam(action, **params):
        form = urllib.parse.urlencode({"Action": action, "Version": "2010-05-08", **params})
        status, data = c.send("POST", "/", form.encode(), service="iam", headers=[
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")])
        ok(f"iam {action}", status, data)
        return data

    # Authentication is still off: any credentials pass; the service comes from their scope.
    c.key, c.secret = "AKIAE2ESETUPNOTAKEY0", "set-up"
    ok("seed", *c.send("POST", f"/moto-api/seed?a={a.seed}", sign=False))
    iam("CreateUser", UserName=a.user)
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam("PutUserPolicy", UserName=a.user, PolicyName="s3-all", PolicyDocument=json.dumps(policy))
    root = ET.fromstring(iam("CreateAccessKey", UserName=a.user))
    found = {el.tag.rsplit("}", 1)[-1]: el.text for el in root.iter()}
    key, secret = found["AccessKeyId"], found["SecretAccessKey"]
    ok("create bucket", *c.send("PUT", "/" + a.bucket))
    # From now on every action is authenticated: INITIAL_NO_AUTH_ACTION_COUNT = 0, count 0.
    ok("reset-auth", *c.send("POST", "/moto-api/reset-auth", b"0", sign=False))
    c.key, c.secret = key, secret
    ok("the new key lists the bucket", *c.send("GET", "/" + a.bucket + "?list-type=2"))
    c.key = "AKIA" + "Z" * 16
    ok("an unknown key is refused", *c.send("GET", "/" + a.bucket + "?list-type=2"), want=403)
    for path, value in ((a.key_out, key), (a.secret_out, secret)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
    return 0


def main():
    ap = argparse.ArgumentParser(prog="e2e_s3")
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ca", default="")
    ap.add_argument("--bucket", default="")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--key-file")
    ap.add_argument("--secret-file")
    ap.add_argument("--access-key")
    ap.add_argument("--secret-key")
    ap.add_argument("--timeout", type=float, default=30)
    # The same options after the subcommand, where e2e_s3's callers put them (later ones win).
    common = argparse.ArgumentParser(add_help=False)
    for name in ("--endpoint", "--ca", "--bucket", "--region", "--key-file", "--secret-file",
                 "--access-key", "--secret-key"):
        common.add_argument(name, default=argparse.SUPPRESS)
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("request", parents=[common])
    r.add_argument("--body")
    r.add_argument("--out")
    r.add_argument("--path")
    r.add_argument("--header", action="append", default=[])
    r.add_argument("--status", action="store_true")
    r.add_argument("--unsigned", action="store_true")
    r.add_argument("--chunked", action="store_true")
    r.add_argument("method")
    r.add_argument("key")
    k = sub.add_parser("keys", parents=[common])
    k.add_argument("--sizes", action="store_true")
    k.add_argument("prefix")
    m = sub.add_parser("moto-setup")
    for name in ("user", "key_out", "secret_out", "seed"):
        m.add_argument(name)
    a = ap.parse_args()
    a.path = getattr(a, "path", None)
    c = Client(a)
    try:
        return {"request": request, "keys": keys, "moto-setup": moto_setup}[a.cmd](c, a)
    except NoResponse as e:
        print(f"e2e_s3: no response: {e}", file=sys.stderr)
        return 2


sys.exit(main())
PY
)

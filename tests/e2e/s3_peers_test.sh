#!/usr/bin/env bash
# The S3 peers of the test bed by themselves (tests/testbed/s3.sh), with no appliance, so that the
# S3 tests can trust them:
#   (a) a signed PUT, listing, GET and DELETE work on Moto and on s3rver, over https and plain
#       http, with a key and a list prefix that need percent-encoding;
#   (b) Moto enforces SigV4: a wrong secret gets 403 SignatureDoesNotMatch, an unknown access key
#       403 InvalidAccessKeyId, an unsigned request is refused; a restarted Moto hands out the
#       same keys; s3rver knows only its own access key and checks no V4 signature;
#   (c) tests/e2e/s3_fault_proxy.py forwards requests unchanged: signed ones to Moto (chunked
#       bodies, Expect: 100-continue), kept-alive connections to s3rver (Moto closes each one);
#       each fault mode does what it says: slowdown, stall_get, stall_get_body, reset_upload,
#       status; it survives garbage, answers 502 while the upstream is down and reconnects.
#   s3_peers_test.sh [PULLTHROUGH_BINARY]   (the argument, as for the other e2e tests, is unused)
# Exit 0 pass, 1 fail, 77 skip (not root, or a peer or tool missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$here/../testbed/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/s3.sh
. "$here/../testbed/s3.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
e2e_s3_pythons
if ! missing=$(e2e_have_s3_tools); then echo "skipped: $missing"; exit 77; fi
command -v jq >/dev/null 2>&1 || { echo "skipped: missing: jq"; exit 77; }

t_start=$(e2e_now)
moto_addr=127.0.3.1
s3rver_addr=127.0.3.2
moto_tls_addr=127.0.3.3
bucket=pt-cache
# Needs percent-encoding in the path (":" "@" "!"), and its prefix in a list query ("/").
odd_key='roundtrip/dir/a:b@c!d~e.bin'

setup "namespace" e2e_init
small=$E2E_WORK/small.bin
big=$E2E_WORK/big.bin
# 300 KiB; 2 MiB: curl 7.88 sends Expect: 100-continue with an upload of more than 1 MiB.
head -c $((300 * 1024)) /dev/urandom >"$small"
head -c $((2048 * 1024)) /dev/urandom >"$big"

# same KEY FILE: the current server's KEY has FILE's bytes.
same() { rm -f "$E2E_WORK/got" && e2e_s3_get "$1" "$E2E_WORK/got" && cmp -s "$2" "$E2E_WORK/got"; }
# head_status KEY: the status (and S3 error code) of a signed HEAD of KEY.
head_status() { e2e_s3 --status HEAD "$1"; }
# key_files_ok: the current key files are mode 0600 and hold a bare value (no newline).
key_files_ok() {
  local f
  for f in "$E2E_S3_KEY_FILE" "$E2E_S3_SECRET_FILE"; do
    if [ "$(stat -c %a "$f")" != 600 ] || [ ! -s "$f" ] || [ "$(wc -l <"$f")" != 0 ]; then
      echo "bad key file $f: mode $(stat -c %a "$f"), $(wc -l <"$f") newlines"
      return 1
    fi
  done
}
# roundtrip LABEL KEY: (a) on the current server.
roundtrip() {
  local label=$1 key=$2 prefix=${2%/*}/
  check "$label: key files are 0600 with no trailing newline" key_files_ok
  check "$label: signed PUT of $key" e2e_s3_put "$key" "$small"
  check "$label: listed under $prefix" test "$(e2e_s3_keys "$prefix")" = "$key"
  check "$label: HEAD finds it" test "$(head_status "$key")" = 200
  check "$label: GET returns the same bytes" same "$key" "$small"
  check "$label: DELETE" e2e_s3_delete "$key"
  check "$label: HEAD after DELETE is 404" test "$(head_status "$key")" = 404
  check "$label: nothing left under $prefix" test "$(e2e_s3_count "$prefix")" = 0
}

# --- (a), (b): the servers ------------------------------------------------------------------------
# https first, each stopped after its round trip: the rest runs on plain http.
setup "moto (https)" e2e_start_moto "$moto_tls_addr" 9443 "$bucket" tls
echo "    moto: $E2E_S3_ENDPOINT, access key $(cat "$E2E_S3_KEY_FILE"), pid $E2E_S3_PID"
roundtrip "moto https" "$odd_key"
check "moto https: stopped" e2e_stop "$E2E_S3_NAME"
setup "s3rver (https)" e2e_start_s3rver "$s3rver_addr" 9443 "$bucket" tls
roundtrip "s3rver https" "$odd_key"
check "s3rver https: stopped" e2e_stop "$E2E_S3_NAME"

setup "s3rver (http)" e2e_start_s3rver "$s3rver_addr" 9001 "$bucket"
s3rver=$E2E_S3_NAME
roundtrip "s3rver http" "$odd_key"
check "s3rver: an unknown access key gets 403 InvalidAccessKeyId" \
  test "$(e2e_s3 --status --access-key AKIAE2EUNKNOWNKEY000 GET "$odd_key")" = "403 InvalidAccessKeyId"
e2e_s3_put s3rver/secret "$small"
check "s3rver: checks no V4 signature (a wrong secret key still reads)" \
  test "$(e2e_s3 --status --secret-key not-the-secret HEAD s3rver/secret)" = 200

setup "moto (http, SigV4 enforced)" e2e_start_moto "$moto_addr" 9000 "$bucket"
moto=$E2E_S3_NAME
moto_key=$(cat "$E2E_S3_KEY_FILE")
moto_secret=$(cat "$E2E_S3_SECRET_FILE")
roundtrip "moto http" "$odd_key"
check "moto: curl --aws-sigv4 (e2e_s3_curl) PUTs and GETs" \
  test "$(e2e_s3_curl -o /dev/null -w '%{http_code}' -T "$small" "$E2E_S3_ENDPOINT/$bucket/curl/x")$(
    e2e_s3_curl -o /dev/null -w '%{http_code}' "$E2E_S3_ENDPOINT/$bucket/curl/x")" = 200200
e2e_s3_put auth/object "$small"
check "moto: a wrong secret key gets 403 SignatureDoesNotMatch" \
  test "$(e2e_s3 --status --secret-key "x$moto_secret" GET auth/object)" = "403 SignatureDoesNotMatch"
check "moto: an unknown access key gets 403 InvalidAccessKeyId" \
  test "$(e2e_s3 --status --access-key AKIAE2EUNKNOWNKEY000 GET auth/object)" = "403 InvalidAccessKeyId"
check "moto: a wrong secret cannot PUT either" \
  test "$(e2e_s3 --status --secret-key "x$moto_secret" --body "$small" PUT auth/forged)" = "403 SignatureDoesNotMatch"
check "moto: nor DELETE" \
  test "$(e2e_s3 --status --secret-key "x$moto_secret" DELETE auth/object)" = "403 SignatureDoesNotMatch"
unsigned=$(e2e_s3 --status --unsigned GET auth/object)
check "moto: an unsigned GET is refused (got $unsigned)" test "${unsigned%% *}" = 403
check "moto: the refused requests changed nothing" test "$(e2e_s3_keys auth/)" = auth/object
check "moto: a chunked upload (Transfer-Encoding unsigned, as S3 wants)" \
  e2e_s3 --chunked --body "$small" PUT auth/chunked
check "moto: ... stored intact" same auth/chunked "$small"

# --- (c): the fault proxy -------------------------------------------------------------------------
# via KEY: the URL of KEY through the current proxy. pcurl CURL_ARGS...: e2e_s3_curl with its
# stderr in $E2E_WORK/curl.err. proxied CURL_ARGS...: pcurl, the body to $E2E_WORK/curl.out,
# printing "EXIT HTTP_CODE BYTES_RECEIVED" (compare "${r% *}" for the first two).
via() { echo "$E2E_S3_PROXY_ENDPOINT/$bucket/$1"; }
pcurl() { e2e_s3_curl "$@" 2>"$E2E_WORK/curl.err"; }
proxied() {
  local out rc
  out=$(pcurl -o "$E2E_WORK/curl.out" -w '%{http_code} %{size_download}' "$@")
  rc=$?
  echo "$rc $out"
}
# alive NAME: peer NAME is running.
alive() { e2e_pid "$1" >/dev/null; }
# fault COMMAND...: e2e_s3_fault, quietly.
fault() { e2e_s3_fault "$@" >/dev/null; }
# status_of JQ: a value from the current proxy's counters.
status_of() { e2e_s3_fault_status | jq -r "$1"; }
# two_gets KEY [CURL_ARGS...]: two GETs of KEY in one curl; prints "CODE CONNECTS CODE CONNECTS"
# (connects 0: the connection of the first was reused).
two_gets() {
  pcurl "${@:2}" -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' "$(via "$1")" "$(via "$1")" |
    tr '\n' ' ' | sed 's/ $//'
}

# In front of s3rver, which keeps connections alive (moto's werkzeug answers every request with
# Connection: close, which the proxy relays as it is).
e2e_s3_use "$s3rver"
setup "fault proxy in front of s3rver" e2e_start_s3_fault_proxy "$s3rver_addr" 9100 9101
e2e_s3_put ka/small "$small"
conns=$(status_of .connections)
r=$(two_gets ka/small)
check "keep-alive: two GETs on one connection through the proxy (got: $r)" test "$r" = "200 1 200 0"
check "keep-alive: ... one client connection for the proxy" test "$(status_of .connections)" = "$((conns + 1))"
r=$(two_gets ka/small -I)
check "keep-alive: two HEADs on one connection (no body after a HEAD's Content-Length) (got: $r)" \
  test "$r" = "200 1 200 0"
check "keep-alive: slowdown 1" fault slowdown 1
r=$(two_gets ka/small)
check "keep-alive: after the proxy's own 503 the connection goes on (got: $r)" test "$r" = "503 1 200 0"
r=$(pcurl -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' -T - "$(via ka/chunked)" <"$big")
check "keep-alive: a chunked PUT of 2 MiB is relayed (got: $r)" test "$r" = 200
check "keep-alive: ... stored intact" same ka/chunked "$big"
check "keep-alive: fault proxy stopped" e2e_stop "$E2E_S3_PROXY_NAME"

# In front of moto, which checks every signature.
e2e_s3_use "$moto"
setup "fault proxy in front of moto" e2e_start_s3_fault_proxy "$moto_addr" 9100 9101
proxy=$E2E_S3_PROXY_NAME
plog=$E2E_WORK/logs/$proxy.log
# moto_saw METHOD KEY: how many requests for KEY moto's log shows.
moto_saw() { grep -c "\"$1 /$bucket/$2 HTTP" "$E2E_WORK/logs/$moto.log"; }

check "pass: a signed PUT through the proxy (the signature survives)" \
  e2e_s3 --endpoint "$E2E_S3_PROXY_ENDPOINT" --body "$small" PUT pass/small
check "pass: a signed GET through the proxy" \
  e2e_s3 --endpoint "$E2E_S3_PROXY_ENDPOINT" --out "$E2E_WORK/got" GET pass/small
check "pass: ... returns the same bytes" cmp -s "$small" "$E2E_WORK/got"
check "pass: a signed list through the proxy" \
  test "$(e2e_s3_keys --endpoint "$E2E_S3_PROXY_ENDPOINT" pass/)" = pass/small
check "pass: a signed chunked PUT through the proxy" \
  e2e_s3 --endpoint "$E2E_S3_PROXY_ENDPOINT" --chunked --body "$big" PUT pass/chunked
check "pass: ... stored intact" same pass/chunked "$big"
r=$(proxied -v -T "$big" "$(via pass/big)")
check "pass: a 2 MiB PUT with Expect: 100-continue (got: $r)" test "$r" = "0 200 0"
check "pass: ... moto's 100 Continue came through" grep -q '^< HTTP/1.1 100 Continue' "$E2E_WORK/curl.err"
check "pass: ... stored intact" same pass/big "$big"

# slowdown
check "slowdown 2 PUT: accepted" fault slowdown 2 PUT
r=$(proxied "$(via pass/small)")
check "slowdown: a GET passes (got: $r)" test "$r" = "0 200 $((300 * 1024))"
r=$(proxied -D "$E2E_WORK/headers" -T "$small" "$(via slow/a)")
check "slowdown: a PUT gets 503 (got: $r)" test "${r% *}" = "0 503"
check "slowdown: ... with S3's SlowDown XML error" \
  grep -q '<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>' "$E2E_WORK/curl.out"
check "slowdown: ... as application/xml with its Content-Length" \
  test "$(tr -d '\r' <"$E2E_WORK/headers" | grep -ciE '^(content-type: application/xml|content-length: [0-9]+)$')" = 2
r=$(proxied -v -T "$big" "$(via slow/b)")
check "slowdown: a 2 MiB PUT with Expect: 100-continue gets 503 (got: $r)" \
  test "${r% *}" = "0 503"
check "slowdown: ... after the proxy's own 100 Continue" grep -q '^< HTTP/1.1 100 Continue' "$E2E_WORK/curl.err"
check "slowdown: ... its body drained first" grep -q "PUT /$bucket/slow/b -> fault slowdown: 503 SlowDown (request body of 2097152 B drained)" "$plog"
r=$(proxied -T "$small" "$(via slow/c)")
check "slowdown: the third PUT passes (got: $r)" test "${r% *}" = "0 200"
check "slowdown: the slowed PUTs never reached moto" \
  test "$(moto_saw PUT slow/a)$(moto_saw PUT slow/b)$(moto_saw PUT slow/c)" = 001
check "slowdown 1: accepted" fault slowdown 1
r=$(two_gets pass/small)
check "slowdown: the client connection stays usable after a 503 (got: $r)" test "$r" = "503 1 200 0"
check "slowdown 1 (any method): accepted" fault slowdown 1
check "slowdown: a DELETE gets 503 too" test "$(e2e_s3 --status --endpoint "$E2E_S3_PROXY_ENDPOINT" DELETE pass/small)" = "503 SlowDown"
check "slowdown: ... and pass/small is still there" test "$(head_status pass/small)" = 200

# stall_get
e2e_s3_put stall/obj "$small"
check "stall_get 1: accepted" fault stall_get 1
r=$(proxied --max-time 2 "$(via stall/obj)")
check "stall_get: the GET gets nothing until the client gives up (got: $r)" test "$r" = "28 000 0"
check "stall_get: ... though it was forwarded and moto answered it" wait_until 5 test "$(moto_saw GET stall/obj)" = 1
check "stall_get: ... and the proxy held it until the client closed" wait_until 5 grep -q 'fault stall_get: client closed after' "$plog"
r=$(proxied "$(via pass/small)")
check "stall_get: the next GET passes (got: $r)" test "$r" = "0 200 $((300 * 1024))"
check "stall_get 1: accepted again" fault stall_get 1
r=$(proxied -T "$small" "$(via stall/put)")
check "stall_get: a PUT is not held (got: $r)" test "${r% *}" = "0 200"
check "stall_get: the python client times out on the held GET" \
  fails_with 'no response.*timed out' e2e_s3 --timeout 2 --endpoint "$E2E_S3_PROXY_ENDPOINT" GET pass/small
check "pass: accepted" fault pass

# stall_get_body
check "stall_get_body 1 1000: accepted" fault stall_get_body 1 1000
r=$(proxied --max-time 2 "$(via pass/small)")
check "stall_get_body: head and 1000 bytes, then nothing (got: $r)" test "$r" = "28 200 1000"
check "stall_get_body: ... the bytes are the object's first" cmp -s <(head -c 1000 "$small") "$E2E_WORK/curl.out"
check "stall_get_body 1 10000000: accepted" fault stall_get_body 1 10000000
r=$(proxied --max-time 2 "$(via pass/small)")
check "stall_get_body: never the whole body, even when BYTES is larger (got: $r)" \
  test "$r" = "28 200 $((300 * 1024 - 1))"
r=$(proxied "$(via pass/small)")
check "stall_get_body: the next GET passes (got: $r)" test "$r" = "0 200 $((300 * 1024))"

# reset_upload
check "reset_upload 100000: accepted" fault reset_upload 100000
r=$(proxied --max-time 10 -T "$big" "$(via reset/big)")
err=$(cat "$E2E_WORK/curl.err")
check "reset_upload: the 2 MiB PUT is reset (got: $r; $err)" test "${r%% *}" = 55 -o "${r%% *}" = 56
check "reset_upload: ... by an RST, not a clean close" grep -q 'reset by peer' <<<"$err"
check "reset_upload: ... after 100000 bytes of the body went upstream" \
  grep -q "PUT /$bucket/reset/big -> fault reset_upload: both connections reset after 100000 B of the body" "$plog"
check "reset_upload: ... and moto has no such object" test "$(head_status reset/big)" = 404
check "reset_upload 10000000: accepted" fault reset_upload 10000000
r=$(proxied --max-time 10 -T "$small" "$(via reset/small)")
check "reset_upload: never the whole body, even when BYTES is larger (got: $r)" \
  test "${r%% *}" = 55 -o "${r%% *}" = 56
check "reset_upload: ... $((300 * 1024 - 1)) bytes went upstream" \
  grep -q "PUT /$bucket/reset/small -> fault reset_upload: both connections reset after $((300 * 1024 - 1)) B" "$plog"
check "reset_upload: ... and moto has no such object" test "$(head_status reset/small)" = 404
r=$(proxied -T "$big" "$(via reset/big)")
check "reset_upload: the next PUT passes (got: $r)" test "${r% *}" = "0 200"
check "reset_upload: ... stored intact" same reset/big "$big"

# status and the control itself
st=$(e2e_s3_fault status)
echo "    proxy status: $st"
check "status: faults by kind" \
  test "$(jq -c '.faults' <<<"$st")" = '{"reset_upload":2,"slowdown":4,"stall_get":2,"stall_get_body":2}'
check "status: requests by method" \
  test "$(jq -c '[.requests.GET, .requests.PUT, .requests.DELETE] | all(. > 0)' <<<"$st")" = true
check "status: GET /status says the same" test "$(status_of .faults.slowdown)" = 4
check "status: the mode is pass again" test "$(jq -r .mode.mode <<<"$st")" = pass
check "control: an unknown command is refused" fails_with 'unknown command' e2e_s3_fault explode 3
check "control: a count must be a positive number" fails_with 'not a positive number' e2e_s3_fault slowdown x

# robustness: raw bytes to the proxy (raw BYTES [READ]: sends BYTES, a printf format, then prints
# at most READ bytes of the answer and hangs up).
raw() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  e2e_ns timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "$2" >&3 && head -c "$3" <&3' \
    "$moto_addr" 9100 "$1" "${2:-0}"
}
check "robust: garbage gets 400" test "$(raw '\x00\x01 garbage\r\n\r\n' 12)" = "HTTP/1.1 400"
raw 'GET /x HTTP/1.1\r\nHost: x\r\n'
raw 'PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' 12 >/dev/null
r=$(proxied "$(via pass/small)")
check "robust: after garbage and a half request the proxy still relays (got: $r)" test "$r" = "0 200 $((300 * 1024))"
check "robust: the proxy is still running" alive "$proxy"

# Upstream down, and a restarted moto: same keys (seeded), empty bucket.
check "moto stopped" e2e_stop "$moto"
r=$(proxied "$(via pass/small)")
check "upstream down: the proxy answers 502 (got: $r)" test "${r% *}" = "0 502"
setup "moto restarted" e2e_start_moto "$moto_addr" 9000 "$bucket"
check "restart: moto hands out the same access key" test "$(cat "$E2E_S3_KEY_FILE")" = "$moto_key"
check "restart: ... and the same secret" test "$(cat "$E2E_S3_SECRET_FILE")" = "$moto_secret"
check "restart: the bucket is empty (moto keeps nothing)" test "$(e2e_s3_count "")" = 0
r=$(proxied -T "$small" "$(via after/restart)")
check "restart: a signed PUT through the proxy works again (got: $r)" test "${r% *}" = "0 200"
check "restart: wrong secrets are still refused" \
  test "$(e2e_s3 --status --secret-key "x$moto_secret" GET after/restart)" = "403 SignatureDoesNotMatch"

echo "    proxy log: $(grep -c ' -> ' "$plog") request lines, e.g.:"
grep ' -> ' "$plog" | head -n 3 | sed 's/^/    | /'
printf '  %7ss  total\n' "$(e2e_since "$t_start")"
finish

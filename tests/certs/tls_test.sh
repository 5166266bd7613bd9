#!/usr/bin/env bash
# The TLS front door and CA page as clients see them: openssl s_client and curl against a running
# appliance, with the CA fetched from its /ca.crt.
set -uo pipefail
pt_bin=$1
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "$0")/../lib.sh"
work=$(mktemp -d)
trap 'stop_pullthrough; rm -rf "$work"' EXIT

cat > "$work/pt.yaml" <<YAML
state_dir: $work/state
dns: {upstreams: ["127.0.0.1:1"]}
proxy:
  listen: ["127.0.0.1:0"]
  http_listen: ["127.0.0.1:0"]
  handover: 0s
admin: {listen: "127.0.0.1:0"}
YAML

start_pullthrough "$work/serve.log" serve --config "$work/pt.yaml" --role proxy || exit 1
tls=$(bound_port "$work/serve.log" https)
web=$(bound_port "$work/serve.log" http)
check "ports found in the log" test -n "$tls" -a -n "$web"

check "GET /ca.crt" curl -fsS -o "$work/ca.crt" "http://127.0.0.1:$web/ca.crt"
check "GET /ca.der" curl -fsS -o "$work/ca.der" "http://127.0.0.1:$web/ca.der"
check "ca.der is the DER of ca.crt" cmp -s "$work/ca.der" <(openssl x509 -in "$work/ca.crt" -outform DER)
check "/ca.crt equals ca export" cmp -s "$work/ca.crt" <("$pt_bin" ca export --config "$work/pt.yaml")
check "/ca.der equals ca export --der" cmp -s "$work/ca.der" <("$pt_bin" ca export --der --config "$work/pt.yaml")

s_client() {  # s_client NAME-ARGS... : handshake, output to $work/s_client.out, returns its status
  echo | timeout 10 openssl s_client -connect "127.0.0.1:$tls" -CAfile "$work/ca.crt" \
    -verify_return_error "$@" >"$work/s_client.out" 2>&1
}
s_client -servername quay.io
rc=$?
check "s_client quay.io exits 0 (got $rc)" test "$rc" -eq 0
check "s_client quay.io: verify return code 0" grep -q 'Verify return code: 0 (ok)' "$work/s_client.out"
check "leaf names quay.io" grep -q 'subject=CN = quay.io' "$work/s_client.out"
s_client -servername REGISTRY-1.docker.IO
check "SNI matched case-insensitively" grep -q 'Verify return code: 0 (ok)' "$work/s_client.out"

s_client -servername example.com
rc=$?
check "example.com fails the handshake (got $rc)" test "$rc" -ne 0
check "example.com gets an unrecognized_name alert" grep -q 'unrecognized name' "$work/s_client.out"
s_client -noservername
rc=$?
check "no SNI fails the handshake (got $rc)" test "$rc" -ne 0
check "no SNI gets an unrecognized_name alert" grep -q 'unrecognized name' "$work/s_client.out"

# OpenSSL 3 refuses TLS 1.1 itself at its default security level ("no protocols available"),
# which would pass without a server: level 0 makes it offer TLS 1.1, so the refusal is the server's.
s_client -servername quay.io -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
check "TLS 1.1 is refused by the server" grep -q 'alert protocol version' "$work/s_client.out"
s_client -servername quay.io -tls1_2
check "TLS 1.2 works" grep -q 'Verify return code: 0 (ok)' "$work/s_client.out"
s_client -servername quay.io -alpn http/1.1
check "ALPN http/1.1" grep -q 'ALPN protocol: http/1.1' "$work/s_client.out"
s_client -servername quay.io -alpn h2
check "ALPN h2 alone is refused" grep -q 'no application protocol' "$work/s_client.out"

s_client -servername ghcr.io -tls1_2 -sess_out "$work/session"
s_client -servername ghcr.io -tls1_2 -sess_in "$work/session"
check "TLS 1.2 session resumed" grep -q '^Reused, TLSv1.2' "$work/s_client.out"

code=$(curl -s -o "$work/body" -w '%{http_code} %{ssl_verify_result}' --cacert "$work/ca.crt" \
  --resolve "quay.io:$tls:127.0.0.1" "https://quay.io:$tls/v2/")
check "curl completes TLS to https://quay.io and gets /v2/ (got '$code')" test "$code" = "200 0"
check "/v2/ answers an empty JSON object" test "$(cat "$work/body")" = "{}"

serial_before=$(echo | openssl s_client -connect "127.0.0.1:$tls" -servername quay.io 2>/dev/null |
  openssl x509 -noout -serial)
check "ca info lists the leaves" grep -q 'quay.io  expires' <("$pt_bin" ca info --config "$work/pt.yaml")
check "leaf keys are mode 0600" test "$(stat -c %a "$work/state/ca/leaves/quay.io.pem")" = 600
check "CA key is mode 0600" test "$(stat -c %a "$work/state/ca/ca.key")" = 600
check "CA directory is mode 0700" test "$(stat -c %a "$work/state/ca")" = 700

check "clean stop (exit 0, no sanitizer report)" stop_pullthrough
start_pullthrough "$work/serve2.log" serve --config "$work/pt.yaml" --role proxy || exit 1
tls=$(bound_port "$work/serve2.log" https)
check "restart loads the CA instead of generating one" grep -q 'CA loaded' "$work/serve2.log"
serial_after=$(echo | openssl s_client -connect "127.0.0.1:$tls" -servername quay.io 2>/dev/null |
  openssl x509 -noout -serial)
check "restart serves the same leaf ($serial_before / $serial_after)" test -n "$serial_before" -a "$serial_before" = "$serial_after"
s_client -servername quay.io
check "the CA fetched before the restart still verifies" grep -q 'Verify return code: 0 (ok)' "$work/s_client.out"
check "restarted instance: clean stop (exit 0, no sanitizer report)" stop_pullthrough

finish

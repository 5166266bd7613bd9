#!/usr/bin/env bash
# The S3 client (proxy/s3/client.hpp) against real S3-compatible servers in the test bed's
# namespace: tests/proxy/s3/client_test.cpp runs once against Moto with SigV4 enforced (over
# https, with the bed's CA as ca_file), and once per server over http with
# tests/e2e/s3_fault_proxy.py in front for the fault cases: Moto, then s3rver.
#   s3_client_test.sh PEER_TEST_BINARY
# Exit 0 pass, 1 fail, 77 skip (not root, or a peer or tool missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$here/../testbed/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/s3.sh
. "$here/../testbed/s3.sh"
binary=$(realpath "${1:?usage: s3_client_test.sh PEER_TEST_BINARY}")
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
e2e_s3_pythons
if ! missing=$(e2e_have_s3_tools); then echo "skipped: $missing"; exit 77; fi

t_start=$(e2e_now)
bucket=pt-cache
setup "namespace" e2e_init

# peer_tests SERVER [FILTER]: the binary against the current server (and its fault proxy, if
# one is running), its output kept in the log.
peer_tests() {
  local server=$1 filter=${2:-*} log
  log="$E2E_WORK/logs/peer-tests-$1-$(date +%s%N).log"
  if e2e_ns env PT_S3_SERVER="$server" PT_S3_ENDPOINT="$E2E_S3_ENDPOINT" PT_S3_CA="$E2E_S3_CA" \
    PT_S3_BUCKET="$E2E_S3_BUCKET" PT_S3_KEY_FILE="$E2E_S3_KEY_FILE" \
    PT_S3_SECRET_FILE="$E2E_S3_SECRET_FILE" PT_S3_PROXY="${proxy:-}" \
    PT_S3_PROXY_CONTROL="${control:-}" "$binary" --gtest_filter="$filter" >"$log" 2>&1; then
    grep -E '^\[  PASSED  \]|^\[  SKIPPED \]' "$log"
    return 0
  fi
  grep -E '^\[  FAILED  \]|Failure|Expected|Which is|actual' "$log" | head -40
  return 1
}

proxy='' control=''
setup "moto (https, SigV4 enforced)" e2e_start_moto 127.0.3.11 9443 "$bucket" tls
check "moto https: the client's operations" peer_tests moto 'S3ClientPeerTest.*'
check "moto https: stopped" e2e_stop "$E2E_S3_NAME"

setup "moto (http)" e2e_start_moto 127.0.3.11 9000 "$bucket"
setup "fault proxy in front of moto" e2e_start_s3_fault_proxy 127.0.3.12 9000 9100
proxy=$E2E_S3_PROXY_ENDPOINT control=$E2E_S3_PROXY_CONTROL
check "moto: faults through the proxy" peer_tests moto 'S3ClientFaultTest.*'
e2e_stop "$E2E_S3_PROXY_NAME" >/dev/null 2>&1
e2e_stop "$E2E_S3_NAME" >/dev/null 2>&1

setup "s3rver (http)" e2e_start_s3rver 127.0.3.13 9000 "$bucket"
setup "fault proxy in front of s3rver" e2e_start_s3_fault_proxy 127.0.3.14 9000 9100
proxy=$E2E_S3_PROXY_ENDPOINT control=$E2E_S3_PROXY_CONTROL
check "s3rver: the client's operations and faults" peer_tests s3rver '*'

echo "s3 client tests took $(e2e_since "$t_start") s"
finish

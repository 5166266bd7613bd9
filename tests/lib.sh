# shellcheck shell=bash
# Shared by the shell tests: check bookkeeping and running pullthrough in the background.
# Source it, then call `finish` at the end.

failures=0
checks=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# check DESCRIPTION COMMAND...: runs the command; a non-zero exit is a failure.
check() {
  local what=$1
  shift
  checks=$((checks + 1))
  if ! "$@"; then fail "$what"; fi
}
# fails COMMAND...: true when COMMAND fails, for `check`.
fails() { ! "$@"; }
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures of $checks checks failed"
    exit 1
  fi
  echo "all $checks checks passed"
}

# wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds (returns 0), or
# returns 1 once SECONDS have passed. For waiting on an event, not for a time.
wait_until() {
  local deadline
  deadline=$(awk -v s="$1" -v now="${EPOCHREALTIME:-$(date +%s.%N)}" 'BEGIN { printf "%.3f", now + s }')
  shift
  while :; do
    "$@" && return 0
    awk -v d="$deadline" -v now="${EPOCHREALTIME:-$(date +%s.%N)}" 'BEGIN { exit !(now >= d) }' &&
      return 1
    sleep 0.1
  done
}

# no_sanitizer_report LOG: fails, printing them, when LOG has lines from AddressSanitizer,
# LeakSanitizer or UBSan ("runtime error"): a report that an exit status alone may not show.
no_sanitizer_report() {
  local lines
  lines=$(grep -E 'AddressSanitizer|LeakSanitizer|runtime error' "$1") || return 0
  echo "sanitizer report in $1:"
  head -20 <<<"$lines"
  return 1
}

# start_pullthrough LOG ARGS...: starts `pullthrough ARGS` with stderr to LOG, sets $pt_pid and
# $pt_log, and waits for the "ready" line (30 s at most: a start under ASan on a loaded machine
# takes a second or two).
start_pullthrough() {
  pt_log=$1
  shift
  # shellcheck disable=SC2154 # pt_bin: set by the test that sources this file
  "$pt_bin" "$@" 2>"$pt_log" &
  pt_pid=$!
  wait_until 30 ready_or_dead && grep -q 'ready: ' "$pt_log" && return 0
  echo "pullthrough did not become ready:"
  cat "$pt_log"
  return 1
}
ready_or_dead() { grep -q 'ready: ' "$pt_log" || ! kill -0 "$pt_pid" 2>/dev/null; }

# stop_pullthrough: SIGTERM, then waits for the exit; true only when pullthrough exits 0 and its
# log ($pt_log) has no sanitizer report (LeakSanitizer speaks only at exit). The wait is the drain
# deadline (10 s) plus 5 s for the exit itself (LeakSanitizer's scan, a loaded machine); then
# SIGKILL. Says what went wrong.
stop_pullthrough() {
  [ -n "${pt_pid:-}" ] || return 0
  kill -TERM "$pt_pid" 2>/dev/null
  local rc=0 pid=$pt_pid
  pt_pid=
  if ! wait_until 15 exited "$pid"; then
    echo "pullthrough still running 15 s after SIGTERM: SIGKILL"
    kill -9 "$pid"
  fi
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || echo "pullthrough exited $rc, want 0"
  no_sanitizer_report "$pt_log" || rc=1
  return "$rc"
}
exited() { ! kill -0 "$1" 2>/dev/null; }

# bound_port LOG SCHEME: the port of the first "listening on SCHEME://127.0.0.1:PORT" line.
bound_port() {
  sed -nE "s#.*listening on $2://127\.0\.0\.1:([0-9]+).*#\1#p" "$1" | head -1
}

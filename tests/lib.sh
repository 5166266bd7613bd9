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
finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures of $checks checks failed"
    exit 1
  fi
  echo "all $checks checks passed"
}

# start_pullthrough LOG ARGS...: starts `pullthrough ARGS` with stderr to LOG, sets $pt_pid, and
# waits for the "ready" line (10 s at most).
start_pullthrough() {
  local log=$1
  shift
  "$pt_bin" "$@" 2>"$log" &
  pt_pid=$!
  for _ in $(seq 100); do
    grep -q 'ready: ' "$log" && return 0
    kill -0 "$pt_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "pullthrough did not become ready:"
  cat "$log"
  return 1
}

# stop_pullthrough: SIGTERM, then wait (10 s at most); returns pullthrough's exit status.
stop_pullthrough() {
  [ -n "${pt_pid:-}" ] || return 0
  kill -TERM "$pt_pid" 2>/dev/null
  local rc=0
  for _ in $(seq 100); do kill -0 "$pt_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pt_pid" 2>/dev/null; then kill -9 "$pt_pid"; fi
  wait "$pt_pid" || rc=$?
  pt_pid=
  return "$rc"
}

# bound_port LOG SCHEME: the port of the first "listening on SCHEME://127.0.0.1:PORT" line.
bound_port() {
  sed -nE "s#.*listening on $2://127\.0\.0\.1:([0-9]+).*#\1#p" "$1" | head -1
}

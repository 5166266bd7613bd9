# shellcheck shell=bash
# What the benchmarks (scripts/bench-proxy, scripts/bench-dns) share besides the test bed of
# lib.sh: their packages, the servers' CPU time, and the measurement file. Each measurement is one
# JSON object per line (bench_record); scripts/bench_report.py computes the medians and ratios
# from that file and prints the report. Source it from bash after lib.sh; needs jq.

# bench_install_missing PACKAGE...: installs the Debian packages that are not installed (apt-get
# update only then).
bench_install_missing() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# bench_cpu_split PID...: "user system" clock ticks of the processes (all their threads); a
# process that is gone counts 0.
bench_cpu_split() {
  local p u=0 s=0 pu ps
  for p in "$@"; do
    read -r pu ps <<<"$(awk '{ print $14, $15 }' "/proc/$p/stat" 2>/dev/null)" || continue
    [ -n "$ps" ] || continue
    u=$((u + pu)) s=$((s + ps))
  done
  echo "$u $s"
}

# bench_cpu_ticks PID...: user + system clock ticks of the processes (all their threads).
bench_cpu_ticks() {
  local u s
  read -r u s <<<"$(bench_cpu_split "$@")"
  echo $((u + s))
}

# bench_record FILE KIND [JQ_ARGS...]: appends {"kind": KIND, ...} to FILE, one line, with a key
# for each `--arg NAME TEXT` (a string) and `--argjson NAME JSON` (a number, true/false, an array).
bench_record() {
  local file=$1 kind=$2
  shift 2
  jq -cn --arg kind "$kind" "$@" '$ARGS.named' >>"$file"
}

# bench_json_strings: the lines of stdin as a JSON array of strings.
bench_json_strings() { jq -R . | jq -cs .; }

# bench_json_fields: the lines of stdin as a JSON array of arrays of their space-separated fields
# (strings): "200 1048576 0.01" -> [["200","1048576","0.01"]].
bench_json_fields() { jq -R '[splits(" +")] | map(select(. != ""))' | jq -cs .; }

#!/usr/bin/env bash
# `pullthrough check-config`: exit 0 on the shipped file; exit 2 naming every error with its
# line and column on a broken one.
set -euo pipefail
bin=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

out=$("$bin" check-config "$root/config/pullthrough.yaml" 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "shipped config: exit $rc, want 0: $out"
[[ "$out" == *"pullthrough.yaml: ok"* ]] || fail "shipped config: no ok line: $out"

cat > "$work/bad.yaml" <<'YAML'
dns:
  answer_ttl: 10x
  allow: [private, "10.0.0.1/8"]
proxy:
  listen: ["0.0.0.0:443"]
  colour: blue
YAML
out=$("$bin" check-config "$work/bad.yaml" 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 2 ] || fail "bad config: exit $rc, want 2"
grep -qF "bad.yaml:2:15: dns.answer_ttl: expected a duration" <<<"$out" || fail "no duration error: $out"
grep -qF "bad.yaml:3:20: dns.allow[1]: expected \"private\" or a network" <<<"$out" || fail "no CIDR error: $out"
grep -qF "bad.yaml:6:3: proxy.colour: unknown key" <<<"$out" || fail "no unknown-key error: $out"
grep -qF "bad.yaml: 3 errors" <<<"$out" || fail "no error count: $out"

# A valid file with share_private: ok, with a "warning:" line that says what it means.
cat > "$work/share.yaml" <<'YAML'
registries:
  - host: quay.io
    credentials: {username: bot, password_file: /nonexistent}
    share_private: true
YAML
out=$("$bin" check-config "$work/share.yaml" 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "share_private: exit $rc, want 0: $out"
grep -qE '^warning: .*share\.yaml:4:20: registries\[0\]\.share_private: "quay\.io": cached content' <<<"$out" ||
  fail "share_private: no warning: $out"

out=$("$bin" check-config "$work/missing.yaml" 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 2 ] || fail "missing file: exit $rc, want 2"
grep -qF "missing.yaml: cannot open the file" <<<"$out" || fail "missing file message: $out"

out=$("$bin" check-config 2>&1) && rc=0 || rc=$?
[ "$rc" -eq 2 ] || fail "no argument: exit $rc, want 2"

out=$("$bin" version 2>&1) || fail "version failed"
grep -qE '^pullthrough [0-9]+\.[0-9]+\.[0-9]+ ' <<<"$out" || fail "version line: $out"
grep -qF "OpenSSL" <<<"$out" || fail "version lists no OpenSSL: $out"

for command in serve check-config version; do
  out=$("$bin" "$command" --help 2>&1) || fail "$command --help exited non-zero"
  grep -qF "Usage: pullthrough $command" <<<"$out" || fail "$command --help: $out"
done

if [ "$failures" -ne 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "check-config: all checks passed"

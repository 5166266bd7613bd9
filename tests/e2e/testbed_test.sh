#!/usr/bin/env bash
# The end-to-end test bed by itself, with no appliance: dnsmasq resolves the registry names, the
# clients trust the upstream CA directly, and skopeo, podman, ctr and docker pull from the real
# registries (one of them behind a token service). Also proves that the corrupted blob really is
# corrupt and that e2e_client_trust / e2e_client_dns take effect. The optional argument (the
# pullthrough binary, as for the other shell tests) is not used.
# Exit 0 pass, 1 fail, 77 skip (not root, or a peer or client missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$here/../lib.sh"
# shellcheck source-path=SCRIPTDIR source=../testbed/lib.sh
. "$here/../testbed/lib.sh"
if [ "$(id -u)" -ne 0 ]; then echo "needs root (network namespace)"; exit 77; fi
if ! missing=$(e2e_have_tools); then echo "skipped: $missing"; exit 77; fi

t_start=$(e2e_now)

setup "namespace and upstream CA" e2e_init
setup "dnsmasq" e2e_start_dns
setup "registry quay.io (anonymous)" e2e_start_registry quay.io "$(e2e_addr quay.io)"
setup "registry ghcr.io (token) + token service" e2e_start_registry ghcr.io "$(e2e_addr ghcr.io)" token
setup "seed images (layers of ${E2E_LAYER_KIB} KiB)" e2e_seed_images

# DNS: the namespace's resolver is dnsmasq, which knows only the upstream names.
check "glibc resolves quay.io to 127.0.1.10 in the namespace" \
  test "$(e2e_ns getent hosts quay.io | awk '{ print $1 }')" = 127.0.1.10
check "auth.ghcr.io resolves to 127.0.1.13" \
  test "$(e2e_ns dig +short "@$E2E_DNS_ADDR" auth.ghcr.io A)" = 127.0.1.13
aaaa=$(e2e_ns dig "@$E2E_DNS_ADDR" quay.io AAAA)
check "AAAA of quay.io is NODATA (NOERROR, no answer)" \
  test -n "$(grep 'status: NOERROR' <<<"$aaaa")" -a -n "$(grep 'ANSWER: 0,' <<<"$aaaa")"
check "other names are NXDOMAIN (nothing is forwarded)" \
  grep -q 'status: NXDOMAIN' <(e2e_ns dig "@$E2E_DNS_ADDR" example.com A)

# Token registry: anonymous requests are challenged, the static token opens it.
hdr=$(e2e_curl -o /dev/null -D - https://ghcr.io/v2/)
check "anonymous /v2/ on ghcr.io is 401 with a Bearer challenge" \
  grep -qi '^www-authenticate: Bearer realm="https://auth.ghcr.io/token",service="ghcr.io"' <<<"$hdr"
tok=$(e2e_curl "https://auth.ghcr.io/token?service=ghcr.io&scope=repository:e2e/private:pull" | jq -r .token)
code=$(e2e_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' https://ghcr.io/v2/e2e/private/manifests/v1)
check "the token fetches ghcr.io/e2e/private:v1's manifest (got $code)" test "$code" = 200

oci=$E2E_WORK/pulled
mkdir -p "$oci"
oci_digest() { jq -r '.manifests[0].digest' "$1/index.json"; }

# skopeo
check "skopeo copies quay.io/e2e/small:v1" timed "skopeo copy small:v1" \
  e2e_skopeo_copy quay.io/e2e/small:v1 "$oci/small:v1"
check "skopeo got small:v1's manifest" test "$(oci_digest "$oci/small")" = "$(e2e_digest small)"
check "skopeo copies token-protected ghcr.io/e2e/private:v1" timed "skopeo copy private:v1 (token)" \
  e2e_skopeo_copy ghcr.io/e2e/private:v1 "$oci/private:v1"
check "skopeo got private:v1's manifest" test "$(oci_digest "$oci/private")" = "$(e2e_digest private)"
check "the token service was asked" grep -q 'GET /token?' "$E2E_WORK/logs/nginx-auth.ghcr.io.log"
out=$(timed "skopeo copy corrupt:v1 (must fail)" e2e_skopeo_copy quay.io/e2e/corrupt:v1 "$oci/corrupt:v1" 2>&1)
rc=$?
echo "$out" | grep -v '^ *[0-9.]*s ' | sed 's/^/    | /'
echo "$out" | grep '^ *[0-9.]*s '
check "skopeo refuses corrupt:v1" test "$rc" -ne 0
check "with a digest error naming the corrupted layer" \
  grep -qi "digest.*$(e2e_digest corrupt-layer)" <<<"$out"

# podman
check "podman pulls quay.io/e2e/small:v1" timed "podman pull small:v1" e2e_podman_pull quay.io/e2e/small:v1
check "podman pulls the multi-arch quay.io/e2e/multi:v1" timed "podman pull multi:v1" \
  e2e_podman_pull quay.io/e2e/multi:v1
arch=$(e2e_podman_arch quay.io/e2e/multi:v1)
check "podman picked linux/amd64 from the index (got $arch)" test "$arch" = amd64
digests=$(e2e_podman image inspect --format '{{join .RepoDigests " "}}' quay.io/e2e/multi:v1)
check "podman's multi:v1 has the amd64 manifest ($digests)" \
  grep -q "quay.io/e2e/multi@$(e2e_digest multi-amd64)" <<<"$digests"

# containerd
setup "containerd" e2e_start_containerd
check "ctr pulls quay.io/e2e/small:v1" timed "ctr pull small:v1" e2e_ctr_pull quay.io/e2e/small:v1
check "ctr pulls token-protected ghcr.io/e2e/private:v1" timed "ctr pull private:v1 (token)" \
  e2e_ctr_pull ghcr.io/e2e/private:v1
target=$(e2e_ctr images ls | awk '$1 == "quay.io/e2e/small:v1" { print $3 }')
check "ctr's small:v1 is the pushed manifest ($target)" test "$target" = "$(e2e_digest small)"

# docker
setup "dockerd" e2e_start_dockerd
check "docker pulls quay.io/e2e/small:v1" timed "docker pull small:v1" e2e_docker_pull quay.io/e2e/small:v1
repo_digest=$(e2e_docker image inspect --format '{{index .RepoDigests 0}}' quay.io/e2e/small:v1)
check "docker's small:v1 is the pushed manifest ($repo_digest)" \
  test "$repo_digest" = "quay.io/e2e/small@$(e2e_digest small)"

# Switching what clients trust and which DNS they ask.
e2e_make_ca "$E2E_WORK/other-ca" "some other CA" || exit 1
setup "trust another CA" e2e_client_trust "$E2E_WORK/other-ca.pem"
# Each of these must fail for the reason checked (an unknown CA, a name that does not resolve),
# not because a registry or the namespace is down.
untrusted='x509|certificate'
unresolved='lookup quay\.io'
check "skopeo no longer trusts quay.io" fails_with "$untrusted" timed "skopeo with the wrong CA (must fail)" \
  e2e_skopeo_copy quay.io/e2e/small:v1 "$oci/x:v1"
check "podman no longer trusts quay.io" fails_with "$untrusted" timed "podman with the wrong CA (must fail)" \
  e2e_podman_pull quay.io/e2e/corrupt:v1
check "ctr no longer trusts quay.io" fails_with "$untrusted" timed "ctr with the wrong CA (must fail)" \
  e2e_ctr_pull quay.io/e2e/multi:v1
# dockerd hard-codes 127.0.0.0/8 as insecure registries: it does not verify certificates there.
check "dockerd lists 127.0.0.0/8 as insecure" grep -q '127.0.0.0/8' \
  <(e2e_docker info --format '{{json .RegistryConfig.InsecureRegistryCIDRs}}')
e2e_stop dockerd
setup "dockerd restarted with the wrong CA" e2e_start_dockerd
e2e_docker rmi -f quay.io/e2e/small:v1 >/dev/null 2>&1
check "docker still pulls (no verification for 127/8: known quirk)" timed \
  "docker pull with the wrong CA (succeeds)" e2e_docker_pull quay.io/e2e/small:v1
setup "trust the upstream CA again" e2e_client_trust "$E2E_UPSTREAM_CA"
setup "point the namespace's DNS at 127.0.0.54, where nobody listens (restarts dockerd)" \
  e2e_client_dns 127.0.0.54
check "skopeo cannot resolve quay.io" fails_with "$unresolved" timed "skopeo without DNS (must fail)" e2e_skopeo_copy quay.io/e2e/small:v1 "$oci/y:v1"
check "docker cannot resolve quay.io" fails_with "$unresolved" timed "docker without DNS (must fail)" \
  e2e_docker_pull quay.io/e2e/small:v1
setup "point the namespace's DNS back at dnsmasq (restarts dockerd)" e2e_client_dns "$E2E_DNS_ADDR"
check "docker pulls again" timed "docker pull small:v1 again" e2e_docker_pull quay.io/e2e/small:v1

echo "total $(e2e_since "$t_start")s"
finish

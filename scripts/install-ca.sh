#!/bin/sh
# Installs a pullthrough appliance's CA on this machine: into the OS trust store and, where they
# are installed, for Docker, containerd and podman. Then it enrolls the machine (POST
# <appliance>/enroll): the appliance learns that this machine trusts its CA and intercepts its
# registry traffic from then on. Run as root. The appliance serves this script at
# http://<appliance>/install.sh with its own address and intercepted names filled in:
#
#   curl -fsSL http://<appliance>/install.sh | sh        (or: wget -qO- ... | sh)
#
# From a copy of the repository, name them yourself:
#
#   scripts/install-ca.sh http://<appliance> quay.io ghcr.io ...
#
# POSIX sh, so it runs on Alpine's busybox too.
set -eu

URL=__PULLTHROUGH_URL__
NAMES="__PULLTHROUGH_NAMES__"
if [ "$#" -ge 1 ]; then URL=$1; shift; fi
if [ "$#" -ge 1 ]; then NAMES=$*; fi

say() { printf 'pullthrough: %s\n' "$*"; }
die() { printf 'pullthrough: %s\n' "$*" >&2; exit 1; }

case "$URL" in
  http://*|https://*) ;;
  *) die "usage: install-ca.sh http://<appliance> [NAME...]" ;;
esac
case "$NAMES" in __*) NAMES="" ;; esac
[ "$(id -u)" = 0 ] || die "run as root: the trust store and /etc/*/certs.d belong to root"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
ca="$work/pullthrough-ca.crt"
if command -v curl >/dev/null 2>&1; then
  http=curl
  curl -fsS -o "$ca" "$URL/ca.crt" || die "cannot download $URL/ca.crt"
elif command -v wget >/dev/null 2>&1; then
  http=wget
  wget -q -O "$ca" "$URL/ca.crt" || die "cannot download $URL/ca.crt"
else
  die "neither curl nor wget is installed"
fi
grep -q -- '-----BEGIN CERTIFICATE-----' "$ca" || die "$URL/ca.crt is not a PEM certificate"
if command -v openssl >/dev/null 2>&1; then
  say "CA: $(openssl x509 -in "$ca" -noout -subject -fingerprint -sha256 | tr '\n' ' ')"
fi

restart=""
done_list=""

# The OS trust store: curl, git, and every Go program (dockerd, containerd, podman, skopeo, ctr)
# read it; Go programs read it once at start.
if command -v update-ca-certificates >/dev/null 2>&1 && [ -d /usr/local/share/ca-certificates ]; then
  # Debian, Ubuntu, Alpine
  cp "$ca" /usr/local/share/ca-certificates/pullthrough.crt
  update-ca-certificates >/dev/null 2>&1 || update-ca-certificates
  done_list="$done_list\n  OS trust store: /usr/local/share/ca-certificates/pullthrough.crt (update-ca-certificates)"
elif command -v update-ca-trust >/dev/null 2>&1 && [ -d /etc/pki/ca-trust/source/anchors ]; then
  # RHEL, Fedora, CentOS, Rocky, Alma
  cp "$ca" /etc/pki/ca-trust/source/anchors/pullthrough.crt
  update-ca-trust extract
  done_list="$done_list\n  OS trust store: /etc/pki/ca-trust/source/anchors/pullthrough.crt (update-ca-trust)"
else
  say "warning: no known OS trust store (update-ca-certificates or update-ca-trust); skipped"
fi

# certs.d directories are read per pull; no restart needed for them.
install_certs_d() {  # $1: base directory, $2: label
  for name in $NAMES; do
    mkdir -p "$1/$name"
    cp "$ca" "$1/$name/ca.crt"
  done
  done_list="$done_list\n  $2: $1/<name>/ca.crt for: $NAMES"
}

if [ -n "$NAMES" ]; then
  if [ -d /etc/docker ] || command -v dockerd >/dev/null 2>&1; then
    install_certs_d /etc/docker/certs.d Docker
    restart="$restart docker"
  fi
  if [ -d /etc/containerd ] || command -v containerd >/dev/null 2>&1; then
    install_certs_d /etc/containerd/certs.d containerd
    for name in $NAMES; do
      hosts="/etc/containerd/certs.d/$name/hosts.toml"
      [ -e "$hosts" ] && continue
      server=$name
      [ "$name" = docker.io ] && server=registry-1.docker.io
      cat > "$hosts" <<TOML
# Written by pullthrough's install-ca.sh: trust the appliance's CA for $name.
server = "https://$server"

[host."https://$server"]
  ca = "/etc/containerd/certs.d/$name/ca.crt"
TOML
    done
    if ! grep -qs 'config_path' /etc/containerd/config.toml; then
      say "note: containerd reads certs.d only with config_path = \"/etc/containerd/certs.d\" in the"
      say "      registry section of /etc/containerd/config.toml; it trusts the OS store after a restart."
    fi
    restart="$restart containerd"
  fi
  if [ -d /etc/containers ] || command -v podman >/dev/null 2>&1; then
    install_certs_d /etc/containers/certs.d "podman, CRI-O, skopeo"
  fi
fi

say "installed the CA from $URL:"
printf '%b\n' "$done_list"
if [ -n "$restart" ]; then
  say "restart to pick up the OS trust store:$restart (e.g. systemctl restart$restart)"
else
  say "nothing needs a restart"
fi

# Enrolling comes last, once the CA is in place: from then on the appliance intercepts this
# machine's registry traffic, which fails where the CA is not trusted. Nothing here fails the
# script: the CA is installed either way, and an appliance that does not enroll (404, 405), a
# rate limit (429) or a network error leave the machine as it was.
if [ "$http" = curl ]; then
  enroll_cmd="curl -X POST $URL/enroll"
else
  enroll_cmd="wget -qO- --post-data= $URL/enroll"
fi
if [ -z "$done_list" ]; then
  say "not enrolled: nothing on this machine trusts the CA yet"
  exit 0
fi
answer="$work/enroll"
if [ "$http" = curl ]; then
  # No -f: the body of a refusal says why, e.g. when to try again.
  status=$(curl -sS -m 30 -X POST -o "$answer" -w '%{http_code}' "$URL/enroll") || status=failed
else
  # wget keeps no body from an error status, so a refusal is just a failure here. One try: GNU
  # wget would retry a POST that timed out up to 20 times (busybox ignores -t).
  status=failed
  wget -q -t 1 -T 30 -O "$answer" --post-data= "$URL/enroll" && status=200
fi
message=$(cat "$answer" 2>/dev/null) || message=""
case "$status" in
  2??) say "enrolled: the appliance says: $message" ;;
  *)
    if [ "$status" = failed ]; then
      say "not enrolled: POST $URL/enroll failed"
    else
      say "not enrolled: $URL/enroll answered $status: $message"
    fi
    say "the CA is installed; to enroll this machine later: $enroll_cmd"
    ;;
esac

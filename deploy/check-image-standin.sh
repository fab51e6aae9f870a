#!/usr/bin/env bash
# Build deploy/Dockerfile and run the image the way a pod runs it, where python:3.11-slim
# cannot be pulled and no Docker engine runs (this project's machines). Manual check, not
# part of the test suite; takes a few minutes and needs root and the package mirrors.
#
#   sudo bash deploy/check-image-standin.sh
#
# The base is a STAND-IN for python:3.11-slim: a Debian bookworm rootfs (debootstrap) with
# Debian's python3.11 linked at /usr/local/bin. So this verifies the Dockerfile's own steps
# (stages, wheels, venv, setcap through image layers, user, entrypoint) and the image's
# behaviour under runc with --read-only --cap-drop ALL --cap-add NET_BIND_SERVICE
# --security-opt no-new-privileges, not the official base image itself.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "needs root" >&2; exit 1; }

BASE_TAG=localhost/kdep-python:3.11-slim-bookworm
IMAGE=localhost/kdns:standin
WORK=$(mktemp -d /tmp/kdep-standin-XXXX)
NETNS=kdep-standin-$$
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
RUN_OPTS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network "ns:/run/netns/$NETNS"
          --read-only --security-opt no-new-privileges -v "$WORK/cm:/etc/coredns:ro")

cleanup() {
  "${PODMAN[@]}" rm -f kdep-standin >/dev/null 2>&1 || true
  ip netns del "$NETNS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need=()
for p in podman debootstrap runc dnsutils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! podman image exists "$BASE_TAG"; then
  # The Debian mirror this machine's apt already uses.
  mirror=$( (grep -rhoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?' /etc/apt/sources.list \
              /etc/apt/sources.list.d/ 2>/dev/null || true) | awk 'NR == 1 {print $2}')
  [[ -n $mirror ]] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
  echo "== debootstrap bookworm from $mirror"
  debootstrap --variant=minbase --include=python3.11,python3.11-venv,python3-pip,ca-certificates \
    bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log"
  ln -sf /usr/bin/python3.11 "$WORK/rootfs/usr/local/bin/python3.11"
  ln -sf /usr/bin/python3.11 "$WORK/rootfs/usr/local/bin/python3"
  ln -sf /usr/bin/python3.11 "$WORK/rootfs/usr/local/bin/python"
  printf '#!/bin/sh\nexec python3.11 -m pip "$@"\n' >"$WORK/rootfs/usr/local/bin/pip"
  chmod 755 "$WORK/rootfs/usr/local/bin/pip"
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -f "$WORK/rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"   # the official image has none
  tar -C "$WORK/rootfs" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' - "$BASE_TAG" >/dev/null
  rm -rf "$WORK/rootfs"
fi

echo "== build"
podman build --isolation chroot --network host --build-arg "PYTHON_IMAGE=$BASE_TAG" \
  -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore -t "$IMAGE" . >"$WORK/build.log" \
  || { tail -40 "$WORK/build.log"; exit 1; }

mkdir -p "$WORK/cm"
printf '.:53 {\n    errors\n    health\n    ready\n    prometheus :9153\n    whoami\n}\n' >"$WORK/cm/Corefile"
chmod -R a+rX "$WORK"
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up

echo "== run: uid from the image, read-only root, drop ALL + NET_BIND_SERVICE, no-new-privileges"
"${PODMAN[@]}" run -d --name kdep-standin "${RUN_OPTS[@]}" --cap-drop ALL --cap-add NET_BIND_SERVICE \
  "$IMAGE" >/dev/null
for _ in $(seq 50); do
  ip netns exec "$NETNS" dig @127.0.0.1 ping.kdep.test +tries=1 +time=1 >/dev/null 2>&1 && break
  sleep 0.2
done
pid=$("${PODMAN[@]}" inspect -f '{{.State.Pid}}' kdep-standin)
grep -E '^(Uid|CapEff|NoNewPrivs)' "/proc/$pid/status"
for transport in "" +tcp; do
  out=$(ip netns exec "$NETNS" dig @127.0.0.1 www.example.org A +norec +tries=1 +time=2 $transport)
  grep -qE '^www\.example\.org\.\s+0\s+IN\s+A\s+127\.0\.0\.1' <<<"$out" \
    || { echo "no whoami answer ($transport)"; "${PODMAN[@]}" logs kdep-standin; exit 1; }
done
for url in http://127.0.0.1:8080/health http://127.0.0.1:8181/ready http://127.0.0.1:9153/metrics; do
  ip netns exec "$NETNS" python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' "$url" \
    || { echo "$url failed"; exit 1; }
done
grep -q '^Uid:\s65532' "/proc/$pid/status" || { echo "not running as 65532"; exit 1; }
"${PODMAN[@]}" rm -f kdep-standin >/dev/null

echo "== run without NET_BIND_SERVICE: must fail to start"
if "${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" --cap-drop ALL "$IMAGE" >"$WORK/nocap.log" 2>&1; then
  echo "started without NET_BIND_SERVICE"; exit 1
fi
grep -i "operation not permitted" "$WORK/nocap.log"
echo "OK: $IMAGE built and served as the Deployment runs it (stand-in base)"

#!/usr/bin/env bash
# Installs what the forward/cache benchmark needs (Debian): dnsperf for load, knot as the upstream.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in dnsperf knot; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v dnsperf >/dev/null

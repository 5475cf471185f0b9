#!/usr/bin/env bash
# Installs everything cryo needs to build, test and run its demo, from Debian's packages only.
set -euo pipefail
pkgs=(build-essential cmake pkg-config protobuf-compiler libprotobuf-dev libcap-dev libfmt-dev
      libgtest-dev libgmock-dev libbenchmark-dev libmnl-dev libgnutls28-dev openssl nftables iptables criu python3 python3-protobuf util-linux procps redis-server postgresql
      runc busybox-static podman)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

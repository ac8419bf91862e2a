#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1, for tests: `start`, `stop`, `status`.
#
# Needs root and Debian's packages (slurmctld slurmd slurm-client munge). No
# systemd: the daemons are started by hand. Idempotent: `start` on a running
# cluster and `stop` on a stopped one do nothing.
#
# The config is written to /etc/slurm/slurm.conf, because the SLURM executor's
# job step clears every SLURM_* variable (SLURM_CONF included) inside a job.
# `stop` removes that file again (only if this script wrote it): with the
# executor plugin installed, a slurm.conf naming a controller that is not
# running makes every snakemake call stall for about 10 s probing it.
#
# Knobs (environment): TUNELADDER_SLURM_STATE (state, logs, pid files; default
# /tmp/tuneladder-slurm), TUNELADDER_SLURM_MEM_PER_CPU (MiB per CPU, default 1024).
set -euo pipefail

STATE=${TUNELADDER_SLURM_STATE:-/tmp/tuneladder-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by tuneladder scripts/slurm-cluster.sh"
MUNGE_SOCKET_DIR=/run/munge

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ours() { [ -f "$CONF" ] && head -n1 "$CONF" | grep -qF "$MARK"; }

write_conf() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p /etc/slurm "$STATE/spool" "$STATE/ctld"
    cat >"$CONF" <<EOF
$MARK
ClusterName=tuneladder
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, each job takes the node's whole memory: one job at a time.
DefMemPerCPU=${TUNELADDER_SLURM_MEM_PER_CPU:-1024}
# No slurmdbd, so the executor polls squeue: finished jobs must stay visible
# longer than its status checks take to come round.
MinJobAge=60
SlurmdTimeout=30
SlurmctldTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    if [ "$(id -u)" != 0 ]; then
        echo "slurm-cluster: needs root" >&2
        exit 2
    fi
    for bin in slurmctld slurmd munged sinfo; do
        command -v "$bin" >/dev/null || {
            echo "slurm-cluster: $bin not found (apt-get install slurmctld slurmd slurm-client munge)" >&2
            exit 2
        }
    done
    if [ -f "$CONF" ] && ! ours; then
        echo "slurm-cluster: $CONF exists and is not ours; refusing to overwrite it" >&2
        exit 2
    fi
    mkdir -p "$STATE"
    # munged refuses a socket directory that others can write or list.
    mkdir -p "$MUNGE_SOCKET_DIR" /var/lib/munge /var/log/munge
    chown munge:munge "$MUNGE_SOCKET_DIR" /var/lib/munge /var/log/munge
    chmod 0711 "$MUNGE_SOCKET_DIR"
    if ! running "$MUNGE_SOCKET_DIR/munged.pid"; then
        runuser -u munge -- munged --pid-file="$MUNGE_SOCKET_DIR/munged.pid"
    fi
    write_conf
    running "$STATE/slurmctld.pid" || slurmctld
    running "$STATE/slurmd.pid" || slurmd
    for _ in $(seq 100); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "slurm-cluster: up ($(hostname -s), $(nproc) CPUs, state in $STATE)"
            return 0
        fi
        sleep 0.1
    done
    scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
    sleep 1
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        echo "slurm-cluster: up after resume"
        return 0
    fi
    echo "slurm-cluster: node did not come up; logs in $STATE" >&2
    sinfo >&2 || true
    exit 1
}

stop_daemon() {
    local pidfile=$1
    if running "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
}

stop() {
    if [ -f "$CONF" ] && ! ours; then
        echo "slurm-cluster: $CONF is not ours; leaving the cluster alone" >&2
        exit 2
    fi
    stop_daemon "$STATE/slurmd.pid"
    stop_daemon "$STATE/slurmctld.pid"
    rm -f "$CONF"
    echo "slurm-cluster: stopped ($CONF removed)"
}

status() {
    if running "$STATE/slurmctld.pid" && running "$STATE/slurmd.pid"; then
        sinfo
    else
        echo "slurm-cluster: not running"
        return 1
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests and CI.
#
#   scripts/slurm-cluster.sh install <dir>  install slurm-wlm and munge (as root) if missing
#   scripts/slurm-cluster.sh start  <dir>   install (as root) if missing, write configs, start
#                                           munged, slurmctld and slurmd, wait until the node is idle
#   scripts/slurm-cluster.sh stop   <dir>   stop the daemons started from <dir>
#   scripts/slurm-cluster.sh restart-controller <dir>   stop slurmctld and start it again
#   scripts/slurm-cluster.sh status <dir>   exit 0 when the controller answers and the node is up
#
# Everything lives under <dir>: slurm.conf, the munge socket and key, state, spool, logs. Client
# commands find the cluster through SLURM_CONF=<dir>/slurm.conf (printed by `start`).
# Idempotent: `start` on a running cluster only checks it. Every failure says why on stderr,
# with the tail of the daemon's log.
#
# Accounting: no slurmdbd (it needs a MySQL server). Finished jobs stay in the controller's
# memory for MinJobAge seconds (squeue --states=all shows them), and jobcomp/filetxt records
# every finished job in <dir>/jobcomp.log. The studio's source of truth is the runner's exit.json.
set -euo pipefail

usage() {
  echo "usage: $0 install|start|stop|restart-controller|status <dir>" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf
# Ports are settable so that a cluster for tests does not collide with a real one on this host.
ctld_port=${STUDIO_SLURM_CTLD_PORT:-16817}
slurmd_port=${STUDIO_SLURM_SLURMD_PORT:-16818}

fail() {
  echo "slurm-cluster: $*" >&2
  exit 1
}

show_log() {
  if [[ -f $1 ]]; then
    echo "--- last lines of $1:" >&2
    tail -n 15 "$1" >&2
  fi
}

pid_alive() {
  [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

ensure_packages() {
  local missing=()
  for bin in munged slurmctld slurmd sbatch squeue sacct scancel scontrol sinfo; do
    command -v "$bin" >/dev/null || missing+=("$bin")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  [[ $(id -u) -eq 0 ]] ||
    fail "missing ${missing[*]}; install Debian's slurm-wlm and munge (needs root): apt-get install -y slurm-wlm munge"
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install slurm-wlm and munge"
  echo "slurm-cluster: installing slurm-wlm and munge" >&2
  apt-get update -qq >&2 || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2 || fail "apt-get install slurm-wlm munge failed"
}

write_configs() {
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir/munge"
  if [[ ! -f $dir/munge/munge.key ]]; then
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
  fi
  local node user cpus mem_mb gres_line="" gres_types=""
  node=$(hostname -s)
  user=$(id -un)
  cpus=$(nproc)
  mem_mb=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
  # GPUs: one gres line per NVIDIA device file, so --gres=gpu:N works where GPUs exist.
  local gpus=()
  for f in /dev/nvidia[0-9]*; do [[ -e $f ]] && gpus+=("$f"); done
  : >"$dir/gres.conf"
  if [[ ${#gpus[@]} -gt 0 ]]; then
    gres_types="GresTypes=gpu"
    gres_line=" Gres=gpu:${#gpus[@]}"
    for f in "${gpus[@]}"; do echo "NodeName=$node Name=gpu File=$f" >>"$dir/gres.conf"; done
  fi
  cat >"$conf" <<EOF
# Written by scripts/slurm-cluster.sh: a single-node cluster for tests.
ClusterName=studio
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups and no systemd here: track processes by parentage, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No slurmdbd: sacct has no job records; finished jobs stay visible to squeue for MinJobAge s.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
MinJobAge=600
# scancel without --signal: SIGTERM, then SIGKILL after KillWait seconds.
KillWait=5
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
MpiDefault=none
# Start a submitted job at once instead of batching submissions for up to 3 s.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
$gres_types
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb$gres_line State=UNKNOWN
PartitionName=studio Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local pidfile=$dir/munge/munged.pid
  pid_alive "$pidfile" && return
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$pidfile" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed" ||
    { show_log "$dir/log/munged.log"; fail "munged did not start"; }
  munge --socket="$dir/munge/munge.socket" -n | unmunge --socket="$dir/munge/munge.socket" >/dev/null ||
    fail "munged started but a credential does not round-trip through $dir/munge/munge.socket"
}

start_slurmctld() {
  pid_alive "$dir/slurmctld.pid" && return
  # -i: ignore state files that an older slurm.conf left behind instead of refusing to start.
  slurmctld -i || { show_log "$dir/log/slurmctld.log"; fail "slurmctld did not start"; }
}

start_slurmd() {
  pid_alive "$dir/slurmd.pid" && return
  slurmd -N "$(hostname -s)" || { show_log "$dir/log/slurmd.log"; fail "slurmd did not start"; }
}

stop_pidfile() {
  local pidfile=$1 pid i
  pid_alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill "$pid"
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

wait_for_idle_node() {
  local i state
  for i in $(seq 300); do
    state=$(sinfo --noheader --Node --format=%t 2>/dev/null | head -n 1 || true)
    case $state in
    idle | mix | alloc) return 0 ;;
    down* | drain* | fail*)
      scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
      ;;
    esac
    if ! pid_alive "$dir/slurmctld.pid"; then
      show_log "$dir/log/slurmctld.log"
      fail "slurmctld exited while starting"
    fi
    if ! pid_alive "$dir/slurmd.pid"; then
      show_log "$dir/log/slurmd.log"
      fail "slurmd exited while starting"
    fi
    sleep 0.1
  done
  show_log "$dir/log/slurmctld.log"
  show_log "$dir/log/slurmd.log"
  fail "the node did not become idle within 30 s (sinfo state: '${state:-no answer}')"
}

case $action in
install)
  ensure_packages
  ;;
start)
  ensure_packages
  [[ -f $conf ]] || write_configs
  start_munge
  start_slurmctld
  start_slurmd
  wait_for_idle_node
  echo "SLURM_CONF=$conf"
  ;;
stop)
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  ;;
restart-controller)
  stop_pidfile "$dir/slurmctld.pid"
  start_slurmctld
  wait_for_idle_node
  ;;
status)
  pid_alive "$dir/slurmctld.pid" && pid_alive "$dir/slurmd.pid" && scontrol ping >/dev/null &&
    [[ -n $(sinfo --noheader --Node --format=%t --states=idle,mix,alloc 2>/dev/null) ]]
  ;;
*) usage ;;
esac

#!/usr/bin/env bash
# A real single-node SLURM for the tests marked `slurm` (no systemd needed):
#
#   .ci/slurm.sh up      install Debian's slurmctld, slurmd, slurm-client and munge when missing,
#                        write the configuration, start munged, slurmctld and slurmd
#   .ci/slurm.sh down    stop them by the PIDs recorded at start-up
#
# The configuration goes to /etc/slurm (slurm.conf, gres.conf, cgroup.conf), where every
# SLURM command looks: the executor plugin's job step drops SLURM_CONF from the environment
# of the inner srun, so another location would break jobs. A slurm.conf this script did not
# write is never overwritten. State, logs and PID files live under $NF_SLURM_DIR (default
# /tmp/neurofacets-slurm). The node has 2 CPUs, $NF_SLURM_MEM_MB of memory (default 12000), one fake GPU
# (gres `gpu` backed by /dev/null, so GPU requests are scheduled; nothing runs on it), and
# partitions `cpu` (default) and `gpu`. Memory is enforced per job by task/cgroup
# (ConstrainRAMSpace) when the kernel lets this script create a memory cgroup with a limit
# that kills; otherwise the script says so and runs without it (cgroup_enforced=no in
# $NF_SLURM_DIR/status).
set -euo pipefail

DIR=${NF_SLURM_DIR:-/tmp/neurofacets-slurm}
MEM_MB=${NF_SLURM_MEM_MB:-12000}
NODE=$(hostname -s)
ETC=/etc/slurm
CONF=$ETC/slurm.conf
MARKER="# written by .ci/slurm.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "[slurm.sh] $*" >&2; }

install_packages() {
  local missing=()
  for cmd in slurmctld slurmd sbatch munged; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

# Whether a memory cgroup limit really kills here (a container may show the files and
# ignore the limit): a child allocating 3x its limit must die.
probe_cgroup_memory() {
  local root=/sys/fs/cgroup/memory probe
  [ -w "$root" ] || { echo "no writable cgroup v1 memory hierarchy at $root"; return 1; }
  probe=$root/neurofacets-probe-$$
  mkdir "$probe" 2>/dev/null || { echo "cannot create a memory cgroup under $root"; return 1; }
  echo $((64 * 1024 * 1024)) > "$probe/memory.limit_in_bytes"
  local rc=0
  bash -c "echo \$\$ > $probe/cgroup.procs; exec python3 -c 'b = bytearray(192 * 1024 * 1024); b[::4096] = b\"x\" * len(b[::4096])'" \
    >/dev/null 2>&1 || rc=$?
  rmdir "$probe" 2>/dev/null || true
  if [ "$rc" -eq 0 ]; then
    echo "a process in a cgroup limited to 64 MB allocated 192 MB: the limit is not enforced"
    return 1
  fi
  return 0
}

write_config() {
  local cgroup=$1
  mkdir -p "$DIR"/{state,spool,log} "$ETC"
  if [ -f "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARKER"; then
    log "$CONF exists and was not written by this script: not touching it"
    return 1
  fi
  local proctrack=proctrack/linuxproc task=task/none
  if [ "$cgroup" = yes ]; then
    proctrack=proctrack/cgroup task=task/cgroup
  fi
  cat > "$CONF" <<EOF
$MARKER: one node, 2 CPUs, partitions cpu and gpu, no accounting database
ClusterName=neurofacets
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=$proctrack
TaskPlugin=$task
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
GresTypes=gpu
# no slurmdbd: sacct cannot answer, job status comes from squeue (kept 10 min after the end)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
MinJobAge=600
ReturnToService=2
MpiDefault=none
SchedulerParameters=bf_interval=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=1440 State=UP
PartitionName=gpu Nodes=$NODE MaxTime=1440 State=UP
EOF
  # a fake GPU: lets `--gpus=1` be scheduled; /dev/null is the device file it "owns"
  echo "NodeName=$NODE Name=gpu File=/dev/null" > "$ETC/gres.conf"
  cat > "$ETC/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainDevices=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
AllowedRAMSpace=100
EOF
}

start_munge() {
  if [ -f "$DIR/munged.pid" ] && kill -0 "$(cat "$DIR/munged.pid")" 2>/dev/null; then return 0; fi
  [ -s /etc/munge/munge.key ] || { mungekey --create --force >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$DIR/munged.pid"
  munge -n | unmunge >/dev/null || { log "munge does not work"; return 1; }
}

wait_for_node() {
  for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      return 0
    fi
    sleep 1
  done
  log "the node did not become idle; see $DIR/log/"
  sinfo -N -l >&2 || true
  tail -20 "$DIR/log/slurmd.log" >&2 || true
  return 1
}

up() {
  install_packages
  mkdir -p "$DIR"
  local cgroup=yes reason=""
  if ! reason=$(probe_cgroup_memory); then
    cgroup=no
    log "memory cgroups cannot be enforced here ($reason): SLURM runs without task/cgroup"
  else
    reason="task/cgroup with ConstrainRAMSpace=yes: a job is killed when it exceeds its --mem"
  fi
  write_config "$cgroup"
  printf 'cgroup_enforced=%s\nreason=%s\nconf=%s\n' "$cgroup" "$reason" "$CONF" > "$DIR/status"
  start_munge
  if ! { [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; }; then
    slurmctld -f "$CONF"
  fi
  if ! { [ -f "$DIR/slurmd.pid" ] && kill -0 "$(cat "$DIR/slurmd.pid")" 2>/dev/null; }; then
    slurmd -f "$CONF"
  fi
  wait_for_node

  log "up: $(sinfo -h -o '%P %a %D %T' | tr '\n' ';') memory enforcement: $cgroup"
}

stop_pidfile() {
  local pidfile=$1 name=$2
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$name ($pid) did not stop, killing"; kill -9 "$pid"; }
  fi
  rm -f "$pidfile"
}

down() {
  if [ -f "$CONF" ]; then
    scancel --user=root >/dev/null 2>&1 || true
  fi
  stop_pidfile "$DIR/slurmd.pid" slurmd
  stop_pidfile "$DIR/slurmctld.pid" slurmctld
  stop_pidfile "$DIR/munged.pid" munged
  log "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

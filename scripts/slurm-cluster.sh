#!/usr/bin/env bash
# slurm-cluster.sh — a real single-node SLURM cluster on this machine, for Quanta's SLURM tests.
#
#   scripts/slurm-cluster.sh start            install what is missing, configure, start, wait for idle
#   scripts/slurm-cluster.sh stop [--purge]   cancel all jobs, stop the daemons; --purge also wipes
#                                             job state, spool, logs and the generated configs
#   scripts/slurm-cluster.sh status           daemons, one sinfo line; exits 1 when not usable
#
# Debian 12 (SLURM 22.05), as root, without systemd: munged, slurmctld and slurmd are started by
# hand and stopped by the PIDs in their pidfiles (never by name). Packages: slurmctld slurmd
# slurm-client munge libslurm-dev (apt-get update runs only when apt has no package lists).
# Idempotent: `start` with everything up and the config unchanged does nothing; a changed config
# (other tunables, another hostname) cancels all jobs and restarts slurmctld and slurmd; `stop`
# with nothing running does nothing. Files: /etc/slurm/{slurm,cgroup}.conf (generated),
# /var/lib/slurm/{slurmctld,slurmd} (state, spool), /var/log/slurm/{slurmctld,slurmd,jobcomp}.log,
# /var/log/munge/munged.log, pidfiles in /run.
#
# Tunables (environment, read by `start`):
#   QUANTA_SLURM_CPUS        CPUs the node advertises (default 8). May exceed the real cores
#                            (slurmd runs with SlurmdParameters=config_overrides), so several
#                            one-CPU test jobs run at once on a 2-core box.
#   QUANTA_SLURM_MEM_MB      RealMemory in MB (default 8000; may exceed real RAM).
#   QUANTA_SLURM_CGROUP      auto|yes|no (default auto): cgroup v1 enforcement when the memory,
#                            freezer and cpuset controllers are mounted and writable.
#   QUANTA_SLURM_MAX_ARRAY   MaxArraySize (default 1001, SLURM's own; largest index is one less).
#   QUANTA_SLURM_MAX_JOBS    MaxJobCount (default 10000, SLURM's own).
#   QUANTA_SLURM_SCHED_PARAMS  SchedulerParameters (default bf_interval=1: a dependent array
#                            element starts 0.1-1 s, mean ~0.5 s, after its upstream ends; with
#                            SLURM's defaults up to 3-4 s. sched_min_interval is already 2 us
#                            and defer is off by default; neither changed anything here).
#   QUANTA_SLURM_EXTRA_CONF  extra slurm.conf lines, appended before the node and partition lines.
#
# Traps (all seen with SLURM 22.05 on this kind of machine):
#   - slurmd always initialises a cgroup plugin, even with proctrack/linuxproc + task/none, and
#     dies ("Unable to initialize cgroup plugin") without a usable cgroup v1 tree. Without
#     cgroups, cgroup.conf points CgroupMountpoint at a directory holding only an empty
#     `systemd/` subdirectory: the plugin initialises and nothing uses it.
#   - Without DefMemPerCPU a job without --mem is given the whole node's memory, and jobs run one
#     at a time. Here DefMemPerCPU=500.
#   - Memory overuse: with cgroups the kernel OOM-kills the job: JobState=OUT_OF_MEMORY
#     Reason=OutOfMemory ExitCode=0:125 (exit_code 253 in slurm_load_jobs), stderr "Killed" and
#     "slurmstepd-NODE: error: Detected 1 oom-kill event(s) in StepId=N.batch ...". Without
#     cgroups jobacct_gather polls RSS every second (JobAcctGatherFrequency=task=1) and
#     OverMemoryKill kills it: JobState=FAILED Reason=JobLaunchFailure ExitCode=0:9, stderr
#     "StepId=N.batch exceeded memory limit (X > Y), being killed", "Exceeded job memory limit".
#   - An aftercorr/afterok dependency that can never be met leaves the dependant PENDING forever
#     (Reason=DependencyNeverSatisfied) unless DependencyParameters=kill_invalid_depend (here) or
#     sbatch --kill-on-invalid-dep=yes; then it is cancelled.
#   - --time is in whole minutes and slurmctld checks limits only every 30 s, so --time=1 ends
#     a job after 60-90 s (seen: 62, 77, 86 s): JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15.
#     Without --time a job gets the partition's MaxTime (2 h).
#   - Every array element counts against MaxJobCount, finished ones too until MinJobAge (600 s
#     here) has passed; at the limit sbatch does not fail but blocks and retries.
#   - EnforcePartLimits=ALL: a request the partition can never satisfy (too many CPUs, too much
#     memory, --time over 2 h) is rejected by sbatch instead of pending forever.
#   - No slurmdbd: sacct needs -c (it then reads the jobcomp file); finished jobs stay visible to
#     squeue/scontrol/slurm_load_jobs for MinJobAge seconds (purged in a 60 s sweep: 600-660 s).
#   - init on this machine reaps orphans only every ~2 s: a stopped daemon lingers as a zombie, so
#     liveness checks here ignore zombies.
set -euo pipefail

PROG=slurm-cluster
ETC=/etc/slurm
STATE=/var/lib/slurm/slurmctld
SPOOL=/var/lib/slurm/slurmd
LOGDIR=/var/log/slurm
CTLD_LOG=$LOGDIR/slurmctld.log
SLURMD_LOG=$LOGDIR/slurmd.log
MUNGE_LOG=/var/log/munge/munged.log
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
FAKE_CGROUP=/run/quanta-slurm-nocgroup
PACKAGES=(slurmctld slurmd slurm-client munge libslurm-dev)
DEFAULT_SCHED_PARAMS="bf_interval=1"

T0=${EPOCHREALTIME/./}
elapsed() { local us=$(( ${EPOCHREALTIME/./} - T0 )); printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000)); }
log() { printf '%s [%6ss] %s\n' "$PROG" "$(elapsed)" "$*"; }
# die MESSAGE [LOGFILE]: one error line naming the log file, then that log's tail
die() {
    local msg=$1 file=${2:-}
    if [ -n "$file" ]; then
        echo "$PROG: error: $msg (see $file)" >&2
        if [ -n "${OUT:-}" ] && [ -s "$OUT" ]; then echo "--- it printed:" >&2; tail -n 10 "$OUT" >&2; fi
        if [ -s "$file" ]; then echo "--- last lines of $file:" >&2; tail -n 25 "$file" >&2; fi
    else
        echo "$PROG: error: $msg" >&2
    fi
    exit 1
}
usage() { echo "usage: $0 start|stop [--purge]|status" >&2; exit 2; }

# alive PID: the process exists and is not a zombie (init here takes ~2 s to reap one)
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# pid_of PIDFILE COMM: prints the pid if the pidfile names a live process called COMM
pid_of() {
    local pid
    [ -s "$1" ] || return 1
    read -r pid <"$1" 2>/dev/null || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && alive "$pid" || return 1
    echo "$pid"
}
node_reason() { sinfo -h -R -o '%E' 2>/dev/null | head -n 1 || true; }
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true; }

# stop_daemons COMM:PIDFILE:LOGFILE...: SIGTERM to all at once, wait up to 30 s, then SIGKILL
stop_daemons() {
    local spec comm file logf pid i names=() pids=() files=() logs=()
    for spec in "$@"; do
        IFS=: read -r comm file logf <<<"$spec"
        if pid=$(pid_of "$file" "$comm"); then
            names+=("$comm"); pids+=("$pid"); files+=("$file"); logs+=("$logf")
            kill -TERM "$pid" 2>/dev/null || true
        else
            rm -f "$file"
        fi
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for i in $(seq 1 300); do
        local left=0
        for pid in "${pids[@]}"; do alive "$pid" && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if alive "${pids[$i]}"; then
            log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 30 s; sending SIGKILL (see ${logs[$i]})"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
        rm -f "${files[$i]}"
        log "stopped ${names[$i]} (pid ${pids[$i]})"
    done
}

# cancel_all_jobs: while slurmctld answers, cancel every job and wait until squeue is empty
cancel_all_jobs() {
    ctld_up || return 0
    local jobs i
    jobs=$(squeue -h -o '%F' 2>/dev/null | sort -u | tr '\n' ' ')
    [ -n "${jobs// /}" ] || return 0
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    if ! pid_of "$SLURMD_PID" slurmd >/dev/null; then
        log "slurmd is not running, so nothing can confirm the jobs ended; not waiting"
        return 0
    fi
    for i in $(seq 1 300); do                  # KillWait (5 s) + epilog, with a wide margin
        [ -z "$(squeue -h -o '%i' 2>/dev/null)" ] && { log "all jobs gone"; return 0; }
        sleep 0.2
    done
    log "jobs still listed after 60 s: $(squeue -h -o '%i %T' 2>/dev/null | tr '\n' ' ')"
}

# kill_leftover_stepds: slurmstepd processes (job step daemons) that outlived slurmd, with the
# job processes below them; found by their executable, killed by pid
kill_leftover_stepds() {
    local p pid ppid all=() victims=() changed=1
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/slurmstepd ] && alive "${p#/proc/}" && victims+=("${p#/proc/}")
    done
    [ ${#victims[@]} -gt 0 ] || return 0
    # add descendants (job processes) of those slurmstepd, to a fixed point
    while [ $changed = 1 ]; do
        changed=0
        for p in /proc/[0-9]*; do
            pid=${p#/proc/}
            ppid=$(awk '{print $4}' "$p/stat" 2>/dev/null) || continue
            [[ " ${victims[*]} " == *" $ppid "* ]] && [[ " ${victims[*]} " != *" $pid "* ]] && { victims+=("$pid"); changed=1; }
        done
    done
    all=("${victims[@]}")
    log "killing leftover slurmstepd and job processes: ${all[*]}"
    kill -KILL "${all[@]}" 2>/dev/null || true
}

[ $# -ge 1 ] || usage
CMD=$1; shift
PURGE=0
case "$CMD" in
    start|status) [ $# -eq 0 ] || usage ;;
    stop) for a in "$@"; do [ "$a" = --purge ] && PURGE=1 || usage; done ;;
    *) usage ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (try: sudo $0 $CMD)"
NODE=$(hostname -s)

# ------------------------------------------------------------------------------------ status
if [ "$CMD" = status ]; then
    usable=1
    for d in "munged $MUNGE_PID $MUNGE_LOG" "slurmctld $CTLD_PID $CTLD_LOG" "slurmd $SLURMD_PID $SLURMD_LOG"; do
        set -- $d
        if pid=$(pid_of "$2" "$1"); then echo "$1: running (pid $pid)"; else echo "$1: not running (see $3)"; usable=0; fi
    done
    if [ -f "$ETC/cgroup.conf" ]; then
        grep -q '^CgroupMountpoint=' "$ETC/cgroup.conf" && echo "enforcement: no cgroups (proctrack/linuxproc, OverMemoryKill)" \
                                                         || echo "enforcement: cgroup v1 (proctrack/task cgroup)"
    fi
    if command -v sinfo >/dev/null && ctld_up; then
        line=$(sinfo -h -o '%P %a timelimit=%l nodes=%D(%N) %T cpus(A/I/O/T)=%C mem=%mMB' 2>/dev/null | head -n 1 || true)
        echo "sinfo: ${line:-<no partition>}"
        case "$(node_state)" in
            idle|mixed|allocated|completing) ;;
            *) usable=0; reason=$(node_reason)
               echo "node $NODE is not usable: state=$(node_state)${reason:+, reason: $reason}" ;;
        esac
    else
        echo "sinfo: slurmctld not answering"; usable=0
    fi
    [ $usable = 1 ] && { echo "cluster: usable"; exit 0; }
    echo "cluster: NOT usable"; exit 1
fi

# ------------------------------------------------------------------------------------ stop
if [ "$CMD" = stop ]; then
    ran=0
    for f in "$MUNGE_PID munged" "$CTLD_PID slurmctld" "$SLURMD_PID slurmd"; do
        set -- $f; pid_of "$1" "$2" >/dev/null && ran=1
    done
    if [ $ran = 1 ]; then
        cancel_all_jobs
        # slurmctld's slurmscriptd child exits with it; munged last, the others may still need it
        stop_daemons "slurmd:$SLURMD_PID:$SLURMD_LOG" "slurmctld:$CTLD_PID:$CTLD_LOG"
        stop_daemons "munged:$MUNGE_PID:$MUNGE_LOG"
    fi
    kill_leftover_stepds
    if [ $PURGE = 1 ]; then
        rm -rf "${STATE:?}"/* "${SPOOL:?}"/* "${LOGDIR:?}"/* "$FAKE_CGROUP"
        rm -f "$ETC/slurm.conf" "$ETC/cgroup.conf"
        # empty slurm hierarchies that task/proctrack cgroup leave in cgroup v1 controllers
        for d in /sys/fs/cgroup/*/slurm /sys/fs/cgroup/*/slurm_"$NODE"; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
        log "purged $STATE $SPOOL $LOGDIR and the generated configs"
    elif [ $ran = 0 ]; then
        log "nothing running"
    fi
    exit 0
fi

# ------------------------------------------------------------------------------------ start
CPUS=${QUANTA_SLURM_CPUS:-8}
MEM=${QUANTA_SLURM_MEM_MB:-8000}
CGROUP=${QUANTA_SLURM_CGROUP:-auto}
MAX_ARRAY=${QUANTA_SLURM_MAX_ARRAY:-1001}
MAX_JOBS=${QUANTA_SLURM_MAX_JOBS:-10000}
SCHED_PARAMS=${QUANTA_SLURM_SCHED_PARAMS-$DEFAULT_SCHED_PARAMS}
EXTRA_CONF=${QUANTA_SLURM_EXTRA_CONF:-}
for v in CPUS MEM MAX_ARRAY MAX_JOBS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "QUANTA_SLURM_$( [ $v = MEM ] && echo MEM_MB || echo $v)=${!v} is not a positive integer"
done
case "$CGROUP" in auto|yes|no) ;; *) die "QUANTA_SLURM_CGROUP=$CGROUP must be auto, yes or no" ;; esac

# 1. packages
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_log=/tmp/$PROG-apt.log
    updated=0
    if ! apt-cache policy slurmctld 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -qq >"$apt_log" 2>&1 || die "apt-get update failed" "$apt_log"
        updated=1
    fi
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
        [ $updated = 0 ] || die "apt-get install ${missing[*]} failed" "$apt_log"
        log "install failed with the present package lists; running apt-get update and retrying"
        apt-get update -qq >"$apt_log" 2>&1 || die "apt-get update failed" "$apt_log"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1 \
            || die "apt-get install ${missing[*]} failed" "$apt_log"
    fi
    log "packages installed"
fi

# 2. directories and the munge key
mkdir -p "$ETC" "$STATE" "$SPOOL" "$LOGDIR" /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0755 /run/munge
chmod 0700 /etc/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key || die "cannot create /etc/munge/munge.key"
    log "created munge key"
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

# 3. cgroup v1 or not
cgroup_v1_usable() {
    local c d
    for c in memory freezer cpuset; do
        [ -d "/sys/fs/cgroup/$c" ] || return 1
        d=/sys/fs/cgroup/$c/.quanta_probe_$$
        mkdir "$d" 2>/dev/null || return 1
        rmdir "$d" 2>/dev/null || return 1
    done
    [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]
}
case "$CGROUP" in
    yes) cgroup_v1_usable || die "QUANTA_SLURM_CGROUP=yes but no writable cgroup v1 memory/freezer/cpuset under /sys/fs/cgroup"
         USE_CGROUP=1 ;;
    no) USE_CGROUP=0 ;;
    auto) if cgroup_v1_usable; then USE_CGROUP=1; else USE_CGROUP=0; fi ;;
esac

if [ $USE_CGROUP = 1 ]; then
    PLUGINS="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup"
    CGCONF="CgroupPlugin=cgroup/v1
ConstrainCores=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
AllowedSwapSpace=0"
else
    PLUGINS="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill"
    CGCONF="CgroupPlugin=cgroup/v1
CgroupMountpoint=$FAKE_CGROUP"
fi
mkdir -p "$FAKE_CGROUP/systemd"     # cheap, and /run is emptied by a reboot

# 4. configuration
NEWCONF=$(mktemp); NEWCG=$(mktemp); OUT=$(mktemp)     # OUT: what a daemon prints before it forks
trap 'rm -f "$NEWCONF" "$NEWCG" "$OUT"' EXIT
cat >"$NEWCONF" <<EOF
# Generated by quanta scripts/slurm-cluster.sh; rewritten by every start.
ClusterName=quanta
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
SlurmdParameters=config_overrides
MailProg=/bin/true
$PLUGINS
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.log
SchedulerType=sched/backfill
${SCHED_PARAMS:+SchedulerParameters=$SCHED_PARAMS}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
EnforcePartLimits=ALL
DependencyParameters=kill_invalid_depend
KillWait=5
OverTimeLimit=0
JobRequeue=1
ReturnToService=2
MinJobAge=600
MaxArraySize=$MAX_ARRAY
MaxJobCount=$MAX_JOBS
$EXTRA_CONF
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=02:00:00 State=UP
EOF
printf '%s\n' "$CGCONF" >"$NEWCG"

changed=0
cmp -s "$NEWCONF" "$ETC/slurm.conf" || changed=1
cmp -s "$NEWCG" "$ETC/cgroup.conf" || changed=1
ctld=$(pid_of "$CTLD_PID" slurmctld || true)
slurmd=$(pid_of "$SLURMD_PID" slurmd || true)
if [ $changed = 1 ] && { [ -n "$ctld" ] || [ -n "$slurmd" ]; }; then
    log "configuration changed: cancelling jobs and restarting slurmctld and slurmd"
    cancel_all_jobs
    stop_daemons "slurmd:$SLURMD_PID:$SLURMD_LOG" "slurmctld:$CTLD_PID:$CTLD_LOG"
    kill_leftover_stepds
    ctld=""; slurmd=""
fi
if [ $changed = 1 ]; then
    install -m 0644 "$NEWCONF" "$ETC/slurm.conf"
    install -m 0644 "$NEWCG" "$ETC/cgroup.conf"
    log "wrote $ETC/slurm.conf and cgroup.conf (node=$NODE cpus=$CPUS mem=${MEM}MB cgroup=$([ $USE_CGROUP = 1 ] && echo v1 || echo none))"
fi

# 5. munged
if pid=$(pid_of "$MUNGE_PID" munged); then
    munged_note="munged already running (pid $pid)"
else
    rm -f "$MUNGE_PID"
    [ -e "$MUNGE_LOG" ] && chown munge:munge "$MUNGE_LOG"     # munged refuses a log it does not own
    runuser -u munge -- /usr/sbin/munged >"$OUT" 2>&1 || die "munged failed to start: $(tail -n 1 "$OUT")" "$MUNGE_LOG"
    for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || die "munged does not answer" "$MUNGE_LOG"
    munged_note="started munged (pid $(cat "$MUNGE_PID"))"
fi
[ -n "$ctld" ] && [ -n "$slurmd" ] || log "$munged_note"

# 6. slurmctld, then slurmd
if [ -z "$ctld" ]; then
    rm -f "$CTLD_PID"
    /usr/sbin/slurmctld >"$OUT" 2>&1 || die "slurmctld failed to start: $(tail -n 1 "$OUT")" "$CTLD_LOG"
    for _ in $(seq 1 150); do ctld_up && break; sleep 0.1; done
    ctld_up || die "slurmctld does not answer after 15 s" "$CTLD_LOG"
    log "started slurmctld (pid $(cat "$CTLD_PID"))"
fi
if [ -z "$slurmd" ]; then
    rm -f "$SLURMD_PID"
    /usr/sbin/slurmd >"$OUT" 2>&1 || die "slurmd failed to start: $(tail -n 1 "$OUT")" "$SLURMD_LOG"
    for _ in $(seq 1 150); do pid_of "$SLURMD_PID" slurmd >/dev/null && break; sleep 0.1; done
    pid_of "$SLURMD_PID" slurmd >/dev/null || die "slurmd did not start" "$SLURMD_LOG"
    log "started slurmd (pid $(cat "$SLURMD_PID"))"
fi

# 7. wait until the node takes jobs (a node left drained or down by an earlier run is resumed once)
resumed=0
for i in $(seq 1 300); do
    st=$(node_state)
    case "$st" in
        idle|mixed|allocated|completing) break ;;
        *drain*|down*|fail*)
            if [ $resumed = 0 ]; then
                log "node $NODE is $st ($(node_reason)); resuming it"
                scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
                resumed=1
            fi ;;
    esac
    pid_of "$SLURMD_PID" slurmd >/dev/null || die "slurmd exited while the node was coming up" "$SLURMD_LOG"
    [ "$i" -lt 300 ] || die "node $NODE not idle after 60 s (state '$st': $(node_reason))" "$SLURMD_LOG"
    sleep 0.2
done
if [ -n "$ctld" ] && [ -n "$slurmd" ] && [ $changed = 0 ]; then
    log "already running, configuration unchanged; node $NODE is $st"
else
    log "cluster ready: node $NODE is $st, partition debug, $CPUS CPUs, ${MEM} MB, cgroups $([ $USE_CGROUP = 1 ] && echo v1 || echo off)"
fi

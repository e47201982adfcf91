#!/usr/bin/env bash
# Removes whatever kube-spawn integration tests and benchmarks may have left on this host, even after
# a crash or a failed assertion: node processes, overlay mounts, bridges, veths, iptables rules,
# machined units, cgroup subtrees and the state roots.
#
#   usage: test/integration/cleanup.sh [NAME_PREFIX [STATE_ROOT...]]
#
# NAME_PREFIX  cluster-name prefix to clean (default "kst-"). Test clusters are named kst-*, so their
#              machines are ks-kst-*, their bridges ks-kst-*, their iptables comments kube-spawn:kst-*.
#              A test passes its own cluster name, .ci/run its run's prefix kst-<run id>, so that other
#              runs on the same host keep their clusters.
# STATE_ROOT   state roots to unmount everything below and then delete (default: every
#              /tmp/kube-spawn-test-*, which with the default prefix is a sweep of ALL test runs).
#
# Idempotent and quiet when there is nothing to do; it never fails (cleanup must not hide the
# test result), but it prints what it removed and what it could not.
set -uo pipefail

PREFIX="${1:-kst-}"
shift || true
case "$PREFIX" in
  kst-*) ;;
  *) echo "cleanup: refusing prefix \"$PREFIX\" (test clusters are named kst-*)" >&2; exit 0 ;;
esac
MACHINE_PREFIX="ks-$PREFIX"
COMMENT_PREFIX="kube-spawn:$PREFIX"
if (($#)); then
  ROOTS=()
  for r in "$@"; do
    case "$r" in
      /tmp/kube-spawn-test-*) [[ -e "$r" ]] && ROOTS+=("$r") ;;
      *) echo "cleanup: not touching $r (state roots of tests are /tmp/kube-spawn-test-*)" >&2 ;;
    esac
  done
else
  shopt -s nullglob
  ROOTS=(/tmp/kube-spawn-test-*)
  shopt -u nullglob
fi

say() { echo "cleanup: $*"; }

# --- processes -------------------------------------------------------------------------------------
# The machine name of a systemd-nspawn process, from --machine=NAME, --machine NAME or -M NAME.
nspawn_machine() {
  local pid=$1 args=() prev='' a
  mapfile -d '' -t args 2>/dev/null < "/proc/$pid/cmdline" || return 1
  ((${#args[@]})) || return 1
  [[ "${args[0]##*/}" == systemd-nspawn ]] || return 1
  for a in "${args[@]:1}"; do
    case "$a" in
      --machine=*) echo "${a#--machine=}"; return 0 ;;
      -M?*) echo "${a#-M}"; return 0 ;;
    esac
    if [[ "$prev" == --machine || "$prev" == -M ]]; then echo "$a"; return 0; fi
    prev=$a
  done
  return 1
}

our_nspawns() {
  local p m
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    m=$(nspawn_machine "$p") || continue
    [[ "$m" == "$MACHINE_PREFIX"* ]] && echo "$p $m"
  done
}

# machined-registered nodes (hosts where PID 1 is systemd): stop their transient units.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  while read -r unit _; do
    [[ -n "$unit" ]] || continue
    say "stopping unit $unit"
    systemctl kill -s KILL "$unit" >/dev/null 2>&1
    systemctl stop "$unit" >/dev/null 2>&1
    systemctl reset-failed "$unit" >/dev/null 2>&1
  done < <(systemctl list-units --all --plain --no-legend "kube-spawn-${MACHINE_PREFIX}*" 2>/dev/null)
fi

# Killing nspawn alone leaves the node running: SIGKILL its child, the node's PID 1, which ends the
# node's whole PID namespace (and, for an outer test host, every node nested in it).
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  found=0
  while read -r pid machine; do
    [[ -n "$pid" ]] || continue
    found=1
    ((attempt == 1)) && say "killing node $machine (nspawn $pid)"
    for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do kill -KILL "$child" 2>/dev/null; done
    ((attempt > 2)) && kill -KILL "$pid" 2>/dev/null
  done < <(our_nspawns)
  ((found)) || break
  sleep 0.5
done
left=$(our_nspawns)
[[ -z "$left" ]] || say "still running after SIGKILL: $left"

# A node whose nspawn died (killed, crashed) keeps running without it. Its leader is recorded in
# <cluster>/nodes/<machine>/leader.pid as "PID START-TIME" (field 22 of /proc/PID/stat, which guards
# against a reused PID); and every process of a node sits in a cgroup kube-spawn/<machine>.
kill_pid() { # kill_pid PID WHY
  [[ "$1" =~ ^[0-9]+$ && "$1" -gt 1 && "$1" -ne $$ ]] || return 0
  [[ -d "/proc/$1" ]] || return 0
  say "killing $2 (pid $1)"
  kill -KILL "$1" 2>/dev/null
}
for root in "${ROOTS[@]}"; do
  for file in "$root"/*/nodes/"$MACHINE_PREFIX"*/leader.pid "$root"/*/*/nodes/"$MACHINE_PREFIX"*/leader.pid; do
    [[ -f "$file" ]] || continue
    read -r pid start < "$file" || continue
    stat_line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    fields=(${stat_line##*) })
    [[ "${fields[19]:-}" == "$start" ]] && kill_pid "$pid" "the leader of $(basename "$(dirname "$file")")"
  done
done
mapfile -t cgroup_mounts < <(awk '($3 == "cgroup" || $3 == "cgroup2") && index($2, "/sys/fs/cgroup") == 1 {print $2}' /proc/mounts)
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  found=0
  for h in "${cgroup_mounts[@]}"; do
    while read -r procs; do
      mapfile -t pids < "$procs"
      ((${#pids[@]})) || continue
      found=1
      ((attempt == 1)) && say "killing ${#pids[@]} processes in ${procs%/cgroup.procs}"
      for pid in "${pids[@]}"; do [[ "$pid" -gt 1 && "$pid" -ne $$ ]] && kill -KILL "$pid" 2>/dev/null; done
    done < <(find "$h" -mindepth 3 -maxdepth 16 -name cgroup.procs -path "*/kube-spawn/${MACHINE_PREFIX}*" 2>/dev/null)
  done
  ((found)) || break
  sleep 0.3
done

# --- mounts ----------------------------------------------------------------------------------------
unmount_under() {
  local root=${1%/} path
  for attempt in 1 2 3; do
    # deepest first; /proc/mounts escapes spaces as \040, which test paths never contain
    mapfile -t paths < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r)
    ((${#paths[@]})) || return 0
    for path in "${paths[@]}"; do
      ((attempt == 1)) && say "unmounting $path"
      umount "$path" 2>/dev/null || umount -l "$path" 2>/dev/null
    done
  done
}
for root in "${ROOTS[@]}"; do unmount_under "$root"; done

# --- network ---------------------------------------------------------------------------------------
# Bridges are ks-<cluster> (long names keep a 7-character stem and a hash, so still ks-kst-...). A
# node's host-side veth goes with its network namespace; one left behind hangs on the bridge, so the
# links enslaved to our bridges go first. nspawn shortens long veth names with a hash, so veths are
# matched by name (vb-<machine prefix>) only when the prefix is short enough to be kept whole.
VETH_PREFIX="vb-$MACHINE_PREFIX"
HASHED_STEM="${MACHINE_PREFIX:0:10}-"
while read -r link; do
  link=${link%%@*}
  if [[ "$link" == "$MACHINE_PREFIX"* || (${#link} -eq 15 && "$link" == "$HASHED_STEM"*) ]]; then
    while read -r port; do
      port=${port%%@*}
      [[ -n "$port" ]] || continue
      say "deleting link $port (on bridge $link)"
      ip link del "$port" 2>/dev/null
    done < <(ip -o link show master "$link" 2>/dev/null | awk -F': ' '{print $2}')
    say "deleting bridge $link"
    ip link del "$link" 2>/dev/null
  elif ((${#VETH_PREFIX} < 15)) && [[ "$link" == "$VETH_PREFIX"* ]]; then
    say "deleting link $link"
    ip link del "$link" 2>/dev/null
  fi
done < <(ip -o link show 2>/dev/null | awk -F': ' '{print $2}')

for table in filter nat; do
  while read -r rule; do
    [[ -n "$rule" ]] || continue
    say "deleting iptables rule ($table) $rule"
    # xargs splits the rule as iptables-save quoted it (the comment is in double quotes)
    echo "${rule#-A }" | xargs iptables -w -t "$table" -D 2>/dev/null || say "could not delete: $rule"
  done < <(iptables-save -t "$table" 2>/dev/null | grep -E -- "^-A .*--comment \"?${COMMENT_PREFIX}")
done

# --- cgroups ---------------------------------------------------------------------------------------
# Nodes create kube-spawn/<machine> below their cgroup-namespace root, which is not always a
# hierarchy's root (e.g. memory:/<launcher's cgroup>/kube-spawn/<machine>); search every hierarchy.
# cgroup directories go with rmdir only, deepest first, once their processes are gone.
mapfile -t hierarchies < <(awk '($3 == "cgroup" || $3 == "cgroup2") && index($2, "/sys/fs/cgroup") == 1 {print $2}' /proc/mounts)
for h in "${hierarchies[@]}"; do
  removed=0
  for attempt in 1 2 3 4 5; do
    mapfile -t dirs < <(find "$h" -depth -mindepth 2 -maxdepth 14 -type d -path "*/kube-spawn/${MACHINE_PREFIX}*" 2>/dev/null)
    ((${#dirs[@]})) || break
    parents=()
    for d in "${dirs[@]}"; do
      rmdir "$d" 2>/dev/null && removed=$((removed + 1))
      [[ "${d%/*}" == */kube-spawn ]] && parents+=("${d%/*}")
    done
    # the kube-spawn parent goes too once no other node uses it
    for p in $(printf '%s\n' "${parents[@]}" | sort -u); do rmdir "$p" 2>/dev/null; done
    sleep 0.2
  done
  ((removed)) && say "removed $removed cgroup directories of ${MACHINE_PREFIX}* in $h"
  rest=$(find "$h" -mindepth 2 -maxdepth 14 -type d -path "*/kube-spawn/${MACHINE_PREFIX}*" -prune 2>/dev/null)
  [[ -z "$rest" ]] || say "cgroups left (still in use?): $rest"
done

# --- state roots -----------------------------------------------------------------------------------
for root in "${ROOTS[@]}"; do
  if awk -v r="${root%/}" 'index($2, r "/") == 1 {found=1} END {exit !found}' /proc/mounts; then
    say "keeping $root: something is still mounted below it"
    continue
  fi
  say "removing $root"
  rm -rf --one-file-system "$root"
done
exit 0

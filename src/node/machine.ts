import {spawn} from 'node:child_process'
import {open, readFile, rm} from 'node:fs/promises'

import {HostError} from '../errors.js'
import {run} from '../util/run.js'
import {WaitTimeout, waitFor} from '../util/wait.js'
import type {NodeMount} from './handle.js'
import {recordLeader} from './handle.js'
import {launcherCgroups} from './cgroups.js'
import {nodePaths} from './layout.js'

export interface BootSpec {
  clusterDir: string
  machine: string
  bridge: string
  mounts: NodeMount[]
}

/** How nodes are run: as machined-registered transient units, or supervised by kube-spawn itself. */
export interface MachineBackend {
  readonly name: 'machined' | 'standalone'
  /** Starts the node and returns the PID of its init (the leader). */
  start(spec: BootSpec): Promise<number>
  /**
   * Asks the node's systemd to power off at once: without stopping its units one by one, it sends every
   * process SIGTERM (then SIGKILL after the stop timeout), unmounts and exits, like `systemctl poweroff
   * --force`. The stop pipeline has stopped the kubelet and the runtime in order before; the ordered
   * shutdown of what is left (journald, dbus, logind) took 0.8 s of a 3-node stop.
   */
  requestPowerOff(machine: string, leader: number): Promise<void>
  /** Ends the node at once. */
  kill(machine: string, leader: number): Promise<void>
}

/** nspawn options every node needs on these hosts; see docs/architecture.md for each reason. */
export function nspawnArgs(spec: BootSpec): string[] {
  const paths = nodePaths(spec.clusterDir, spec.machine)
  return [
    '--boot',
    `--directory=${paths.rootfs}`,
    `--machine=${spec.machine}`,
    `--network-bridge=${spec.bridge}`,
    '--resolv-conf=off',
    '--timezone=off',
    '--link-journal=no',
    // kubelet, containerd and runc manage mounts, cgroups and namespaces of their own.
    '--capability=all',
    '--private-users=no',
    '--system-call-filter=@keyring bpf',
    '--console=read-only',
    ...spec.mounts.map((m) => `--${m.readOnly ? 'bind-ro' : 'bind'}=${m.src}:${m.dst}`),
  ]
}

/** The environment nspawn runs with: kubelet writes /proc/sys and /sys, which nspawn makes read-only otherwise. */
/** TERM=dumb keeps systemd's status spinner out of the console log. */
export const NSPAWN_ENV = {SYSTEMD_NSPAWN_API_VFS_WRITABLE: '1', TERM: 'dumb'}

/** systemd powers off at once on SIGRTMIN+14; Node knows real-time signals only by number (SIGRTMIN is 34 on Linux). */
const IMMEDIATE_POWER_OFF = 34 + 14

/** Without machined: nspawn is not registered and kube-spawn keeps the leader PID itself. */
export const standaloneBackend: MachineBackend = {
  name: 'standalone',
  async start(spec) {
    const paths = nodePaths(spec.clusterDir, spec.machine)
    // nspawn puts the node's systemd in <own cgroup>/payload; nodes launched from one cgroup would
    // share it, so each node's nspawn first moves itself into a launcher cgroup of its own.
    const procs = await launcherCgroups(spec.machine)
    const log = await open(paths.console, 'a', 0o600)
    const script = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f"; shift; done; shift; exec systemd-nspawn "$@"'
    const child = spawn('sh', ['-c', script, 'sh', ...procs, '--', '--register=no', '--keep-unit', ...nspawnArgs(spec)], {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: {...process.env, ...NSPAWN_ENV},
    })
    child.unref()
    await log.close()
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)))
    return waitForLeader(spec, child.pid!, exited)
  },
  async requestPowerOff(_machine, leader) {
    process.kill(leader, IMMEDIATE_POWER_OFF)
  },
  async kill(_machine, leader) {
    // Killing nspawn leaves the node running; killing its init ends the whole PID namespace.
    try {
      process.kill(leader, 'SIGKILL')
    } catch {
      // already gone
    }
  },
}

/** With machined: each node is a transient unit, registered and visible in machinectl. */
export const machinedBackend: MachineBackend = {
  name: 'machined',
  async start(spec) {
    const env = Object.entries(NSPAWN_ENV).map(([k, v]) => `--setenv=${k}=${v}`)
    await run(['systemctl', 'reset-failed', unitName(spec.machine)], {allowFailure: true})
    await run([
      'systemd-run',
      `--unit=${unitName(spec.machine)}`,
      '--property=Delegate=yes',
      '--property=KillMode=mixed',
      '--property=Type=notify',
      '--no-block',
      ...env,
      'systemd-nspawn',
      '--keep-unit',
      ...nspawnArgs(spec),
    ])
    const registered = await waitFor(
      async () => {
        const shown = await run(['machinectl', 'show', spec.machine, '--property=Leader', '--value'], {allowFailure: true})
        const pid = Number.parseInt(shown.stdout, 10)
        if (shown.exitCode === 0 && pid > 0 && (await recordLeader(spec.clusterDir, spec.machine, pid))) return pid
        const state = await run(['systemctl', 'is-active', unitName(spec.machine)], {allowFailure: true})
        return state.stdout.trim() === 'failed' ? 'failed' : undefined
      },
      {timeout: LEADER_TIMEOUT_MS, interval: 100, describe: `node ${spec.machine} to register with machined`},
    ).catch((error: unknown) => (error instanceof WaitTimeout ? 'timed out' : Promise.reject(error)))
    if (typeof registered === 'number') return registered
    const journal = await run(['journalctl', '-u', unitName(spec.machine), '-n', '5', '--no-pager', '-o', 'cat'], {allowFailure: true})
    throw new HostError(`node ${spec.machine} did not register with machined: ${journal.stdout.trim().split('\n').join(' | ')}`, {
      hint: `see journalctl -u ${unitName(spec.machine)}`,
    })
  },
  async requestPowerOff(machine) {
    await run(['machinectl', 'kill', '--kill-whom=leader', '--signal=SIGRTMIN+14', machine], {allowFailure: true})
  },
  async kill(machine, leader) {
    await run(['machinectl', 'terminate', machine], {allowFailure: true})
    try {
      process.kill(leader, 'SIGKILL')
    } catch {
      // already gone
    }
  },
}

/** How long nspawn may take to set up a node's namespaces (or machined to register it). */
const LEADER_TIMEOUT_MS = 30_000

export function unitName(machine: string): string {
  return `kube-spawn-${machine}.service`
}

export function backendFor(machined: boolean): MachineBackend {
  return machined ? machinedBackend : standaloneBackend
}

/** The leader is nspawn's child; it appears once nspawn has set up the namespaces. */
async function waitForLeader(spec: BootSpec, nspawnPid: number, exited: Promise<number>): Promise<number> {
  const paths = nodePaths(spec.clusterDir, spec.machine)
  let done: number | undefined
  void exited.then((code) => (done = code))
  const leader = await waitFor(
    async () => {
      if (done !== undefined) return 'nspawn exited'
      const children = await readFile(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').catch(() => '')
      for (const pid of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
        // The leader is PID 1 of the node's PID namespace (the last NSpid field).
        const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
        const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/)
        if (nspid && nspid.length > 1 && nspid.at(-1) === '1' && (await recordLeader(spec.clusterDir, spec.machine, pid))) return pid
      }
      return undefined
    },
    {timeout: LEADER_TIMEOUT_MS, interval: 25, describe: `node ${spec.machine} to start`},
  ).catch((error: unknown) => (error instanceof WaitTimeout ? 'timed out' : Promise.reject(error)))
  if (typeof leader === 'number') return leader
  await rm(paths.leaderFile, {force: true})
  const tail = (await readFile(paths.console, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ')
  throw new HostError(
    `node ${spec.machine} did not start${done === undefined ? ' within 30 s' : ` (nspawn exited with ${done})`}: ${tail}`,
    {hint: `see ${paths.console}`},
  )
}

import {readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'

import type {ClusterContext} from '../context/index.js'
import {HostError, UserError} from '../errors.js'
import type {StageTaskWrapper} from '@kube-spawn/sdk'
import {run} from '../util/run.js'
import {WaitTimeout, waitFor} from '../util/wait.js'
import {leaderPid} from './handle.js'
import {nodePaths} from './layout.js'
import {backendFor, unitName} from './machine.js'
import {bridgeName} from './names.js'
import {removeEmptyCgroupParents, removeNodeCgroups} from './cgroups.js'
import {mountOverlay, unmount} from './mounts.js'
import {nodeResolvConf} from './network.js'
import {recordVeth, removeStaleVeth} from './veth.js'

export const BOOT_TIMEOUT_MS = 90_000
/** ctx.shared key: the names of the machines this command booted (the others were running already). */
export const BOOTED_MACHINES = 'kube-spawn:booted'
export const POWER_OFF_TIMEOUT_MS = 30_000

/** Boots every node that is not running, in parallel, and waits until systemd in each reports running. */
export async function bootNodes(ctx: ClusterContext, task: StageTaskWrapper): Promise<void> {
  const base = ctx.baseImage?.rootfs
  if (!base || !(await stat(base).catch(() => undefined))) {
    throw new UserError(`the base image of cluster "${ctx.cluster.clusterName}" is gone${base ? ` (${base})` : ''}`, {
      hint: 'destroy and create the cluster again',
    })
  }
  await raiseInotifyLimits()
  const backend = backendFor(ctx.host.machined)
  const resolvConf = await nodeResolvConf(ctx.cluster)
  let booted = 0
  const bootedNames = new Set<string>()
  ctx.shared.set(BOOTED_MACHINES, bootedNames)
  // allSettled: after a failure or an interrupt, no node may still be starting when the teardown looks.
  const outcomes = await Promise.allSettled(
    ctx.machines.map(async (node) => {
      if ((await leaderPid(ctx.clusterDir, node.name)) !== undefined) return
      // Nothing new may start once the command is interrupted: the teardown would miss it.
      ctx.signal?.throwIfAborted()
      const paths = nodePaths(ctx.clusterDir, node.name)
      await removeStaleVeth(ctx.clusterDir, node.name)
      await mountOverlay(base, paths)
      await node.writeFile('/etc/resolv.conf', resolvConf)
      const started = Date.now()
      ctx.signal?.throwIfAborted()
      await backend.start({
        clusterDir: ctx.clusterDir,
        machine: node.name,
        bridge: bridgeName(ctx.cluster.clusterName),
        mounts: node.mounts,
      })
      await waitForSystemd(ctx, node.name)
      await recordVeth(ctx, node.name)
      bootedNames.add(node.name)
      booted++
      task.output = `${node.name} running after ${((Date.now() - started) / 1000).toFixed(1)} s (${booted}/${ctx.machines.length})`
    }),
  )
  const failed = outcomes.find((o) => o.status === 'rejected')
  if (failed) throw failed.reason
  for (const m of ctx.cluster.machines) m.running = true
}

/** systemd in the node reports running, or degraded (then the failed units become a warning). */
async function waitForSystemd(ctx: ClusterContext, machine: string): Promise<void> {
  const node = ctx.machines.find((n) => n.name === machine)!
  let state = ''
  const outcome = await ctx
    .waitFor(
      async () => {
        // --wait answers when the boot is over; it fails at once while systemd does not listen yet.
        const result = await node
          .exec(['systemctl', 'is-system-running', '--wait'], {allowFailure: true, timeoutMs: 10_000})
          .catch(() => undefined)
        state = result?.stdout.trim() ?? ''
        if (state === 'running' || state === 'degraded') return state
        return (await leaderPid(ctx.clusterDir, machine)) === undefined ? 'gone' : undefined
      },
      {timeout: BOOT_TIMEOUT_MS * ctx.host.timeoutScale, interval: 100, describe: `systemd in ${machine} to finish booting`},
    )
    .catch((error: unknown) => (error instanceof WaitTimeout ? 'timed out' : Promise.reject(error)))
  if (outcome === 'running') return
  if (outcome === 'degraded') {
    const failed = await node.exec(['systemctl', 'list-units', '--state=failed', '--plain', '--no-legend'], {allowFailure: true})
    ctx.warn(
      `node ${machine} booted degraded; failed units: ${failed.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0])
        .join(', ')}`,
    )
    return
  }
  const console = (await readFile(nodePaths(ctx.clusterDir, machine).console, 'utf8').catch(() => ''))
    .trim()
    .split('\n')
    .slice(-3)
    .join(' | ')
  throw new HostError(`node ${machine} did not finish booting (systemd state "${state || 'unknown'}")${console ? `: ${console}` : ''}`, {
    hint: `see ${nodePaths(ctx.clusterDir, machine).console}`,
  })
}

/**
 * Ends every running node: with a grace period, an orderly power-off first and a forced kill of any
 * node that overruns it; with none (destroy), the forced kill at once.
 */
export async function endNodes(ctx: ClusterContext, graceMs: number, task?: StageTaskWrapper): Promise<void> {
  const backend = backendFor(ctx.host.machined)
  await Promise.all(
    ctx.machines.map(async (node) => {
      const leader = await leaderPid(ctx.clusterDir, node.name)
      if (leader !== undefined) {
        if (graceMs > 0) await backend.requestPowerOff(node.name, leader)
        if (graceMs === 0 || !(await waitGone(node.name, leader, graceMs))) {
          if (task && graceMs > 0) task.output = `${node.name} did not power off in ${graceMs / 1000} s; killing it`
          await backend.kill(node.name, leader)
          await waitGone(node.name, leader, 10_000)
        }
      }
      await releaseNode(ctx, node.name)
    }),
  )
  for (const m of ctx.cluster.machines) m.running = false
}

/** Removes what a node leaves on the host besides its directory: cgroup subtrees and unit state. */
export async function forgetNodes(ctx: ClusterContext): Promise<void> {
  for (const node of ctx.machines) {
    await removeNodeCgroups(node.name)
    if (ctx.host.machined) await forgetUnit(ctx, node.name)
  }
  await removeEmptyCgroupParents()
}

/** How long systemd may take to settle a killed node's unit. */
const UNIT_SETTLE_MS = 10_000

/**
 * Removes a node's transient unit from systemd. A killed node's unit turns "failed", and stays
 * listed, only once systemd has reaped its last process, which can be a moment after the node's
 * processes are gone: a reset-failed before that is lost. So reset until systemd no longer knows it.
 */
async function forgetUnit(ctx: ClusterContext, machine: string): Promise<void> {
  const unit = unitName(machine)
  const forgotten = async () => {
    await run(['systemctl', 'reset-failed', unit], {allowFailure: true})
    const shown = await run(['systemctl', 'show', unit, '--property=LoadState', '--value'], {allowFailure: true})
    return shown.stdout.trim() !== 'loaded' || undefined
  }
  // No signal: teardown must finish.
  await waitFor(forgotten, {timeout: UNIT_SETTLE_MS * ctx.host.timeoutScale, interval: 200, describe: `systemd to forget ${unit}`}).catch(
    (error: unknown) => {
      if (!(error instanceof WaitTimeout)) throw error
      ctx.warn(`systemd still lists ${unit}; remove it with "systemctl stop ${unit}; systemctl reset-failed ${unit}"`)
    },
  )
}

async function releaseNode(ctx: ClusterContext, machine: string): Promise<void> {
  const paths = nodePaths(ctx.clusterDir, machine)
  await unmount(paths.rootfs)
  await rm(paths.leaderFile, {force: true})
  await removeStaleVeth(ctx.clusterDir, machine)
}

/** True once the leader and the node's nspawn process are gone. No signal: teardown must finish. */
async function waitGone(machine: string, leader: number, timeoutMs: number): Promise<boolean> {
  const gone = async () => {
    const leaderAlive = await stat(`/proc/${leader}`).then(
      () => true,
      () => false,
    )
    return !leaderAlive && (await nspawnPids(machine)).length === 0
  }
  return waitFor(async () => (await gone()) || undefined, {timeout: timeoutMs, interval: 50, describe: `node ${machine} to end`}).catch(
    (error: unknown) => (error instanceof WaitTimeout ? false : Promise.reject(error)),
  )
}

/** PIDs of systemd-nspawn processes running the given machine. */
async function nspawnPids(machine: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    const args = cmdline.split('\0')
    if (args.some((a) => a.endsWith('systemd-nspawn')) && args.includes(`--machine=${machine}`)) pids.push(Number(entry))
  }
  return pids
}

/** Several nodes exhaust the default 128 inotify instances; kubelet then fails with "too many open files". */
async function raiseInotifyLimits(): Promise<void> {
  for (const [key, min] of [
    ['max_user_instances', 8192],
    ['max_user_watches', 524288],
  ] as const) {
    const path = `/proc/sys/fs/inotify/${key}`
    const current = Number(await readFile(path, 'utf8').catch(() => '0'))
    if (current < min) await writeFile(path, String(min)).catch(() => undefined)
  }
}

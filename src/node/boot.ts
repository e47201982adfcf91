import {mkdtemp, readdir, readFile, rm, rmdir, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import type {ClusterContext} from '../cluster/context.js'
import {HostError, UserError} from '../errors.js'
import type {StageTaskWrapper} from '../sdk/index.js'
import {run} from '../util/run.js'
import {leaderPid} from './handle.js'
import {nodePaths} from './layout.js'
import {backendFor, unitName} from './machine.js'
import {bridgeName} from './names.js'
import {nodeResolvConf} from './network.js'

export const BOOT_TIMEOUT_MS = 90_000
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
  // allSettled: after a failure or an interrupt, no node may still be starting when the teardown looks.
  const outcomes = await Promise.allSettled(
    ctx.nodes.map(async (node) => {
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
      booted++
      task.output = `${node.name} running after ${((Date.now() - started) / 1000).toFixed(1)} s (${booted}/${ctx.nodes.length})`
    }),
  )
  const failed = outcomes.find((o) => o.status === 'rejected')
  if (failed) throw failed.reason
  for (const m of ctx.cluster.machines) m.running = true
}

/** systemd in the node reports running, or degraded (then the failed units become a warning). */
async function waitForSystemd(ctx: ClusterContext, machine: string): Promise<void> {
  const node = ctx.nodes.find((n) => n.name === machine)!
  const deadline = Date.now() + BOOT_TIMEOUT_MS * ctx.host.timeoutScale
  let state = ''
  while (Date.now() < deadline) {
    ctx.signal?.throwIfAborted()
    const result = await node.exec(['systemctl', 'is-system-running'], {allowFailure: true, timeoutMs: 10_000}).catch(() => undefined)
    state = result?.stdout.trim() ?? ''
    if (state === 'running') return
    if (state === 'degraded') {
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
    if ((await leaderPid(ctx.clusterDir, machine)) === undefined) break
    await sleep(100)
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
    ctx.nodes.map(async (node) => {
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
  for (const node of ctx.nodes) {
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
  const deadline = Date.now() + UNIT_SETTLE_MS * ctx.host.timeoutScale
  for (;;) {
    await run(['systemctl', 'reset-failed', unit], {allowFailure: true})
    const shown = await run(['systemctl', 'show', unit, '--property=LoadState', '--value'], {allowFailure: true})
    if (shown.stdout.trim() !== 'loaded') return
    if (Date.now() > deadline) {
      ctx.warn(`systemd still lists ${unit}; remove it with "systemctl stop ${unit}; systemctl reset-failed ${unit}"`)
      return
    }
    await sleep(200)
  }
}

async function releaseNode(ctx: ClusterContext, machine: string): Promise<void> {
  const paths = nodePaths(ctx.clusterDir, machine)
  await unmount(paths.rootfs)
  await rm(paths.leaderFile, {force: true})
  await removeStaleVeth(ctx.clusterDir, machine)
}

/** True once the leader and the node's nspawn process are gone. */
async function waitGone(machine: string, leader: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const leaderAlive = await stat(`/proc/${leader}`).then(
      () => true,
      () => false,
    )
    if (!leaderAlive && (await nspawnPids(machine)).length === 0) return true
    await sleep(50)
  }
  return false
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

async function mountOverlay(base: string, paths: ReturnType<typeof nodePaths>): Promise<void> {
  if (await isMounted(paths.rootfs)) return
  await run(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${paths.upper},workdir=${paths.work}`, paths.rootfs])
}

async function unmount(path: string): Promise<void> {
  for (let attempt = 0; attempt < 20 && (await isMounted(path)); attempt++) {
    const result = await run(['umount', path], {allowFailure: true})
    if (result.exitCode !== 0) await sleep(100)
  }
  if (await isMounted(path)) await run(['umount', '-l', path], {allowFailure: true})
}

async function isMounted(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8')
  return mounts.split('\n').some((line) => line.split(' ')[1] === path)
}

/**
 * After a crash nspawn leaves the node's host-side veth behind and the next boot fails with "File
 * exists". nspawn shortens long names with a hash, so the name is recorded at boot rather than guessed.
 */
async function removeStaleVeth(clusterDir: string, machine: string): Promise<void> {
  const file = join(nodePaths(clusterDir, machine).dir, 'veth')
  const veth = (await readFile(file, 'utf8').catch(() => '')).trim()
  if (veth) {
    const shown = await run(['ip', 'link', 'show', veth], {allowFailure: true})
    if (shown.exitCode === 0) await run(['ip', 'link', 'del', veth], {allowFailure: true})
  }
  await rm(file, {force: true})
}

/** The host end of the node's host0: the interface whose index host0's iflink names. */
async function recordVeth(ctx: ClusterContext, machine: string): Promise<void> {
  const node = ctx.nodes.find((n) => n.name === machine)!
  const iflink = (await node.exec(['cat', '/sys/class/net/host0/iflink'], {allowFailure: true})).stdout.trim()
  for (const name of await readdir('/sys/class/net').catch(() => [] as string[])) {
    if ((await readFile(`/sys/class/net/${name}/ifindex`, 'utf8').catch(() => '')).trim() === iflink) {
      await writeFile(join(nodePaths(ctx.clusterDir, machine).dir, 'veth'), `${name}\n`)
      return
    }
  }
}

/**
 * Node cgroup subtrees stay in the host hierarchies after a node is gone. Nodes run in a cgroup
 * namespace rooted at their launcher cgroup, so their kube-spawn/<machine> dirs sit at various depths
 * (e.g. /sys/fs/cgroup/memory/<launcher's cgroup>/kube-spawn/<machine>): search for them. The
 * kube-spawn parent goes too once it is empty, or it keeps the launcher's cgroup from being removed.
 * Where kube-spawn itself runs in a container, the hierarchies it sees are read-only mounts; then a
 * private writable mount of the same hierarchy is used.
 */
async function removeNodeCgroups(machine: string): Promise<void> {
  for (const hierarchy of await cgroupHierarchies()) {
    await withWritableHierarchy(hierarchy, async (root) => {
      for (const dir of await findNodeCgroups(root, machine, 8)) {
        await removeTree(dir)
        await rmdir(dirname(dir)).catch(() => undefined)
      }
    })
  }
}

async function findNodeCgroups(dir: string, machine: string, depth: number): Promise<string[]> {
  if (depth === 0) return []
  const entries = await readdir(dir, {withFileTypes: true}).catch(() => [])
  const found: string[] = []
  for (const e of entries) {
    if (!e.isDirectory()) continue
    const child = `${dir}/${e.name}`
    if (e.name === machine && dir.endsWith('/kube-spawn')) found.push(child)
    else found.push(...(await findNodeCgroups(child, machine, depth - 1)))
  }
  return found
}

async function removeEmptyCgroupParents(): Promise<void> {
  for (const hierarchy of await cgroupHierarchies()) {
    await withWritableHierarchy(hierarchy, (root) => rmdir(`${root}/kube-spawn`).catch(() => undefined))
  }
}

interface CgroupHierarchy {
  path: string
  type: 'cgroup' | 'cgroup2'
  /** The mount options that select the hierarchy: its controllers, or name=... */
  select: string[]
  readOnly: boolean
}

async function cgroupHierarchies(): Promise<CgroupHierarchy[]> {
  const [mounts, cgroups] = await Promise.all([readFile('/proc/self/mounts', 'utf8'), readFile('/proc/cgroups', 'utf8').catch(() => '')])
  const controllers = new Set(cgroups.split('\n').map((line) => line.split('\t')[0]))
  return mounts
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([, path, type]) => (type === 'cgroup' || type === 'cgroup2') && path?.startsWith('/sys/fs/cgroup'))
    .map(([, path, type, options]) => {
      const list = options.split(',')
      return {
        path,
        type: type as CgroupHierarchy['type'],
        select: list.filter((o) => controllers.has(o) || o.startsWith('name=')),
        readOnly: list.includes('ro'),
      }
    })
}

/** Runs work on the hierarchy's root; a read-only one is mounted again, writable, at a private path. */
async function withWritableHierarchy(hierarchy: CgroupHierarchy, work: (root: string) => Promise<unknown>): Promise<void> {
  if (!hierarchy.readOnly) {
    await work(hierarchy.path)
    return
  }
  if (hierarchy.type === 'cgroup' && hierarchy.select.length === 0) return
  const temp = await mkdtemp(join(tmpdir(), 'kube-spawn-cgroot-'))
  const source =
    hierarchy.type === 'cgroup2'
      ? ['-t', 'cgroup2', 'cgroup2']
      : [
          '-t',
          'cgroup',
          '-o',
          [...(hierarchy.select.every((o) => o.startsWith('name=')) ? ['none'] : []), ...hierarchy.select].join(','),
          'cgroup',
        ]
  const mounted = await run(['mount', ...source, temp], {allowFailure: true})
  try {
    if (mounted.exitCode === 0) await work(temp)
  } finally {
    if (mounted.exitCode === 0) await run(['umount', temp], {allowFailure: true})
    await rmdir(temp).catch(() => undefined)
  }
}

/** cgroup directories can only be removed with rmdir, deepest first. */
async function removeTree(dir: string): Promise<void> {
  const entries = await readdir(dir, {withFileTypes: true}).catch(() => undefined)
  if (!entries) return
  for (const e of entries) if (e.isDirectory()) await removeTree(`${dir}/${e.name}`)
  await rmdir(dir).catch(() => undefined)
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

import {readFile, realpath, stat, statfs, truncate} from 'node:fs/promises'
import {dirname} from 'node:path'

import type {KubeSpawnHook, StageContext} from '@kube-spawn/sdk'

/**
 * systemd keeps /var/lib/machines on a btrfs file system inside an image file (/var/lib/machines.raw,
 * attached to a loop device) and grows that image when it runs short. A state root on such a pool has
 * only the room the image had when it was last grown, so a new cluster can run out of space in the
 * middle of a kubeadm init. This plugin estimates what the new cluster's nodes need and, when the pool
 * has less free, grows it the way machined does: a longer image file, `losetup -c` so the loop device
 * sees the new size, and `btrfs filesystem resize max`. Other file systems are left alone.
 */
export const PLUGIN = 'workaround-storage-pool'

const MiB = 1024 ** 2
const GiB = 1024 ** 3
/**
 * What one node takes in the pool: its own layer plus the runtime's data (images and snapshots). Measured
 * on a v1.20.2 cluster from the offline bundle: about 760 MB on the control plane, 630 MB on a worker.
 */
export const NODE_BYTES = 768 * MiB
/**
 * Room besides the nodes: the shared cache (base image, Kubernetes binaries: about 0.8 GB) when it lives
 * on the pool, as <dir>/cache does by default, and btrfs's own metadata, which is kept twice.
 */
export const POOL_HEADROOM_BYTES = 1 * GiB
/** Added to each growth so that btrfs's accounting of the new space cannot leave the pool a little short. */
export const GROW_MARGIN_BYTES = 128 * MiB
/** Growth rounds before giving up (btrfs may report a little less free space than it was given). */
export const MAX_GROW_ROUNDS = 3

/** The space a cluster of `nodes` nodes needs free in its pool. */
export function requiredBytes(nodes: number): number {
  return nodes * NODE_BYTES + POOL_HEADROOM_BYTES
}

/** How much to add to the image file: the shortfall plus a margin, in whole MiB. */
export function growthBytes(need: number, free: number): number {
  if (free >= need) return 0
  return Math.ceil((need - free + GROW_MARGIN_BYTES) / MiB) * MiB
}

/** "600 MiB", "1.2 GiB". */
export function formatBytes(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / MiB)} MiB`
}

/** One line of /proc/self/mountinfo (see proc(5)). */
export interface MountInfo {
  mountId: number
  parentId: number
  /** "major:minor" of the device (for btrfs, the anonymous device of the mounted subvolume). */
  device: string
  /** The directory of the file system that is mounted here. */
  root: string
  mountPoint: string
  fsType: string
  source: string
}

/** mountinfo escapes space, tab, newline and backslash as octal: "\040" etc. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))
}

export function parseMountinfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const fields = line.split(' ')
    // A variable number of optional fields ends with "-"; file system type and source follow it.
    const dash = fields.indexOf('-', 6)
    if (dash < 0 || fields.length < dash + 3) continue
    mounts.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2],
      root: unescapeMountField(fields[3]),
      mountPoint: unescapeMountField(fields[4]),
      fsType: fields[dash + 1],
      source: unescapeMountField(fields[dash + 2]),
    })
  }
  return mounts
}

/** The mount that holds `path` (an absolute path without symlinks): the longest mount point above it, the last one mounted there. */
export function mountOf(mounts: MountInfo[], path: string): MountInfo | undefined {
  let best: MountInfo | undefined
  for (const mount of mounts) {
    const point = mount.mountPoint
    const holds = point === '/' || path === point || path.startsWith(`${point}/`)
    if (holds && (!best || point.length >= best.mountPoint.length)) best = mount
  }
  return best
}

/** "/dev/loop7" → "loop7"; partitions (loop7p1) and other devices → undefined. */
export function loopDevice(source: string): string | undefined {
  return /^\/dev\/(loop\d+)$/.exec(source)?.[1]
}

/** The text of /sys/block/loopN/loop/backing_file: the image path, marked when the file was deleted. */
export function parseBackingFile(text: string): {path: string; deleted: boolean} {
  const line = text.replace(/\n$/, '')
  const deleted = line.endsWith(' (deleted)')
  return {path: deleted ? line.slice(0, -' (deleted)'.length) : line, deleted}
}

/** The message when the host cannot give the pool the room it needs. */
export function cannotGrowMessage({
  image,
  grow,
  hostFree,
  hostMount,
}: {
  image: string
  grow: number
  hostFree: number
  hostMount: string
}): string {
  return (
    `cannot grow the storage pool ${image} by ${formatBytes(grow)}: the host has ${formatBytes(hostFree)} free on ${hostMount}: ` +
    'free space there or use --dir on a larger file system'
  )
}

export interface Pool {
  /** The pool's mount point. */
  mountPoint: string
  /** The loop device, e.g. /dev/loop3. */
  device: string
  /** The image file behind the loop device. */
  image: string
}

export type Inspection = {pool: Pool} | {skip: string}

/** The deepest existing directory at or above path, without symlinks (the cluster directory may not exist yet). */
async function existingAncestor(path: string): Promise<string> {
  for (let dir = path; ; dir = dirname(dir)) {
    const real = await realpath(dir).catch(() => undefined)
    if (real) return real
    if (dir === dirname(dir)) return '/'
  }
}

async function mountOfPath(path: string): Promise<MountInfo | undefined> {
  return mountOf(parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')), await existingAncestor(path))
}

/** Finds the btrfs loopback pool that holds `path`, or says why there is none to manage. */
export async function inspect(path: string): Promise<Inspection> {
  const mount = await mountOfPath(path)
  if (!mount) return {skip: `no mount holds ${path}`}
  if (mount.fsType !== 'btrfs') return {skip: `state root is on ${mount.fsType}, not a btrfs loopback pool`}
  const loop = loopDevice(mount.source)
  if (!loop) return {skip: `state root is on btrfs on ${mount.source}, not a btrfs loopback pool`}
  const backing = await readFile(`/sys/block/${loop}/loop/backing_file`, 'utf8').catch(() => undefined)
  if (backing === undefined) return {skip: `${mount.source} has no backing file`}
  const {path: image, deleted} = parseBackingFile(backing)
  if (deleted) return {skip: `the image of ${mount.source} (${image}) was deleted, so it cannot grow`}
  const info = await stat(image).catch(() => undefined)
  if (!info?.isFile()) return {skip: `${mount.source} is backed by ${image}, not an image file`}
  const readOnly = (await readFile(`/sys/block/${loop}/ro`, 'utf8').catch(() => '0')).trim() === '1'
  if (readOnly) return {skip: `${mount.source} (${image}) is read-only`}
  return {pool: {mountPoint: mount.mountPoint, device: mount.source, image}}
}

async function freeBytes(path: string): Promise<number> {
  const info = await statfs(path)
  return info.bavail * info.bsize
}

export interface PoolOutcome {
  pool: Pool
  need: number
  /** Free space before and after. */
  freeBefore: number
  freeAfter: number
  /** The image file's size before and after; equal when nothing grew. */
  sizeBefore: number
  sizeAfter: number
}

type Run = StageContext['run']

/** Appends `bytes` to the image file, allocated (so the host cannot run out under the pool later) where the file system can. */
async function extendImage(run: Run, image: string, size: number, bytes: number): Promise<void> {
  const allocated = await run(['fallocate', '--offset', String(size), '--length', String(bytes), image], {allowFailure: true})
  if (allocated.exitCode !== 0) await truncate(image, size + bytes)
}

/**
 * Makes sure `pool` has `need` bytes free, growing its image file when it has less: the file, then the loop
 * device (`losetup --set-capacity`), then the file system (`btrfs filesystem resize max`).
 * Throws the clear "cannot grow" message when the host file system under the image lacks the room.
 */
export async function ensurePoolSpace(run: Run, pool: Pool, need: number): Promise<PoolOutcome> {
  const freeBefore = await freeBytes(pool.mountPoint)
  const sizeBefore = (await stat(pool.image)).size
  let free = freeBefore
  let size = sizeBefore
  for (let round = 0; round < MAX_GROW_ROUNDS && free < need; round++) {
    const grow = growthBytes(need, free)
    const hostDir = dirname(pool.image)
    const hostFree = await freeBytes(hostDir)
    if (hostFree < grow) {
      const hostMount = (await mountOfPath(hostDir))?.mountPoint ?? hostDir
      throw new Error(cannotGrowMessage({image: pool.image, grow, hostFree, hostMount}))
    }
    await extendImage(run, pool.image, size, grow)
    await run(['losetup', '--set-capacity', pool.device])
    await run(['btrfs', 'filesystem', 'resize', 'max', pool.mountPoint])
    size = (await stat(pool.image)).size
    free = await freeBytes(pool.mountPoint)
  }
  if (free < need) {
    throw new Error(
      `grew the storage pool ${pool.image} to ${formatBytes(size)}, but it has only ${formatBytes(free)} free of ${formatBytes(need)}`,
    )
  }
  return {pool, need, freeBefore, freeAfter: free, sizeBefore, sizeAfter: size}
}

/** What the plugin found or did in this pipeline, shared by the hook and the task. */
interface State {
  inspection: Inspection
  outcome?: PoolOutcome
}
const states = new WeakMap<StageContext, Promise<State>>()

function inspected(ctx: StageContext): Promise<State> {
  let state = states.get(ctx)
  if (!state) {
    state = inspect(ctx.clusterDir).then((inspection) => ({inspection}))
    states.set(ctx, state)
  }
  return state
}

async function grow(ctx: StageContext): Promise<State> {
  const state = await inspected(ctx)
  if ('pool' in state.inspection) {
    const outcome = await ensurePoolSpace(ctx.run, state.inspection.pool, requiredBytes(ctx.cluster.nodes))
    // A second call (the task after the hook) keeps the sizes from before the first.
    const first = state.outcome
    state.outcome = first ? {...outcome, freeBefore: first.freeBefore, sizeBefore: first.sizeBefore} : outcome
    ctx.shared.set(PLUGIN, state.outcome)
  }
  return state
}

function describe(outcome: PoolOutcome, nodes: number): string {
  const {pool, need} = outcome
  if (outcome.sizeAfter > outcome.sizeBefore) {
    return `Grew the storage pool ${pool.image} from ${formatBytes(outcome.sizeBefore)} to ${formatBytes(outcome.sizeAfter)}: ${formatBytes(outcome.freeAfter)} free for ${nodes} nodes (${formatBytes(need)})`
  }
  return `The storage pool ${pool.image} has ${formatBytes(outcome.freeAfter)} free, enough for ${nodes} nodes (${formatBytes(need)})`
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({
  workarounds: [
    {
      name: 'storage-pool',
      description: 'Grow a btrfs loopback pool (image file on a loop device, like /var/lib/machines.raw) that is too small for the cluster',
    },
  ],
})

export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage, ctx}) => {
  if (stage !== 'preflight') return []
  const nodes = ctx.cluster.nodes
  const need = requiredBytes(nodes)
  // The host checks free space after the preflight stage, so growing the pool here comes first.
  let title = 'Make room in the btrfs loopback storage pool'
  const {inspection} = await inspected(ctx)
  if ('pool' in inspection) {
    const free = await freeBytes(inspection.pool.mountPoint)
    if (free < need)
      title = `Grow the storage pool ${inspection.pool.image} (${formatBytes(free)} free) for ${nodes} nodes (${formatBytes(need)})`
  }
  return [
    {
      title,
      skip: async (c) => {
        const {inspection, outcome} = await inspected(c)
        if ('skip' in inspection) return inspection.skip
        if (outcome) return false
        const free = await freeBytes(inspection.pool.mountPoint)
        return free >= need
          ? `the pool ${inspection.pool.image} has ${formatBytes(free)} free, enough for ${nodes} nodes (${formatBytes(need)})`
          : false
      },
      task: async (c, task) => {
        // Checks again: another create may have used the room since.
        const {outcome} = await grow(c)
        if (outcome) task.title = describe(outcome, nodes)
      },
    },
  ]
}

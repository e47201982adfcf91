import {mkdir, mkdtemp, readdir, readFile, rmdir} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import {run} from '../util/run.js'
import {isMounted} from './mounts.js'

/** Hierarchies where nspawn creates its payload/supervisor cgroups. */
const LAUNCHER_HIERARCHIES = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']

/** Creates the node's launcher cgroups and returns their cgroup.procs files. */
export async function launcherCgroups(machine: string): Promise<string[]> {
  const procs: string[] = []
  for (const hierarchy of LAUNCHER_HIERARCHIES) {
    if (!(await isMounted(hierarchy))) continue
    const dir = `${hierarchy}/kube-spawn/${machine}`
    await mkdir(dir, {recursive: true})
    procs.push(`${dir}/cgroup.procs`)
  }
  return procs
}

/**
 * Node cgroup subtrees stay in the host hierarchies after a node is gone. Nodes run in a cgroup
 * namespace rooted at their launcher cgroup, so their kube-spawn/<machine> dirs sit at various depths
 * (e.g. /sys/fs/cgroup/memory/<launcher's cgroup>/kube-spawn/<machine>): search for them. The
 * kube-spawn parent goes too once it is empty, or it keeps the launcher's cgroup from being removed.
 * Where kube-spawn itself runs in a container, the hierarchies it sees are read-only mounts; then a
 * private writable mount of the same hierarchy is used.
 */
export async function removeNodeCgroups(machine: string): Promise<void> {
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

export async function removeEmptyCgroupParents(): Promise<void> {
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

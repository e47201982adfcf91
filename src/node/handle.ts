import {chmod, copyFile, lstat, mkdir, readFile, rm, stat, symlink, unlink, writeFile} from 'node:fs/promises'
import {dirname} from 'node:path'

import type {HostNode, NodeMount} from '../context/index.js'
import type {Machine} from '../config/definition.js'
import {HostError} from '../errors.js'
import {type ExecResult, resolveInRoot} from '@kube-spawn/sdk'
import {type HostRunOptions, run} from '../util/run.js'
import {nodePaths} from './layout.js'

export type {NodeMount} from '../context/index.js'

/** The PID of a running node's init, or undefined when the node does not run. */
export async function leaderPid(clusterDir: string, machine: string): Promise<number | undefined> {
  const text = await readFile(nodePaths(clusterDir, machine).leaderFile, 'utf8').catch(() => '')
  const [pid, started] = text.trim().split(/\s+/).map(Number)
  if (!Number.isInteger(pid) || pid <= 0) return undefined
  // The start time guards against a recycled PID.
  return (await processStartTime(pid)) === started ? pid : undefined
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  if (!stat) return undefined
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[19])
}

/** Records a node's leader so later invocations find it. */
export async function recordLeader(clusterDir: string, machine: string, pid: number): Promise<boolean> {
  const started = await processStartTime(pid)
  if (started === undefined) return false
  await writeFile(nodePaths(clusterDir, machine).leaderFile, `${pid} ${started}\n`)
  return true
}

/** The command prefix that runs a program inside a node with the node's own environment. */
export function nodeExecPrefix(pid: number): string[] {
  return [
    'nsenter',
    '-t',
    String(pid),
    '-a',
    '--',
    '/usr/bin/env',
    '-i',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'HOME=/root',
    'LANG=C.UTF-8',
  ]
}

async function isMountPoint(path: string): Promise<boolean> {
  try {
    const [self, parent] = await Promise.all([stat(path), stat(dirname(path))])
    return self.dev !== parent.dev
  } catch {
    return false
  }
}

export class LocalNodeHandle implements HostNode {
  readonly mounts: NodeMount[] = []
  private readonly paths: ReturnType<typeof nodePaths>

  constructor(
    private readonly machine: Machine,
    private readonly clusterDir: string,
    /** The base image's root, for reads while the node is not running. */
    private readonly lowerDir: () => string | undefined = () => undefined,
    /** Kills commands run in the node when the command is interrupted. */
    private readonly signal?: AbortSignal,
  ) {
    this.paths = nodePaths(clusterDir, machine.name)
  }

  get name() {
    return this.machine.name
  }

  get role() {
    return this.machine.role
  }

  get ip() {
    return this.machine.ip
  }

  get dir() {
    return this.paths.dir
  }

  async exec(argv: string[], options: HostRunOptions = {}): Promise<ExecResult> {
    const pid = await leaderPid(this.clusterDir, this.machine.name)
    if (pid === undefined) {
      throw new HostError(`node ${this.machine.name} is not running`, {hint: 'start the cluster first (kube-spawn start)'})
    }
    return run([...nodeExecPrefix(pid), ...argv], {
      signal: this.signal,
      shownAs: {name: `${argv[0]} in node ${this.name}`, argv},
      ...options,
    })
  }

  /** Written into the merged root while the node runs, else into its own layer, which the next boot shows. */
  async writeFile(path: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
    const target = await this.writableTarget(path)
    await writeFile(target, content, {mode})
    await chmod(target, mode)
  }

  async copyIn(hostPath: string, path: string, mode = 0o755): Promise<void> {
    const target = await this.writableTarget(path)
    await copyFile(hostPath, target)
    await chmod(target, mode)
  }

  /** Where a write to `path` goes: the merged root while the node runs, else its own layer; no symlink is written through. */
  private async writableTarget(path: string): Promise<string> {
    const base = (await isMountPoint(this.paths.rootfs)) ? this.paths.rootfs : this.paths.upper
    const target = await resolveInRoot(base, path)
    await mkdir(dirname(target), {recursive: true})
    if ((await lstat(target).catch(() => undefined))?.isSymbolicLink()) await unlink(target)
    return target
  }

  /** Makes `path` a symlink to `target` in the node's root, replacing what was there. */
  async symlink(path: string, target: string): Promise<void> {
    const base = (await isMountPoint(this.paths.rootfs)) ? this.paths.rootfs : this.paths.upper
    const at = await resolveInRoot(base, path)
    await mkdir(dirname(at), {recursive: true})
    await rm(at, {force: true})
    await symlink(target, at)
  }

  /** From the merged root while the node runs, else from its own layer (what the base image holds stays). */
  async removeFile(path: string): Promise<void> {
    const base = (await isMountPoint(this.paths.rootfs)) ? this.paths.rootfs : this.paths.upper
    await rm(await resolveInRoot(base, path), {force: true})
  }

  /** From the merged root while the node runs; else from its own layer, then the base image. */
  async readFile(path: string): Promise<string | undefined> {
    const read = async (root: string) => readFile(await resolveInRoot(root, path), 'utf8').catch(() => undefined)
    if (await isMountPoint(this.paths.rootfs)) return read(this.paths.rootfs)
    const lower = this.lowerDir()
    return (await read(this.paths.upper)) ?? (lower ? read(lower) : undefined)
  }

  addBindMount(mount: NodeMount): void {
    this.mounts.push(mount)
  }
}

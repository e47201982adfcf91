import {mkdir, open, readdir, readFile, rm, unlink} from 'node:fs/promises'
import {join} from 'node:path'

import {type Cluster, parseToml, resolveDefinition, serializeCluster, validateClusterName} from '../config/definition.js'
import {UserError} from '../errors.js'
import {exists, writeFileAtomic} from '../util/fs.js'

export const DEFINITION_FILE = 'kspawn.toml'
/** Names under the state root that are not clusters. */
const RESERVED = new Set(['cache', 'logs'])

/**
 * The state root (default /var/lib/kube-spawn): one directory per cluster holding kspawn.toml and the
 * nodes' data, plus the shared cache. Everything below it is private to root (0700).
 */
export class StateRoot {
  /** The shared cache defaults to <root>/cache; tests point many roots at one cache. */
  constructor(
    readonly path: string,
    private readonly cacheOverride?: string,
  ) {}

  get cacheDir(): string {
    return this.cacheOverride ?? join(this.path, 'cache')
  }

  /** Logs of failed `up` runs, whose cluster directory the cleanup removed: logs/<cluster>/<timestamp>. */
  get logsDir(): string {
    return join(this.path, 'logs')
  }

  clusterDir(name: string): string {
    validateClusterName(name)
    if (RESERVED.has(name)) throw new UserError(`cluster name "${name}" is reserved`, {hint: 'choose another name'})
    return join(this.path, name)
  }

  definitionPath(name: string): string {
    return join(this.clusterDir(name), DEFINITION_FILE)
  }

  async ensure(): Promise<void> {
    await mkdir(this.path, {recursive: true, mode: 0o700})
  }

  async has(name: string): Promise<boolean> {
    return exists(this.definitionPath(name))
  }

  async list(): Promise<string[]> {
    let entries
    try {
      entries = await readdir(this.path, {withFileTypes: true})
    } catch {
      return []
    }
    const names = entries.filter((e) => e.isDirectory() && !RESERVED.has(e.name) && !e.name.startsWith('.')).map((e) => e.name)
    const present = await Promise.all(
      names.map(async (name) => ((await exists(join(this.path, name, DEFINITION_FILE))) ? name : undefined)),
    )
    return present.filter((name): name is string => name !== undefined).sort()
  }

  /** Loads a cluster's state; a missing cluster is a clear error that lists the known ones. */
  async load(name: string): Promise<Cluster> {
    const path = this.definitionPath(name)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch {
      const known = await this.list()
      throw new UserError(`no cluster "${name}" in ${this.path}`, {
        hint: known.length > 0 ? `known clusters: ${known.join(', ')}` : 'create one with "kube-spawn create"',
      })
    }
    return resolveDefinition(parseToml(text, path), path, {}, {checkPaths: false})
  }

  async save(cluster: Cluster): Promise<void> {
    await mkdir(this.clusterDir(cluster.clusterName), {recursive: true, mode: 0o700})
    await writeFileAtomic(this.definitionPath(cluster.clusterName), serializeCluster(cluster), 0o600)
  }

  async remove(name: string): Promise<void> {
    await rm(this.clusterDir(name), {recursive: true, force: true})
  }

  /**
   * Takes the lock of one cluster (or of the whole root with name "."), so that concurrent
   * invocations do not interleave. A lock left by a dead process is taken over.
   */
  async lock(name: string): Promise<Lock> {
    const label = name === '.' ? 'the state root' : `cluster "${name}"`
    if (name !== '.') validateClusterName(name)
    const dir = join(this.path, '.locks')
    await mkdir(dir, {recursive: true, mode: 0o700})
    const path = join(dir, `${name === '.' ? 'root' : name}.lock`)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o600)
        await handle.writeFile(`${process.pid}\n`)
        await handle.close()
        return new Lock(path)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        const holder = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10)
        if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
          throw new UserError(`${label} is busy: kube-spawn process ${holder} is working on it`, {
            hint: 'wait for it to finish, then run the command again',
            exitCode: 3,
          })
        }
        await unlink(path).catch(() => {})
      }
    }
    throw new UserError(`could not lock ${label}`, {hint: `remove ${path} if no kube-spawn is running`})
  }
}

export class Lock {
  constructor(private readonly path: string) {}

  async release(): Promise<void> {
    await unlink(this.path).catch(() => {})
  }
}

/** Runs `work` while holding the lock. */
export async function withLock<T>(root: StateRoot, name: string, work: () => Promise<T>): Promise<T> {
  const lock = await root.lock(name)
  try {
    return await work()
  } finally {
    await lock.release()
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

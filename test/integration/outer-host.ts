/**
 * An outer "host" node for the machined tests: a Debian container booted with systemd-nspawn that
 * runs systemd and systemd-machined, so that kube-spawn inside it takes its machined backend, on a
 * machine whose own PID 1 is not systemd. Nested nspawn works here (see HOST-FACTS).
 *
 * It has no network connection at all (--private-network): the bridges and rules of the clusters
 * inside it exist only in its own network namespace.
 */
import {spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, open, readFile, realpath, rename, rm, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import {type CliResult, REPO, TEST_CACHE_DIR, explain, mountsUnder, runProgram, waitFor} from './helpers.ts'

/** What the outer host needs: systemd with machined (systemd-container), and the tools kube-spawn calls. */
export const OUTER_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'systemd-container',
  'iproute2',
  'iptables',
  'util-linux',
  'kmod',
  'debootstrap',
  'xz-utils',
  // the node binary bound in from the host links against it
  'libstdc++6',
].sort()
/** Bump when the build steps change. */
const OUTER_BUILD_VERSION = '1'
const OUTER_CACHE = join(TEST_CACHE_DIR, 'outer-host')
const MIRROR = process.env.KUBE_SPAWN_DEBIAN_MIRROR || 'http://deb.debian.org/debian'

/** Where things appear inside the outer host. */
export const OUTER_SRC = '/src'
export const OUTER_NODE_DIR = '/opt/kst-node'
export const OUTER_STATE = '/var/lib/kst-state'

/** Builds (once, cached by package set) the outer host's root file system; returns its path. */
export async function outerRootfs(log: (line: string) => void): Promise<string> {
  const key = createHash('sha256')
    .update(JSON.stringify(['bookworm', OUTER_PACKAGES, OUTER_BUILD_VERSION]))
    .digest('hex')
    .slice(0, 16)
  const final = join(OUTER_CACHE, key)
  if (existsSync(join(final, 'image.json'))) return join(final, 'rootfs')
  await mkdir(OUTER_CACHE, {recursive: true, mode: 0o700})
  const temp = join(OUTER_CACHE, `.build-${key}-${process.pid}`)
  await rm(temp, {recursive: true, force: true})
  const started = Date.now()
  log(`building the outer host rootfs ${key} with debootstrap (cached for later runs)`)
  const built = await runProgram(
    'debootstrap',
    ['--variant=minbase', `--include=${OUTER_PACKAGES.join(',')}`, 'bookworm', join(temp, 'rootfs'), MIRROR],
    {timeoutMs: 30 * 60_000},
  )
  if (built.code !== 0) {
    await rm(temp, {recursive: true, force: true})
    throw new Error(explain('debootstrap of the outer host', built))
  }
  const root = join(temp, 'rootfs')
  // Every boot gets its own machine-id (written into the overlay); empty means "not a first boot".
  await writeFile(join(root, 'etc/machine-id'), '')
  await writeFile(join(root, 'etc/hostname'), 'kst-outer\n')
  // Units that wait for hardware or a network the outer host does not have.
  for (const unit of ['systemd-networkd-wait-online.service', 'console-getty.service', 'getty@.service', 'systemd-timesyncd.service']) {
    await rm(join(root, 'etc/systemd/system', unit), {force: true})
    await runProgram('ln', ['-s', '/dev/null', join(root, 'etc/systemd/system', unit)])
  }
  await rm(join(root, 'var/cache/apt/archives'), {recursive: true, force: true})
  await writeFile(join(temp, 'image.json'), `${JSON.stringify({key, packages: OUTER_PACKAGES, built: new Date().toISOString()})}\n`)
  try {
    await rename(temp, final)
  } catch (error) {
    // A concurrent build won the race; use its result.
    await rm(temp, {recursive: true, force: true})
    if (!existsSync(join(final, 'image.json'))) throw error
  }
  log(`outer host rootfs built in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  return join(final, 'rootfs')
}

export interface OuterHostOptions {
  /** Machine name; ks-kst-* so that test/integration/cleanup.sh finds it. */
  machine: string
  /** A test state root: the outer's layer, its console log and the inner state dir go below it. */
  stateRoot: string
  rootfs: string
  /** Extra host directories bound read-only at the same path (e.g. the Kubernetes bundle). */
  readOnlyPaths: string[]
}

/** Hierarchies where nspawn creates its payload/supervisor cgroups; each outer host gets its own launcher cgroup. */
const LAUNCHER_HIERARCHIES = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']

export class OuterHost {
  readonly machine: string
  readonly dir: string
  /** The host directory behind OUTER_STATE. */
  readonly innerState: string
  leader: number | undefined
  nspawn: number | undefined
  private readonly options: OuterHostOptions

  constructor(options: OuterHostOptions) {
    this.options = options
    this.machine = options.machine
    this.dir = join(options.stateRoot, 'outer')
    this.innerState = join(options.stateRoot, 'inner-state')
  }

  get rootfs(): string {
    return join(this.dir, 'rootfs')
  }

  get consoleLog(): string {
    return join(this.dir, 'console.log')
  }

  /** Mounts the outer's overlay and boots it; resolves once its systemd is running. */
  async boot(): Promise<void> {
    const upper = join(this.dir, 'upper')
    const work = join(this.dir, 'work')
    await Promise.all([upper, work, this.rootfs, this.innerState].map((d) => mkdir(d, {recursive: true, mode: 0o755})))
    await mkdir(join(upper, 'etc'), {recursive: true})
    await writeFile(join(upper, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`)
    const mounted = await runProgram('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${this.options.rootfs},upperdir=${upper},workdir=${work}`,
      this.rootfs,
    ])
    if (mounted.code !== 0) throw new Error(explain('mount of the outer overlay', mounted))

    // The node binary of this test run, with whatever sits beside it.
    const nodeDir = dirname(await realpath(process.execPath))
    const binds = [
      `--bind-ro=${REPO.replace(/\/$/, '')}:${OUTER_SRC}`,
      `--bind-ro=${nodeDir}:${OUTER_NODE_DIR}`,
      // The inner kube-spawn finds the Debian node image (and Kubernetes binaries) built on this host.
      `--bind=${TEST_CACHE_DIR}`,
      `--bind=${this.innerState}:${OUTER_STATE}`,
      ...this.options.readOnlyPaths.map((p) => `--bind-ro=${p}`),
    ]
    const procs: string[] = []
    for (const hierarchy of LAUNCHER_HIERARCHIES) {
      const mounts = await readFile('/proc/self/mounts', 'utf8')
      if (!mounts.split('\n').some((l) => l.split(' ')[1] === hierarchy)) continue
      const dir = `${hierarchy}/kube-spawn/${this.machine}`
      await mkdir(dir, {recursive: true})
      procs.push(`${dir}/cgroup.procs`)
    }
    const log = await open(this.consoleLog, 'a', 0o600)
    // The shell moves itself into the launcher cgroups, then becomes nspawn.
    const script = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f"; shift; done; shift; exec systemd-nspawn "$@"'
    const child = spawn(
      'sh',
      [
        '-c',
        script,
        'sh',
        ...procs,
        '--',
        '--boot',
        '--register=no',
        '--keep-unit',
        '--capability=all',
        '--private-users=no',
        '--system-call-filter=@keyring bpf',
        // No link to the outside at all: only loopback, plus what kube-spawn creates inside.
        '--private-network',
        '--resolv-conf=off',
        '--timezone=off',
        '--link-journal=no',
        '--console=read-only',
        `--directory=${this.rootfs}`,
        `--machine=${this.machine}`,
        ...binds,
      ],
      {detached: true, stdio: ['ignore', log.fd, log.fd], env: {...process.env, SYSTEMD_NSPAWN_API_VFS_WRITABLE: '1', TERM: 'dumb'}},
    )
    child.unref()
    await log.close()
    this.nspawn = child.pid
    let exited: number | null | undefined
    child.once('exit', (code) => (exited = code))

    const found = await waitFor(
      async () => {
        if (exited !== undefined) return true
        this.leader = await this.findLeader()
        return this.leader !== undefined
      },
      30_000,
      50,
    )
    if (!found || this.leader === undefined)
      throw new Error(`the outer host did not start (nspawn exit ${exited}): ${await this.consoleTail()}`)
    let state = ''
    const running = await waitFor(
      async () => {
        const result = await this.run(['systemctl', 'is-system-running'], {timeoutMs: 10_000})
        state = result.stdout.trim()
        return state === 'running' || state === 'degraded'
      },
      120_000,
      200,
    )
    if (!running) throw new Error(`the outer host's systemd is "${state}": ${await this.consoleTail()}`)
  }

  /** The leader is nspawn's child: PID 1 of the outer's PID namespace. */
  private async findLeader(): Promise<number | undefined> {
    if (this.nspawn === undefined) return undefined
    const children = await readFile(`/proc/${this.nspawn}/task/${this.nspawn}/children`, 'utf8').catch(() => '')
    for (const pid of children.trim().split(/\s+/).filter(Boolean)) {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
      const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/)
      if (nspid && nspid.length > 1 && nspid.at(-1) === '1') return Number(pid)
    }
    return undefined
  }

  async consoleTail(): Promise<string> {
    return (await readFile(this.consoleLog, 'utf8').catch(() => '')).trim().split('\n').slice(-8).join('\n')
  }

  /** Runs a command in the outer host (all its namespaces) with a clean environment. */
  run(argv: string[], {timeoutMs = 60_000, env = {}}: {timeoutMs?: number; env?: Record<string, string>} = {}): Promise<CliResult> {
    if (this.leader === undefined) throw new Error('the outer host is not running')
    const vars = Object.entries({
      PATH: `${OUTER_NODE_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: '/root',
      LANG: 'C.UTF-8',
      ...env,
    }).map(([k, v]) => `${k}=${v}`)
    return runProgram('nsenter', ['-t', String(this.leader), '-a', '--', '/usr/bin/env', '-i', ...vars, ...argv], {timeoutMs})
  }

  /** kube-spawn (this checkout, read-only at /src) run inside the outer host. */
  kubeSpawn(args: string[], timeoutMs = 10 * 60_000): Promise<CliResult> {
    return this.run(['node', `${OUTER_SRC}/bin/run.js`, ...args], {
      timeoutMs,
      env: {CI: 'true', KUBE_SPAWN_ARTIFACT_CACHE_DIR: TEST_CACHE_DIR},
    })
  }

  /** Ends the outer host and everything in it: SIGKILL to its PID 1 ends its PID namespace. */
  async kill(): Promise<void> {
    if (this.leader !== undefined) {
      try {
        process.kill(this.leader, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    const nspawn = this.nspawn
    if (nspawn !== undefined) {
      const gone = await waitFor(async () => !existsSync(`/proc/${nspawn}`), 10_000)
      if (!gone) {
        try {
          process.kill(nspawn, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
    for (const path of (await mountsUnder(this.dir)).reverse()) {
      const result = await runProgram('umount', [path])
      if (result.code !== 0) await runProgram('umount', ['-l', path])
    }
    this.leader = undefined
  }
}

/** Names of the machines machinectl lists in the outer host. */
export async function machinectlList(outer: OuterHost): Promise<string[]> {
  const result = await outer.run(['machinectl', 'list', '--no-legend', '--no-pager'])
  if (result.code !== 0) throw new Error(explain('machinectl list', result))
  return result.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean)
}

/**
 * Helpers for the integration tests: they run the real CLI as root against real nodes, and look at
 * the host (processes, links, iptables, mounts) to check what it left behind.
 */
import {randomBytes} from 'node:crypto'
import {after, before} from 'node:test'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'

import {type CliResult, REPO, kubeSpawn as runCli, runProgram} from '../helpers/cli.ts'

export {REPO}
/** The Debian base image is built into this cache once and shared by every test run (and the bench). */
export const MINUTE = 60_000
/** A create that may build the Debian base image with debootstrap first (minutes; longer on a slow mirror). */
export const CREATE_TIMEOUT = 30 * MINUTE
/** One cluster command on a cluster whose image is built: boot, stop, destroy. */
export const STEP_TIMEOUT = 5 * MINUTE

export const TEST_CACHE_DIR = process.env.KUBE_SPAWN_TEST_CACHE_DIR || '/var/cache/kube-spawn-test'
/** Every state root of a test lives here; test/integration/cleanup.sh sweeps them. */
export const STATE_ROOT_PREFIX = '/tmp/kube-spawn-test-'
export const CLEANUP_SCRIPT = join(REPO, 'test', 'integration', 'cleanup.sh')

/**
 * The shared fixtures sit beside the clone in CI (<repo>/../shared); KUBE_SPAWN_SHARED_DIR overrides.
 * prepare-bundle unpacks the offline Kubernetes v1.20.2 bundle (binaries and image archives).
 */
export const PREPARE_BUNDLE = join(
  process.env.KUBE_SPAWN_SHARED_DIR || resolve(REPO, '..', 'shared'),
  'fixtures',
  'kubernetes',
  'prepare-bundle',
)

/** Why the integration suites cannot run here, or false. They boot containers, so they need root on Linux. */
export const SKIP_REASON: string | false =
  process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root (systemd-nspawn, bridges, iptables)' : false

export {type CliResult, type RunOptions, runProgram} from '../helpers/cli.ts'

/** `node bin/run.js ...args` from the checkout in a clean environment, with CI output and the shared test cache. */
export function kubeSpawn(args: string[], options: Parameters<typeof runCli>[1] = {}): Promise<CliResult> {
  return runCli(args, {...options, cwd: REPO, env: {CI: 'true', KUBE_SPAWN_ARTIFACT_CACHE_DIR: TEST_CACHE_DIR, ...options.env}})
}

/** A failure message with what the command printed. */
export function explain(what: string, result: CliResult): string {
  const tail = (text: string) => text.trim().split('\n').slice(-25).join('\n')
  return `${what} exited with ${result.code}\n--- stdout ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`
}

/**
 * Names every cluster and state root of one test run. .ci/run sets KST_RUN_ID so that its cleanup
 * trap removes exactly what this run made (other runs on the same host keep theirs).
 */
export const RUN_ID = (() => {
  const id = process.env.KST_RUN_ID || randomBytes(2).toString('hex')
  if (!/^[0-9a-z]{1,4}$/.test(id)) throw new Error(`KST_RUN_ID "${id}" must be 1 to 4 lowercase letters or digits`)
  return id
})()

/**
 * A cluster name unique to this test: kst-<run><kind><hex>, at most 11 characters, so the bridge
 * (ks-<cluster>) fits Linux's 15 and the machines are ks-kst-<run>...; cleanup.sh goes by that prefix.
 */
export function uniqueClusterName(kind: string): string {
  if (!/^[a-z]$/.test(kind)) throw new Error(`cluster kind "${kind}" must be one letter`)
  return `kst-${RUN_ID}${kind}${randomBytes(1).toString('hex')}`
}

/** A fresh state root: /tmp/kube-spawn-test-<run>-<label>-XXXXXX. */
export async function makeStateRoot(label: string): Promise<string> {
  return mkdtemp(`${STATE_ROOT_PREFIX}${RUN_ID}-${label}-`)
}

/** A cluster definition that never lets traffic leave the host (egress = false), and takes Kubernetes from the offline bundle. */
export function isolatedDefinition({
  name,
  nodes,
  bundle,
  extra = '',
}: {
  name: string
  nodes: number
  bundle: string
  extra?: string
}): string {
  return `cluster-name = "${name}"
nodes = ${nodes}

[network]
egress = false

[kubernetes]
source = "${bundle}"
${extra}`
}

export async function writeDefinition(stateRoot: string, text: string, file = 'kspawn-test.toml'): Promise<string> {
  if (!/^\s*egress\s*=\s*false\s*$/m.test(text)) throw new Error('test clusters must be isolated (egress = false)')
  const path = join(stateRoot, file)
  await writeFile(path, text)
  return path
}

const MKIMAGE = resolve(REPO, '..', 'shared', 'fixtures', 'kubernetes', 'mkimage.py')

/** A docker-archive at `archive`, named `ref`, made with the fixtures' mkimage.py: busybox that prints `message`, then sleeps. */
export async function messageImage(archive: string, ref: string, message: string): Promise<void> {
  const entrypoint = JSON.stringify(['/bin/busybox', 'sh', '-c', `echo ${message}; exec /bin/busybox sleep 86400`])
  const made = await runProgram('python3', [MKIMAGE, archive, ref, '--entrypoint', entrypoint, '/bin/busybox:/bin/busybox'], {
    timeoutMs: 60_000,
  })
  if (made.code !== 0) throw new Error(explain('mkimage.py', made))
}

let bundlePath: string | undefined
/** Prepares (once per process) the offline Kubernetes fixture bundle and returns its directory. */
export async function fixtureBundle(): Promise<string> {
  if (bundlePath) return bundlePath
  if (!existsSync(PREPARE_BUNDLE)) throw new Error(`fixture script not found: ${PREPARE_BUNDLE} (set KUBE_SPAWN_SHARED_DIR)`)
  const result = await runProgram('bash', [PREPARE_BUNDLE], {timeoutMs: 15 * 60_000})
  if (result.code !== 0) throw new Error(explain('prepare-bundle', result))
  bundlePath = result.stdout.trim().split('\n').at(-1)!
  return bundlePath
}

/** The default node root (Debian bookworm with containerd) in the shared test cache: built by `image build` when missing. */
export async function defaultNodeRoot(): Promise<string> {
  const built = await kubeSpawn(['image', 'build', '--json'], {timeoutMs: CREATE_TIMEOUT})
  if (built.code !== 0) throw new Error(explain('kube-spawn image build', built))
  return (JSON.parse(built.stdout) as {baseImage: {rootfs: string}}).baseImage.rootfs
}

export interface StatusJson {
  name: string
  subnet: string
  bridge: string
  backend: string
  machines: {name: string; ip: string; role: string; running: boolean}[]
}

export class Cli {
  readonly stateRoot: string
  readonly cluster: string
  readonly env: Record<string, string>

  constructor(stateRoot: string, cluster: string, env: Record<string, string> = {}) {
    this.stateRoot = stateRoot
    this.cluster = cluster
    this.env = env
  }

  /** Runs a cluster command and fails the test with its output unless it exits 0. */
  async ok(args: string[], timeoutMs = 10 * 60_000): Promise<CliResult> {
    const result = await this.run(args, timeoutMs)
    if (result.code !== 0) throw new Error(explain(`kube-spawn ${args.join(' ')}`, result))
    return result
  }

  run(args: string[], timeoutMs = 10 * 60_000): Promise<CliResult> {
    return kubeSpawn([...args, '--dir', this.stateRoot, '-c', this.cluster], {timeoutMs, env: this.env})
  }

  /** `kube-spawn exec NODE -- argv`; resolves to the result whatever the exit code. */
  exec(node: string, argv: string[], timeoutMs = 60_000): Promise<CliResult> {
    return kubeSpawn(['exec', '--dir', this.stateRoot, '-c', this.cluster, node, '--', ...argv], {timeoutMs, env: this.env})
  }

  async status(): Promise<StatusJson> {
    const result = await this.ok(['status', '--json'], 60_000)
    return JSON.parse(result.stdout) as StatusJson
  }

  get clusterDir(): string {
    return join(this.stateRoot, this.cluster)
  }
}

/** The host's address on a cluster bridge: the first address of the cluster subnet (10.22.x.1). */
export function bridgeAddress(subnet: string): string {
  const [base] = subnet.split('/')
  const parts = base.split('.').map(Number)
  parts[3] += 1
  return parts.join('.')
}

/** The machine name of a systemd-nspawn process, or undefined for any other process. */
async function nspawnMachine(pid: string): Promise<string | undefined> {
  const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0')
  if (!args[0]?.endsWith('systemd-nspawn')) return undefined
  for (let i = 1; i < args.length; i++) {
    if (args[i].startsWith('--machine=')) return args[i].slice('--machine='.length)
    if ((args[i] === '-M' || args[i] === '--machine') && i + 1 < args.length) return args[i + 1]
  }
  return undefined
}

/** PIDs of the systemd-nspawn processes running any of the given machines. */
export async function nspawnProcesses(machines: string[]): Promise<{pid: number; machine: string}[]> {
  const found: {pid: number; machine: string}[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const machine = await nspawnMachine(entry)
    if (machine && machines.includes(machine)) found.push({pid: Number(entry), machine})
  }
  return found
}

export async function linkExists(name: string): Promise<boolean> {
  return (await runProgram('ip', ['link', 'show', name], {timeoutMs: 10_000})).code === 0
}

/** iptables-save lines (filter and nat) carrying the cluster's comment kube-spawn:<cluster>. */
export async function iptablesRulesOf(cluster: string): Promise<string[]> {
  const comment = new RegExp(`--comment "?kube-spawn:${cluster}"?( |$)`)
  const lines: string[] = []
  for (const table of ['filter', 'nat']) {
    const result = await runProgram('iptables-save', ['-t', table], {timeoutMs: 30_000})
    lines.push(...result.stdout.split('\n').filter((l) => comment.test(l)))
  }
  return lines
}

/** Mount points at or below dir, as the host sees them. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const root = dir.replace(/\/$/, '')
  return (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((p): p is string => p !== undefined && (p === root || p.startsWith(`${root}/`)))
}

/**
 * The cgroup directories kube-spawn/<machine> of the given machines, in any host hierarchy and at any
 * depth (a node creates them below its cgroup-namespace root, which need not be the hierarchy's root).
 */
export async function nodeCgroupDirs(machines: string[]): Promise<string[]> {
  const hierarchies = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([, path, type]) => (type === 'cgroup' || type === 'cgroup2') && path?.startsWith('/sys/fs/cgroup'))
    .map(([, path]) => path)
  const found: string[] = []
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth === 0) return
    for (const entry of await readdir(dir, {withFileTypes: true}).catch(() => [])) {
      if (!entry.isDirectory()) continue
      const child = `${dir}/${entry.name}`
      if (dir.endsWith('/kube-spawn') && machines.includes(entry.name)) found.push(child)
      // The kubelets' own trees are large and never hold a node's cgroup.
      else if (!entry.name.startsWith('kubepods')) await walk(child, depth - 1)
    }
  }
  for (const hierarchy of hierarchies) await walk(hierarchy, 10)
  return found
}

/**
 * Removes whatever the test's cluster left behind: cleanup.sh with the cluster's own name, so that
 * concurrent runs are untouched, then the state root itself.
 */
export async function cleanupCluster(namePrefix: string, stateRoot: string): Promise<string> {
  const result = await runProgram('bash', [CLEANUP_SCRIPT, namePrefix, stateRoot], {timeoutMs: 120_000})
  if ((await mountsUnder(stateRoot)).length === 0) await rm(stateRoot, {recursive: true, force: true})
  return result.stdout + result.stderr
}

/** Polls check() until it returns true or the timeout passes. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/** A line of the test's own output (TAP comment), such as a timing. */
export const log = (line: string): void => console.log(`# ${line}`)

/** Seconds with one decimal, for the timing lines the tests print. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

/** What a cluster may leave on the host; each list must be empty once it is gone (or stopped, for the first three). */
export interface Residue {
  processes: string[]
  mounts: string[]
  cgroups: string[]
  bridge: boolean
  rules: string[]
  clusterDir: boolean
}

/** Everything of the cluster still on the host: nspawn processes, mounts, cgroups, bridge, iptables rules, directory. */
export async function residueOf(cluster: string, machines: string[], stateRoot: string): Promise<Residue> {
  return {
    processes: (await nspawnProcesses(machines)).map((p) => `${p.machine} (pid ${p.pid})`),
    mounts: await mountsUnder(stateRoot),
    cgroups: await nodeCgroupDirs(machines),
    bridge: await linkExists(`ks-${cluster}`),
    rules: await iptablesRulesOf(cluster),
    clusterDir: existsSync(join(stateRoot, cluster)),
  }
}

export const NO_RESIDUE: Residue = {processes: [], mounts: [], cgroups: [], bridge: false, rules: [], clusterDir: false}

/** The machine names kube-spawn gives a cluster's nodes. */
export function machineNames(cluster: string, nodes: number): string[] {
  return [`ks-${cluster}-cp`, ...Array.from({length: nodes - 1}, (_, i) => `ks-${cluster}-w${i + 1}`)]
}

/**
 * Runs the CLI and sends it `signal` once its output has shown `when` (and `afterMs` more have
 * passed), as a user pressing Ctrl-C at that point would. Resolves to the result and whether the
 * signal was sent; a command that ends before the cue is not signalled.
 */
export async function interruptCli(
  args: string[],
  {
    when,
    afterMs = 0,
    signal = 'SIGINT',
    env = {},
    timeoutMs = 10 * 60_000,
  }: {when: RegExp; afterMs?: number; signal?: NodeJS.Signals; env?: Record<string, string>; timeoutMs?: number},
): Promise<CliResult & {signalled: boolean}> {
  let cued = false
  let signalled = false
  const result = await kubeSpawn(args, {
    env,
    timeoutMs,
    onStdout: (stdout, child) => {
      if (cued || !when.test(stdout)) return
      cued = true
      setTimeout(() => (signalled = child.exitCode === null && child.kill(signal)), afterMs)
    },
  })
  return {...result, signalled}
}

/** Destroys a test's cluster, even after a failed assertion, then sweeps what destroy missed (cleanup.sh). */
export async function removeTestCluster(cli: Cli, log: (line: string) => void): Promise<void> {
  await cli.run(['destroy'], 10 * 60_000).catch(() => undefined)
  const swept = await cleanupCluster(cli.cluster, cli.stateRoot)
  if (swept.trim()) log(`cleanup after ${cli.cluster}:\n${swept.trim()}`)
}

/** Writes a one-file user plugin (providers and tasks hooks in index.js) into dir/name, ready for plugins:link. */
export async function writeTestPlugin(dir: string, name: string, index: string): Promise<string> {
  const root = join(dir, name)
  const hook = {target: './index.js'}
  await mkdir(root, {recursive: true})
  await writeFile(
    join(root, 'package.json'),
    JSON.stringify({
      name,
      version: '0.1.0',
      type: 'module',
      main: './index.js',
      'kube-spawn': {apiVersion: '^1.0'},
      oclif: {hooks: {'kube-spawn:providers': {...hook, identifier: 'providers'}, 'kube-spawn:tasks': {...hook, identifier: 'tasks'}}},
    }),
  )
  await writeFile(join(root, 'index.js'), index)
  return root
}

/** One test cluster's set-up, filled in by the before hook useTestCluster registers. */
export interface TestCluster {
  readonly name: string
  readonly machines: string[]
  stateRoot: string
  cli: Cli
  /** The isolated definition's path, for create/up --config. */
  config: string
  /** With pluginHome: where the test writes user plugins; the Cli's plugin data and config dirs are in it. */
  work: string
  /** What of the cluster is still on the host. */
  residue(): Promise<Residue>
}

/**
 * The set-up that cluster tests share, as hooks of the enclosing describe. Before: a fresh state root, an
 * isolated definition of `nodes` nodes (plus `extra` TOML, given the bundle's directory) and a Cli for the
 * cluster. After, even when an assertion failed: destroy, then a sweep of what destroy missed.
 * `kubeconfig` gives the Cli a KUBECONFIG of its own in the state root; `pluginHome` a scratch dir for
 * user plugins, with the plugin data and config dirs inside it.
 */
export function useTestCluster(
  kind: string,
  options: {
    label: string
    nodes: number
    extra?: (bundle: string) => string
    kubeconfig?: boolean
    pluginHome?: boolean
    /** The cluster's machines, when they are not a control plane and workers. */
    machines?: (name: string) => string[]
  },
): TestCluster {
  const name = uniqueClusterName(kind)
  const machines = options.machines?.(name) ?? machineNames(name, options.nodes)
  const test = {name, machines, residue: () => residueOf(name, machines, test.stateRoot)} as TestCluster
  let prepared = false
  before(async () => {
    test.stateRoot = await makeStateRoot(options.label)
    const env: Record<string, string> = {}
    if (options.kubeconfig) env.KUBECONFIG = join(test.stateRoot, 'kubeconfig')
    if (options.pluginHome) {
      test.work = await mkdtemp(join(tmpdir(), `ks-${options.label}-plugins-`))
      Object.assign(env, {
        KUBE_SPAWN_DATA_DIR: join(test.work, 'data'),
        XDG_DATA_HOME: join(test.work, 'xdg-data'),
        XDG_CONFIG_HOME: join(test.work, 'xdg-config'),
      })
    }
    test.cli = new Cli(test.stateRoot, name, env)
    prepared = true
    const bundle = await fixtureBundle()
    test.config = await writeDefinition(
      test.stateRoot,
      isolatedDefinition({name, nodes: options.nodes, bundle, extra: options.extra?.(bundle)}),
    )
  })
  after(async () => {
    if (!prepared) return
    await removeTestCluster(test.cli, log)
    if (test.work) await rm(test.work, {recursive: true, force: true})
  })
  return test
}

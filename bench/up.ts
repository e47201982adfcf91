#!/usr/bin/env node
/**
 * How long `kube-spawn up` takes to all-Ready, for 1 and 3 nodes, split by pipeline stage; and what the
 * running cluster costs the host, and how long a stop and a start back to Ready take.
 *
 *   node bench/up.ts [--cold] [NODES...]   (default: 1 3; needs root, Node >= 22.18, and a built CLI)
 *
 * Each cluster is isolated (egress = false) and takes Kubernetes from the offline fixture bundle
 * (<repo>/../shared/fixtures/kubernetes/prepare-bundle), with the shared test cache
 * (KUBE_SPAWN_ARTIFACT_CACHE_DIR, default /var/cache/kube-spawn-test) so the base image is built only once.
 * The CLI runs with CI=true, so listr2's simple renderer prints one line as each task starts and
 * ends; every line is timestamped as it arrives, and a stage lasts from its start line to its
 * completion line. Per node count, besides the stages and tasks:
 *   - ready / init: "to all Ready" over the init stage's duration, so runs on different machines compare;
 *   - disk per node once Ready: `du -sxB1` of nodes/<machine>/ without rootfs/ (the mounted overlay of the
 *     shared base image), so the node's own layer (upper/, work/) and its bind-mounted var-lib/ dirs; and
 *     the same beyond the runtime's image store (var-lib/containerd), and what the node does not share with the
 *     cache's shared image stores (files hard-linked from a store count there, once); the table has the mean per node;
 *   - host memory in use (MemTotal - MemAvailable) before up, right after it, and after 20 s idle;
 *   - `stop`, then `start` to all Ready and to its exit, on the same cluster, before it is destroyed.
 * A figure that cannot be taken prints as "-".
 * --cold first removes the cached base images (<cache>/images/debian-*), so the first up builds the image
 * and its stages include the build; it refuses while a node runs on one of them. Other runs sharing the
 * cache rebuild it too. By default the cache stays warm.
 * The clusters are named kst-<run>-u<N> (run: $KST_RUN_ID or random) in a state root
 * /tmp/kube-spawn-test-<run>-bench-up-* with a private KUBECONFIG, destroyed after measuring, and swept with test/integration/cleanup.sh.
 * Prints figures and asserts nothing.
 */
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {createInterface} from 'node:readline'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {stripVTControlCharacters} from 'node:util'

const REPO = fileURLToPath(new URL('../', import.meta.url))
const PREPARE_BUNDLE = resolve(REPO, '..', 'shared', 'fixtures', 'kubernetes', 'prepare-bundle')
const CLEANUP = join(REPO, 'test', 'integration', 'cleanup.sh')
const CACHE_DIR = process.env.KUBE_SPAWN_ARTIFACT_CACHE_DIR || '/var/cache/kube-spawn-test'
/** The run's clusters are kst-<run>-u<N> in /tmp/kube-spawn-test-<run>-bench-up-*, as the other test tooling names them. */
const RUN_ID = process.env.KST_RUN_ID || randomBytes(2).toString('hex')
const NAME_PREFIX = `kst-${RUN_ID}-u`
const READY_TASK = 'Wait until every node is Ready'
/** The bench clusters take the default runtime, containerd; its images and snapshots live here in a node dir. */
const IMAGE_STORE = join('var-lib', 'containerd')
/** How long the cluster sits idle after up before memory is sampled again. */
const IDLE_MS = 20_000

interface Line {
  /** ms since the command was spawned */
  at: number
  text: string
}

interface Run {
  code: number | null
  ms: number
  lines: Line[]
}

let current: ReturnType<typeof spawn> | undefined
let interrupted = false
/** Aborted on SIGINT/SIGTERM, so a pause ends at once. */
const interruption = new AbortController()

/** Runs a program, timestamping every line of its output as it arrives. */
function runTimed(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const started = performance.now()
  const lines: Line[] = []
  return new Promise((done, fail) => {
    const child = spawn(argv[0], argv.slice(1), {env, stdio: ['ignore', 'pipe', 'pipe']})
    current = child
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({input: stream}).on('line', (text) =>
        lines.push({at: performance.now() - started, text: stripVTControlCharacters(text)}),
      )
    }
    child.on('error', fail)
    child.on('close', (code) => {
      current = undefined
      done({code, ms: performance.now() - started, lines: lines.sort((a, b) => a.at - b.at)})
    })
  })
}

function cli(root: string, kubeconfig: string, args: string[]): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KUBE_SPAWN_')))
  return runTimed([process.execPath, join(REPO, 'bin', 'run.js'), args[0], '--dir', root, ...args.slice(1)], {
    ...env,
    CI: 'true',
    KUBE_SPAWN_ARTIFACT_CACHE_DIR: CACHE_DIR,
    KUBECONFIG: kubeconfig,
  })
}

/** The stages, in pipeline order, from the built SDK (the parent task of each stage is titled by its name). */
async function stageNames(): Promise<Set<string>> {
  const {STAGES} = await import('@kube-spawn/sdk')
  return new Set(STAGES)
}

// listr2's simple renderer: "❯ title" when a task starts, "✔ title" when it completes, "↓ title [SKIPPED: …]",
// "✖ title [FAILED: …]" (the ASCII fallbacks are ">", "√", "×").
const EVENT = /^\s*(❯|>|✔|√|↓|✖|×)\s+(.*)$/
const KIND: Record<string, 'start' | 'done' | 'skip' | 'fail'> = {
  '❯': 'start',
  '>': 'start',
  '✔': 'done',
  '√': 'done',
  '↓': 'skip',
  '✖': 'fail',
  '×': 'fail',
}

interface Span {
  title: string
  start: number
  end?: number
  skipped?: boolean
}

/** Stage and task spans from the timestamped renderer lines (tasks of a stage run one after another). */
function spans(lines: Line[], stages: Set<string>): {stages: Span[]; tasks: Span[]} {
  const stageSpans: Span[] = []
  const taskSpans: Span[] = []
  let openTask: Span | undefined
  for (const {at, text} of lines) {
    const match = EVENT.exec(text)
    if (!match) continue
    const kind = KIND[match[1]]
    // A stage's completion line ends with its duration, e.g. "✔ join [1m34s]".
    const title = match[2]
      .replace(/\s*\[(SKIPPED|FAILED): .*\]$/, '')
      .replace(/\s*\[(\d+[hms])+\]$/, '')
      .trim()
    if (stages.has(title)) {
      if (kind === 'start') stageSpans.push({title, start: at})
      else {
        const open = [...stageSpans].reverse().find((s) => s.title === title && s.end === undefined)
        if (open) open.end = at
      }
      continue
    }
    if (kind === 'start') openTask = {title, start: at}
    else if (openTask) {
      // A task may retitle itself while it runs; its last title is the one it completes with.
      taskSpans.push({...openTask, title, end: at, skipped: kind === 'skip'})
      openTask = undefined
    } else if (kind === 'skip') taskSpans.push({title, start: at, end: at, skipped: true})
  }
  return {stages: stageSpans, tasks: taskSpans}
}

const s = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(1))
const mb = (bytes: number | undefined) => (bytes === undefined ? '-' : (bytes / 1e6).toFixed(0))
const mib = (value: number | undefined) => (value === undefined ? '-' : value.toFixed(0))
const delta = (value: number | undefined) => (value === undefined ? '-' : `${value >= 0 ? '+' : ''}${Math.round(value)}`)
const minus = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a - b)
const plural = (nodes: number) => `${nodes} node${nodes === 1 ? '' : 's'}`

/** The last lines a command printed, to show why it failed. */
const tail = (run: Run, count: number) =>
  run.lines
    .slice(-count)
    .map((l) => l.text)
    .join('\n')

/** When the task that waits for every node to be Ready completed, in ms since the command was spawned. */
const readyAt = (run: Run, stages: Set<string>) =>
  spans(run.lines, stages).tasks.find((t) => t.title.endsWith(READY_TASK) && !t.skipped)?.end

interface MachineDisk {
  machine: string
  /** bytes, hard links counted once */
  total?: number
  /** bytes in the runtime's image store */
  images?: number
  /** bytes not shared with the cache's shared image stores (hard links into them are theirs) */
  unshared?: number
}

interface Measurement {
  nodes: number
  ok: boolean
  total: number
  ready?: number
  stages: Map<string, number>
  tasks: Span[]
  destroy?: number
  failure?: string
  /** host memory in use, MiB */
  memory: {before?: number; afterReady?: number; idle?: number}
  disk: MachineDisk[]
  stop?: number
  restartReady?: number
  restartTotal?: number
  restartFailure?: string
}

/** MiB the host has in use: MemTotal - MemAvailable, so reclaimable caches do not count. */
async function memoryInUse(): Promise<number | undefined> {
  try {
    const meminfo = await readFile('/proc/meminfo', 'utf8')
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(meminfo)?.[1])
    const used = (kib('MemTotal') - kib('MemAvailable')) / 1024
    return Number.isFinite(used) ? used : undefined
  } catch {
    return undefined
  }
}

/** Bytes allocated below the paths together (hard links once), not following symlinks nor crossing into other mounts. */
async function diskUse(paths: string[]): Promise<number | undefined> {
  if (paths.length === 0) return 0
  // The runtime in the node keeps writing, so du may fail over a file that vanished mid-walk: once more then.
  for (let attempt = 0; attempt < 2 && !interrupted; attempt++) {
    const du = await runTimed(['du', '-sxB1', '-c', '--', ...paths]).catch(() => undefined)
    // du prints a total even for a path it could not read, so only a clean exit counts.
    const total = du?.code === 0 ? du.lines.map((l) => /^(\d+)\s+total$/.exec(l.text)).find(Boolean) : undefined
    if (total) return Number(total[1])
  }
  return undefined
}

/** The runtime's shared image stores in the cache (docs/plugins.md#the-shared-image-store). */
async function sharedImageStores(): Promise<string[]> {
  const images = join(CACHE_DIR, 'images')
  const stores = await Promise.all(
    (await readdir(images).catch(() => [] as string[])).map(async (image) =>
      (await readdir(join(images, image, 'image-stores')).catch(() => [] as string[]))
        .filter((key) => !key.startsWith('.'))
        .map((key) => join(images, image, 'image-stores', key)),
    ),
  )
  return stores.flat()
}

/** Per machine: its directory without rootfs/, which is the base image seen through the node's overlay while it runs. */
async function machineDisk(clusterDir: string): Promise<MachineDisk[]> {
  const nodesDir = join(clusterDir, 'nodes')
  const machines = await readdir(nodesDir).catch(() => [] as string[])
  const result: MachineDisk[] = []
  const stores = await sharedImageStores()
  const storesUse = await diskUse(stores)
  for (const machine of machines.sort()) {
    if (interrupted) break
    const dir = join(nodesDir, machine)
    const entries = await readdir(dir).catch(() => undefined)
    const total = entries && (await diskUse(entries.filter((e) => e !== 'rootfs').map((e) => join(dir, e))))
    const images = existsSync(join(dir, IMAGE_STORE)) ? await diskUse([join(dir, IMAGE_STORE)]) : 0
    const own = entries?.filter((e) => e !== 'rootfs').map((e) => join(dir, e)) ?? []
    // du counts an inode once, at its first path: with the stores first, what follows is the node's own.
    const unshared = entries && minus(await diskUse([...stores, ...own]), storesUse)
    result.push({machine, total, images, unshared})
  }
  return result
}

/** Waits, but no longer than until an interrupt. */
const pause = (ms: number) => sleep(ms, undefined, {signal: interruption.signal}).catch(() => undefined)

/** Stops the running cluster, then starts it again and times it back to all Ready. */
async function restart(root: string, kubeconfig: string, name: string, stages: Set<string>, result: Measurement): Promise<void> {
  const stop = await cli(root, kubeconfig, ['stop', '-c', name])
  if (stop.code !== 0) {
    result.restartFailure = `stop failed:\n${tail(stop, 10)}`
    return
  }
  result.stop = stop.ms
  if (interrupted) return
  const start = await cli(root, kubeconfig, ['start', '-c', name])
  result.restartReady = readyAt(start, stages)
  if (start.code === 0) result.restartTotal = start.ms
  else result.restartFailure = `start failed:\n${tail(start, 15)}`
}

/** Figures of the running, Ready cluster: memory now and after an idle pause, disk per node, then stop and start. */
async function measureRunning(root: string, kubeconfig: string, name: string, stages: Set<string>, result: Measurement): Promise<void> {
  result.memory.afterReady = await memoryInUse()
  // Disk is measured after the idle sample, so that du's walk does not disturb the idle figure.
  await pause(IDLE_MS)
  if (interrupted) return
  result.memory.idle = await memoryInUse()
  result.disk = await machineDisk(join(root, name))
  if (interrupted) return
  await restart(root, kubeconfig, name, stages, result)
}

async function measure(root: string, kubeconfig: string, bundle: string, nodes: number, stages: Set<string>): Promise<Measurement> {
  const name = `${NAME_PREFIX}${nodes}`
  const config = join(root, `${name}.toml`)
  await writeFile(config, `cluster-name = "${name}"\nnodes = ${nodes}\n[kubernetes]\nsource = "${bundle}"\n[network]\negress = false\n`)
  console.log(`\n== up, ${plural(nodes)} (cluster ${name}) ...`)
  const memoryBefore = await memoryInUse()
  const up = await cli(root, kubeconfig, ['up', '--config', config])
  const parsed = spans(up.lines, stages)
  const byStage = new Map<string, number>()
  for (const span of parsed.stages)
    if (span.end !== undefined) byStage.set(span.title, (byStage.get(span.title) ?? 0) + span.end - span.start)
  const ready = readyAt(up, stages)
  const result: Measurement = {
    nodes,
    ok: up.code === 0,
    total: up.ms,
    ready,
    stages: byStage,
    tasks: parsed.tasks,
    memory: {before: memoryBefore},
    disk: [],
  }
  if (up.code !== 0) result.failure = tail(up, 15)
  else if (!interrupted) await measureRunning(root, kubeconfig, name, stages, result)

  if (existsSync(join(root, name, 'kspawn.toml'))) {
    const destroy = await cli(root, kubeconfig, ['destroy', '-c', name])
    result.destroy = destroy.ms
    if (destroy.code !== 0) console.log(`destroy of ${name} failed:\n${tail(destroy, 10)}`)
  }
  return result
}

/** "to all Ready" over the init stage, which scales with the machine much as the whole run does. */
function readyOverInit(m: Measurement): string {
  const init = m.stages.get('init')
  return m.ready === undefined || !init ? '-' : (m.ready / init).toFixed(2)
}

/** Mean bytes per node; none when a node's figure is missing, since a partial mean would mislead. */
function meanPerNode(disk: MachineDisk[], figure: (d: MachineDisk) => number | undefined): number | undefined {
  const values = disk.map(figure)
  if (values.length === 0 || values.some((v) => v === undefined)) return undefined
  return (values as number[]).reduce((a, b) => a + b, 0) / values.length
}

const beyondImages = (d: MachineDisk) => minus(d.total, d.images)

function report(m: Measurement): void {
  console.log(
    `up, ${plural(m.nodes)}: ${m.ok ? 'ok' : 'FAILED'}; all Ready at ${s(m.ready)} s, command exited at ${s(m.total)} s; destroy ${s(m.destroy)} s`,
  )
  if (m.failure) console.log(`  the up output ended with:\n${m.failure.replace(/^/gm, '    ')}`)
  console.log('  task (s)')
  for (const t of m.tasks) console.log(`    ${(t.skipped ? 'skip' : s(t.end! - t.start)).padStart(6)}  ${t.title}`)
  if (!m.ok) return
  const {before, afterReady, idle} = m.memory
  console.log(
    `  host memory in use (MiB): before up ${mib(before)}, after Ready ${mib(afterReady)} (${delta(minus(afterReady, before))}), idle +${IDLE_MS / 1000}s ${mib(idle)} (${delta(minus(idle, before))})`,
  )
  console.log(`  disk (MB)\n    ${'total'.padStart(8)}  ${'beyond images'.padStart(13)}  ${'not shared'.padStart(10)}`)
  for (const d of m.disk)
    console.log(`    ${mb(d.total).padStart(8)}  ${mb(beyondImages(d)).padStart(13)}  ${mb(d.unshared).padStart(10)}  ${d.machine}`)
  console.log(`  stop ${s(m.stop)} s; start: all Ready at ${s(m.restartReady)} s, command exited at ${s(m.restartTotal)} s`)
  if (m.restartFailure) console.log(`  ${m.restartFailure.replace(/\n/g, '\n    ')}`)
}

function table(results: Measurement[], stages: Set<string>): void {
  const row = (label: string, cell: (r: Measurement) => string) =>
    console.log([label.padEnd(26), ...results.map((r) => cell(r).padStart(9))].join(''))
  console.log('')
  row('stage (s)', (r) => plural(r.nodes))
  for (const stage of stages) if (results.some((r) => r.stages.has(stage))) row(stage, (r) => s(r.stages.get(stage)))
  row('to all Ready', (r) => s(r.ready))
  row('up exited', (r) => s(r.total))
  row('ready / init', readyOverInit)
  row('disk/node MB', (r) => mb(meanPerNode(r.disk, (d) => d.total)))
  row('disk/node excl. images MB', (r) => mb(meanPerNode(r.disk, beyondImages)))
  row('disk/node not shared MB', (r) => mb(meanPerNode(r.disk, (d) => d.unshared)))
  row('mem after Ready MiB', (r) => delta(minus(r.memory.afterReady, r.memory.before)))
  row(`mem idle +${IDLE_MS / 1000}s MiB`, (r) => delta(minus(r.memory.idle, r.memory.before)))
  row('stop', (r) => s(r.stop))
  row('start to Ready', (r) => s(r.restartReady))
  row('start exited', (r) => s(r.restartTotal))
  row('destroy', (r) => s(r.destroy))
}

/**
 * --cold: removes the cached Debian base images so that the next up builds one. Refuses while a node's
 * overlay sits on one of them, which removing would pull from under it.
 */
async function removeBaseImages(): Promise<void> {
  const images = join(CACHE_DIR, 'images')
  const mounts = await readFile('/proc/mounts', 'utf8')
  if (mounts.includes(`lowerdir=${images}/debian-`))
    throw new Error(`--cold: a running node uses a base image in ${images}; stop it (or drop --cold) first`)
  const cached = (await readdir(images).catch(() => [] as string[])).filter((e) => e.startsWith('debian-'))
  console.log(
    `warning: --cold: removing ${cached.length} cached base image(s) ${images}/debian-*, so the first up builds the image (and so does any other run sharing this cache)`,
  )
  for (const image of cached) await rm(join(images, image), {recursive: true, force: true})
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: nodes need systemd-nspawn, bridges and iptables')
  const args = process.argv.slice(2)
  const cold = args.includes('--cold')
  const counts = args.filter((a) => a !== '--cold').map(Number)
  if (counts.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error('usage: node bench/up.ts [--cold] [NODES...] (whole numbers, default 1 3)')
  const nodeCounts = counts.length > 0 ? counts : [1, 3]
  const stages = await stageNames()

  const prepared = await runTimed([PREPARE_BUNDLE])
  if (prepared.code !== 0) throw new Error(`prepare-bundle failed:\n${prepared.lines.map((l) => l.text).join('\n')}`)
  const bundle = prepared.lines.at(-1)!.text.trim()

  const root = await mkdtemp(`/tmp/kube-spawn-test-${RUN_ID}-bench-up-`)
  const kubeconfig = join(root, 'kubeconfig')
  const stop = () => {
    interrupted = true
    interruption.abort()
    current?.kill('SIGTERM')
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  const results: Measurement[] = []
  try {
    console.log(
      `bundle ${bundle}; cache ${CACHE_DIR}; state root ${root}; ${(await readFile('/proc/cpuinfo', 'utf8')).match(/^processor/gm)?.length ?? '?'} CPUs`,
    )
    if (cold) await removeBaseImages()
    for (const nodes of nodeCounts) {
      if (interrupted) break
      const m = await measure(root, kubeconfig, bundle, nodes, stages)
      results.push(m)
      report(m)
    }
    if (results.length > 0) table(results, stages)
  } finally {
    // Whatever happened: no cluster, mount, bridge or rule of the bench stays behind.
    for (const nodes of nodeCounts) {
      const name = `${NAME_PREFIX}${nodes}`
      if (existsSync(join(root, name, 'kspawn.toml'))) await cli(root, kubeconfig, ['destroy', '-c', name])
    }
    if (existsSync(CLEANUP)) {
      const swept = await runTimed(['bash', CLEANUP, NAME_PREFIX, root])
      for (const l of swept.lines) console.log(l.text)
    }
    const mounts = await readFile('/proc/mounts', 'utf8')
    if (!mounts.split('\n').some((l) => l.split(' ')[1]?.startsWith(`${root}/`))) await rm(root, {recursive: true, force: true})
    else console.log(`keeping ${root}: something is still mounted below it`)
  }
}

main().catch((error: unknown) => {
  console.error(`bench/up: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
})

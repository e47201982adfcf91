#!/usr/bin/env node
/**
 * How long `kube-spawn up` takes to all-Ready, for 1 and 3 nodes, split by pipeline stage.
 *
 *   node bench/up.ts [NODES...]        (default: 1 3; needs root, Node >= 22.18, and a built CLI)
 *
 * Each cluster is isolated (egress = false) and takes Kubernetes from the offline fixture bundle
 * (<repo>/../shared/fixtures/kubernetes/prepare-bundle), with the shared test cache
 * (KUBE_SPAWN_ARTIFACT_CACHE_DIR, default /var/cache/kube-spawn-test) so the base image is built only once.
 * The CLI runs with CI=true, so listr2's simple renderer prints one line as each task starts and
 * ends; every line is timestamped as it arrives, and a stage lasts from its start line to its
 * completion line. The clusters are named kst-<run>-u<N> (run: $KST_RUN_ID or random) in a state root
 * /tmp/kube-spawn-test-<run>-bench-up-* with a private KUBECONFIG, destroyed after measuring, and swept with test/integration/cleanup.sh.
 * Prints figures and asserts nothing.
 */
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {createInterface} from 'node:readline'
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
  const sdk = (await import(join(REPO, 'dist', 'sdk', 'index.js'))) as {STAGES: readonly string[]}
  return new Set(sdk.STAGES)
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
    const title = match[2].replace(/\s*\[(SKIPPED|FAILED): .*\]$/, '').trim()
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

interface Measurement {
  nodes: number
  ok: boolean
  total: number
  ready?: number
  stages: Map<string, number>
  tasks: Span[]
  destroy?: number
  failure?: string
}

async function measure(root: string, kubeconfig: string, bundle: string, nodes: number, stages: Set<string>): Promise<Measurement> {
  const name = `${NAME_PREFIX}${nodes}`
  const config = join(root, `${name}.toml`)
  await writeFile(config, `cluster-name = "${name}"\nnodes = ${nodes}\n[kubernetes]\nsource = "${bundle}"\n[network]\negress = false\n`)
  console.log(`\n== up, ${nodes} node${nodes === 1 ? '' : 's'} (cluster ${name}) ...`)
  const up = await cli(root, kubeconfig, ['up', '--config', config])
  const parsed = spans(up.lines, stages)
  const byStage = new Map<string, number>()
  for (const span of parsed.stages)
    if (span.end !== undefined) byStage.set(span.title, (byStage.get(span.title) ?? 0) + span.end - span.start)
  const ready = parsed.tasks.find((t) => t.title.endsWith(READY_TASK) && !t.skipped)?.end
  const result: Measurement = {nodes, ok: up.code === 0, total: up.ms, ready, stages: byStage, tasks: parsed.tasks}
  if (up.code !== 0)
    result.failure = up.lines
      .slice(-15)
      .map((l) => l.text)
      .join('\n')

  if (existsSync(join(root, name, 'kspawn.toml'))) {
    const destroy = await cli(root, kubeconfig, ['destroy', '-c', name])
    result.destroy = destroy.ms
    if (destroy.code !== 0)
      console.log(
        `destroy of ${name} failed:\n${destroy.lines
          .slice(-10)
          .map((l) => l.text)
          .join('\n')}`,
      )
  }
  return result
}

function report(m: Measurement): void {
  console.log(
    `up, ${m.nodes} node${m.nodes === 1 ? '' : 's'}: ${m.ok ? 'ok' : 'FAILED'}; all Ready at ${s(m.ready)} s, command exited at ${s(m.total)} s; destroy ${s(m.destroy)} s`,
  )
  if (m.failure) console.log(`  the up output ended with:\n${m.failure.replace(/^/gm, '    ')}`)
  console.log('  task (s)')
  for (const t of m.tasks) console.log(`    ${(t.skipped ? 'skip' : s(t.end! - t.start)).padStart(6)}  ${t.title}`)
}

function table(results: Measurement[], stages: Set<string>): void {
  const header = ['stage (s)'.padEnd(16), ...results.map((r) => `${r.nodes} node${r.nodes === 1 ? '' : 's'}`.padStart(9))].join('')
  console.log(`\n${header}`)
  for (const stage of stages) {
    if (!results.some((r) => r.stages.has(stage))) continue
    console.log([stage.padEnd(16), ...results.map((r) => s(r.stages.get(stage)).padStart(9))].join(''))
  }
  console.log(['to all Ready'.padEnd(16), ...results.map((r) => s(r.ready).padStart(9))].join(''))
  console.log(['up exited'.padEnd(16), ...results.map((r) => s(r.total).padStart(9))].join(''))
  console.log(['destroy'.padEnd(16), ...results.map((r) => s(r.destroy).padStart(9))].join(''))
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: nodes need systemd-nspawn, bridges and iptables')
  const counts = process.argv.slice(2).map(Number)
  if (counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('usage: node bench/up.ts [NODES...] (whole numbers, default 1 3)')
  const nodeCounts = counts.length > 0 ? counts : [1, 3]
  const stages = await stageNames()

  const prepared = await runTimed([PREPARE_BUNDLE])
  if (prepared.code !== 0) throw new Error(`prepare-bundle failed:\n${prepared.lines.map((l) => l.text).join('\n')}`)
  const bundle = prepared.lines.at(-1)!.text.trim()

  const root = await mkdtemp(`/tmp/kube-spawn-test-${RUN_ID}-bench-up-`)
  const kubeconfig = join(root, 'kubeconfig')
  const stop = () => {
    interrupted = true
    current?.kill('SIGTERM')
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  const results: Measurement[] = []
  try {
    console.log(
      `bundle ${bundle}; cache ${CACHE_DIR}; state root ${root}; ${(await readFile('/proc/cpuinfo', 'utf8')).match(/^processor/gm)?.length ?? '?'} CPUs`,
    )
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

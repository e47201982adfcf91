/**
 * End to end: a real 3-node Kubernetes cluster (1 control plane + 2 workers) on this host, from the
 * offline v1.20.2 bundle, isolated (egress = false), through its whole life: up, workloads across
 * nodes, stop, a start refused by a held lock, start, destroy, and nothing left behind.
 *
 * Needs root and a Linux host that can run systemd-nspawn nodes (see shared/HOST-FACTS.md). Takes a
 * few minutes. The steps run in order and share one cluster; once a step fails, the later steps are
 * skipped (destroy still runs), and the after hook always destroys and sweeps with cleanup.sh.
 *
 *   node --test --test-concurrency=1 --test-reporter=spec test/integration/kubernetes.test.ts
 *
 * Nothing touches the user's ~/.kube/config: the CLI runs with KUBECONFIG set to a private file in
 * the test's state root (/tmp/kube-spawn-test-<run>-e2e-*), and the cluster is named kst-<run>-e2e, as the
 * cleanup script expects of test clusters.
 */
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join, resolve} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, describe, it, type TestContext} from 'node:test'
import {fileURLToPath} from 'node:url'

import TOML from '@iarna/toml'

import {messageImage, nodeCgroupDirs} from './helpers.ts'
import {resumedInit} from '../../dist/kubernetes/init-resume.js'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const PREPARE_BUNDLE = resolve(REPO, '..', 'shared', 'fixtures', 'kubernetes', 'prepare-bundle')
const CLEANUP = join(REPO, 'test', 'integration', 'cleanup.sh')
const CACHE_DIR = process.env.KUBE_SPAWN_ARTIFACT_CACHE_DIR || '/var/cache/kube-spawn-test'

/**
 * The run's id names the cluster and the state root, so that concurrent runs never meet and .ci/run's
 * cleanup trap (which sets KST_RUN_ID) finds them: kst-<run>-e2e in /tmp/kube-spawn-test-<run>-e2e-*.
 */
const RUN_ID = process.env.KST_RUN_ID || randomBytes(2).toString('hex')
if (!/^[0-9a-z]{1,4}$/.test(RUN_ID)) throw new Error(`KST_RUN_ID "${RUN_ID}" must be 1 to 4 lowercase letters or digits`)
/** The container runtime of the nodes: containerd, or another through KST_E2E_RUNTIME (kubernetes-docker.test.ts). */
const RUNTIME = process.env.KST_E2E_RUNTIME || 'containerd'
const SUFFIX = RUNTIME === 'containerd' ? 'e2e' : RUNTIME.slice(0, 3)
const CLUSTER = `kst-${RUN_ID}-${SUFFIX}`
const CP = `ks-${CLUSTER}-cp`
const W1 = `ks-${CLUSTER}-w1`
const W2 = `ks-${CLUSTER}-w2`
const MACHINES = [CP, W1, W2]
/** Names of at most 12 characters keep the plain bridge name ks-<cluster> (see src/node/names.ts). */
const BRIDGE = `ks-${CLUSTER}`
const CONTEXT = `kube-spawn-${CLUSTER}`
const RULE_COMMENT = new RegExp(`--comment "?kube-spawn:${CLUSTER}"?( |$)`)
const BUSYBOX = 'docker.io/library/busybox:1.35'
const WEB_BODY = 'hello from web'

const MINUTE = 60_000

// ---------------------------------------------------------------------------------------------------
// Small helpers of this file (it takes only nodeCgroupDirs from the shared helpers.ts).

interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

/** Runs a program to completion, with a hard timeout (SIGTERM, then SIGKILL). */
function run(
  argv: string[],
  {env, input, timeoutMs = MINUTE}: {env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number} = {},
): Promise<Result> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {env: env ?? process.env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (chunk) => (stdout += chunk))
    child.stderr!.on('data', (chunk) => (stderr += chunk))
    if (input !== undefined) child.stdin!.end(input)
    const term = setTimeout(() => {
      stderr += `\n[test] timed out after ${timeoutMs / 1000} s; killing ${argv.join(' ')}\n`
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
    }, timeoutMs)
    child.on('error', (error) => {
      clearTimeout(term)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(term)
      resolve({code, signal, stdout, stderr, ms: Date.now() - started})
    })
  })
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** The end of a command's output, for assertion messages. */
function tail(result: Result, lines = 25): string {
  const text = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-lines).join('\n')
  return `exit ${result.code ?? result.signal} after ${secs(result.ms)}; output ends with:\n${text}`
}

let root = ''
let bundle = ''
let kubeconfig = ''
const clusterDir = () => join(root, CLUSTER)
const adminConf = () => join(clusterDir(), 'admin.conf')

/** The CLI as a user runs it: its own state root, the shared test cache, a private kubeconfig; `input` is its stdin. */
function cli(args: string[], timeoutMs = 15 * MINUTE, input?: string): Promise<Result> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('KUBE_SPAWN_') && key !== 'NODE_TEST_CONTEXT'),
  )
  // --dir right after the command id: anything after `--` belongs to the command run in a node.
  return run([process.execPath, join(REPO, 'bin', 'run.js'), args[0], '--dir', root, ...args.slice(1)], {
    env: {...env, KUBE_SPAWN_ARTIFACT_CACHE_DIR: CACHE_DIR, KUBECONFIG: kubeconfig, CI: 'true'},
    input,
    timeoutMs,
  })
}

/** The bundle's kubectl against the cluster's admin.conf. */
function kubectl(args: string[], {input, timeoutMs = 40_000}: {input?: string; timeoutMs?: number} = {}): Promise<Result> {
  return run([join(bundle, 'bin', 'kubectl'), `--kubeconfig=${adminConf()}`, '--request-timeout=20s', ...args], {input, timeoutMs})
}

async function kubectlJson<T>(args: string[]): Promise<T> {
  const result = await kubectl([...args, '-o', 'json'])
  assert.equal(result.code, 0, `kubectl ${args.join(' ')} failed: ${tail(result)}`)
  return JSON.parse(result.stdout) as T
}

/** Calls probe until it returns a value (not undefined) or the deadline passes; the last note explains a miss. */
async function poll<T>(timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 2000): Promise<{value?: T; ms: number}> {
  const started = Date.now()
  for (;;) {
    const value = await probe()
    if (value !== undefined) return {value, ms: Date.now() - started}
    if (Date.now() - started >= timeoutMs) return {ms: Date.now() - started}
    await sleep(intervalMs)
  }
}

interface NodeObject {
  metadata: {name: string; uid: string}
  spec: {podCIDR?: string}
  status: {
    addresses?: Array<{type: string; address: string}>
    conditions?: Array<{type: string; status: string; reason?: string; lastHeartbeatTime?: string}>
  }
}

interface PodObject {
  metadata: {name: string; uid: string}
  spec: {nodeName?: string}
  status: {phase?: string; podIP?: string; containerStatuses?: Array<{ready: boolean; restartCount: number}>}
}

function readyCondition(node: NodeObject) {
  return node.status.conditions?.find((c) => c.type === 'Ready')
}

/** "name: Ready=True (heartbeat ...)" for each node, for messages. */
function describeNodes(nodes: NodeObject[]): string {
  return nodes
    .map((n) => `${n.metadata.name}: Ready=${readyCondition(n)?.status ?? '?'} (heartbeat ${readyCondition(n)?.lastHeartbeatTime})`)
    .join('; ')
}

/** Waits until every machine is a Ready node with a heartbeat no older than `since`. */
async function waitNodesReady(since: number, timeoutMs: number): Promise<NodeObject[]> {
  let last: NodeObject[] = []
  const fresh = (n: NodeObject) => {
    const ready = readyCondition(n)
    // Heartbeats have second resolution.
    return ready?.status === 'True' && Date.parse(ready.lastHeartbeatTime ?? '') >= since - 1000
  }
  const {value} = await poll(timeoutMs, async () => {
    const result = await kubectl(['get', 'nodes', '-o', 'json'])
    if (result.code !== 0) return undefined
    last = (JSON.parse(result.stdout) as {items: NodeObject[]}).items
    return MACHINES.every((m) => last.some((n) => n.metadata.name === m && fresh(n))) ? last : undefined
  })
  assert.ok(
    value,
    `expected nodes ${MACHINES.join(', ')} Ready with a heartbeat after the command started; got: ${describeNodes(last) || 'no nodes'}`,
  )
  return value
}

function podReady(pod: PodObject): boolean {
  return pod.status.phase === 'Running' && (pod.status.containerStatuses ?? []).every((c) => c.ready)
}

/** Waits until the named pods are Running and ready; returns them by name. */
async function waitPodsRunning(names: string[], timeoutMs: number): Promise<Map<string, PodObject>> {
  let last: PodObject[] = []
  const {value} = await poll(timeoutMs, async () => {
    const result = await kubectl(['get', 'pods', '-o', 'json'])
    if (result.code !== 0) return undefined
    last = (JSON.parse(result.stdout) as {items: PodObject[]}).items
    const pods = new Map(last.map((p) => [p.metadata.name, p]))
    return names.every((n) => pods.has(n) && podReady(pods.get(n)!)) ? pods : undefined
  })
  const seen = last.map((p) => `${p.metadata.name} on ${p.spec.nodeName}: ${p.status.phase}`).join('; ')
  assert.ok(value, `expected pods ${names.join(', ')} Running within ${secs(timeoutMs)}; got: ${seen || 'no pods'}`)
  return value
}

/** wget from the client pod (busybox's `wget -T` crashes, so `timeout` bounds it); the body, or undefined. */
async function fetchFromClient(url: string, notes: string[]): Promise<string | undefined> {
  const result = await kubectl(['exec', 'client', '--', 'timeout', '5', 'wget', '-qO-', url], {timeoutMs: 30_000})
  if (result.code === 0 && result.stdout.includes(WEB_BODY)) return result.stdout.trim()
  notes.push(`exit ${result.code}: ${(result.stderr || result.stdout).trim().split('\n').at(-1)}`)
  return undefined
}

async function fetchUntil(url: string, timeoutMs: number): Promise<{body?: string; ms: number; notes: string[]}> {
  const notes: string[] = []
  const {value, ms} = await poll(timeoutMs, () => fetchFromClient(url, notes))
  return {body: value, ms, notes}
}

/** PIDs of systemd-nspawn processes that run one of this cluster's machines. */
async function nspawnProcesses(): Promise<string[]> {
  const found: string[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0')
    if (!args[0]?.endsWith('systemd-nspawn')) continue
    const machine = args.find((a) => a.startsWith('--machine='))?.slice('--machine='.length) ?? args[args.indexOf('-M') + 1]
    if (MACHINES.includes(machine)) found.push(`${entry} (${machine})`)
  }
  return found
}

async function linkExists(name: string): Promise<boolean> {
  return (await run(['ip', 'link', 'show', 'dev', name])).code === 0
}

/** The host ends of the nodes' veths: the links enslaved to the cluster bridge. */
async function bridgePorts(): Promise<string[]> {
  const result = await run(['ip', '-o', 'link', 'show', 'master', BRIDGE])
  assert.equal(result.code, 0, `ip link show master ${BRIDGE} failed: ${tail(result)}`)
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(': ')[1].split('@')[0])
}

async function clusterRules(): Promise<string[]> {
  const rules: string[] = []
  for (const table of ['filter', 'nat']) {
    const result = await run(['iptables-save', '-t', table])
    assert.equal(result.code, 0, `iptables-save -t ${table} failed: ${tail(result)}`)
    rules.push(
      ...result.stdout
        .split('\n')
        .filter((line) => RULE_COMMENT.test(line))
        .map((line) => `${table}: ${line}`),
    )
  }
  return rules
}

async function mountsUnderRoot(): Promise<string[]> {
  const mounts = await readFile('/proc/mounts', 'utf8')
  return mounts
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((path) => path !== undefined && (path === root || path.startsWith(`${root}/`)))
}

/** Contexts in the private kubeconfig (none when the file does not exist). */
async function kubeconfigContexts(): Promise<string[]> {
  if (!existsSync(kubeconfig)) return []
  const result = await run([join(bundle, 'bin', 'kubectl'), `--kubeconfig=${kubeconfig}`, 'config', 'get-contexts', '-o', 'name'])
  assert.equal(result.code, 0, `kubectl config get-contexts failed: ${tail(result)}`)
  return result.stdout.split('\n').filter(Boolean)
}

/** Host routes `<pod CIDR> via <node IP>` for the given pairs, as `ip route` prints them. */
async function podRoutes(pairs: Array<{cidr: string; ip: string}>): Promise<string[]> {
  const result = await run(['ip', '-4', 'route', 'show'])
  assert.equal(result.code, 0, `ip route failed: ${tail(result)}`)
  const nodeIps = new Set(pairs.map((p) => p.ip))
  return result.stdout.split('\n').filter((line) => {
    const [dst, word, via] = line.split(' ')
    return word === 'via' && (nodeIps.has(via) || pairs.some((p) => p.cidr === dst && p.ip === via))
  })
}

/** The user's own kubeconfig (~/.kube/config), which no step may touch, as a hash ("absent" when missing). */
const USER_KUBECONFIG = join(homedir(), '.kube', 'config')
async function userKubeconfigHash(): Promise<string> {
  const data = await readFile(USER_KUBECONFIG).catch(() => undefined)
  return data ? createHash('sha256').update(data).digest('hex') : 'absent'
}

async function caCert(): Promise<string> {
  const result = await cli(['exec', '-c', CLUSTER, CP, '--', 'cat', '/etc/kubernetes/pki/ca.crt'], 2 * MINUTE)
  assert.equal(result.code, 0, `kube-spawn exec ${CP} -- cat ca.crt failed: ${tail(result)}`)
  assert.match(result.stdout, /-----BEGIN CERTIFICATE-----/, `ca.crt from ${CP} is not a certificate: ${result.stdout.slice(0, 200)}`)
  return result.stdout
}

/** Two busybox pods pinned to the workers (web serves HTTP on :8080) and a ClusterIP Service for web. */
function workloadManifest(): string {
  const pod = (name: string, node: string, script: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {name, labels: {app: name}},
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [{name, image: BUSYBOX, imagePullPolicy: 'Never', command: ['sh', '-c', script]}],
    },
  })
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      pod('web', W1, `mkdir -p /www && echo "${WEB_BODY}" > /www/index.html && exec httpd -f -p 8080 -h /www`),
      pod('client', W2, 'exec sleep 86400'),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: {name: 'web'},
        spec: {type: 'ClusterIP', selector: {app: 'web'}, ports: [{port: 80, targetPort: 8080, protocol: 'TCP'}]},
      },
    ],
  })
}

/** Removes whatever this cluster left on the host, and the state root (cleanup.sh deletes the roots it is given). */
async function sweep(): Promise<string> {
  if (!existsSync(CLEANUP)) return `no ${CLEANUP}`
  // Always the cluster's own name and root: without them the script sweeps every test run on the host.
  const result = await run(['bash', CLEANUP, CLUSTER, root], {timeoutMs: 3 * MINUTE})
  return `cleanup.sh ${CLUSTER} ${root} exited ${result.code}${result.stdout.trim() ? `\n${result.stdout.trim()}` : ''}`
}

// ---------------------------------------------------------------------------------------------------

/** The inodes of the content blobs in a containerd data dir. */
async function blobInodes(containerdDir: string): Promise<Set<number>> {
  const blobs = join(containerdDir, 'io.containerd.content.v1.content', 'blobs', 'sha256')
  const names = await readdir(blobs).catch(() => [] as string[])
  return new Set(await Promise.all(names.map(async (name) => (await stat(join(blobs, name))).ino)))
}

/** The shared image stores in the cache, each with its blobs' inodes. */
async function imageStores(): Promise<Map<string, Set<number>>> {
  const stores = new Map<string, Set<number>>()
  for (const image of await readdir(join(CACHE_DIR, 'images')).catch(() => [] as string[])) {
    const dir = join(CACHE_DIR, 'images', image, 'image-stores')
    for (const key of await readdir(dir).catch(() => [] as string[]))
      if (/^[0-9a-f]{16}$/.test(key)) stores.set(join(dir, key), await blobInodes(join(dir, key)))
  }
  return stores
}

/** State the steps hand on to each other. */
const seen: {
  podCidrs: Array<{cidr: string; ip: string}>
  veths: string[]
  ca?: string
  userKubeconfig?: string
  pods?: Map<string, PodObject>
  serviceUrl?: string
  /** The shared image stores in the cache before up. */
  storesBefore?: Map<string, Set<number>>
  timings: Array<[string, number]>
} = {podCidrs: [], veths: [], timings: []}

let failedStep: string | undefined
let lockHolder: ChildProcess | undefined
/** Set once the cluster name is known to be free: only then may the after hook destroy and sweep it. */
let ownsCluster = false

/** A step of the sequence: skipped once an earlier one failed, unless `always`. */
function step(name: string, timeoutMs: number, body: (t: TestContext) => Promise<void>, {always = false} = {}) {
  it(name, {timeout: timeoutMs}, async (t) => {
    if (failedStep && !always) {
      t.skip(`an earlier step failed: ${failedStep}`)
      return
    }
    try {
      await body(t)
    } catch (error) {
      failedStep ??= name
      throw error
    }
  })
}

function timed(t: TestContext, what: string, result: Result): void {
  seen.timings.push([what, result.ms])
  t.diagnostic(`${what}: ${secs(result.ms)}`)
}

const skipReason =
  process.platform !== 'linux'
    ? 'needs Linux'
    : process.getuid?.() !== 0
      ? 'needs root (systemd-nspawn, bridges, iptables)'
      : !existsSync(PREPARE_BUNDLE)
        ? `no Kubernetes fixture at ${PREPARE_BUNDLE}`
        : false

describe(`Kubernetes cluster lifecycle (3 nodes, ${RUNTIME}, isolated, offline bundle)`, {skip: skipReason}, () => {
  after(
    async () => {
      if (lockHolder && lockHolder.exitCode === null) lockHolder.kill('SIGKILL')
      if (!root) return
      if (!ownsCluster) {
        await rm(root, {recursive: true, force: true})
        return
      }
      await rm(join(root, '.locks', `${CLUSTER}.lock`), {force: true})
      if (existsSync(join(clusterDir(), 'kspawn.toml'))) {
        const destroyed = await cli(['destroy', '-c', CLUSTER], 5 * MINUTE)
        if (destroyed.code !== 0) console.log(`after: destroy failed: ${tail(destroyed)}`)
      }
      console.log(`after: ${await sweep()}`)
      const mounted = await mountsUnderRoot()
      if (mounted.length === 0) await rm(root, {recursive: true, force: true})
      else console.log(`after: keeping ${root}, still mounted: ${mounted.join(', ')}`)
      if (seen.timings.length > 0) console.log(`timings: ${seen.timings.map(([what, ms]) => `${what} ${secs(ms)}`).join(', ')}`)
    },
    {timeout: 10 * MINUTE},
  )

  // A step rather than a before hook: node:test reports a failed hook only as cancelled steps, without its message.
  step('set up: the offline bundle, a fresh state root, no cluster of this name on the host', 15 * MINUTE, async () => {
    const prepared = await run([PREPARE_BUNDLE], {timeoutMs: 10 * MINUTE})
    assert.equal(prepared.code, 0, `${PREPARE_BUNDLE} failed: ${tail(prepared)}`)
    bundle = prepared.stdout.trim().split('\n').at(-1)!
    assert.ok(existsSync(join(bundle, 'bin', 'kubectl')), `the bundle printed by prepare-bundle has no bin/kubectl: ${bundle}`)

    root = await mkdtemp(`/tmp/kube-spawn-test-${RUN_ID}-${SUFFIX}-`)
    kubeconfig = join(root, 'kubeconfig')
    seen.userKubeconfig = await userKubeconfigHash()
    await mkdir(CACHE_DIR, {recursive: true})

    // Only a reused KST_RUN_ID can meet an earlier (or a concurrent) run's cluster: refuse rather than sweep it.
    const leftovers = [...(await nspawnProcesses()), ...((await linkExists(BRIDGE)) ? [`bridge ${BRIDGE}`] : []), ...(await clusterRules())]
    assert.deepEqual(
      leftovers,
      [],
      `cluster ${CLUSTER} already has nodes, a bridge or rules on this host; if no run uses it, bash ${CLEANUP} ${CLUSTER}`,
    )
    ownsCluster = true
  })

  step('up: 1 control plane + 2 workers, isolated, from the bundle, ends with all three Ready', 20 * MINUTE, async (t) => {
    const config = join(root, 'kspawn-e2e.toml')
    await writeFile(
      config,
      [
        `cluster-name = "${CLUSTER}"`,
        'nodes = 3',
        `container-runtime = "${RUNTIME}"`,
        '[kubernetes]',
        `source = "${bundle}"`,
        // One feature gate and one extra argument, checked on the running API server below.
        'feature-gates = {EphemeralContainers = true}',
        'api-server-extra-args = {event-ttl = "2h0m0s"}',
        '[network]',
        'egress = false',
        '',
      ].join('\n'),
    )
    seen.storesBefore = await imageStores()
    const started = Date.now()
    const up = await cli(['up', '--config', config])
    timed(t, 'up', up)
    assert.equal(up.code, 0, `kube-spawn up failed: ${tail(up)}`)
    assert.match(up.stdout, new RegExp(`Cluster "${CLUSTER}" is up with 3 nodes`), `up did not report 3 nodes: ${tail(up)}`)

    const definition = TOML.parse(await readFile(join(clusterDir(), 'kspawn.toml'), 'utf8')) as {
      network: {egress: boolean}
      machines: Array<{name: string; ip: string; role: string}>
    }
    assert.equal(definition.network.egress, false, 'the cluster should be isolated (network.egress = false)')
    assert.deepEqual(
      definition.machines.map((m) => `${m.name}/${m.role}`),
      [`${CP}/control-plane`, `${W1}/worker`, `${W2}/worker`],
      'kspawn.toml should list one control plane and two workers',
    )

    const nodes = await waitNodesReady(started, 30_000)
    seen.podCidrs = definition.machines.map((m) => ({ip: m.ip, cidr: nodes.find((n) => n.metadata.name === m.name)?.spec.podCIDR ?? ''}))
    assert.ok(
      seen.podCidrs.every((p) => p.cidr !== ''),
      `every node should have a pod CIDR: ${JSON.stringify(seen.podCidrs)}`,
    )
    seen.veths = await bridgePorts()
    assert.equal(seen.veths.length, 3, `bridge ${BRIDGE} should have one veth per node: ${seen.veths.join(', ')}`)
    t.diagnostic(`nodes: ${describeNodes(nodes)}`)
    t.diagnostic(`veths on ${BRIDGE}: ${seen.veths.join(', ')}`)
    t.diagnostic(`pod CIDRs: ${seen.podCidrs.map((p) => `${p.cidr} via ${p.ip}`).join(', ')}`)
  })

  step(
    "the nodes' images are the shared store's files: linked into every node when the store was there, else the store made from the control plane",
    MINUTE,
    async (t) => {
      if (RUNTIME !== 'containerd') return t.skip(`the ${RUNTIME} runtime shares no image store`)
      const nodeBlobs = async (machine: string) => blobInodes(join(clusterDir(), 'nodes', machine, 'var-lib', 'containerd'))
      const cp = await nodeBlobs(CP)
      assert.ok(cp.size > 0, `${CP} has no image blobs`)
      const stores = await imageStores()
      const [store, blobs] = [...stores].find(([, blobs]) => [...cp].every((ino) => blobs.has(ino))) ?? []
      assert.ok(
        store && blobs,
        `no shared image store in ${CACHE_DIR}/images/*/image-stores holds ${CP}'s image blobs (stores: ${[...stores.keys()].join(', ') || 'none'})`,
      )
      t.diagnostic(`${seen.storesBefore?.has(store) ? 'linked from' : 'made'} ${store}`)
      if (seen.storesBefore?.has(store))
        for (const worker of [W1, W2]) {
          const inodes = await nodeBlobs(worker)
          assert.ok(inodes.size > 0 && [...inodes].every((ino) => blobs.has(ino)), `${worker}'s image blobs are not the store's files`)
        }
    },
  )

  step("etcd's write-ahead log is sparse: its 64 MB segments take only the space written", MINUTE, async (t) => {
    const host = await cli(['host', '--json'], MINUTE)
    if ((JSON.parse(host.stdout) as {host: {timeoutScale: number}}).host.timeoutScale > 1)
      return t.skip('a slow host (waits scaled): etcd keeps its preallocated log there (docs/kubernetes.md)')
    const wal = join(clusterDir(), 'nodes', CP, 'upper', 'var', 'lib', 'etcd', 'member', 'wal')
    const segments = await readdir(wal)
    assert.ok(
      segments.some((name) => name.endsWith('.wal')),
      `no WAL segment in ${wal}: ${segments.join(', ')}`,
    )
    for (const name of segments) {
      const {size, blocks} = await stat(join(wal, name))
      t.diagnostic(`${name}: ${size} bytes long, ${blocks * 512} allocated`)
      assert.equal(size, 64_000_000, `${name} should be etcd's 64 MB segment (wal.SegmentSizeBytes)`)
      assert.ok(blocks * 512 < 16 * 2 ** 20, `${name} has ${blocks * 512} bytes allocated: fallocate was not refused to etcd`)
    }
  })

  step("the bundle's kubectl with the written admin.conf (mode 0600) lists the three nodes", MINUTE, async () => {
    const info = await stat(adminConf())
    assert.equal((info.mode & 0o777).toString(8), '600', `${adminConf()} should be mode 0600 (it holds the cluster admin key)`)
    const result = await kubectl(['get', 'nodes', '-o', 'name'])
    assert.equal(result.code, 0, `kubectl get nodes failed: ${tail(result)}`)
    assert.deepEqual(
      result.stdout.trim().split('\n').sort(),
      MACHINES.map((m) => `node/${m}`).sort(),
      'kubectl get nodes should list exactly the three machines',
    )
  })

  step(`the private KUBECONFIG has the context ${CONTEXT}, and it reaches the cluster`, MINUTE, async () => {
    const contexts = await kubeconfigContexts()
    assert.ok(contexts.includes(CONTEXT), `${kubeconfig} should have context ${CONTEXT}; has: ${contexts.join(', ') || 'none'}`)
    const result = await run([
      join(bundle, 'bin', 'kubectl'),
      `--kubeconfig=${kubeconfig}`,
      `--context=${CONTEXT}`,
      '--request-timeout=20s',
      'get',
      'nodes',
      '-o',
      'name',
    ])
    assert.equal(result.code, 0, `kubectl --context=${CONTEXT} get nodes failed: ${tail(result)}`)
    assert.equal(result.stdout.trim().split('\n').length, 3, `context ${CONTEXT} should see 3 nodes: ${result.stdout}`)
  })

  step(
    'kubeconfig prints admin.conf; its --raw YAML reaches the cluster from the host, --internal --raw from inside the control plane',
    2 * MINUTE,
    async () => {
      const path = await cli(['kubeconfig', '-c', CLUSTER], MINUTE)
      assert.equal(path.code, 0, `kube-spawn kubeconfig failed: ${tail(path)}`)
      assert.equal(path.stdout, `${adminConf()}\n`, "kube-spawn kubeconfig should print the path of the cluster's admin.conf")

      const raw = await cli(['kubeconfig', '-c', CLUSTER, '--raw'], MINUTE)
      assert.equal(raw.code, 0, `kube-spawn kubeconfig --raw failed: ${tail(raw)}`)
      const copy = join(root, 'kubeconfig-raw')
      await writeFile(copy, raw.stdout, {mode: 0o600})
      const fromHost = await run([
        join(bundle, 'bin', 'kubectl'),
        `--kubeconfig=${copy}`,
        '--request-timeout=20s',
        'get',
        'nodes',
        '-o',
        'name',
      ])
      assert.equal(fromHost.code, 0, `kubectl with the output of kubeconfig --raw failed: ${tail(fromHost)}`)
      assert.deepEqual(
        fromHost.stdout.trim().split('\n').sort(),
        MACHINES.map((m) => `node/${m}`).sort(),
        'kubeconfig --raw should see the three nodes',
      )

      const internal = await cli(['kubeconfig', '-c', CLUSTER, '--internal', '--raw'], MINUTE)
      assert.equal(internal.code, 0, `kube-spawn kubeconfig --internal --raw failed: ${tail(internal)}`)
      assert.match(
        internal.stdout,
        new RegExp(`server: https://${CP}:6443\n`),
        `the internal kubeconfig should name ${CP}: ${internal.stdout.slice(0, 300)}`,
      )
      const inNode = '/tmp/kube-spawn-internal.conf'
      const copied = await cli(['exec', '-c', CLUSTER, CP, '--', 'sh', '-c', `umask 077 && cat > ${inNode}`], MINUTE, internal.stdout)
      assert.equal(copied.code, 0, `writing ${inNode} in ${CP} failed: ${tail(copied)}`)
      const fromNode = await cli(
        ['exec', '-c', CLUSTER, CP, '--', 'kubectl', `--kubeconfig=${inNode}`, '--request-timeout=20s', 'get', 'nodes', '-o', 'name'],
        MINUTE,
      )
      await cli(['exec', '-c', CLUSTER, CP, '--', 'rm', '-f', inNode], MINUTE)
      assert.equal(fromNode.code, 0, `kubectl in ${CP} with the internal kubeconfig failed: ${tail(fromNode)}`)
      assert.deepEqual(
        fromNode.stdout.trim().split('\n').sort(),
        MACHINES.map((m) => `node/${m}`).sort(),
        'the internal kubeconfig should see the three nodes',
      )
    },
  )

  step('the API server runs with the feature gate and the extra argument of [kubernetes]', MINUTE, async () => {
    // up returns once the static pods show in the API: no waiting here.
    const pod = await kubectlJson<{spec: {containers: Array<{command: string[]}>}}>([
      '-n',
      'kube-system',
      'get',
      'pod',
      `kube-apiserver-${CP}`,
    ])
    const command = pod.spec.containers[0].command
    assert.ok(
      command.includes('--feature-gates=EphemeralContainers=true'),
      `kube-apiserver's command lacks the feature gate: ${command.join(' ')}`,
    )
    assert.ok(command.includes('--event-ttl=2h0m0s'), `kube-apiserver's command lacks --event-ttl=2h0m0s: ${command.join(' ')}`)
  })

  step('export kubeadm-config writes the configurations the nodes run, and kubeadm accepts them', MINUTE, async () => {
    const dir = join(root, 'kubeadm-export')
    const exported = await cli(['export:kubeadm-config', '-c', CLUSTER, dir], MINUTE)
    assert.equal(exported.code, 0, `kube-spawn export kubeadm-config failed: ${tail(exported)}`)
    for (const [node, file] of [
      [CP, 'kubeadm-init.yaml'],
      [W1, 'kubeadm-join.yaml'],
      [W2, 'kubeadm-join.yaml'],
      ...MACHINES.map((m) => [m, 'kubelet-config.yaml']),
    ])
      assert.ok(existsSync(join(dir, node, file)), `${dir}/${node}/${file} should have been written`)
    const init = await readFile(join(dir, CP, 'kubeadm-init.yaml'), 'utf8')
    assert.match(init, new RegExp(`^clusterName: ${CLUSTER}$`, 'm'))
    // The bundle's kubeadm reads the exported file as the one it ran with.
    const migrated = await run([join(bundle, 'bin', 'kubeadm'), 'config', 'migrate', '--old-config', join(dir, CP, 'kubeadm-init.yaml')])
    assert.equal(migrated.code, 0, `kubeadm config migrate refused the exported init configuration: ${tail(migrated)}`)
  })

  step(
    'kubeadm init run again from its first API phase, as after a write that timed out, completes on the running control plane',
    3 * MINUTE,
    async () => {
      // The command kube-spawn ran is the log's first line, which enters the node (nsenter ... env -i PATH=...) before kubeadm.
      const logged = (await readFile(join(clusterDir(), 'nodes', CP, 'kubeadm-init.log'), 'utf8')).split('\n')[0].split(' ')
      const ran = logged.slice(logged.indexOf('kubeadm'))
      const timedOut =
        'error execution phase upload-config/kubeadm: error uploading the kubeadm ClusterConfiguration: context deadline exceeded\n'
      const resumed = resumedInit(ran, timedOut)
      const ca = await caCert()
      assert.ok(resumed, `kube-spawn would not resume ${ran.join(' ')} after ${timedOut}`)
      const again = await cli(['exec', '-c', CLUSTER, CP, '--', ...resumed.argv], 2 * MINUTE)
      assert.equal(again.code, 0, `${resumed.argv.join(' ')} failed: ${tail(again, 12)}`)
      const output = again.stdout + again.stderr
      assert.match(output, /\[upload-config\]/, `the resumed init did not upload its configuration: ${output}`)
      assert.match(output, /\[addons\] Applied essential addon: kube-proxy/, `the resumed init did not reach its last phase: ${output}`)
      assert.doesNotMatch(output, /\[certs\]|\[kubeconfig\]|\[control-plane\]/, `the resumed init ran a phase before the API's: ${output}`)
      assert.equal(await caCert(), ca, 'the resumed init changed the CA')
      await waitNodesReady(Date.now(), 2 * MINUTE)
    },
  )

  step(`a busybox pod runs on each worker (web on ${W1}, client on ${W2})`, 5 * MINUTE, async (t) => {
    const applied = await kubectl(['apply', '-f', '-'], {input: workloadManifest()})
    assert.equal(applied.code, 0, `kubectl apply failed: ${tail(applied)}`)
    const started = Date.now()
    seen.pods = await waitPodsRunning(['web', 'client'], 3 * MINUTE)
    t.diagnostic(`pods Running after ${secs(Date.now() - started)}`)
    assert.equal(seen.pods.get('web')!.spec.nodeName, W1, `web should run on ${W1}`)
    assert.equal(seen.pods.get('client')!.spec.nodeName, W2, `client should run on ${W2}`)
    assert.ok(seen.pods.get('web')!.status.podIP, 'web should have a pod IP')
  })

  step(`the pod on ${W2} reaches the pod on ${W1} by its IP`, 2 * MINUTE, async (t) => {
    const web = seen.pods!.get('web')!
    const client = seen.pods!.get('client')!
    assert.notEqual(web.status.podIP, client.status.podIP)
    const url = `http://${web.status.podIP}:8080/`
    const {body, ms, notes} = await fetchUntil(url, 60_000)
    assert.equal(body, WEB_BODY, `client (${client.status.podIP}) could not fetch ${url} within 60 s; attempts: ${notes.join(' | ')}`)
    t.diagnostic(`pod-to-pod answered after ${secs(ms)} (${notes.length} failed attempts)`)
  })

  step('a ClusterIP Service backed by httpd on one worker answers from a pod on the other', 3 * MINUTE, async (t) => {
    const service = await kubectlJson<{spec: {clusterIP: string; ports: Array<{port: number}>}}>(['get', 'service', 'web'])
    assert.ok(service.spec.clusterIP && service.spec.clusterIP !== 'None', `service web has no ClusterIP: ${JSON.stringify(service.spec)}`)
    seen.serviceUrl = `http://${service.spec.clusterIP}:${service.spec.ports[0].port}/`
    const {body, ms, notes} = await fetchUntil(seen.serviceUrl, 2 * MINUTE)
    assert.equal(body, WEB_BODY, `client could not fetch ${seen.serviceUrl} (Service web) within 120 s; attempts: ${notes.join(' | ')}`)
    t.diagnostic(`Service answered after ${secs(ms)} (${notes.length} failed attempts)`)
  })

  step(
    'load image-archive puts an image built here into both workers: a pod runs it on each with imagePullPolicy Never',
    5 * MINUTE,
    async (t) => {
      const archive = join(root, 'loaded.tar')
      const ref = 'kube-spawn.test/loaded:1'
      await messageImage(archive, ref, 'loaded')
      const started = Date.now()
      const loaded = await cli(['load:image-archive', '-c', CLUSTER, '--nodes', 'w1,w2', archive], 5 * MINUTE)
      assert.equal(loaded.code, 0, `kube-spawn load image-archive failed: ${tail(loaded)}`)
      assert.match(loaded.stdout, new RegExp(`Loaded 1 archive\\(s\\) into ${W1}, ${W2}`))
      t.diagnostic(`loaded into both workers in ${secs(Date.now() - started)}`)
      const pod = (node: string) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {name: `loaded-${node.slice(-2)}`},
        spec: {nodeName: node, terminationGracePeriodSeconds: 1, containers: [{name: 'loaded', image: ref, imagePullPolicy: 'Never'}]},
      })
      const applied = await kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({apiVersion: 'v1', kind: 'List', items: [pod(W1), pod(W2)]}),
      })
      assert.equal(applied.code, 0, `kubectl apply failed: ${tail(applied)}`)
      await waitPodsRunning(['loaded-w1', 'loaded-w2'], 3 * MINUTE)
      const logs = await kubectl(['logs', 'loaded-w1'])
      assert.equal(logs.stdout.trim(), 'loaded', `the loaded image's entrypoint should have run: ${tail(logs)}`)
      await kubectl(['delete', 'pod', 'loaded-w1', 'loaded-w2', '--wait=false'])
    },
  )

  step("load image takes an image from the host's podman (installed by scripts/setup.sh) and says so", 5 * MINUTE, async (t) => {
    const archive = join(root, 'from-podman.tar')
    const ref = `kube-spawn.test/from-podman:${CLUSTER}`
    await messageImage(archive, ref, 'from podman')
    const podmanLoad = await run(['podman', 'load', '-i', archive])
    assert.equal(podmanLoad.code, 0, `podman load failed (scripts/setup.sh installs podman): ${tail(podmanLoad)}`)
    try {
      const loaded = await cli(['load:image', '-c', CLUSTER, '--nodes', 'w1', ref], 5 * MINUTE)
      assert.equal(loaded.code, 0, `kube-spawn load image failed: ${tail(loaded)}`)
      assert.match(loaded.stdout, new RegExp(`Loaded ${ref.replaceAll('.', '\\.')} from the host's podman into ${W1}`))
      t.diagnostic(loaded.stdout.trim())
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {name: 'from-podman'},
        spec: {nodeName: W1, terminationGracePeriodSeconds: 1, containers: [{name: 'p', image: ref, imagePullPolicy: 'Never'}]},
      }
      const applied = await kubectl(['apply', '-f', '-'], {input: JSON.stringify(pod)})
      assert.equal(applied.code, 0, `kubectl apply failed: ${tail(applied)}`)
      await waitPodsRunning(['from-podman'], 3 * MINUTE)
      const logs = await kubectl(['logs', 'from-podman'])
      assert.equal(logs.stdout.trim(), 'from podman', tail(logs))
      await kubectl(['delete', 'pod', 'from-podman', '--wait=false'])
    } finally {
      await run(['podman', 'rmi', '-f', ref])
    }
  })

  step('stop powers the nodes off and leaves no systemd-nspawn process of the cluster', 5 * MINUTE, async (t) => {
    // Read before the stop, to show later that the restart did not run kubeadm init again.
    seen.ca = await caCert()
    const stop = await cli(['stop', '-c', CLUSTER], 4 * MINUTE)
    timed(t, 'stop', stop)
    assert.equal(stop.code, 0, `kube-spawn stop failed: ${tail(stop)}`)
    const {value: left} = await poll(10_000, async () => ((await nspawnProcesses()).length === 0 ? [] : undefined), 500)
    assert.deepEqual(left, [], `systemd-nspawn processes still running after stop: ${(await nspawnProcesses()).join(', ')}`)
  })

  step('start is refused with a one-line "is busy" error while another kube-spawn holds the cluster lock', MINUTE, async () => {
    lockHolder = spawn('sleep', ['60'], {stdio: 'ignore'})
    const pid = lockHolder.pid!
    const lockFile = join(root, '.locks', `${CLUSTER}.lock`)
    await mkdir(join(root, '.locks'), {recursive: true, mode: 0o700})
    await writeFile(lockFile, `${pid}\n`, {mode: 0o600})
    try {
      const start = await cli(['start', '-c', CLUSTER], MINUTE)
      assert.equal(start.code, 3, `start should exit 3 while the lock is held: ${tail(start)}`)
      const lines = start.stderr.trim().split('\n')
      assert.equal(lines.length, 1, `the error should be one line on stderr, got:\n${start.stderr}`)
      assert.match(lines[0], /is busy/, `the error should say the cluster is busy: ${lines[0]}`)
      assert.match(
        lines[0],
        new RegExp(`cluster "${CLUSTER}".*process ${pid}`),
        `the error should name the cluster and the holder: ${lines[0]}`,
      )
      assert.equal(await readFile(lockFile, 'utf8'), `${pid}\n`, "the refused start must leave the holder's lock alone")
      assert.deepEqual(await nspawnProcesses(), [], 'the refused start must not boot any node')
    } finally {
      lockHolder.kill('SIGKILL')
      await rm(lockFile, {force: true})
    }
  })

  step('start brings all nodes Ready again, with the same pods, and the Service answers again', 12 * MINUTE, async (t) => {
    const started = Date.now()
    const start = await cli(['start', '-c', CLUSTER])
    timed(t, 'start', start)
    assert.equal(start.code, 0, `kube-spawn start failed: ${tail(start)}`)
    await waitNodesReady(started, 30_000)

    const pods = await waitPodsRunning(['web', 'client'], 4 * MINUTE)
    t.diagnostic(`pods Running again ${secs(Date.now() - started)} after start began`)
    for (const name of ['web', 'client']) {
      assert.equal(
        pods.get(name)!.metadata.uid,
        seen.pods!.get(name)!.metadata.uid,
        `pod ${name} should be the same object as before the stop`,
      )
    }
    const restarts = [...pods.values()].map((p) => `${p.metadata.name} ${p.status.containerStatuses?.[0]?.restartCount ?? 0}`)
    t.diagnostic(
      `restart counts: ${restarts.join(', ')}; web IP ${seen.pods!.get('web')!.status.podIP} -> ${pods.get('web')!.status.podIP}`,
    )

    // The EndpointSlice follows the new pod IP only once the controller manager leads again (40-70 s here).
    const {body, ms, notes} = await fetchUntil(seen.serviceUrl!, 150_000)
    assert.equal(
      body,
      WEB_BODY,
      `Service ${seen.serviceUrl} did not answer within 150 s after the restart; attempts: ${notes.slice(-5).join(' | ')}`,
    )
    t.diagnostic(`Service answered ${secs(ms)} after the pods were Running (${notes.length} failed attempts)`)
  })

  step('the cluster stays initialized and kubeadm did not run again (same CA)', 2 * MINUTE, async () => {
    const definition = TOML.parse(await readFile(join(clusterDir(), 'kspawn.toml'), 'utf8')) as {state?: {initialized?: boolean}}
    assert.equal(definition.state?.initialized, true, `${clusterDir()}/kspawn.toml should have state.initialized = true`)
    assert.equal(await caCert(), seen.ca, 'the control plane CA changed across stop/start: kubeadm init ran again')
  })

  step(
    'destroy leaves no trace: no node, bridge, iptables rule, mount, directory, kubeconfig context or pod route',
    6 * MINUTE,
    async (t) => {
      if (!ownsCluster || !existsSync(join(clusterDir(), 'kspawn.toml'))) {
        t.skip('no cluster to destroy (up did not create one)')
        return
      }
      const routesBefore = await podRoutes(seen.podCidrs)
      const destroy = await cli(['destroy', '-c', CLUSTER], 5 * MINUTE)
      timed(t, 'destroy', destroy)
      assert.equal(destroy.code, 0, `kube-spawn destroy failed: ${tail(destroy)}`)

      assert.deepEqual(await nspawnProcesses(), [], 'no systemd-nspawn process of the cluster may survive destroy')
      assert.equal(await linkExists(BRIDGE), false, `bridge ${BRIDGE} still exists after destroy`)
      for (const veth of seen.veths) assert.equal(await linkExists(veth), false, `the nodes' veth ${veth} still exists after destroy`)
      assert.deepEqual(await clusterRules(), [], `iptables rules with comment kube-spawn:${CLUSTER} remain after destroy`)
      assert.deepEqual(await mountsUnderRoot(), [], `mounts under the state root ${root} remain after destroy`)
      assert.equal(existsSync(clusterDir()), false, `the cluster directory ${clusterDir()} still exists after destroy`)
      const contexts = await kubeconfigContexts()
      assert.ok(!contexts.includes(CONTEXT), `context ${CONTEXT} is still in ${kubeconfig} after destroy`)
      const kubeconfigText = existsSync(kubeconfig) ? await readFile(kubeconfig, 'utf8') : ''
      assert.ok(!kubeconfigText.includes(CONTEXT), `${kubeconfig} still mentions ${CONTEXT} (cluster or user entry) after destroy`)
      assert.deepEqual(
        await podRoutes(seen.podCidrs),
        [],
        `host routes to the pod CIDRs via the node IPs remain after destroy (before: ${routesBefore.join('; ')})`,
      )
      assert.deepEqual(await nodeCgroupDirs(MACHINES), [], "the nodes' cgroup subtrees remain after destroy")
      assert.equal(await userKubeconfigHash(), seen.userKubeconfig, `${USER_KUBECONFIG} changed during the test; only ${kubeconfig} may`)
      t.diagnostic(`host routes removed: ${routesBefore.join('; ') || 'none were present'}`)
    },
    {always: true},
  )
})

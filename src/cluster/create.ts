import {randomBytes} from 'node:crypto'
import {mkdir, readFile, stat} from 'node:fs/promises'

import {type Cluster, type DefinitionOverrides, parseToml, resolveDefinition} from '../config/definition.js'
import {UserError, interruptOf, withNote} from '../errors.js'
import {assertHostReady, checkDisk, examineHost} from '../host/preflight.js'
import {allocateClusterSubnet, allocatePodCidr, hostNetworks} from '../net/allocate.js'
import {nodePaths} from '../node/layout.js'
import {planMachines} from '../node/names.js'
import {nodeFiles} from '../node/node-files.js'
import {kubernetesCreateTasks} from '../kubernetes/tasks.js'
import type {PlanLine} from '../pipeline/runner.js'
import {loadCatalog, selectProvider} from '../plugins/providers.js'
import {withLock} from '../state/store.js'
import type {ClusterContext, Env, HostTask} from '../context/index.js'
import {buildContext, recordBaseImage, runStages} from './context.js'

export const CREATE_STAGES = ['preflight', 'prepare-image', 'prepare-node'] as const

export interface CreateRequest {
  configFile?: string
  overrides: DefinitionOverrides
  dryRun: boolean
  /** Keep what was made when create fails, for debugging. */
  retain?: boolean
}

export interface CreateResult {
  cluster: Cluster
  plan: PlanLine[]
  warnings: string[]
}

/** Reads the definition (file, then flag overrides) and checks it, without touching the state root. */
export async function readDefinition(configFile: string | undefined, overrides: DefinitionOverrides): Promise<Cluster> {
  let raw: Record<string, unknown> = {}
  if (configFile) {
    let text: string
    try {
      text = await readFile(configFile, 'utf8')
    } catch {
      throw new UserError(`cannot read config file ${configFile}`, {hint: 'check the path given to --config'})
    }
    raw = parseToml(text, configFile)
  }
  return resolveDefinition(raw, configFile ?? 'flags', overrides)
}

/** Writes the cluster's environment: host checks, base image, per-node layers, kspawn.toml. */
export async function createCluster(env: Env, request: CreateRequest): Promise<CreateResult> {
  const definition = await readDefinition(request.configFile, request.overrides)
  const name = definition.clusterName
  // Unknown runtimes and images are refused before anything is written.
  const catalog = await loadCatalog(env.config)
  selectProvider(catalog.runtimes, 'container runtime', definition.containerRuntime)
  selectProvider(catalog.images, 'image', definition.image)
  if (request.dryRun) {
    const cluster = await allocate(env, definition)
    const ctx = await buildContext(env, cluster, {dryRun: true})
    const {plan} = await runStages(env, ctx, CREATE_STAGES, createTasks(env))
    return {cluster, plan, warnings: ctx.warnings}
  }
  await env.root.ensure()
  return withLock(env.root, name, async () => {
    if (await env.root.has(name)) {
      throw new UserError(`cluster "${name}" already exists in ${env.root.path}`, {
        hint: `use another --cluster-name, or remove it first with "kube-spawn destroy -c ${name}"`,
      })
    }
    // Allocation and the first save happen under the root lock, so two creates never take one subnet.
    const cluster = await withLock(env.root, '.', async () => {
      const allocated = await allocate(env, definition)
      await env.root.save(allocated)
      return allocated
    })
    try {
      const ctx = await buildContext(env, cluster)
      await runStages(env, ctx, CREATE_STAGES, createTasks(env))
      return {cluster, plan: [], warnings: ctx.warnings}
    } catch (error) {
      if (!request.retain) await env.root.remove(name)
      const interrupt = interruptOf(error, env.signal)
      if (!interrupt) throw error
      throw withNote(
        interrupt,
        request.retain ? `what was made is kept (--retain); remove it with "kube-spawn destroy -c ${name}"` : 'the new cluster was removed',
      )
    }
  })
}

async function allocate(env: Env, definition: Cluster): Promise<Cluster> {
  const others = await Promise.all((await env.root.list()).filter((n) => n !== definition.clusterName).map((n) => env.root.load(n)))
  const clusterSubnet = allocateClusterSubnet(definition, others, await hostNetworks())
  const podCidr = allocatePodCidr(definition, others)
  const cluster = {...definition, network: {...definition.network, clusterSubnet, podCidr}}
  return {...cluster, machines: planMachines(cluster)}
}

/** The host's own create tasks; plugins add theirs (the base image, runtime files) around them. */
export function createTasks(env: Env): HostTask[] {
  return [
    {
      stage: 'preflight',
      title: 'Check the host',
      task: async (ctx, task) => {
        const examined = await examineHost(ctx.host, {stateRoot: env.root.path, kubernetesVersion: ctx.kubernetes.version})
        assertHostReady(examined.failures)
        for (const warning of examined.warnings) ctx.warn(warning)
        task.title = `Checked the host: ${examined.description}`
      },
    },
    {
      stage: 'prepare-image',
      title: 'Check free disk space',
      task: async (ctx) => {
        // The base image may live in a cache on another filesystem; count it only where it would land.
        const cache = await stat(ctx.cacheDir).catch(() => undefined)
        const elsewhere = cache !== undefined && cache.dev !== (await stat(env.root.path)).dev
        assertHostReady(await checkDisk({stateRoot: env.root.path, nodes: ctx.cluster.nodes, imageCached: elsewhere}))
      },
    },
    {
      stage: 'prepare-node',
      title: 'Lay out each node: own layer, identity, address and host fixes',
      task: async (ctx) => {
        await recordBaseImage(ctx)
        await writeNodeIdentities(ctx)
      },
    },
    ...kubernetesCreateTasks(),
  ]
}

/** Each node gets its own copy-on-write layer and identity. The machine-id is random: derived ones repeat in VMs. */
export async function writeNodeIdentities(ctx: ClusterContext): Promise<void> {
  const hosts = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', ...ctx.nodes.map((n) => `${n.ip} ${n.name}`)].join('\n')
  for (const node of ctx.nodes) {
    const paths = nodePaths(ctx.clusterDir, node.name)
    // The node dir keeps other users out; the upper dir becomes the node's "/" and must be 0755.
    await mkdir(paths.dir, {recursive: true, mode: 0o700})
    await Promise.all([paths.upper, paths.work, paths.rootfs].map((dir) => mkdir(dir, {recursive: true, mode: 0o755})))
    if ((await node.readFile('/etc/machine-id'))?.trim().length !== 32) {
      await node.writeFile('/etc/machine-id', `${randomBytes(16).toString('hex')}\n`, 0o444)
    }
    await node.writeFile('/etc/hostname', `${node.name}\n`)
    await node.writeFile('/etc/hosts', `${hosts}\n`)
    for (const file of nodeFiles(ctx, node.ip, node.name)) {
      if (file.link) await node.symlink(file.path, file.link)
      else await node.writeFile(file.path, file.content, file.mode)
    }
  }
}

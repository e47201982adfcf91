import {readFile} from 'node:fs/promises'
import {isAbsolute} from 'node:path'

import {type Cluster, type DefinitionOverrides, parseToml, resolveDefinition} from '../config/definition.js'
import {UserError, interruptOf, withNote} from '../errors.js'
import {assertHostPortsFree, hostMappings} from '../node/network.js'
import {checkBundle} from '../kubernetes/artifacts.js'
import {allocateClusterSubnet, allocatePodCidr, hostNetworks} from '../net/allocate.js'
import {checkPodCidrCapacity} from '../net/pod-cidr.js'
import {planMachines, withRegistryAddress} from '../node/names.js'
import type {PlanLine} from '../pipeline/runner.js'
import {loadCatalog, selectProvider} from '../plugins/providers.js'
import {withLock} from '../state/store.js'
import type {Env} from '../context/index.js'
import {phaseStages} from '../pipeline/pipelines.js'
import type {ClusterContext} from '../context/index.js'
import {assertImageFits} from '../image/prepare.js'
import {assertRuntimeFits} from '../runtime/compat.js'
import {buildContext, runStages} from './context.js'

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
  await validateForCreate(definition)
  const name = definition.clusterName
  // Unknown runtimes and images are refused before anything is written.
  const catalog = await loadCatalog(env.config)
  selectProvider(catalog.runtimes, 'container runtime', definition.containerRuntime)
  selectProvider(catalog.images, 'image', definition.image)
  if (request.dryRun) {
    const cluster = await allocate(env, definition)
    const ctx = await buildContext(env, cluster, {dryRun: true})
    await assertProvidersFit(ctx)
    const {plan} = await runStages(env, ctx, phaseStages('create'))
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
      await assertProvidersFit(ctx)
      await runStages(env, ctx, phaseStages('create'))
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

/**
 * What can be known wrong from the definition alone, before anything is written: every node gets a
 * /24 of the pod CIDR, and an offline bundle has the layout and the Kubernetes version asked for.
 * (The rest of the definition was checked when it was read; loading a saved cluster checks less, so
 * that an existing cluster can always be stopped and destroyed.)
 */
async function validateForCreate(definition: Cluster): Promise<void> {
  checkPodCidrCapacity(definition)
  await assertHostPortsFree(definition)
  if (isAbsolute(definition.kubernetes.source)) await checkBundle(definition.kubernetes.source, definition.kubernetesVersion)
}

async function allocate(env: Env, definition: Cluster): Promise<Cluster> {
  const others = await Promise.all((await env.root.list()).filter((n) => n !== definition.clusterName).map((n) => env.root.load(n)))
  assertPortsUnclaimed(definition, others)
  const clusterSubnet = allocateClusterSubnet(definition, others, await hostNetworks())
  const podCidr = allocatePodCidr(definition, others)
  const cluster = {...definition, network: {...definition.network, clusterSubnet, podCidr}}
  return withRegistryAddress({...cluster, machines: planMachines(cluster)})
}

/** Two clusters' mappings of one host port would shadow each other when both run. */
function assertPortsUnclaimed(definition: Cluster, others: Cluster[]): void {
  for (const mapping of hostMappings(definition)) {
    const other = others.find((c) => hostMappings(c).some((m) => m.hostPort === mapping.hostPort && m.protocol === mapping.protocol))
    if (other)
      throw new UserError(
        `host port ${mapping.hostPort}/${mapping.protocol} of ${mapping.source} is already mapped by cluster "${other.clusterName}"`,
        {
          hint: `choose another ${mapping.setting}, or remove that cluster first`,
        },
      )
  }
}

/** The runtime and the image accept this cluster (their settings, versions, this host): checked before any output. */
async function assertProvidersFit(ctx: ClusterContext): Promise<void> {
  assertRuntimeFits(ctx)
  await assertImageFits(ctx)
}

import {errorMessage} from '../errors.js'

import type {Cluster} from '../config/definition.js'
import {detectHost} from '../host/detect.js'
import {sandboxImage, versionTraits} from '../kubernetes/versions.js'
import {LocalNodeHandle} from '../node/handle.js'
import {isKubernetesNode} from '../node/names.js'
import type {ClusterContext, Env, StageDeclaration} from '../context/index.js'
import {readBaseImage, readProviders} from '../state/cluster-files.js'
import type {PlanLine} from '../pipeline/runner.js'
import {describePlan, planPipeline, runPipeline} from '../pipeline/runner.js'
import {type Offer, loadCatalog, selectProvider} from '../plugins/providers.js'
import type {HostInfo, ImageProvider, RuntimeProvider} from '@kube-spawn/sdk'
import {resolveRuntime, runtimeQuery} from '../runtime/compat.js'
import {run} from '../util/run.js'
import {withInfraPackages} from './infra.js'
import {waitFor} from '../util/wait.js'

export interface ContextOptions {
  dryRun?: boolean
  host?: HostInfo
  /**
   * For stop, destroy and export logs, which must work whatever the plugins do: a missing runtime or
   * image plugin, or a plugin that fails, becomes a warning naming it, and kube-spawn's own tasks run.
   */
  withoutPlugins?: boolean
}

/** Selects the runtime and image the cluster names and builds the context its pipelines run with. */
export async function buildContext(
  env: Env,
  cluster: Cluster,
  {dryRun = false, host, withoutPlugins = false}: ContextOptions = {},
): Promise<ClusterContext> {
  const warnings: string[] = []
  const tolerate = withoutPlugins ? {onPluginFailure: (message: string) => warnings.push(`${message}; ${TEARDOWN_WITHOUT}`)} : {}
  const catalog = await loadCatalog(env.config, tolerate)
  const clusterDir = env.root.clusterDir(cluster.clusterName)
  const recorded = await readProviders(clusterDir)
  const chosen = <T extends {name: string}>(offers: Offer<T>[], kind: 'container runtime' | 'image', name: string, standIn: T) => {
    try {
      return selectProvider(offers, kind, name)
    } catch (error) {
      if (!withoutPlugins) throw error
      const plugin = recorded?.[kind === 'image' ? 'image' : 'runtime'] ?? 'unknown'
      warnings.push(`the ${kind} plugin of this cluster (${plugin}) is missing or broken: ${errorMessage(error)}; ${TEARDOWN_WITHOUT}`)
      return {plugin, provider: standIn}
    }
  }
  const runtime = chosen(catalog.runtimes, 'container runtime', cluster.containerRuntime, absentRuntime(cluster.containerRuntime))
  const image = chosen(catalog.images, 'image', cluster.image, absentImage(cluster.image))
  const baseImage = await readBaseImage(clusterDir)
  const hostInfo = host ?? (await detectHost())
  let runtimeProvider = runtime.provider
  try {
    runtimeProvider = resolveRuntime(runtime.provider, runtimeQuery(cluster, image.provider, hostInfo), runtime.plugin)
    runtimeProvider = withInfraPackages(runtimeProvider, cluster, image.provider.family)
  } catch (error) {
    if (!withoutPlugins) throw error
    warnings.push(`${errorMessage(error)}; ${TEARDOWN_WITHOUT}`)
  }
  const machines = cluster.machines.map((m) => new LocalNodeHandle(m, clusterDir, () => ctx.baseImage?.rootfs, env.signal))
  // Nodes read through to the base image, which the image plugin may set only later (prepare-image).
  const ctx: ClusterContext = {
    baseImage,
    cluster,
    clusterDir,
    cacheDir: env.root.cacheDir,
    runtime: runtimeProvider,
    image: image.provider,
    providerPlugins: {runtime: runtime.plugin, image: image.plugin},
    host: hostInfo,
    kubernetes: {
      version: cluster.kubernetesVersion,
      sandboxImage: sandboxImage(versionTraits(cluster.kubernetesVersion)),
      cgroupDriver: cluster.runtimeConfig.useLegacyCgroupDriver ? 'cgroupfs' : 'systemd',
    },
    machines,
    nodes: machines.filter(isKubernetesNode),
    dryRun,
    pluginConfig: (name) => (cluster.pluginConfig[name] ?? {}) as Record<string, unknown>,
    run: (argv, options) => run(argv, {signal: env.signal, ...options}),
    warn: (message) => warnings.push(message),
    waitFor: (condition, options) => waitFor(condition, {signal: env.signal, ...options}),
    shared: new Map(),
    signal: env.signal,
    warnings,
    catalog,
    withoutPlugins,
    stateRoot: env.root.path,
    startedAt: Date.now(),
  }
  return ctx
}

const TEARDOWN_WITHOUT = "kube-spawn's own teardown runs without that plugin's tasks"

/** Stands in for the runtime of a cluster whose runtime plugin is gone: no tasks of its own, no service to ask. */
function absentRuntime(name: string): RuntimeProvider {
  return {
    name,
    description: 'not installed',
    packages: {},
    commands: [],
    dataDirs: [],
    criSocket: '',
    cgroupDrivers: ['systemd', 'cgroupfs'],
    cniBinDir: '',
    imageImportCommand: [],
    services: [],
    readinessCommand: [],
    needsSocat: false,
  }
}

/** Stands in for the image of a cluster whose image plugin is gone: teardown never builds. */
function absentImage(name: string): ImageProvider {
  return {name, description: 'not installed', family: 'unknown', key: () => name}
}

export interface PipelineOutcome {
  plan: PlanLine[]
  ran: boolean
}

/** Plans the stages; with dryRun returns the plan only, else runs it. */
export async function runStages(env: Env, ctx: ClusterContext, stages: readonly StageDeclaration[]): Promise<PipelineOutcome> {
  const planned = await planPipeline(
    env.config,
    ctx,
    stages,
    ctx.withoutPlugins ? {onPluginFailure: (m) => ctx.warn(`${m}; ${TEARDOWN_WITHOUT}`)} : {},
  )
  if (ctx.dryRun) return {plan: await describePlan(planned, ctx), ran: false}
  await runPipeline(planned, ctx, env.renderer)
  return {plan: [], ran: true}
}

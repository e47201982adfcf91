import type {Config} from '@oclif/core'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {UserError} from '../errors.js'
import {writeFileAtomic} from '../util/fs.js'

import type {Cluster} from '../config/definition.js'
import {detectHost} from '../host/detect.js'
import {sandboxImage, versionTraits} from '../kubernetes/versions.js'
import {LocalNodeHandle} from '../node/handle.js'
import type {CoreTask, PlanLine, RendererName} from '../pipeline/runner.js'
import {describePlan, planPipeline, runPipeline} from '../pipeline/runner.js'
import {type Catalog, loadCatalog, selectProvider} from '../plugins/providers.js'
import type {HostInfo, Stage, StageContext} from '../sdk/index.js'
import type {StateRoot} from '../state/store.js'
import {run} from '../util/run.js'

/** What every service needs: the oclif config (for hooks), the state root and the output policy. */
export interface Env {
  config: Config
  root: StateRoot
  renderer: RendererName
}

/** The host's own context, a StageContext with the concrete node handles. */
export interface ClusterContext extends StageContext {
  readonly nodes: LocalNodeHandle[]
  readonly warnings: string[]
  readonly catalog: Catalog
}

/** Selects the runtime and image the cluster names and builds the context its pipelines run with. */
export async function buildContext(
  env: Env,
  cluster: Cluster,
  {dryRun = false, host}: {dryRun?: boolean; host?: HostInfo} = {},
): Promise<ClusterContext> {
  const catalog = await loadCatalog(env.config)
  const runtime = selectProvider(catalog.runtimes, 'container runtime', cluster.containerRuntime).provider
  const image = selectProvider(catalog.images, 'image', cluster.image).provider
  const clusterDir = env.root.clusterDir(cluster.clusterName)
  const warnings: string[] = []
  const baseImage = await readBaseImage(clusterDir)
  // Nodes read through to the base image, which the image plugin may set only later (prepare-image).
  const ctx: ClusterContext = {
    baseImage,
    cluster,
    clusterDir,
    cacheDir: env.root.cacheDir,
    runtime,
    image,
    host: host ?? (await detectHost()),
    kubernetes: {
      version: cluster.kubernetesVersion,
      sandboxImage: sandboxImage(versionTraits(cluster.kubernetesVersion)),
      cgroupDriver: cluster.runtimeConfig.useLegacyCgroupDriver ? 'cgroupfs' : 'systemd',
    },
    nodes: cluster.machines.map((m) => new LocalNodeHandle(m, clusterDir, () => ctx.baseImage?.rootfs)),
    dryRun,
    pluginConfig: (name) => (cluster.pluginConfig[name] ?? {}) as Record<string, unknown>,
    run: (argv, options) => run(argv, options),
    warn: (message) => warnings.push(message),
    shared: new Map(),
    warnings,
    catalog,
  }
  return ctx
}

export interface PipelineOutcome {
  plan: PlanLine[]
  ran: boolean
}

/** Plans the stages; with dryRun returns the plan only, else runs it. */
export async function runStages(env: Env, ctx: ClusterContext, stages: readonly Stage[], core: CoreTask[]): Promise<PipelineOutcome> {
  const planned = await planPipeline(env.config, ctx, stages, core)
  if (ctx.dryRun) return {plan: await describePlan(planned, ctx), ran: false}
  await runPipeline(planned, ctx, env.renderer)
  return {plan: [], ran: true}
}

const BASE_IMAGE_FILE = 'base-image.json'

/** The base image a cluster's node layers sit on, recorded at create so start uses the very same one. */
export async function recordBaseImage(ctx: StageContext): Promise<void> {
  if (!ctx.baseImage)
    throw new UserError(`image plugin "${ctx.image.name}" set no base image in prepare-image`, {hint: 'fix or reinstall that plugin'})
  await writeFileAtomic(join(ctx.clusterDir, BASE_IMAGE_FILE), `${JSON.stringify(ctx.baseImage)}\n`, 0o600)
}

async function readBaseImage(clusterDir: string): Promise<StageContext['baseImage']> {
  const text = await readFile(join(clusterDir, BASE_IMAGE_FILE), 'utf8').catch(() => undefined)
  return text ? (JSON.parse(text) as StageContext['baseImage']) : undefined
}

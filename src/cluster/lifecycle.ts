import {rm} from 'node:fs/promises'
import {join} from 'node:path'

import {interruptOf, withNote} from '../errors.js'

import {kubernetesArch, kubernetesCacheDir} from '../kubernetes/artifacts.js'
import {exists} from '../util/fs.js'

import type {Cluster} from '../config/definition.js'
import type {PlanLine} from '../pipeline/runner.js'
import type {Stage} from '../sdk/index.js'
import {withLock} from '../state/store.js'
import {POWER_OFF_TIMEOUT_MS, bootNodes, endNodes, forgetNodes} from '../node/boot.js'
import {ensureNetwork, removeNetwork} from '../node/network.js'
import type {ClusterContext, Env, HostTask} from '../context/index.js'
import {buildContext, runStages} from './context.js'
import {collectLogs, timestampName} from './diagnostics.js'
import {kubernetesStartTasks, kubernetesStopTasks, KUBERNETES_STAGES, removeKubeconfigContext} from '../kubernetes/tasks.js'

export const START_STAGES: readonly Stage[] = ['pre-boot', 'boot', 'post-boot']
export const STOP_STAGES: readonly Stage[] = ['stop', 'power-off']
export const DESTROY_STAGES: readonly Stage[] = ['destroy', 'remove']

export interface LifecycleResult {
  cluster: Cluster
  plan: PlanLine[]
  warnings: string[]
}

export interface StartOptions {
  dryRun?: boolean
  skipClusterInit?: boolean
  /** Keep the nodes running after an interrupt, for debugging. */
  retain?: boolean
  /** The caller cleans up after an interrupt (up destroys the new cluster): leave the nodes to it. */
  cleanupByCaller?: boolean
  /** Where a failure's logs go, in a <timestamp> directory; default <cluster dir>/logs. */
  logsParent?: string
}

/**
 * Boots the nodes and, unless skipClusterInit, brings up Kubernetes on them (or back, after a stop).
 * A failure first saves what explains it (collectLogs) and names the directory in its error; an
 * interrupt stops the nodes again, so the cluster is left stopped and startable.
 */
export async function startCluster(env: Env, name: string, options: StartOptions = {}): Promise<LifecycleResult> {
  const {dryRun = false, skipClusterInit = false} = options
  return inCluster(env, name, dryRun, async (ctx) => {
    try {
      return await runStart(env, ctx, skipClusterInit)
    } catch (error) {
      throw dryRun ? error : await afterFailedStart(ctx, error, options)
    }
  })
}

async function afterFailedStart(
  ctx: ClusterContext,
  error: unknown,
  {retain = false, cleanupByCaller = false, logsParent}: StartOptions,
): Promise<unknown> {
  const interrupt = interruptOf(error, ctx.signal)
  if (interrupt) {
    if (cleanupByCaller) return interrupt
    if (retain) return withNote(interrupt, 'the nodes keep running (--retain); stop them with "kube-spawn stop"')
    await endNodes(ctx, 0)
    return withNote(interrupt, `the nodes were stopped; start them again with "kube-spawn start -c ${ctx.cluster.clusterName}"`)
  }
  const dir = await collectLogs(ctx, join(logsParent ?? join(ctx.clusterDir, 'logs'), timestampName()))
  return withNote(error, `logs saved in ${dir}`)
}

/** The start plan of a cluster that exists only as a definition yet (up --dry-run). */
export async function planStart(env: Env, cluster: Cluster, skipClusterInit = false): Promise<PlanLine[]> {
  const ctx = await buildContext(env, cluster, {dryRun: true})
  return (await runStart(env, ctx, skipClusterInit)).plan
}

function runStart(env: Env, ctx: ClusterContext, skipClusterInit: boolean) {
  const stages = skipClusterInit ? START_STAGES : [...START_STAGES, ...KUBERNETES_STAGES]
  // The binaries are mounted on every boot (pre-boot), so even a --skip-cluster-init boot of an initialized cluster has them.
  const core = [...startTasks(), ...kubernetesStartTasks().filter((t) => !skipClusterInit || t.stage === 'pre-boot')]
  return runStages(env, ctx, stages, core)
}

/** Powers every node off; their layers and data stay. Works without the cluster's plugins. */
export async function stopCluster(env: Env, name: string, {dryRun = false} = {}): Promise<LifecycleResult> {
  return inCluster(env, name, dryRun, (ctx) => runStages(env, ctx, STOP_STAGES, stopTasks()), {withoutPlugins: true})
}

/**
 * Removes every trace of the cluster: nodes, layers, bridge, rules, mounts, cgroups, kubeconfig
 * context, directory. Works without the cluster's plugins.
 */
export async function destroyCluster(env: Env, name: string, {dryRun = false} = {}): Promise<LifecycleResult> {
  return inCluster(env, name, dryRun, (ctx) => runStages(env, ctx, DESTROY_STAGES, destroyTasks(env)), {
    persist: false,
    withoutPlugins: true,
  })
}

/** Saves the logs of a cluster's nodes (running or not) into dir, default <cluster dir>/logs/<timestamp>. */
export async function exportLogs(env: Env, name: string, dir?: string): Promise<{path: string; warnings: string[]}> {
  const cluster = await env.root.load(name)
  const ctx = await buildContext(env, cluster, {withoutPlugins: true})
  const path = await collectLogs(ctx, dir ?? join(ctx.clusterDir, 'logs', timestampName()))
  return {path, warnings: ctx.warnings}
}

/** Runs work on the loaded cluster under its lock, and records the machines' state afterwards, even on failure. */
async function inCluster(
  env: Env,
  name: string,
  dryRun: boolean,
  work: (ctx: ClusterContext) => Promise<{plan: PlanLine[]}>,
  {persist = true, withoutPlugins = false} = {},
): Promise<LifecycleResult> {
  // An unknown cluster is an error before anything, even a lock file, is written.
  await env.root.load(name)
  const act = async () => {
    const cluster = await env.root.load(name)
    const ctx = await buildContext(env, cluster, {dryRun, withoutPlugins})
    try {
      const {plan} = await work(ctx)
      return {cluster: ctx.cluster, plan, warnings: ctx.warnings}
    } finally {
      if (persist && !dryRun) await env.root.save(ctx.cluster)
    }
  }
  return dryRun ? act() : withLock(env.root, name, act)
}

export function startTasks(): HostTask[] {
  return [
    {
      stage: 'pre-boot',
      title: 'Create the cluster bridge and its firewall rules',
      task: async (ctx, task) => {
        await ensureNetwork(ctx.cluster)
        task.title = `Create the cluster bridge and its firewall rules (${ctx.cluster.network.egress ? 'egress with NAT' : 'isolated'})`
      },
    },
    {
      stage: 'pre-boot',
      title: 'Add the bind mounts from the definition',
      skip: (ctx) => (allUserMounts(ctx.cluster) === 0 ? 'the definition has no [bindmount] entries' : false),
      task: async (ctx) => {
        for (const node of ctx.nodes) {
          const own = ctx.cluster.machines.find((m) => m.name === node.name)?.bindmount
          for (const b of [ctx.cluster.bindmount, ...(own ? [own] : [])]) {
            for (const m of b.readOnly) node.addBindMount({...m, readOnly: true})
            for (const m of b.readWrite) node.addBindMount(m)
          }
        }
      },
    },
    {
      stage: 'boot',
      title: 'Boot the nodes',
      task: async (ctx, task) => {
        await bootNodes(ctx, task)
      },
    },
  ]
}

function stopTasks(): HostTask[] {
  return [
    ...kubernetesStopTasks(),
    {
      stage: 'power-off',
      title: 'Power the nodes off',
      task: async (ctx, task) => endNodes(ctx, POWER_OFF_TIMEOUT_MS, task),
    },
  ]
}

function destroyTasks(env: Env): HostTask[] {
  return [
    {stage: 'remove', title: 'Stop any running node', task: async (ctx) => endNodes(ctx, 0)},
    {stage: 'remove', title: 'Remove the bridge and firewall rules', task: async (ctx) => removeNetwork(ctx.cluster.clusterName)},
    {stage: 'remove', title: "Remove the nodes' cgroups and registrations", task: async (ctx) => forgetNodes(ctx)},
    {
      stage: 'remove',
      title: 'Remove the kubeconfig context',
      task: async (ctx) => {
        // Use the cluster's own kubectl from the cache; the host may have none.
        const kubectl = join(kubernetesCacheDir(ctx.cacheDir, ctx.cluster.kubernetesVersion, kubernetesArch()), 'kubectl')
        await removeKubeconfigContext(ctx.cluster.clusterName, (await exists(kubectl)) ? kubectl : undefined)
      },
    },
    {
      stage: 'remove',
      title: 'Remove the cluster directory',
      task: async (ctx) => {
        await rm(ctx.clusterDir, {recursive: true, force: true})
        await env.root.remove(ctx.cluster.clusterName)
      },
    },
  ]
}

function allUserMounts(cluster: Cluster): number {
  const count = (b: Cluster['bindmount']) => b.readOnly.length + b.readWrite.length
  return count(cluster.bindmount) + cluster.machines.reduce((n, m) => n + count(m.bindmount), 0)
}

import {join} from 'node:path'

import type {Cluster} from '../config/definition.js'
import type {ClusterContext, Env} from '../context/index.js'
import {interruptOf, withNote} from '../errors.js'
import {endNodes} from '../node/boot.js'
import {phaseStages} from '../pipeline/pipelines.js'
import type {PlanLine} from '../pipeline/runner.js'
import {withLock} from '../state/store.js'
import {buildContext, runStages} from './context.js'
import {collectLogs, timestampName} from './diagnostics.js'

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
  return runStages(env, ctx, phaseStages('start', {skipClusterInit}))
}

/** Powers every node off; their layers and data stay. Works without the cluster's plugins. */
export async function stopCluster(env: Env, name: string, {dryRun = false} = {}): Promise<LifecycleResult> {
  return inCluster(env, name, dryRun, (ctx) => runStages(env, ctx, phaseStages('stop')), {withoutPlugins: true})
}

/**
 * Removes every trace of the cluster: nodes, layers, bridge, rules, mounts, cgroups, kubeconfig
 * context, directory. Works without the cluster's plugins.
 */
export async function destroyCluster(env: Env, name: string, {dryRun = false} = {}): Promise<LifecycleResult> {
  return inCluster(env, name, dryRun, (ctx) => runStages(env, ctx, phaseStages('destroy')), {
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

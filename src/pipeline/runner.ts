import type {Config} from '@oclif/core'
import {Listr, PRESET_TIMER, type ListrRendererValue} from 'listr2'

import {UserError, errorMessage} from '../errors.js'
import {type DispatchOptions, dispatch, shortPluginName} from '../plugins/dispatch.js'
import type {ClusterContext, HostTaskWrapper, RendererName, StageDeclaration} from '../context/index.js'
import type {Stage, StageContext, StageTask} from '@kube-spawn/sdk'

export const HOST_OWNER = 'kube-spawn'

export interface PlannedTask {
  stage: Stage
  /** "kube-spawn" for the host's own tasks, else the short name of the contributing plugin. */
  owner: string
  task: StageTask
}

export interface PlanLine {
  stage: Stage
  owner: string
  title: string
  /** Why the task would not run, when it would not. */
  skipped?: string
}

/**
 * Collects the tasks of the declared stages (pipelines.ts), in order: for each stage the host's own
 * tasks, then the tasks that plugins return from the kube-spawn:tasks hook, in plugin-name order.
 */
export async function planPipeline(
  config: Config,
  ctx: ClusterContext,
  stages: readonly StageDeclaration[],
  options: DispatchOptions = {},
): Promise<PlannedTask[]> {
  const planned: PlannedTask[] = []
  for (const {stage, host} of stages) {
    // The host's tasks get the host's full context; listr hands every task the same object as a StageContext.
    for (const {title, titleFor, task, skip} of host) {
      planned.push({
        stage,
        owner: HOST_OWNER,
        task: {
          title: titleFor ? await titleFor(ctx) : title,
          task: (_ctx, wrapper) => task(ctx, wrapper as HostTaskWrapper),
          skip: skip && (() => skip(ctx)),
        },
      })
    }
    for (const {plugin, result} of await dispatch(config, 'kube-spawn:tasks', {stage, ctx}, options)) {
      for (const task of result) planned.push({stage, owner: shortPluginName(plugin), task: attributed(plugin, stage, task)})
    }
  }
  return planned
}

/**
 * The plugin's task with its skip() and enabled() made to name the plugin when they throw: listr2
 * would otherwise report only the bare message ("kube-spawn: skip blew up").
 */
function attributed(plugin: string, stage: Stage, task: StageTask): StageTask {
  const named =
    <A extends unknown[], R>(what: string, fn: (...args: A) => R | Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await fn(...args)
      } catch (error) {
        throw new UserError(`plugin ${plugin}: ${what}() of its task "${task.title}" in stage ${stage} failed: ${errorMessage(error)}`, {
          hint: 'fix or uninstall that plugin (kube-spawn plugins)',
          cause: error,
        })
      }
    }
  return {
    ...task,
    skip: typeof task.skip === 'function' ? named('skip', task.skip) : task.skip,
    enabled: typeof task.enabled === 'function' ? named('enabled', task.enabled) : task.enabled,
  }
}

/** What --dry-run prints: every task with its owner, and the reason where it would be skipped. */
export async function describePlan(planned: PlannedTask[], ctx: StageContext): Promise<PlanLine[]> {
  const lines: PlanLine[] = []
  for (const {stage, owner, task} of planned) {
    const title = (typeof task.title === 'string' ? task.title : '') || '(untitled)'
    const enabled = typeof task.enabled === 'function' ? await task.enabled(ctx) : (task.enabled ?? true)
    const skip = enabled ? (typeof task.skip === 'function' ? await task.skip(ctx) : task.skip) : 'not enabled here'
    lines.push({stage, owner, title, ...(skip ? {skipped: typeof skip === 'string' ? skip : 'skipped'} : {})})
  }
  return lines
}

export function formatPlan(heading: string, lines: PlanLine[]): string {
  const out = [heading]
  let stage: Stage | undefined
  for (const line of lines) {
    if (line.stage !== stage) {
      stage = line.stage
      out.push(`  ${stage}`)
    }
    out.push(`    [${line.owner}] ${line.title}${line.skipped ? `  (skipped: ${line.skipped})` : ''}`)
  }
  if (lines.length === 0) out.push('  (nothing to do)')
  return out.join('\n')
}

/** How long an interrupted task may take to notice the abort and settle before the pipeline gives up on it. */
export const ABORT_GRACE_MS = 10_000

/**
 * Runs the planned tasks: one parent task per stage, its tasks inserted with task.newListr and titled
 * [owner]. When ctx.signal aborts, no further task starts and the running one is given ABORT_GRACE_MS
 * to settle (its commands are killed through the signal) before the run rejects with the abort reason.
 */
export async function runPipeline(planned: PlannedTask[], ctx: StageContext, renderer: RendererName): Promise<void> {
  const stages = [...new Set(planned.map((p) => p.stage))]
  const list = new Listr<StageContext, ListrRendererValue, ListrRendererValue>(
    stages.map((stage) => ({
      title: stage,
      // Each stage shows how long it took, on a terminal and in CI logs alike.
      rendererOptions: {timer: PRESET_TIMER},
      fallbackRendererOptions: {timer: PRESET_TIMER},
      task: (_ctx, task) =>
        task.newListr(
          planned.filter((p) => p.stage === stage).map(({owner, task: t}) => labelled(owner, t, ctx.signal)),
          {concurrent: false, exitOnError: true},
        ),
    })),
    {
      ctx,
      renderer,
      fallbackRenderer: 'simple',
      rendererOptions: {collapseSubtasks: false, showErrorMessage: false},
      exitOnError: true,
      // listr2 would exit the process on SIGINT; kube-spawn tears down first (util/interrupt.ts).
      registerSignalListeners: false,
    } as never,
  )
  await list.run()
}

/** Prefixes the title with [owner], also when the task retitles itself while it runs; stops at an abort. */
function labelled(owner: string, t: StageTask, signal: AbortSignal | undefined): StageTask {
  const label = (title: unknown) => `[${owner}] ${typeof title === 'string' ? title : ''}`
  return {
    ...t,
    title: label(t.title),
    task: async (ctx, wrapper) => {
      signal?.throwIfAborted()
      const work = t.task(
        ctx,
        new Proxy(wrapper, {
          set: (target, prop, value) => Reflect.set(target, prop, prop === 'title' ? label(value) : value),
          get: (target, prop) => {
            const value = Reflect.get(target, prop)
            return typeof value === 'function' ? value.bind(target) : value
          },
        }),
      )
      return signal ? settleOrAbort(Promise.resolve(work), signal) : work
    },
  }
}

/** The work's own outcome; after an abort, the abort reason once the work settles or the grace runs out. */
async function settleOrAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort: () => void = () => undefined
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', onAbort, {once: true})
  })
  try {
    const first = await Promise.race([
      work.then(
        () => 'done' as const,
        () => 'done' as const,
      ),
      aborted.then(() => 'aborted' as const),
    ])
    // A command killed by the terminal's own Ctrl-C may fail the work just before the abort is seen.
    if (first === 'done') return await work.catch((error: unknown) => Promise.reject(signal.aborted ? signal.reason : error))
    await Promise.race([work.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, ABORT_GRACE_MS).unref())])
    throw signal.reason
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

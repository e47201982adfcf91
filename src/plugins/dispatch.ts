import type {Config, Interfaces} from '@oclif/core'
import type {Hooks} from '@oclif/core/hooks'
import {type KubeSpawnHooks, answerProblems} from '@kube-spawn/sdk'

import {UserError, errorMessage} from '../errors.js'
import {API_REFUSAL_HINT, type PluginManifest, apiRefusal} from './compat.js'
import {locateSyntaxError, locateThrow} from './locate.js'

export const HOOK_TIMEOUT_MS = 30_000

export interface HookAnswer<T> {
  plugin: string
  result: T
}

type KubeSpawnEvent = keyof KubeSpawnHooks
/** oclif's runHook takes the hook map as a type parameter; kube-spawn's hooks beside oclif's own. */
type HostHooks = Hooks & KubeSpawnHooks

export interface DispatchOptions {
  timeoutMs?: number
  /**
   * Teardown must not depend on plugins: with this set, a failing plugin is reported here (and its
   * answer left out) instead of failing the command.
   */
  onPluginFailure?: (message: string) => void
}

/** A plugin's failure: what the user reads, and what to do. */
interface PluginProblem {
  plugin: string
  message: string
  hint: string
  cause?: unknown
}

/**
 * The one way kube-spawn runs its hooks. Before any plugin code runs, plugins whose plugin API range
 * does not admit the host's are refused. oclif runs the handlers concurrently, returns them in
 * completion order and swallows failures; this sorts the answers by plugin name, checks each against
 * the SDK's types, turns any failure into an error that names the plugin (with file and line where
 * there is one), and bounds each handler with a timeout.
 */
export async function dispatch<K extends KubeSpawnEvent>(
  config: Config,
  event: K,
  options: KubeSpawnHooks[K]['options'],
  {timeoutMs = HOOK_TIMEOUT_MS, onPluginFailure}: DispatchOptions = {},
): Promise<Array<HookAnswer<KubeSpawnHooks[K]['return']>>> {
  const hooked = config.getPluginsList().filter((plugin) => (plugin.hooks[event] ?? []).length > 0)
  const problems: PluginProblem[] = []
  const refused = new Set<string>()
  for (const plugin of hooked) {
    const refusal = apiRefusal(plugin.pjson as unknown as PluginManifest)
    if (refusal) {
      refused.add(plugin.name)
      problems.push({plugin: plugin.name, message: refusal, hint: API_REFUSAL_HINT})
    }
  }
  if (problems.length > 0 && !onPluginFailure) throw asError(problems[0])

  // oclif's timeout timer is unref'd: a handler whose promise never settles and that holds no handle
  // of its own would let the process exit in the middle of the hook. Keep the event loop alive until
  // runHook has returned, so that the timeout fires and names the plugin.
  const keepAlive = setInterval(() => {}, 60_000)
  let outcome
  try {
    outcome = await config.runHook<K, HostHooks>(event, options as HostHooks[K]['options'], timeoutMs, true)
  } finally {
    clearInterval(keepAlive)
  }
  const byName = new Map(hooked.map((plugin) => [plugin.name, plugin]))
  for (const {plugin, error} of outcome.failures) {
    if (refused.has(plugin.name)) continue
    problems.push(await failureProblem(byName.get(plugin.name) ?? plugin, event, error))
  }
  const answers: Array<HookAnswer<KubeSpawnHooks[K]['return']>> = []
  for (const {plugin, result} of outcome.successes) {
    if (refused.has(plugin.name)) continue
    const wrong = answerProblems(event, result)
    if (wrong.length === 0) answers.push({plugin: plugin.name, result: result as KubeSpawnHooks[K]['return']})
    else
      problems.push({
        plugin: plugin.name,
        message: `plugin ${plugin.name} answered ${event} with what the SDK's types do not allow: ${wrong.join('; ')}`,
        hint: 'fix the plugin (its answer must fit @kube-spawn/sdk), or uninstall it',
      })
  }
  problems.sort((a, b) => a.plugin.localeCompare(b.plugin))
  if (onPluginFailure) for (const problem of problems) onPluginFailure(problem.message)
  else if (problems.length > 0) throw asError(problems[0])
  return answers.sort((a, b) => a.plugin.localeCompare(b.plugin))
}

async function failureProblem(plugin: Interfaces.Plugin, event: string, error: unknown): Promise<PluginProblem> {
  const targets = (plugin.hooks[event] ?? []).map((hook) => hook.target)
  const where = error instanceof SyntaxError ? await locateSyntaxError(plugin.root, targets) : locateThrow(plugin.root, error)
  // A plugin's error may carry its own hint, e.g. for a bad [plugin-config.<name>] table.
  const hint = (error as {hint?: unknown} | undefined)?.hint
  return {
    plugin: plugin.name,
    message: `plugin ${plugin.name} failed in hook ${event}: ${errorMessage(error).split('\n')[0]}${where ? ` (${where})` : ''}`,
    hint: typeof hint === 'string' ? hint : 'fix or uninstall that plugin (kube-spawn plugins)',
    cause: error,
  }
}

function asError(problem: PluginProblem): UserError {
  return new UserError(problem.message, {hint: problem.hint, cause: problem.cause})
}

/** The short plugin name shown in task titles: "@kube-spawn/runtime-containerd" → "runtime-containerd". */
export function shortPluginName(name: string): string {
  return name.replace(/^@[^/]+\//, '').replace(/^kube-spawn-plugin-/, '')
}

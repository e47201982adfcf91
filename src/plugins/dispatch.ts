import type {Config} from '@oclif/core'

import {UserError, errorMessage} from '../errors.js'
import type {KubeSpawnHooks} from '../sdk/index.js'

export const HOOK_TIMEOUT_MS = 30_000

export interface HookAnswer<T> {
  plugin: string
  result: T
}

type KubeSpawnEvent = 'kube-spawn:providers' | 'kube-spawn:tasks'

export interface DispatchOptions {
  timeoutMs?: number
  /**
   * Teardown must not depend on plugins: with this set, a failing plugin is reported here (and its
   * answer left out) instead of failing the command.
   */
  onPluginFailure?: (message: string) => void
}

/**
 * The one way kube-spawn runs its hooks. oclif runs the handlers concurrently, returns them in
 * completion order and swallows failures; this sorts the answers by plugin name, turns any failure
 * into an error that names the plugin, and bounds each handler with a timeout.
 */
export async function dispatch<K extends KubeSpawnEvent>(
  config: Config,
  event: K,
  options: KubeSpawnHooks[K]['options'],
  {timeoutMs = HOOK_TIMEOUT_MS, onPluginFailure}: DispatchOptions = {},
): Promise<Array<HookAnswer<KubeSpawnHooks[K]['return']>>> {
  // oclif's timeout timer is unref'd: a handler whose promise never settles and that holds no handle
  // of its own would let the process exit in the middle of the hook. Keep the event loop alive until
  // runHook has returned, so that the timeout fires and names the plugin.
  const keepAlive = setInterval(() => {}, 60_000)
  let outcome
  try {
    outcome = await config.runHook<K, KubeSpawnHooks>(event, options, timeoutMs, true)
  } finally {
    clearInterval(keepAlive)
  }
  const {successes, failures} = outcome
  const sorted = [...failures].sort((a, b) => a.plugin.name.localeCompare(b.plugin.name))
  const describe = (failure: (typeof sorted)[number]) =>
    `plugin ${failure.plugin.name} failed in hook ${event}: ${errorMessage(failure.error)}`
  if (onPluginFailure) for (const failure of sorted) onPluginFailure(describe(failure))
  else if (sorted.length > 0) {
    // A plugin's error may carry its own hint, e.g. for a bad [plugin-config.<name>] table.
    const hint = (sorted[0].error as {hint?: unknown}).hint
    throw new UserError(describe(sorted[0]), {
      hint: typeof hint === 'string' ? hint : 'fix or uninstall that plugin (kube-spawn plugins)',
      cause: sorted[0].error,
    })
  }
  return successes.map(({plugin, result}) => ({plugin: plugin.name, result})).sort((a, b) => a.plugin.localeCompare(b.plugin))
}

/** The short plugin name shown in task titles: "@kube-spawn/runtime-containerd" → "runtime-containerd". */
export function shortPluginName(name: string): string {
  return name.replace(/^@[^/]+\//, '').replace(/^kube-spawn-plugin-/, '')
}

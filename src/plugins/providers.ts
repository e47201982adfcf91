import type {Config} from '@oclif/core'

import {UserError} from '../errors.js'
import type {ImageProvider, RuntimeProvider, WorkaroundInfo} from '@kube-spawn/sdk'
import {type DispatchOptions, dispatch, shortPluginName} from './dispatch.js'

export interface Offer<T> {
  plugin: string
  provider: T
}

export interface Catalog {
  runtimes: Offer<RuntimeProvider>[]
  images: Offer<ImageProvider>[]
  workarounds: Offer<WorkaroundInfo>[]
}

/** Asks every installed plugin what it provides. */
export async function loadCatalog(config: Config, options: DispatchOptions = {}): Promise<Catalog> {
  const answers = await dispatch(config, 'kube-spawn:providers', {}, options)
  const offers = <T>(pick: (p: (typeof answers)[number]['result']) => T[] | undefined): Offer<T>[] =>
    answers.flatMap(({plugin, result}) => (pick(result ?? {}) ?? []).map((provider) => ({plugin: shortPluginName(plugin), provider})))
  return {
    runtimes: offers((r) => r.runtimes),
    images: offers((r) => r.images),
    workarounds: offers((r) => r.workarounds),
  }
}

/** Exactly one provider must answer to a name; zero or several is an error that says what is installed. */
export function selectProvider<T extends {name: string}>(offers: Offer<T>[], kind: 'container runtime' | 'image', name: string): Offer<T> {
  const matches = offers.filter((o) => o.provider.name === name)
  if (matches.length === 1) return matches[0]
  const installed = [...new Set(offers.map((o) => o.provider.name))].sort()
  if (matches.length === 0) {
    throw new UserError(`unknown ${kind} "${name}"`, {
      hint:
        installed.length > 0
          ? `installed: ${installed.join(', ')}; or install a plugin that provides it`
          : 'no plugin provides one; install one with "kube-spawn plugins:install"',
    })
  }
  throw new UserError(`${kind} "${name}" is provided by several plugins: ${matches.map((m) => m.plugin).join(', ')}`, {
    hint: 'uninstall all but one of them',
  })
}

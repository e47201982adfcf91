import {API_VERSION, apiVersionFits} from '@kube-spawn/sdk'

/** The part of a plugin's package.json kube-spawn reads: `"kube-spawn": {"apiVersion": "^1.0"}`. */
export interface PluginManifest {
  name: string
  version?: string
  'kube-spawn'?: {apiVersion?: unknown}
}

/** Why the host must not load this plugin (its plugin API range does not admit the host's), or undefined. */
export function apiRefusal(pjson: PluginManifest, api: string = API_VERSION): string | undefined {
  const range = pjson['kube-spawn']?.apiVersion
  const who = `plugin ${pjson.name}${pjson.version ? ` ${pjson.version}` : ''}`
  if (range === undefined)
    return `${who} does not say which plugin API it supports (no "kube-spawn": {"apiVersion": "…"} in its package.json); this kube-spawn has plugin API ${api}`
  if (typeof range !== 'string' || !apiVersionFits(range, api))
    return `${who} supports plugin API ${JSON.stringify(range)}, but this kube-spawn has plugin API ${api}`
  return undefined
}

export const API_REFUSAL_HINT =
  'install a version of the plugin made for this kube-spawn, or uninstall it (kube-spawn plugins:uninstall NAME)'

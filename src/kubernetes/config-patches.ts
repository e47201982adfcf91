/**
 * kubernetes.config-patches: YAML patches of the kubeadm config documents kube-spawn renders, as kind's
 * kubeadmConfigPatches. A patch selects documents by kind (and by apiVersion when it names one) and is
 * merged into each: maps recursively, scalars and lists replaced, null deletes the key. Pure.
 */
import {parse} from 'yaml'

import type {YamlValue} from './yaml.js'

export type YamlMap = {[key: string]: YamlValue}

/** Which documents a patch applies to. */
export interface DocumentType {
  apiVersion: string
  kind: string
}

export interface ConfigPatch {
  kind: string
  apiVersion?: string
  /** Everything but kind and apiVersion: what is merged. */
  fields: YamlMap
}

function isMap(value: unknown): value is YamlMap {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype
}

/** Parses one patch; throws an Error with a one-line reason. */
export function parseConfigPatch(text: string): ConfigPatch {
  let value: unknown
  try {
    // kubeadm reads YAML 1.1, so a patch means what the same lines would mean in kubeadm's own file.
    value = parse(text, {version: '1.1', logLevel: 'error'})
  } catch (error) {
    throw new Error(`does not parse as YAML: ${(error as Error).message.split('\n')[0].replace(/:$/, '')}`, {cause: error})
  }
  if (!isMap(value)) throw new Error('is not a YAML map')
  const {kind, apiVersion, ...fields} = value
  if (typeof kind !== 'string') throw new Error('has no kind')
  if (apiVersion !== undefined && typeof apiVersion !== 'string') throw new Error('has an apiVersion that is not a string')
  return {kind, apiVersion, fields}
}

export function patchMatches(patch: ConfigPatch, document: DocumentType): boolean {
  return patch.kind === document.kind && (patch.apiVersion === undefined || patch.apiVersion === document.apiVersion)
}

/** `patch` merged into `target`: maps merge key by key (new keys last), anything else replaces, null deletes. */
export function mergePatch(target: YamlValue, patch: YamlValue): YamlValue {
  if (!isMap(patch)) return patch
  const merged: YamlMap = isMap(target) ? {...target} : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key]
    else merged[key] = mergePatch(merged[key], value)
  }
  return merged
}

/** Applies the patches, in order, to each document they select. */
export function applyConfigPatches(documents: YamlMap[], patches: readonly string[]): YamlMap[] {
  const parsed = patches.map(parseConfigPatch)
  return documents.map((document) =>
    parsed
      .filter((patch) => patchMatches(patch, {apiVersion: String(document.apiVersion), kind: String(document.kind)}))
      .reduce<YamlMap>((merged, patch) => mergePatch(merged, patch.fields) as YamlMap, document),
  )
}

import {Flags} from '@oclif/core'

import type {CreateRequest} from './cluster/create.js'
import type {DefinitionOverrides} from './config/definition.js'

/** Flags that describe a new cluster (create, up). */
export const definitionFlags = {
  config: Flags.file({summary: 'Cluster definition (kspawn.toml) to read.', exists: false}),
  nodes: Flags.integer({summary: 'Number of Kubernetes nodes (control planes + workers); overrides the file.'}),
  'control-planes': Flags.integer({
    summary: 'Control planes among the nodes: 1, or 3, 5, 7 behind a haproxy load balancer; overrides the file.',
  }),
  'kubernetes-version': Flags.string({summary: 'Kubernetes release, e.g. v1.20.2; overrides the file.'}),
  'container-runtime': Flags.string({summary: 'Container runtime plugin, e.g. containerd; overrides the file.'}),
  image: Flags.string({summary: 'Base image plugin, e.g. debian; overrides the file.'}),
  retain: Flags.boolean({summary: 'Keep what was made when the command fails, for debugging.'}),
}

/** The definition flags that decide a base image (image build). */
export const imageFlags = {
  config: definitionFlags.config,
  'container-runtime': definitionFlags['container-runtime'],
  image: definitionFlags.image,
}

export const dryRunFlag = {
  'dry-run': Flags.boolean({summary: 'Print the pipeline that would run, with the plugin behind each task, and change nothing.'}),
}

type OverrideFlags = {
  'cluster-name'?: string
  nodes?: number
  'control-planes'?: number
  'kubernetes-version'?: string
  'container-runtime'?: string
  image?: string
}

/** What create's and up's flags (definitionFlags, dryRunFlag) ask for. */
export function createRequestFrom(flags: OverrideFlags & {config?: string; 'dry-run'?: boolean; retain?: boolean}): CreateRequest {
  return {configFile: flags.config, overrides: overridesFrom(flags), dryRun: flags['dry-run'] ?? false, retain: flags.retain}
}

function overridesFrom(flags: OverrideFlags): DefinitionOverrides {
  return {
    clusterName: flags['cluster-name'],
    nodes: flags.nodes,
    controlPlanes: flags['control-planes'],
    kubernetesVersion: flags['kubernetes-version'],
    containerRuntime: flags['container-runtime'],
    image: flags.image,
  }
}

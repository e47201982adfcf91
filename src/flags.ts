import {Flags} from '@oclif/core'

import type {DefinitionOverrides} from './config/definition.js'

/** Flags that describe a new cluster (create, up). */
export const definitionFlags = {
  config: Flags.file({summary: 'Cluster definition (kspawn.toml) to read.', exists: false}),
  nodes: Flags.integer({summary: 'Number of nodes (1 control plane + workers); overrides the file.'}),
  'kubernetes-version': Flags.string({summary: 'Kubernetes release, e.g. v1.20.2; overrides the file.'}),
  'container-runtime': Flags.string({summary: 'Container runtime plugin, e.g. containerd; overrides the file.'}),
  image: Flags.string({summary: 'Base image plugin, e.g. debian; overrides the file.'}),
  retain: Flags.boolean({summary: 'Keep what was made when the command fails, for debugging.'}),
}

export const dryRunFlag = {
  'dry-run': Flags.boolean({summary: 'Print the pipeline that would run, with the plugin behind each task, and change nothing.'}),
}

export function overridesFrom(flags: {
  'cluster-name'?: string
  nodes?: number
  'kubernetes-version'?: string
  'container-runtime'?: string
  image?: string
}): DefinitionOverrides {
  return {
    clusterName: flags['cluster-name'],
    nodes: flags.nodes,
    kubernetesVersion: flags['kubernetes-version'],
    containerRuntime: flags['container-runtime'],
    image: flags.image,
  }
}

/** The kubeconfig steps: admin.conf merged into the user's kubeconfig at start, its context removed at destroy. */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {HostStep} from '../context/index.js'
import {exists} from '../util/fs.js'
import {kubernetesArch, kubernetesCacheDir} from './artifacts.js'
import {ADMIN_CONF} from './api.js'
import {artifacts} from './binaries.js'
import {mergeKubeconfig, removeKubeconfigContext} from './kubeconfig.js'

export const writeKubeconfig: HostStep = {
  title: 'Write the kubeconfig',
  task: async (ctx, task) => {
    const adminConf = await readFile(join(ctx.clusterDir, ADMIN_CONF), 'utf8')
    const merged = await mergeKubeconfig({cluster: ctx.cluster.clusterName, adminConf, kubectl: artifacts(ctx).kubectl})
    task.title = `Wrote ${join(ctx.clusterDir, ADMIN_CONF)} and context ${merged.context} in ${merged.path}`
  },
}

/** destroy: the cluster's context in the user's kubeconfig, with the cluster's own kubectl from the cache (the host may have none). */
export const removeKubeconfigContextStep: HostStep = {
  title: 'Remove the kubeconfig context',
  task: async (ctx) => {
    const kubectl = join(kubernetesCacheDir(ctx.cacheDir, ctx.cluster.kubernetesVersion, kubernetesArch()), 'kubectl')
    await removeKubeconfigContext(ctx.cluster.clusterName, (await exists(kubectl)) ? kubectl : undefined)
  },
}

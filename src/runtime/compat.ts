/**
 * The runtime as it is for one cluster (its declaration with its variant merged in), and whether it
 * fits the cluster: its image family, image, Kubernetes version, cgroup driver and its own refusal.
 */
import {type HostInfo, type RuntimeProvider, type RuntimeQuery, isUserError} from '@kube-spawn/sdk'

import type {Cluster} from '../config/definition.js'
import {parseKubernetesVersion} from '../config/version.js'
import type {ClusterContext, HostStep} from '../context/index.js'
import {UserError, errorMessage} from '../errors.js'
import {infraRefusal} from '../cluster/infra.js'

/** The first Kubernetes without the kubelet's dockershim. */
const DOCKERSHIM_REMOVED = '1.24'

export function runtimeQuery(cluster: Cluster, image: {name: string; family: string}, host: HostInfo): RuntimeQuery {
  return {
    kubernetesVersion: cluster.kubernetesVersion,
    kubernetesSource: cluster.kubernetes.source,
    image: image.name,
    family: image.family,
    cgroupDriver: cluster.runtimeConfig.useLegacyCgroupDriver ? 'cgroupfs' : 'systemd',
    host,
    pluginConfig: (name) => (cluster.pluginConfig[name] ?? {}) as Record<string, unknown>,
    ...(cluster.registry?.address ? {registry: {address: cluster.registry.address, port: cluster.registry.port}} : {}),
  }
}

/** The runtime's declaration with its variant for this cluster merged over it. */
export function resolveRuntime(runtime: RuntimeProvider, query: RuntimeQuery, plugin: string): RuntimeProvider {
  if (!runtime.variant) return runtime
  try {
    return {...runtime, ...runtime.variant(query)}
  } catch (error) {
    if (isUserError(error)) throw error
    throw new UserError(`plugin ${plugin} failed to say how container runtime ${runtime.name} runs here: ${errorMessage(error)}`, {
      hint: 'fix or uninstall that plugin (kube-spawn plugins)',
      cause: error,
    })
  }
}

/** Why the runtime cannot serve this cluster, or undefined when it can. */
export function runtimeRefusal(runtime: RuntimeProvider, query: RuntimeQuery): string | undefined {
  const who = `container runtime ${runtime.name}`
  const families = Object.keys(runtime.packages)
  if (!families.includes(query.family))
    return `${who} has no packages for ${query.family} images (image ${query.image}); it has packages for: ${families.join(', ') || 'none'}`
  const images = runtime.supports?.images
  if (images && !images.includes(query.image)) return `${who} does not support image ${query.image}; it supports: ${images.join(', ')}`
  const {min, max} = runtime.supports?.kubernetes ?? {}
  const version = parseKubernetesVersion(query.kubernetesVersion)
  if (version && min && compare(version.text, min) < 0) return `${who} needs Kubernetes ${min} or newer, not ${version.text}`
  if (version && max && compare(version.text, max) > 0) return `${who} supports Kubernetes up to ${max}, not ${version.text}`
  if (!runtime.cgroupDrivers.includes(query.cgroupDriver))
    return `${who} cannot use the ${query.cgroupDriver} cgroup driver (it supports: ${runtime.cgroupDrivers.join(', ')})`
  if (runtime.kubelet === 'dockershim' && version && compare(version.text, DOCKERSHIM_REMOVED) >= 0)
    return `${who} runs through the kubelet's dockershim, which Kubernetes ${DOCKERSHIM_REMOVED} removed: it works up to Kubernetes 1.23, not ${version.text}`
  return runtime.refuse?.(query)
}

/** Compares "v1.20.2" with "1.20" or "v1.24.0": missing parts count as 0. */
function compare(a: string, b: string): number {
  const parts = (v: string) => v.replace(/^v/, '').split('.').map(Number)
  const [x, y] = [parts(a), parts(b)]
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0)
    if (d !== 0) return Math.sign(d)
  }
  return 0
}

/** The runtime fits the image, the Kubernetes version and the cgroup driver; before any output, and in preflight. */
export function assertRuntimeFits(ctx: ClusterContext): void {
  let refusal: string | undefined
  try {
    refusal = runtimeRefusal(ctx.runtime, runtimeQuery(ctx.cluster, ctx.image, ctx.host))
  } catch (error) {
    if (isUserError(error)) throw error
    throw new UserError(
      `plugin ${ctx.providerPlugins.runtime} failed to check container runtime ${ctx.runtime.name}: ${errorMessage(error)}`,
      {
        hint: 'fix or uninstall that plugin (kube-spawn plugins)',
        cause: error,
      },
    )
  }
  refusal ??= infraRefusal(ctx.cluster, ctx.runtime, ctx.image)
  if (refusal)
    throw new UserError(refusal, {
      hint: `choose another container-runtime, image or kubernetes-version, or update the runtime plugin (${ctx.providerPlugins.runtime})`,
    })
}

/** preflight: the runtime fits the cluster. */
export const checkRuntime: HostStep = {
  title: 'Check that the container runtime fits the cluster',
  task: async (ctx, task) => {
    assertRuntimeFits(ctx)
    task.title = `Container runtime ${ctx.runtime.name} fits ${ctx.image.name} images, Kubernetes ${ctx.kubernetes.version} and the ${ctx.kubernetes.cgroupDriver} cgroup driver`
  },
}

/** Whether a runtime fits a cluster: its image family, image, Kubernetes version and cgroup driver. */
import type {CgroupDriver, RuntimeProvider} from '@kube-spawn/sdk'

import {parseKubernetesVersion} from '../config/version.js'
import type {ClusterContext, HostStep} from '../context/index.js'
import {UserError} from '../errors.js'

export interface RuntimeFitQuery {
  image: string
  family: string
  kubernetesVersion: string
  cgroupDriver: CgroupDriver
}

/** Why the runtime cannot serve this cluster, or undefined when it can. */
export function runtimeRefusal(runtime: RuntimeProvider, query: RuntimeFitQuery): string | undefined {
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
  return undefined
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
  const refusal = runtimeRefusal(ctx.runtime, {
    image: ctx.image.name,
    family: ctx.image.family,
    kubernetesVersion: ctx.kubernetes.version,
    cgroupDriver: ctx.kubernetes.cgroupDriver,
  })
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

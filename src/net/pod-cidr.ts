import type {Cluster} from '../config/definition.js'
import {UserError} from '../errors.js'
import {cidrSize, formatCidr, parseCidr} from './cidr.js'

/** Each node gets a /24 of the pod CIDR (the controller manager's node-cidr-mask-size). */
export const NODE_CIDR_MASK = 24

/** The pod CIDR must split into a /24 per node; create checks this before anything is written. */
export function checkPodCidrCapacity(cluster: Pick<Cluster, 'network' | 'nodes'>): void {
  const cidr = parseCidr(cluster.network.podCidr)
  if (!cidr) throw new TypeError(`pod CIDR "${cluster.network.podCidr}" is not an IPv4 CIDR block`)
  const hint = 'use a pod CIDR between /8 and /24 with a /24 per node, for example 10.244.0.0/16'
  if (cidr.prefix > NODE_CIDR_MASK || NODE_CIDR_MASK - cidr.prefix > 16) {
    throw new UserError(`network.pod-cidr ${cluster.network.podCidr} cannot be split into /${NODE_CIDR_MASK} node ranges`, {hint})
  }
  const ranges = cidrSize(cidr) / 2 ** (32 - NODE_CIDR_MASK)
  if (ranges < cluster.nodes) {
    throw new UserError(
      `network.pod-cidr ${cluster.network.podCidr} holds ${ranges} /${NODE_CIDR_MASK} node ranges, but the cluster has ${cluster.nodes} nodes`,
      {hint},
    )
  }
}

/**
 * The pod range of the index-th Kubernetes node (control planes first): kube-spawn assigns the ranges
 * itself, in node order, so a node's bridge CNI is ready before its kubelet first starts.
 */
export function nodePodCidr(podCidr: string, index: number): string {
  const cidr = parseCidr(podCidr)
  if (!cidr) throw new TypeError(`pod CIDR "${podCidr}" is not an IPv4 CIDR block`)
  const size = 2 ** (32 - NODE_CIDR_MASK)
  if (index < 0 || (index + 1) * size > cidrSize(cidr)) throw new RangeError(`node ${index} has no /${NODE_CIDR_MASK} left in ${podCidr}`)
  return formatCidr({base: cidr.base + index * size, prefix: NODE_CIDR_MASK})
}

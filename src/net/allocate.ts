import {execa} from 'execa'

import type {Cluster} from '../config/definition.js'
import {UserError} from '../errors.js'
import {type Cidr, allocateBlock, cidrsOverlap, formatCidr, parseCidr} from './cidr.js'
import {specDefault} from '../config/spec.js'

/** Every IPv4 network configured on the host's interfaces, so a new cluster never shadows one. */
export async function hostNetworks(): Promise<Cidr[]> {
  const {stdout, exitCode} = await execa('ip', ['-j', '-4', 'addr', 'show'], {reject: false})
  if (exitCode !== 0) return []
  const links = JSON.parse(stdout || '[]') as Array<{addr_info?: Array<{local: string; prefixlen: number}>}>
  return links.flatMap((link) =>
    (link.addr_info ?? []).flatMap(({local, prefixlen}) => {
      const size = 2 ** (32 - prefixlen)
      const address = parseCidr(`${local}/32`)
      return address ? [{base: address.base - (address.base % size), prefix: prefixlen}] : []
    }),
  )
}

/** Gives the cluster its own /24 inside network.subnet, avoiding other clusters and the host's networks. */
export function allocateClusterSubnet(cluster: Cluster, others: Cluster[], host: Cidr[]): string {
  const range = parseCidr(cluster.network.subnet)!
  const taken = [
    ...others.flatMap((o) => (o.network.clusterSubnet ? [parseCidr(o.network.clusterSubnet)!] : [])),
    ...host.filter((c) => c.prefix > 0),
  ]
  if (cluster.network.clusterSubnet) {
    const wanted = parseCidr(cluster.network.clusterSubnet)!
    const clash = allocateBlock(wanted, 24, taken)
    if (!clash) {
      throw new UserError(
        `network.cluster-subnet ${cluster.network.clusterSubnet} is already used by another cluster or a host interface`,
        {
          hint: 'leave it out to have a free block allocated',
        },
      )
    }
    return cluster.network.clusterSubnet
  }
  const block = allocateBlock(range, 24, taken)
  if (!block) {
    throw new UserError(`no free /24 left in network.subnet ${cluster.network.subnet}`, {
      hint: 'destroy an unused cluster or use a larger subnet',
    })
  }
  return formatCidr(block)
}

export const DEFAULT_POD_CIDR = specDefault('network.pod-cidr') as string
/** Where clusters left at the default pod CIDR move to when another cluster already has it. */
const POD_CIDR_RANGE = '10.240.0.0/12'

/**
 * The host routes every pod CIDR to the node running it, so two clusters' pod CIDRs must not
 * overlap. A cluster left at the default moves to a free /16; one the user chose is an error.
 */
export function allocatePodCidr(cluster: Cluster, others: Cluster[]): string {
  const wanted = parseCidr(cluster.network.podCidr)!
  const taken = others.map((o) => parseCidr(o.network.podCidr)!)
  const clash = others.find((o) => cidrsOverlap(parseCidr(o.network.podCidr)!, wanted))
  if (!clash) return cluster.network.podCidr
  if (cluster.network.podCidr !== DEFAULT_POD_CIDR) {
    throw new UserError(`network.pod-cidr ${cluster.network.podCidr} overlaps cluster "${clash.clusterName}"'s ${clash.network.podCidr}`, {
      hint: 'choose another pod-cidr, or leave it out to have a free one allocated',
    })
  }
  const own = [cluster.network.subnet, cluster.network.serviceCidr].map((c) => parseCidr(c)!)
  const block = allocateBlock(parseCidr(POD_CIDR_RANGE)!, 16, [...taken, ...own])
  if (!block) throw new UserError('no free /16 pod network left in 10.240.0.0/12', {hint: 'set network.pod-cidr explicitly'})
  return formatCidr(block)
}

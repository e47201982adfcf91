import {execa} from 'execa'

import type {Cluster} from '../config/definition.js'
import {UserError} from '../errors.js'
import {type Cidr, allocateBlock, formatCidr, parseCidr} from './cidr.js'

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

import {createHash} from 'node:crypto'

import type {Cluster, Machine} from '../config/definition.js'
import {addressInCidr, parseCidr} from '../net/cidr.js'

/** Stable machine names: the cluster name keeps them unique on the host. */
export function machineName(cluster: string, index: number): string {
  return index === 0 ? `ks-${cluster}-cp` : `ks-${cluster}-w${index}`
}

/** Linux interface names are at most 15 characters; long cluster names get a hash suffix. */
export function bridgeName(cluster: string): string {
  const plain = `ks-${cluster}`
  if (plain.length <= 15) return plain
  const hash = createHash('sha256').update(cluster).digest('hex').slice(0, 4)
  return `ks-${cluster.slice(0, 7)}-${hash}`
}

/** The host's address on the cluster bridge: the first of the cluster's block. */
export function bridgeAddress(cluster: Cluster): string {
  return addressInCidr(parseCidr(cluster.network.clusterSubnet!)!, 1)
}

/** Machine entries for `nodes` nodes: the control plane first, each with the next address after the host. */
export function planMachines(cluster: Cluster): Machine[] {
  const block = parseCidr(cluster.network.clusterSubnet!)!
  const existing = new Map(cluster.machines.map((m) => [m.name, m]))
  return Array.from({length: cluster.nodes}, (_, index) => {
    const name = machineName(cluster.clusterName, index)
    const given = existing.get(name)
    // A [[machines]] entry may carry only a name and bind mounts; role and address are kube-spawn's.
    return {
      name,
      role: index === 0 ? 'control-plane' : 'worker',
      ip: given?.ip ?? addressInCidr(block, index + 2),
      running: given?.running ?? false,
      bindmount: given?.bindmount ?? {readOnly: [], readWrite: []},
    }
  })
}

import {createHash} from 'node:crypto'

import type {Cluster, Machine} from '../config/definition.js'
import {addressInCidr, cidrSize, parseCidr} from '../net/cidr.js'

/**
 * Stable machine names: the cluster name keeps them unique on the host. The first control plane is
 * "cp", further ones cp2, cp3…; workers are w1, w2… after them.
 */
export function machineName(cluster: string, index: number, controlPlanes = 1): string {
  if (index === 0) return `ks-${cluster}-cp`
  return index < controlPlanes ? `ks-${cluster}-cp${index + 1}` : `ks-${cluster}-w${index - controlPlanes + 1}`
}

/** The machines that run no kubelet, each at a fixed address at the top of the cluster's block. */
const INFRA = {'load-balancer': {suffix: 'lb', fromTop: 1}, registry: {suffix: 'reg', fromTop: 2}} as const
export type InfraRole = keyof typeof INFRA

export function infraMachineName(cluster: string, role: InfraRole): string {
  return `ks-${cluster}-${INFRA[role].suffix}`
}

/** The infrastructure machines the definition asks for: a load balancer for more than one control plane, a registry. */
export function infraRoles(cluster: Pick<Cluster, 'controlPlanes' | 'registry'>): InfraRole[] {
  return [
    ...((cluster.controlPlanes ?? 1) > 1 ? (['load-balancer'] as const) : []),
    ...(cluster.registry?.enabled ? (['registry'] as const) : []),
  ]
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

/** The machines the definition asks for, in address order: the Kubernetes nodes (control planes first), then the infrastructure machines. */
export function plannedMachines(
  cluster: Pick<Cluster, 'clusterName' | 'nodes' | 'controlPlanes' | 'registry'>,
): Array<Pick<Machine, 'name' | 'role'>> {
  const controlPlanes = cluster.controlPlanes ?? 1
  const nodes = Array.from({length: cluster.nodes}, (_, index) => ({
    name: machineName(cluster.clusterName, index, controlPlanes),
    role: index < controlPlanes ? ('control-plane' as const) : ('worker' as const),
  }))
  return [...nodes, ...infraRoles(cluster).map((role) => ({name: infraMachineName(cluster.clusterName, role), role}))]
}

/**
 * Machine entries: the Kubernetes nodes, each with the next address after the host, then the load
 * balancer and the registry at the last addresses of the block.
 */
export function planMachines(cluster: Cluster): Machine[] {
  const block = parseCidr(cluster.network.clusterSubnet!)!
  const existing = new Map(cluster.machines.map((m) => [m.name, m]))
  // The broadcast address is the block's last; the infra machines take the ones below it.
  const top = cidrSize(block) - 1
  // A [[machines]] entry may carry only a name and bind mounts; role and address are kube-spawn's.
  return plannedMachines(cluster).map(({name, role}, index) => {
    const given = existing.get(name)
    const ip =
      role === 'load-balancer' || role === 'registry' ? addressInCidr(block, top - INFRA[role].fromTop) : addressInCidr(block, index + 2)
    return {name, role, ip: given?.ip ?? ip, running: given?.running ?? false, bindmount: given?.bindmount ?? {readOnly: [], readWrite: []}}
  })
}

/** Where nodes and pods reach the cluster's registry, "<ip>:<port>"; undefined without one (or before create). */
export function registryAddress(cluster: Cluster): string | undefined {
  const machine = cluster.registry?.enabled ? cluster.machines.find((m) => m.role === 'registry') : undefined
  return machine && `${machine.ip}:${cluster.registry!.port}`
}

/** The cluster with registry.address filled in from its registry machine (once its machines are planned). */
export function withRegistryAddress(cluster: Cluster): Cluster {
  const address = registryAddress(cluster)
  return address ? {...cluster, registry: {...cluster.registry!, address}} : cluster
}

/** The address clients of the API server use: the load balancer's when there is one, else the control plane's. */
export function apiServerHost(cluster: Cluster): {name: string; ip: string} {
  const machine = cluster.machines.find((m) => m.role === 'load-balancer') ?? cluster.machines.find((m) => m.role === 'control-plane')
  if (!machine) throw new Error(`cluster ${cluster.clusterName} has no control plane machine`)
  return machine
}

/** Kubernetes nodes only: the machines that run a kubelet. */
export const isKubernetesNode = (m: {role: string}) => m.role === 'control-plane' || m.role === 'worker'

/** "3 nodes", or "4 nodes, a load balancer and a registry": what a cluster's machines are, for messages. */
export function describeMachines(machines: Array<{role: string}>): string {
  const infra = machines.filter((m) => !isKubernetesNode(m)).map((m) => (m.role === 'load-balancer' ? 'a load balancer' : `a ${m.role}`))
  const parts = [`${machines.filter(isKubernetesNode).length} nodes`, ...infra]
  return parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`
}

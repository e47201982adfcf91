/**
 * Host ports forwarded to node ports ([[port-mapping]], kind's extraPortMappings): DNAT on the host to
 * the node's address, tagged like every rule of the cluster, so that stop and destroy remove them.
 */
import {createServer} from 'node:net'
import {createSocket} from 'node:dgram'

import type {PortMapping} from '@kube-spawn/sdk'

export type PortProtocol = PortMapping['protocol']

/** A mapping as the host installs it: the definition's, or the registry's, which only the host itself reaches through 127.0.0.1. */
export interface HostMapping extends PortMapping {
  loopbackOnly?: boolean
  /** How an error names it: "[[port-mapping]]" or "registry.port". */
  source: string
  /** The key a user changes to move it: "host-port" or "registry.port". */
  setting: string
}

export interface Rule {
  table: 'filter' | 'nat'
  chain: string
  spec: string[]
}

/** The machine a mapping forwards to: the one it names (cp, w1 or a machine name), else the first worker. */
export function mappingTarget(
  mapping: PortMapping,
  cluster: string,
  machines: Array<{name: string; ip: string; role: string}>,
): {name: string; ip: string} {
  const wanted = mapping.node === undefined ? undefined : [mapping.node, `ks-${cluster}-${mapping.node}`]
  const machine = wanted ? machines.find((m) => wanted.includes(m.name)) : (machines.find((m) => m.role === 'worker') ?? machines[0])
  if (!machine)
    throw new Error(`port-mapping host-port ${mapping.hostPort} names node "${mapping.node}", which cluster ${cluster} does not have`)
  return machine
}

/**
 * The rules of one mapping. Traffic to any of the host's own addresses on the host port is sent to the
 * node (PREROUTING from elsewhere, OUTPUT from the host itself), let through FORWARD, and masqueraded to
 * the bridge address, so that the node's answer comes back through the host whatever the client's address
 * (127.0.0.1 included); the answer is let through FORWARD even in an isolated cluster.
 */
export function portMappingRules(
  mapping: PortMapping & {loopbackOnly?: boolean},
  target: {ip: string},
  bridge: string,
  tag: string[],
): Rule[] {
  const proto = ['-p', mapping.protocol]
  const loopback = mapping.loopbackOnly ? ['-d', '127.0.0.1'] : []
  const local = [...loopback, ...proto, '-m', 'addrtype', '--dst-type', 'LOCAL', '--dport', String(mapping.hostPort), ...tag]
  const dnat = ['-j', 'DNAT', '--to-destination', `${target.ip}:${mapping.nodePort}`]
  const toNode = ['-o', bridge, '-d', target.ip, ...proto, '--dport', String(mapping.nodePort)]
  const mapped = ['-m', 'conntrack', '--ctstate', 'DNAT', ...tag]
  return [
    ...(mapping.loopbackOnly ? [] : [{table: 'nat', chain: 'PREROUTING', spec: [...local, ...dnat]} as Rule]),
    {table: 'nat', chain: 'OUTPUT', spec: [...local, ...dnat]},
    {table: 'nat', chain: 'POSTROUTING', spec: [...toNode, ...mapped, '-j', 'MASQUERADE']},
    {table: 'filter', chain: 'FORWARD', spec: [...toNode, ...tag, '-j', 'ACCEPT']},
    {
      table: 'filter',
      chain: 'FORWARD',
      spec: ['-i', bridge, '-s', target.ip, ...proto, '--sport', String(mapping.nodePort), ...mapped, '-j', 'ACCEPT'],
    },
  ]
}

/** Whether something on this host listens on the port already (binding it is the only sure test). */
export async function hostPortTaken(port: number, protocol: PortProtocol): Promise<boolean> {
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const socket = createSocket('udp4')
      socket.once('error', () => resolve(true))
      socket.bind(port, '0.0.0.0', () => socket.close(() => resolve(false)))
      return
    }
    const server = createServer()
    server.once('error', () => resolve(true))
    server.listen({port, host: '0.0.0.0', exclusive: true}, () => server.close(() => resolve(false)))
  })
}

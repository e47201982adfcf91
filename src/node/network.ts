import {readFile, writeFile} from 'node:fs/promises'

import type {Cluster} from '../config/definition.js'
import {UserError} from '../errors.js'
import {type HostMapping, type Rule, hostPortTaken, mappingTarget, portMappingRules} from '../net/port-mappings.js'
import {run} from '../util/run.js'
import {bridgeAddress, bridgeName, infraMachineName} from './names.js'

/** Every host iptables rule kube-spawn adds carries this comment, so removal is exact. */
export function ruleComment(cluster: string): string {
  return `kube-spawn:${cluster}`
}

/**
 * The host rules of a cluster: its port mappings, then isolated (drop everything leaving the bridge) or
 * with NAT egress. They are inserted in this order at the top of their chains.
 */
export function clusterRules(cluster: Cluster): Rule[] {
  const br = bridgeName(cluster.clusterName)
  const tag = ['-m', 'comment', '--comment', ruleComment(cluster.clusterName)]
  const subnet = cluster.network.clusterSubnet!
  // Node-to-node traffic crosses the bridge (and FORWARD, with br_netfilter): always allowed.
  const rules: Rule[] = [...portRules(cluster), {table: 'filter', chain: 'FORWARD', spec: ['-i', br, '-o', br, ...tag, '-j', 'ACCEPT']}]
  if (cluster.network.egress) {
    rules.push(
      {table: 'filter', chain: 'FORWARD', spec: ['-i', br, '!', '-o', br, ...tag, '-j', 'ACCEPT']},
      {table: 'filter', chain: 'FORWARD', spec: ['-o', br, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', ...tag, '-j', 'ACCEPT']},
      {table: 'nat', chain: 'POSTROUTING', spec: ['-s', subnet, '!', '-o', br, ...tag, '-j', 'MASQUERADE']},
    )
  } else {
    rules.push({table: 'filter', chain: 'FORWARD', spec: ['-i', br, '!', '-o', br, ...tag, '-j', 'DROP']})
  }
  return rules
}

/** The host ports the cluster forwards: its [[port-mapping]] entries, and 127.0.0.1:PORT to its registry. */
export function hostMappings(cluster: Cluster): HostMapping[] {
  const registry = cluster.registry?.enabled ? cluster.registry : undefined
  return [
    ...(cluster.portMappings ?? []).map((m) => ({...m, source: '[[port-mapping]]', setting: 'host-port'})),
    ...(registry
      ? [
          {
            hostPort: registry.port,
            nodePort: registry.port,
            protocol: 'tcp' as const,
            node: infraMachineName(cluster.clusterName, 'registry'),
            loopbackOnly: true,
            source: 'registry.port',
            setting: 'registry.port',
          },
        ]
      : []),
  ]
}

/** The rules of the cluster's host port mappings. */
export function portRules(cluster: Cluster): Rule[] {
  const br = bridgeName(cluster.clusterName)
  const tag = ['-m', 'comment', '--comment', ruleComment(cluster.clusterName)]
  return hostMappings(cluster).flatMap((m) => portMappingRules(m, mappingTarget(m, cluster.clusterName, cluster.machines), br, tag))
}

/** Deletes the port mappings' rules, so that nothing forwards to a stopped node; the other rules stay for the next start. */
export async function removePortRules(cluster: Cluster): Promise<void> {
  for (const rule of portRules(cluster))
    await run(['iptables', '-w', '-t', rule.table, '-D', rule.chain, ...rule.spec], {allowFailure: true})
}

/** Fails in one line when a mapped host port is in use on this host. */
export async function assertHostPortsFree(cluster: Cluster): Promise<void> {
  for (const m of hostMappings(cluster)) {
    if (await hostPortTaken(m.hostPort, m.protocol))
      throw new UserError(`host port ${m.hostPort}/${m.protocol} of ${m.source} is already taken on this host`, {
        hint: `stop what listens there, or choose another ${m.setting}`,
      })
  }
}

/** Creates the cluster bridge with the host's address and installs the rules; idempotent. */
export async function ensureNetwork(cluster: Cluster): Promise<void> {
  const br = bridgeName(cluster.clusterName)
  const prefix = cluster.network.clusterSubnet!.split('/')[1]
  // The rules go in before the bridge carries anything, so an isolated cluster never leaks a packet.
  await removeRules(cluster.clusterName)
  for (const rule of [...clusterRules(cluster)].reverse()) {
    await run(['iptables', '-w', '-t', rule.table, rule.chain === 'POSTROUTING' ? '-A' : '-I', rule.chain, ...rule.spec])
  }
  const exists = await run(['ip', 'link', 'show', br], {allowFailure: true})
  if (exists.exitCode !== 0) await run(['ip', 'link', 'add', br, 'type', 'bridge'])
  await run(['ip', 'addr', 'replace', `${bridgeAddress(cluster)}/${prefix}`, 'dev', br])
  await run(['ip', 'link', 'set', br, 'up'])
  // Bridged traffic must pass iptables (kube-proxy's Service rules in the nodes depend on it).
  await run(['modprobe', 'br_netfilter'], {allowFailure: true}).catch(() => undefined)
  await writeSysctl('net/bridge/bridge-nf-call-iptables', '1')
  await writeSysctl('net/ipv4/ip_forward', '1')
  // A host port mapped for 127.0.0.1 sends loopback-sourced packets to the bridge (masqueraded there).
  if (hostMappings(cluster).length > 0) await writeSysctl(`net/ipv4/conf/${br}/route_localnet`, '1')
}

export async function removeNetwork(cluster: string): Promise<void> {
  await removeRules(cluster)
  const br = bridgeName(cluster)
  const exists = await run(['ip', 'link', 'show', br], {allowFailure: true})
  if (exists.exitCode === 0) await run(['ip', 'link', 'del', br])
}

/** Deletes every rule whose comment names the cluster, found in iptables-save. */
export async function removeRules(cluster: string): Promise<void> {
  const comment = ruleComment(cluster)
  for (const table of ['filter', 'nat'] as const) {
    const {stdout} = await run(['iptables-save', '-t', table], {allowFailure: true})
    for (const line of stdout.split('\n')) {
      if (!line.startsWith('-A ') || (!line.includes(`--comment ${comment} `) && !line.includes(`--comment "${comment}"`))) continue
      const args = splitRule(line.slice(3))
      await run(['iptables', '-w', '-t', table, '-D', ...args], {allowFailure: true})
    }
  }
}

function splitRule(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2])
}

async function writeSysctl(key: string, value: string): Promise<void> {
  const path = `/proc/sys/${key}`
  const current = await readFile(path, 'utf8').catch(() => undefined)
  if (current !== undefined && current.trim() !== value) await writeFile(path, value).catch(() => undefined)
}

/** What nodes use as resolv.conf: the host's real resolvers with egress, none when isolated. */
export async function nodeResolvConf(cluster: Cluster): Promise<string> {
  if (!cluster.network.egress) return '# kube-spawn: isolated cluster, no upstream resolver\n'
  for (const path of ['/run/systemd/resolve/resolv.conf', '/etc/resolv.conf']) {
    const text = await readFile(path, 'utf8').catch(() => undefined)
    // A loopback stub resolver of the host is unreachable from a node.
    if (text && !/^nameserver\s+127\./m.test(text)) return text
  }
  return '# kube-spawn: no usable host resolver found\n'
}

import TOML from '@iarna/toml'
import {randomBytes} from 'node:crypto'
import {stat} from 'node:fs/promises'
import {isAbsolute} from 'node:path'

import {UserError, errorMessage} from '../errors.js'
import {parseConfigPatch, patchMatches} from '../kubernetes/config-patches.js'
import {RESERVED_EXTRA_ARGS, kubeadmDocumentTypes, kubernetesSettings} from '../kubernetes/kubeadm-config.js'
import {versionTraits} from '../kubernetes/versions.js'
import {cidrsOverlap, parseCidr} from '../net/cidr.js'
import {machineName, plannedMachines, withRegistryAddress} from '../node/names.js'
import {checkAgainstSpec, definitionSpec, withDefaults} from './spec.js'
import {parseKubernetesVersion} from './version.js'

import type {BindMount, BindMounts, Cluster} from '@kube-spawn/sdk'
export type {BindMount, BindMounts, Cluster, KubernetesSettings, Machine, Role} from '@kube-spawn/sdk'

/** Flag values that override the file. */
export interface DefinitionOverrides {
  clusterName?: string
  nodes?: number
  controlPlanes?: number
  kubernetesVersion?: string
  containerRuntime?: string
  image?: string
}

export const MAX_CLUSTER_NAME = 40
const TOKEN = /^[a-z0-9]{6}\.[a-z0-9]{16}$/

/** The [kubernetes] extra-args keys and the Cluster fields they fill. */
const EXTRA_ARGS = {
  'api-server-extra-args': 'apiServerExtraArgs',
  'controller-manager-extra-args': 'controllerManagerExtraArgs',
  'scheduler-extra-args': 'schedulerExtraArgs',
  'kubelet-extra-args': 'kubeletExtraArgs',
} as const

/** Parses TOML text; a syntax error becomes one line with the file, line and column. */
export function parseToml(text: string, source: string): Record<string, unknown> {
  try {
    return TOML.parse(text) as Record<string, unknown>
  } catch (error) {
    const e = error as {line?: number; col?: number; message?: string}
    const reason = (e.message ?? String(error)).split('\n')[0].replace(/ at row \d+, col \d+, pos \d+:?$/, '')
    const at = e.line === undefined ? '' : `:${e.line + 1}:${(e.col ?? 0) + 1}`
    throw new UserError(`${source}${at}: malformed TOML: ${reason}`, {hint: 'fix the syntax at that position'})
  }
}

/** Checks the raw table against the spec and the rules no spec can express, then fills in defaults. */
export async function resolveDefinition(
  raw: Record<string, unknown>,
  source: string,
  overrides: DefinitionOverrides = {},
  {checkPaths = true}: {checkPaths?: boolean} = {},
): Promise<Cluster> {
  // Flag overrides go in before the spec check, so that they are checked like the file's own values.
  const given = Object.fromEntries(
    Object.entries({
      'cluster-name': overrides.clusterName,
      'container-runtime': overrides.containerRuntime,
      image: overrides.image,
      'kubernetes-version': overrides.kubernetesVersion,
      nodes: overrides.nodes,
      'control-planes': overrides.controlPlanes,
    }).filter(([, value]) => value !== undefined),
  )
  const merged = {...raw, ...given}
  const problems = checkAgainstSpec(merged, definitionSpec, '')
  if (problems.length > 0) throw new UserError(`${source}: ${problems[0]}`, {hint: hintFor(problems[0])})

  // Every default comes from the spec (spec.ts), which also documents it and feeds the JSON Schema.
  const r = withDefaults(merged) as Record<string, any>
  const net = r.network
  const rc = r['runtime-config']
  const k = r.kubernetes
  const cluster: Cluster = {
    clusterName: r['cluster-name'],
    containerRuntime: r['container-runtime'],
    image: r.image,
    kubernetesVersion: r['kubernetes-version'],
    nodes: r.nodes,
    controlPlanes: r['control-planes'],
    ...(r.registry?.enabled
      ? {registry: {enabled: true, port: r.registry.port, ...(r.registry.dir === undefined ? {} : {dir: r.registry.dir})}}
      : {}),
    token: r.token ?? generateToken(),
    cni: r.cni,
    kubernetes: {
      source: k.source,
      featureGates: k['feature-gates'] ?? {},
      apiServerExtraArgs: k['api-server-extra-args'] ?? {},
      controllerManagerExtraArgs: k['controller-manager-extra-args'] ?? {},
      schedulerExtraArgs: k['scheduler-extra-args'] ?? {},
      kubeletExtraArgs: k['kubelet-extra-args'] ?? {},
      ...(k.patches === undefined ? {} : {patches: k.patches}),
      configPatches: k['config-patches'] ?? [],
      kubeProxyMode: k['kube-proxy-mode'],
    },
    network: {
      subnet: net.subnet,
      clusterSubnet: net['cluster-subnet'],
      podCidr: net['pod-cidr'],
      serviceCidr: net['service-cidr'],
      egress: net.egress,
    },
    bindmount: toBindMounts(r.bindmount),
    portMappings: (r['port-mapping'] ?? []).map((m: Record<string, any>) => ({
      hostPort: m['host-port'],
      nodePort: m['node-port'],
      protocol: m.protocol ?? 'tcp',
      ...(m.node === undefined ? {} : {node: m.node}),
    })),
    runtimeConfig: {
      cgroupPerQos: rc['cgroup-per-qos'],
      failSwapOn: rc['fail-swap-on'],
      timeout: rc.timeout,
      useLegacyCgroupDriver: rc['use-legacy-cgroup-driver'],
    },
    pluginConfig: r['plugin-config'],
    machines: (r.machines ?? []).map((m: Record<string, any>) => ({
      name: m.name,
      role: m.role,
      ip: m.ip,
      running: m.running,
      bindmount: toBindMounts(m.bindmount),
    })),
    state: {initialized: r.state.initialized},
  }
  await validateCluster(cluster, source, {checkPaths})
  // "1.20.2" is accepted; release URLs and kubeadm want the canonical "v1.20.2".
  cluster.kubernetesVersion = parseKubernetesVersion(cluster.kubernetesVersion)!.text
  return withRegistryAddress(cluster)
}

/** Rules that go beyond types: names, token, versions, addresses, mounts. */
export async function validateCluster(cluster: Cluster, source: string, {checkPaths = true} = {}): Promise<void> {
  const fail = (message: string, hint: string): never => {
    throw new UserError(`${source}: ${message}`, {hint})
  }
  validateClusterName(cluster.clusterName, source)
  if (!TOKEN.test(cluster.token)) {
    fail(
      `token "${redactToken(cluster.token)}" is not a kubeadm bootstrap token`,
      'use the form [a-z0-9]{6}.[a-z0-9]{16}, or leave it out to have one generated',
    )
  }
  if (!parseKubernetesVersion(cluster.kubernetesVersion)) {
    fail(
      `kubernetes-version "${cluster.kubernetesVersion}" is not supported`,
      'use a release of the form vMAJOR.MINOR.PATCH, v1.20.0 or newer, for example v1.20.2',
    )
  }
  if (!parseDuration(cluster.runtimeConfig.timeout)) {
    fail(
      `runtime-config.timeout "${cluster.runtimeConfig.timeout}" is not a duration`,
      'use a number with s, m or h, for example 90s or 10m',
    )
  }
  const source_ = cluster.kubernetes.source
  if (!/^https?:\/\/[^\s]+$/.test(source_) && !isAbsolute(source_)) {
    fail(
      `kubernetes.source "${source_}" is neither an http(s) URL nor an absolute directory path`,
      'use https://dl.k8s.io or the absolute path of an offline bundle',
    )
  }
  await validateKubernetesSettings(cluster, fail, checkPaths)
  validatePortMappings(cluster, fail)
  validateControlPlanes(cluster, fail)
  await validateRegistry(cluster, fail, checkPaths)

  const cidrs = {
    'network.subnet': cluster.network.subnet,
    'network.pod-cidr': cluster.network.podCidr,
    'network.service-cidr': cluster.network.serviceCidr,
  }
  const parsed = Object.entries(cidrs).map(([key, text]) => {
    const cidr = parseCidr(text)
    if (!cidr)
      fail(`${key} "${text}" is not an IPv4 CIDR block`, 'write it as ADDRESS/PREFIX with the host bits zero, for example 10.22.0.0/16')
    return {key, cidr: cidr!}
  })
  for (let i = 0; i < parsed.length; i++) {
    for (let j = i + 1; j < parsed.length; j++) {
      if (cidrsOverlap(parsed[i].cidr, parsed[j].cidr)) {
        fail(
          `${parsed[i].key} ${cidrs[parsed[i].key as keyof typeof cidrs]} overlaps ${parsed[j].key} ${cidrs[parsed[j].key as keyof typeof cidrs]}`,
          'choose blocks that do not overlap',
        )
      }
    }
  }
  if (parsed[0].cidr.prefix > 24) fail(`network.subnet ${cluster.network.subnet} is smaller than a /24`, 'use a /24 or larger range')
  if (cluster.network.clusterSubnet !== undefined) {
    const block = parseCidr(cluster.network.clusterSubnet)
    if (!block || block.prefix !== 24 || !cidrsOverlap(block, parsed[0].cidr) || block.prefix < parsed[0].cidr.prefix) {
      fail(
        `network.cluster-subnet "${cluster.network.clusterSubnet}" is not a /24 inside network.subnet ${cluster.network.subnet}`,
        'pick a /24 inside the range, or leave it out',
      )
    }
  }

  const mounts = [
    ...allMounts(cluster.bindmount).map((m) => ({m, where: 'bindmount'})),
    ...cluster.machines.flatMap((machine) => allMounts(machine.bindmount).map((m) => ({m, where: `machines "${machine.name}" bindmount`}))),
  ]
  for (const {m, where} of mounts) {
    if (!isAbsolute(m.src) || !isAbsolute(m.dst))
      fail(`${where} ${m.src} -> ${m.dst}: src and dst must be absolute paths`, 'write both as absolute paths')
    if (!checkPaths) continue
    try {
      await stat(m.src)
    } catch {
      fail(`${where} src ${m.src} does not exist`, 'create it on the host or fix the path')
    }
  }
}

/** [[port-mapping]]: each host port once, each node one the cluster has. */
function validatePortMappings(cluster: Cluster, fail: (message: string, hint: string) => never): void {
  const seen = new Set<string>()
  for (const mapping of cluster.portMappings ?? []) {
    const key = `${mapping.hostPort}/${mapping.protocol}`
    if (seen.has(key)) fail(`port-mapping host-port ${key} is given twice`, 'forward each host port to one node port')
    seen.add(key)
    if (mapping.node !== undefined && mappedMachine(cluster, mapping.node) === undefined)
      fail(
        `port-mapping host-port ${key} names node "${mapping.node}", which this cluster does not have`,
        `name one of ${machineNamesOf(cluster)
          .map((n) => n.replace(`ks-${cluster.clusterName}-`, ''))
          .join(', ')}, or a machine name such as ${machineName(cluster.clusterName, 0)}`,
      )
  }
}

/** control-planes: odd, at most nodes, and what the cluster was created with. */
function validateControlPlanes(cluster: Cluster, fail: (message: string, hint: string) => never): void {
  const count = cluster.controlPlanes ?? 1
  if (count % 2 === 0)
    fail(
      `control-planes = ${count} is even: etcd needs a majority, so ${count} control planes survive no more failures than ${count - 1}`,
      'use 1, 3, 5 or 7',
    )
  if (count > cluster.nodes)
    fail(
      `control-planes = ${count} is more than nodes = ${cluster.nodes}`,
      `raise nodes to at least ${count} (nodes counts control planes and workers), or lower control-planes`,
    )
  const created = cluster.machines.filter((m) => m.role === 'control-plane').length
  if (created > 0 && created !== count)
    fail(
      `control-planes = ${count}, but the cluster was created with ${created}: kubeadm cannot add or remove control planes of a running cluster here`,
      `set control-planes back to ${created}, or destroy the cluster and create it again`,
    )
}

/** [registry]: its port free of the port mappings, its dir the user's, and whether it exists fixed at create. */
async function validateRegistry(cluster: Cluster, fail: (message: string, hint: string) => never, checkPaths: boolean) {
  const registry = cluster.registry
  // kube-spawn gives the machines their roles at create; a [[machines]] entry of the user's has none.
  const created = cluster.machines.some((m) => m.role === 'control-plane')
  const hasMachine = cluster.machines.some((m) => m.role === 'registry')
  if (created && hasMachine !== Boolean(registry?.enabled))
    fail(
      `registry.enabled = ${Boolean(registry?.enabled)}, but the cluster was created ${hasMachine ? 'with' : 'without'} a registry`,
      `set it back to ${hasMachine}, or destroy the cluster and create it again`,
    )
  if (!registry?.enabled) return
  const clash = (cluster.portMappings ?? []).find((m) => m.hostPort === registry.port && m.protocol === 'tcp')
  if (clash) fail(`registry.port ${registry.port} is also the host-port of a [[port-mapping]]`, 'choose another registry.port or host-port')
  if (registry.dir === undefined) return
  if (!isAbsolute(registry.dir))
    fail(`registry.dir "${registry.dir}" is not an absolute path`, 'give the absolute path of a host directory')
  if (checkPaths && !(await stat(registry.dir).catch(() => undefined))?.isDirectory())
    fail(`registry.dir ${registry.dir} does not exist or is not a directory`, 'create it (mkdir -p), or fix the path')
}

const machineNamesOf = (cluster: Cluster) => plannedMachines(cluster).map((m) => m.name)

/** The machine name a port-mapping's node means (cp, w1, lb, or a machine name), or undefined. */
export function mappedMachine(cluster: Cluster, node: string): string | undefined {
  return machineNamesOf(cluster).find((name) => name === node || name === `ks-${cluster.clusterName}-${node}`)
}

/** [kubernetes]'s kubeadm settings: reserved flags, the version's kube-proxy modes, the patches. */
async function validateKubernetesSettings(cluster: Cluster, fail: (message: string, hint: string) => never, checkPaths: boolean) {
  const settings = kubernetesSettings(cluster)
  const traits = versionTraits(cluster.kubernetesVersion)
  for (const key of Object.keys(EXTRA_ARGS) as Array<keyof typeof EXTRA_ARGS>) {
    const reserved = RESERVED_EXTRA_ARGS[key].find((flag) => flag in settings[EXTRA_ARGS[key]])
    if (reserved === 'feature-gates')
      fail(`kubernetes.${key}.feature-gates is not allowed`, 'set gates in [kubernetes.feature-gates], which reaches every component')
    if (reserved)
      fail(`kubernetes.${key}.${reserved} is set by kube-spawn, which depends on its value`, 'remove it (see docs/configuration.md)')
  }
  if (settings.kubeProxyMode === 'nftables' && !traits.nftablesProxyMode) {
    fail(
      `kubernetes.kube-proxy-mode = "nftables" needs Kubernetes 1.31 or newer, not ${traits.version.text}`,
      'use "iptables", or kubernetes-version v1.31.0 or newer',
    )
  }
  if (settings.patches !== undefined) {
    if (!isAbsolute(settings.patches))
      fail(
        `kubernetes.patches "${settings.patches}" is not an absolute path`,
        'give the absolute path of a directory of kubeadm patch files',
      )
    if (checkPaths && !(await stat(settings.patches).catch(() => undefined))?.isDirectory())
      fail(
        `kubernetes.patches ${settings.patches} does not exist or is not a directory`,
        'create it with kubeadm patch files, or fix the path',
      )
  }
  const documents = kubeadmDocumentTypes(traits)
  for (const [index, text] of settings.configPatches.entries()) {
    const where = `kubernetes.config-patches[${index}]`
    let patch: ReturnType<typeof parseConfigPatch>
    try {
      patch = parseConfigPatch(text)
    } catch (error) {
      return fail(`${where} ${errorMessage(error)}`, 'write one YAML map with kind, optionally apiVersion, and the fields to change')
    }
    if (!documents.some((document) => patchMatches(patch, document))) {
      const selects = patch.apiVersion ? `${patch.kind} (${patch.apiVersion})` : patch.kind
      fail(
        `${where} patches ${selects}, which matches no kubeadm config document for ${traits.version.text}`,
        `select one of ${documents.map((d) => `${d.kind} (${d.apiVersion})`).join(', ')}`,
      )
    }
  }
}

export function validateClusterName(name: string, source?: string): void {
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name) || name.length > MAX_CLUSTER_NAME) {
    throw new UserError(
      `${source ? `${source}: ` : ''}cluster name "${name}" is not a lower-case DNS-1123 label of at most ${MAX_CLUSTER_NAME} characters`,
      {
        hint: 'use lower-case letters, digits and "-", starting and ending with a letter or digit, for example "dev"',
      },
    )
  }
}

export function generateToken(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  const pick = (n: number) => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('')
  return `${pick(6)}.${pick(16)}`
}

/** The token id is public; the secret half never appears in output. */
export function redactToken(token: string): string {
  const dot = token.indexOf('.')
  return dot < 0 ? '<redacted>' : `${token.slice(0, dot)}.<redacted>`
}

/** Parses 90s, 10m, 1h, 1m30s into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text)
  if (!match || text === '') return undefined
  const [, h = '0', m = '0', s = '0'] = match
  const ms = ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000
  return ms > 0 ? ms : undefined
}

/** The TOML text of the cluster, in the documented spelling. */
export function serializeCluster(cluster: Cluster): string {
  const mounts = (b: BindMounts) => ({'read-only': b.readOnly, 'read-write': b.readWrite})
  // Empty tables and lists are left out: they are the defaults, and the file stays short.
  const ifAny = (key: string, value: object) => (Object.keys(value).length > 0 ? {[key]: value} : {})
  const k = kubernetesSettings(cluster)
  const doc = {
    'cluster-name': cluster.clusterName,
    'container-runtime': cluster.containerRuntime,
    image: cluster.image,
    'kubernetes-version': cluster.kubernetesVersion,
    nodes: cluster.nodes,
    'control-planes': cluster.controlPlanes ?? 1,
    ...(cluster.registry?.enabled
      ? {registry: {enabled: true, port: cluster.registry.port, ...(cluster.registry.dir === undefined ? {} : {dir: cluster.registry.dir})}}
      : {}),
    token: cluster.token,
    cni: cluster.cni,
    kubernetes: {
      source: k.source,
      ...ifAny('feature-gates', k.featureGates),
      ...ifAny('api-server-extra-args', k.apiServerExtraArgs),
      ...ifAny('controller-manager-extra-args', k.controllerManagerExtraArgs),
      ...ifAny('scheduler-extra-args', k.schedulerExtraArgs),
      ...ifAny('kubelet-extra-args', k.kubeletExtraArgs),
      ...(k.patches === undefined ? {} : {patches: k.patches}),
      ...ifAny('config-patches', k.configPatches),
      'kube-proxy-mode': k.kubeProxyMode,
    },
    network: {
      subnet: cluster.network.subnet,
      ...(cluster.network.clusterSubnet ? {'cluster-subnet': cluster.network.clusterSubnet} : {}),
      'pod-cidr': cluster.network.podCidr,
      'service-cidr': cluster.network.serviceCidr,
      egress: cluster.network.egress,
    },
    bindmount: mounts(cluster.bindmount),
    ...((cluster.portMappings ?? []).length > 0
      ? {
          'port-mapping': cluster.portMappings!.map((m) => ({
            'host-port': m.hostPort,
            'node-port': m.nodePort,
            protocol: m.protocol,
            ...(m.node === undefined ? {} : {node: m.node}),
          })),
        }
      : {}),
    'runtime-config': {
      'cgroup-per-qos': cluster.runtimeConfig.cgroupPerQos,
      'fail-swap-on': cluster.runtimeConfig.failSwapOn,
      timeout: cluster.runtimeConfig.timeout,
      'use-legacy-cgroup-driver': cluster.runtimeConfig.useLegacyCgroupDriver,
    },
    'plugin-config': cluster.pluginConfig,
    state: {initialized: cluster.state.initialized},
    machines: cluster.machines.map((m) => ({name: m.name, role: m.role, ip: m.ip, running: m.running, bindmount: mounts(m.bindmount)})),
  }
  return `# Written by kube-spawn. The definition may be edited while the cluster is stopped.\n${TOML.stringify(doc as unknown as TOML.JsonMap)}`
}

function toBindMounts(raw: Record<string, BindMount[]> | undefined): BindMounts {
  return {readOnly: raw?.['read-only'] ?? [], readWrite: raw?.['read-write'] ?? []}
}

function allMounts(b: BindMounts): BindMount[] {
  return [...b.readOnly, ...b.readWrite]
}

function hintFor(problem: string): string {
  if (problem.startsWith('unknown key')) return 'remove it or fix its spelling (see docs/configuration.md)'
  if (problem.includes('out of range')) return 'change the value'
  return 'fix the value (see docs/configuration.md)'
}

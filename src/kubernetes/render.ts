/**
 * The files kubeadm and the kubelet need in a node, rendered as text from the cluster definition.
 * Everything here is pure: no I/O, same input → same bytes (golden-file tested). Every decision that
 * depends on the Kubernetes release is taken from the version table (versions.ts).
 */
import type {Cluster, Role} from '../config/definition.js'
import {UserError} from '../errors.js'
import {cidrSize, parseCidr, parseIPv4} from '../net/cidr.js'
import {criSocketFor, runtimeKubeletArgs, type VersionTraits, versionTraits} from './versions.js'

// ---------------------------------------------------------------------------------------------------
// A tiny YAML emitter: block style, deterministic, for plain data only.
// ---------------------------------------------------------------------------------------------------

export type YamlScalar = string | number | boolean | null
export type YamlValue = YamlScalar | undefined | YamlValue[] | {[key: string]: YamlValue}

/** Characters a plain (unquoted) scalar may hold here; anything else is double-quoted. */
const PLAIN = /^[A-Za-z0-9_./][\w./@=+,-]*(?: [\w./@=+,-]+)*$/
/** Plain scalars that YAML 1.1 or 1.2 would read as something other than a string. */
const AMBIGUOUS = [
  /^(?:null|~|y|n|yes|no|true|false|on|off)$/i,
  /^[-+]?(?:0b[01_]+|0o?[0-7_]+|0x[\da-f_]+)$/i,
  /^[-+]?[\d_]*\.?[\d_]*(?:e[-+]?\d+)?$/i,
  /^[-+]?\d[\d_]*(?::[0-5]?\d)+(?:\.[\d_]*)?$/,
  /^[-+]?\.(?:inf|nan)$/i,
  /^\d{4}-\d\d?-\d\d?/,
]

/** A string as a YAML scalar: plain when that reads back as the same string, else double-quoted. */
export function yamlString(text: string): string {
  if (PLAIN.test(text) && !AMBIGUOUS.some((re) => re.test(text))) return text
  // JSON's escapes are valid in YAML's double-quoted style; YAML 1.1 also breaks lines at NEL, LS and PS.
  return JSON.stringify(text).replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function yamlScalar(value: YamlScalar): string {
  if (value === null) return 'null'
  if (typeof value === 'boolean') return String(value)
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`cannot write ${value} as YAML`)
    return String(value)
  }
  return yamlString(value)
}

const isScalar = (value: YamlValue): value is YamlScalar => value === null || typeof value !== 'object'

function mapLines(map: {[key: string]: YamlValue}, indent: number): string[] {
  const pad = ' '.repeat(indent)
  const lines: string[] = []
  for (const [key, value] of Object.entries(map)) {
    if (value === undefined) continue
    const head = `${pad}${yamlString(key)}:`
    if (isScalar(value)) lines.push(`${head} ${yamlScalar(value)}`)
    else if (Array.isArray(value)) {
      // Sequences sit at their key's indentation, as kubeadm and kubectl write them.
      if (value.length === 0) lines.push(`${head} []`)
      else lines.push(head, ...seqLines(value, indent))
    } else if (Object.values(value).every((v) => v === undefined)) lines.push(`${head} {}`)
    else lines.push(head, ...mapLines(value, indent + 2))
  }
  return lines
}

function seqLines(seq: YamlValue[], indent: number): string[] {
  const pad = ' '.repeat(indent)
  const lines: string[] = []
  for (const item of seq) {
    if (item === undefined) throw new TypeError('cannot write undefined as a YAML sequence item')
    if (isScalar(item)) lines.push(`${pad}- ${yamlScalar(item)}`)
    else if (Array.isArray(item)) {
      if (item.length === 0) lines.push(`${pad}- []`)
      else {
        const inner = seqLines(item, indent + 2)
        lines.push(`${pad}- ${inner[0].trimStart()}`, ...inner.slice(1))
      }
    } else {
      const inner = mapLines(item, indent + 2)
      if (inner.length === 0) lines.push(`${pad}- {}`)
      else lines.push(`${pad}- ${inner[0].trimStart()}`, ...inner.slice(1))
    }
  }
  return lines
}

/** One YAML document (without the --- separator), ending in a newline. Keys keep their insertion order. */
export function toYaml(value: YamlValue): string {
  if (value === undefined) throw new TypeError('cannot write undefined as YAML')
  if (isScalar(value)) return `${yamlScalar(value)}\n`
  if (Array.isArray(value)) return value.length === 0 ? '[]\n' : `${seqLines(value, 0).join('\n')}\n`
  const lines = mapLines(value, 0)
  return lines.length === 0 ? '{}\n' : `${lines.join('\n')}\n`
}

/** Several documents in one stream, separated by ---. */
export function toYamlDocuments(documents: YamlValue[]): string {
  return documents.map(toYaml).join('---\n')
}

// ---------------------------------------------------------------------------------------------------
// kubeadm configuration
// ---------------------------------------------------------------------------------------------------

export const API_SERVER_PORT = 6443
/** Each node gets a /24 of the pod CIDR (the controller manager's node-cidr-mask-size). */
export const NODE_CIDR_MASK = 24
/**
 * The bootstrap token's lifetime. kube-spawn joins every worker right after init, so kubeadm's own
 * default of 24 h is plenty, and it bounds the use of a secret that also sits in kspawn.toml. A node
 * joined later (after a day) needs the token re-created first: `kubeadm token create <token>` on the
 * control plane accepts the same token string again.
 */
export const BOOTSTRAP_TOKEN_TTL = '24h0m0s'

export interface RenderNode {
  name: string
  ip: string
  role: Role
}

export interface InitConfigInput {
  cluster: Cluster
  /** The node kubeadm init runs on (the control plane). */
  node: RenderNode
  /** The API server's address; defaults to the node's. */
  controlPlaneIp?: string
  /** The runtime's CRI socket, as the runtime plugin names it, e.g. unix:///run/containerd/containerd.sock. */
  criSocket: string
  /** Where control-plane images come from; defaults to the version's registry. */
  imageRepository?: string
  /** The bootstrap token; defaults to the cluster's. */
  token?: string
}

export interface JoinConfigInput {
  cluster: Cluster
  /** The worker that joins. */
  node: RenderNode
  controlPlaneIp: string
  criSocket: string
  /** The hash of the cluster CA's public key, sha256:<hex> (the bare hex is accepted). */
  caCertHash: string
  token?: string
}

type Args = Array<[name: string, value: string]>

/** extraArgs and kubeletExtraArgs: a map before v1beta4, a list of {name, value} from it on. */
function extraArgs(traits: VersionTraits, args: Args): YamlValue {
  return traits.extraArgsAsList ? args.map(([name, value]) => ({name, value})) : Object.fromEntries(args)
}

function requireIPv4(ip: string, what: string): string {
  if (parseIPv4(ip) === undefined) throw new TypeError(`${what} "${ip}" is not an IPv4 address`)
  return ip
}

/** The pod CIDR must leave a /24 for every node and be one the controller manager accepts. */
function checkPodCidr(cluster: Cluster): void {
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

function nodeRegistration(cluster: Cluster, traits: VersionTraits, node: RenderNode, criSocket: string): YamlValue {
  const args: Args = [['node-ip', requireIPv4(node.ip, `node ${node.name} IP`)], ...runtimeKubeletArgs(traits, criSocket)]
  // Without QoS cgroups the kubelet refuses its default enforceNodeAllocatable ["pods"]. An empty list
  // in the KubeletConfiguration does not survive kubeadm (it drops empty fields when it rewrites the
  // config), so the empty value goes in as a flag, which overrides the config file.
  if (!cluster.runtimeConfig.cgroupPerQos) args.push(['enforce-node-allocatable', ''])
  return {
    name: node.name,
    criSocket: criSocketFor(traits, criSocket),
    // A one-node cluster must run workloads on its control plane: an empty list means no taint
    // (leaving the field out gets kubeadm's NoSchedule control-plane taint).
    taints: node.role === 'control-plane' && cluster.nodes === 1 ? [] : undefined,
    kubeletExtraArgs: extraArgs(traits, args),
  }
}

function kubeletConfiguration(cluster: Cluster, traits: VersionTraits): YamlValue {
  const rc = cluster.runtimeConfig
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    cgroupDriver: rc.useLegacyCgroupDriver ? 'cgroupfs' : 'systemd',
    cgroupsPerQOS: rc.cgroupPerQos,
    failSwapOn: rc.failSwapOn,
    failCgroupV1: traits.failCgroupV1Field ? false : undefined,
    // Nodes run no systemd-resolved; kube-spawn writes the node's own resolv.conf.
    resolvConf: '/etc/resolv.conf',
    // Nodes share the host's disk: never evict pods or collect images because the host is full
    // (an image imported from an offline bundle cannot be pulled again).
    imageGCHighThresholdPercent: 100,
    evictionHard: {
      'memory.available': '0%',
      'nodefs.available': '0%',
      'nodefs.inodesFree': '0%',
      'imagefs.available': '0%',
      'imagefs.inodesFree': '0%',
    },
  }
}

/** /proc/sys is read-only in a node: kube-proxy must not try to raise nf_conntrack_max. */
const KUBE_PROXY_CONFIGURATION: YamlValue = {
  apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
  kind: 'KubeProxyConfiguration',
  conntrack: {maxPerCore: 0},
}

/** kubeadm init --config: InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration. */
export function renderInitConfig(input: InitConfigInput): string {
  const {cluster, node, criSocket} = input
  const traits = versionTraits(cluster.kubernetesVersion)
  const cpIp = requireIPv4(input.controlPlaneIp ?? node.ip, 'control-plane IP')
  checkPodCidr(cluster)
  const init: YamlValue = {
    apiVersion: traits.kubeadmApi,
    kind: 'InitConfiguration',
    bootstrapTokens: [
      {
        token: input.token ?? cluster.token,
        description: `kube-spawn cluster ${cluster.clusterName}`,
        ttl: BOOTSTRAP_TOKEN_TTL,
      },
    ],
    localAPIEndpoint: {advertiseAddress: requireIPv4(node.ip, `node ${node.name} IP`), bindPort: API_SERVER_PORT},
    nodeRegistration: nodeRegistration(cluster, traits, node, criSocket),
  }
  const clusterConfiguration: YamlValue = {
    apiVersion: traits.kubeadmApi,
    kind: 'ClusterConfiguration',
    kubernetesVersion: traits.version.text,
    clusterName: cluster.clusterName,
    controlPlaneEndpoint: `${cpIp}:${API_SERVER_PORT}`,
    imageRepository: input.imageRepository ?? traits.imageRepository,
    apiServer: {certSANs: [...new Set([cpIp, node.ip, node.name, '127.0.0.1', 'localhost'])]},
    // kubeadm derives --cluster-cidr from podSubnet. Node ranges are allocated whatever the CNI:
    // the built-in bridge needs them, and most CNIs read them too.
    controllerManager: {
      extraArgs: extraArgs(traits, [
        ['allocate-node-cidrs', 'true'],
        ['node-cidr-mask-size', String(NODE_CIDR_MASK)],
      ]),
    },
    networking: {
      dnsDomain: 'cluster.local',
      podSubnet: cluster.network.podCidr,
      serviceSubnet: cluster.network.serviceCidr,
    },
  }
  return toYamlDocuments([init, clusterConfiguration, kubeletConfiguration(cluster, traits), KUBE_PROXY_CONFIGURATION])
}

/** The CA hash in kubeadm's form, sha256:<64 hex digits>. */
export function normalizeCaCertHash(hash: string): string {
  const match = /^(?:sha256:)?([0-9a-f]{64})$/i.exec(hash.trim())
  if (!match) throw new TypeError(`"${hash}" is not a CA certificate hash of the form sha256:<64 hex digits>`)
  return `sha256:${match[1].toLowerCase()}`
}

/** kubeadm join --config for a worker. Discovery always pins the cluster CA by its hash. */
export function renderJoinConfig(input: JoinConfigInput): string {
  const {cluster, node, criSocket} = input
  if (node.role !== 'worker') throw new TypeError(`node ${node.name} is a ${node.role}; only workers join`)
  const traits = versionTraits(cluster.kubernetesVersion)
  const cpIp = requireIPv4(input.controlPlaneIp, 'control-plane IP')
  const join: YamlValue = {
    apiVersion: traits.kubeadmApi,
    kind: 'JoinConfiguration',
    discovery: {
      bootstrapToken: {
        apiServerEndpoint: `${cpIp}:${API_SERVER_PORT}`,
        token: input.token ?? cluster.token,
        caCertHashes: [normalizeCaCertHash(input.caCertHash)],
      },
    },
    nodeRegistration: nodeRegistration(cluster, traits, node, criSocket),
  }
  return toYaml(join)
}

// ---------------------------------------------------------------------------------------------------
// The kubelet's systemd unit and drop-ins
// ---------------------------------------------------------------------------------------------------

export const KUBELET_BINARY = '/usr/local/bin/kubelet'
export const KUBELET_UNIT_PATH = '/etc/systemd/system/kubelet.service'
export const KUBEADM_DROP_IN_PATH = '/etc/systemd/system/kubelet.service.d/10-kubeadm.conf'
export const KUBE_SPAWN_DROP_IN_PATH = '/etc/systemd/system/kubelet.service.d/20-kube-spawn.conf'

/** The kubelet unit as the upstream packages ship it, restarting quickly (it crash-loops until kubeadm has written its config). */
export function kubeletUnit(): string {
  return `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/home/
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
ExecStart=${KUBELET_BINARY}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`
}

/**
 * kubeadm's drop-in, as upstream ships it. It is the same for every supported release: what differs
 * by version reaches the kubelet through kubeadm-flags.env (written by kubeadm from
 * nodeRegistration) and config.yaml. `traits` is accepted so callers need not know that.
 */
export function kubeadmDropIn(_traits?: VersionTraits): string {
  return `# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=${KUBELET_BINARY} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`
}

/**
 * kube-spawn's drop-in: the kubelet starts after the runtime and the node's cgroup and network
 * units, and a bounded stop timeout keeps powering off a node quick.
 */
export function kubeSpawnDropIn(runtimeService = 'containerd.service'): string {
  return `[Unit]
After=${runtimeService} kube-spawn-cgroups.service kube-spawn-network.service
Wants=${runtimeService} kube-spawn-cgroups.service

[Service]
TimeoutStopSec=10s
`
}

/** The three kubelet unit files, with their paths in a node. */
export function kubeletSystemdFiles(runtimeService?: string, traits?: VersionTraits): Array<{path: string; content: string}> {
  return [
    {path: KUBELET_UNIT_PATH, content: kubeletUnit()},
    {path: KUBEADM_DROP_IN_PATH, content: kubeadmDropIn(traits)},
    {path: KUBE_SPAWN_DROP_IN_PATH, content: kubeSpawnDropIn(runtimeService)},
  ]
}

// ---------------------------------------------------------------------------------------------------
// The built-in pod network (cni = "bridge")
// ---------------------------------------------------------------------------------------------------

export const CNI_CONFLIST_PATH = '/etc/cni/net.d/10-kube-spawn.conflist'

/**
 * A node's CNI config: the bridge plugin on cni0 as the pods' gateway, host-local addresses from the
 * node's own pod range, and portmap for hostPort. No masquerading: pod traffic to other nodes keeps
 * its source address (nodes route each other's pod ranges). cniVersion 0.4.0 is understood by
 * Debian's containernetworking-plugins 1.1 and every supported kubelet's runtime.
 */
export function renderCniConflist(podCidr: string): string {
  if (!parseCidr(podCidr)) throw new TypeError(`node pod CIDR "${podCidr}" is not an IPv4 CIDR block`)
  const conflist = {
    cniVersion: '0.4.0',
    name: 'kube-spawn',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {type: 'host-local', ranges: [[{subnet: podCidr}]], routes: [{dst: '0.0.0.0/0'}]},
      },
      {type: 'portmap', capabilities: {portMappings: true}},
    ],
  }
  return `${JSON.stringify(conflist, null, 2)}\n`
}

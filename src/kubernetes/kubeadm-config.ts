/**
 * kubeadm's configuration for a node (init on the control plane, join on a worker), rendered from the
 * cluster definition. Pure: same input, same bytes (golden-file tested). Every decision that depends
 * on the Kubernetes release is taken from the version table (versions.ts).
 */
import {parseAllDocuments} from 'yaml'

import type {Cluster, KubernetesSettings, Role} from '../config/definition.js'

import {parseIPv4} from '../net/cidr.js'
import {NODE_CIDR_MASK} from '../net/pod-cidr.js'
import {type DocumentType, type YamlMap, applyConfigPatches} from './config-patches.js'
import {type Dockershim, criSocketFor, runtimeKubeletArgs, type VersionTraits, versionTraits} from './versions.js'
import {type YamlValue, renderYaml} from './yaml.js'

export const API_SERVER_PORT = 6443
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
  /** The API server's address (the load balancer's with several control planes); defaults to the node's. */
  controlPlaneIp?: string
  /** That address's machine name, for the API server certificate (kubeconfig --internal uses it). */
  controlPlaneName?: string
  /** With several control planes: the key kubeadm init --upload-certs encrypts the shared certificates with (64 hex digits). */
  certificateKey?: string
  /** The runtime's CRI socket, as the runtime plugin names it, e.g. unix:///run/containerd/containerd.sock. */
  criSocket: string
  /** Set when the runtime is docker through the kubelet's dockershim (criSocket is then dockershim's). */
  dockershim?: Dockershim
  /** Where control-plane images come from; defaults to the version's registry. */
  imageRepository?: string
  /** The bootstrap token; defaults to the cluster's. */
  token?: string
}

export interface JoinConfigInput {
  cluster: Cluster
  /** The node that joins: a worker, or a further control plane when certificateKey is given. */
  node: RenderNode
  /** The API server's address (the load balancer's with several control planes). */
  controlPlaneIp: string
  /** A control plane's join: the key of the certificates kubeadm init uploaded. */
  certificateKey?: string
  /** The path in the node of a discovery kubeconfig (renderDiscoveryKubeconfig): file discovery instead of token discovery. */
  discoveryFile?: string
  /** How long discovery may wait for the cluster-info ConfigMap (kubeadm's default is 5 min): a join may begin during init. */
  discoveryTimeoutSeconds?: number
  criSocket: string
  dockershim?: Dockershim
  /** The hash of the cluster CA's public key, sha256:<hex> (the bare hex is accepted). */
  caCertHash: string
  token?: string
  /** The worker's kubelet.conf was issued before the join (renderKubeletKubeconfig): preflight must accept it. */
  kubeletConfIssued?: boolean
}

const KUBELET_API = 'kubelet.config.k8s.io/v1beta1'
const KUBE_PROXY_API = 'kubeproxy.config.k8s.io/v1alpha1'

/** Every document kube-spawn renders for this version (init and join together): what a config patch may select. */
export function kubeadmDocumentTypes(traits: VersionTraits): DocumentType[] {
  return [
    ...['InitConfiguration', 'ClusterConfiguration', 'JoinConfiguration'].map((kind) => ({apiVersion: traits.kubeadmApi, kind})),
    {apiVersion: KUBELET_API, kind: 'KubeletConfiguration'},
    {apiVersion: KUBE_PROXY_API, kind: 'KubeProxyConfiguration'},
  ]
}

/** [kubernetes] with the defaults a Cluster built without them (by a plugin or an older kube-spawn) lacks. */
export function kubernetesSettings(cluster: Cluster): Required<Omit<KubernetesSettings, 'patches'>> & {patches?: string} {
  const k = cluster.kubernetes
  return {
    source: k.source,
    featureGates: k.featureGates ?? {},
    apiServerExtraArgs: k.apiServerExtraArgs ?? {},
    controllerManagerExtraArgs: k.controllerManagerExtraArgs ?? {},
    schedulerExtraArgs: k.schedulerExtraArgs ?? {},
    kubeletExtraArgs: k.kubeletExtraArgs ?? {},
    patches: k.patches,
    configPatches: k.configPatches ?? [],
    kubeProxyMode: k.kubeProxyMode ?? 'iptables',
  }
}

/**
 * Flags kube-spawn sets itself (or derives from other keys) and depends on, by definition key: a user's
 * extra args may not set them. feature-gates has its own key, which reaches every component.
 */
export const RESERVED_EXTRA_ARGS = {
  'api-server-extra-args': ['advertise-address', 'feature-gates', 'secure-port', 'service-cluster-ip-range'],
  'controller-manager-extra-args': [
    'allocate-node-cidrs',
    'cluster-cidr',
    'feature-gates',
    'node-cidr-mask-size',
    'service-cluster-ip-range',
  ],
  'scheduler-extra-args': ['feature-gates'],
  'kubelet-extra-args': [
    'cgroup-driver',
    'cgroups-per-qos',
    'cni-bin-dir',
    'cni-conf-dir',
    'container-runtime',
    'container-runtime-endpoint',
    'enforce-node-allocatable',
    'fail-swap-on',
    'feature-gates',
    'network-plugin',
    'node-ip',
    'pod-infra-container-image',
  ],
} as const

type Args = Array<[name: string, value: string]>

/** extraArgs and kubeletExtraArgs: a map before v1beta4, a list of {name, value} from it on. */
function extraArgs(traits: VersionTraits, args: Args): YamlValue {
  return traits.extraArgsAsList ? args.map(([name, value]) => ({name, value})) : Object.fromEntries(args)
}

/** Sorted by name, so that the output does not depend on the order of the file. */
function sorted<T>(entries: Record<string, T>): Array<[string, T]> {
  return Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** A control-plane component's flags: kube-spawn's own, then the feature gates, then the user's. */
function componentArgs(own: Args, gates: Record<string, boolean>, user: Record<string, string>): Args {
  const gateList = sorted(gates).map(([name, on]) => `${name}=${on}`)
  return [...own, ...(gateList.length > 0 ? [['feature-gates', gateList.join(',')] as [string, string]] : []), ...sorted(user)]
}

/** A ClusterConfiguration component with its extraArgs, or nothing when it has none (the default output stays as it was). */
function component(traits: VersionTraits, args: Args, fields: YamlMap = {}): YamlMap | undefined {
  const value = {...(args.length > 0 ? {extraArgs: extraArgs(traits, args)} : {}), ...fields}
  return Object.keys(value).length > 0 ? value : undefined
}

/** Feature gates as a KubeletConfiguration/KubeProxyConfiguration map, or nothing. */
function gateMap(gates: Record<string, boolean>): YamlValue {
  return Object.keys(gates).length > 0 ? Object.fromEntries(sorted(gates)) : undefined
}

function requireIPv4(ip: string, what: string): string {
  if (parseIPv4(ip) === undefined) throw new TypeError(`${what} "${ip}" is not an IPv4 address`)
  return ip
}

function requireCertificateKey(key: string): string {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new TypeError('the certificate key is not 64 lower-case hex digits')
  return key
}

/** The pod CIDR must leave a /24 for every node and be one the controller manager accepts. */

function nodeRegistration(
  cluster: Cluster,
  traits: VersionTraits,
  node: RenderNode,
  criSocket: string,
  dockershim: Dockershim | undefined,
  ignorePreflightErrors?: string[],
): YamlValue {
  const args: Args = [['node-ip', requireIPv4(node.ip, `node ${node.name} IP`)], ...runtimeKubeletArgs(traits, criSocket, dockershim)]
  // Without QoS cgroups the kubelet refuses its default enforceNodeAllocatable ["pods"]. An empty list
  // in the KubeletConfiguration does not survive kubeadm (it drops empty fields when it rewrites the
  // config), so the empty value goes in as a flag, which overrides the config file.
  if (!cluster.runtimeConfig.cgroupPerQos) args.push(['enforce-node-allocatable', ''])
  // The user's flags come last; none of them is one of the above (RESERVED_EXTRA_ARGS).
  args.push(...sorted(kubernetesSettings(cluster).kubeletExtraArgs))
  return {
    name: node.name,
    criSocket: criSocketFor(traits, criSocket),
    // A cluster without workers must run workloads on its control planes: an empty list means no taint
    // (leaving the field out gets kubeadm's NoSchedule control-plane taint).
    taints: node.role === 'control-plane' && cluster.nodes === (cluster.controlPlanes ?? 1) ? [] : undefined,
    kubeletExtraArgs: extraArgs(traits, args),
    ignorePreflightErrors,
  }
}

function kubeletConfiguration(cluster: Cluster, traits: VersionTraits): YamlMap {
  const rc = cluster.runtimeConfig
  return {
    apiVersion: KUBELET_API,
    kind: 'KubeletConfiguration',
    cgroupDriver: rc.useLegacyCgroupDriver ? 'cgroupfs' : 'systemd',
    cgroupsPerQOS: rc.cgroupPerQos,
    failSwapOn: rc.failSwapOn,
    failCgroupV1: traits.failCgroupV1Field ? false : undefined,
    // The kubelet computes its node's status every 2 s (default 10 s) but posts it only when it changes
    // (or every nodeStatusReportFrequency, 5 min): a node is seen Ready within 2 s, for no more writes.
    nodeStatusUpdateFrequency: '2s',
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
    featureGates: gateMap(kubernetesSettings(cluster).featureGates),
  }
}

function kubeProxyConfiguration(cluster: Cluster): YamlMap {
  const {kubeProxyMode, featureGates} = kubernetesSettings(cluster)
  return {
    apiVersion: KUBE_PROXY_API,
    kind: 'KubeProxyConfiguration',
    // An empty mode is iptables on Linux; "none" renders no mode, as kubeadm then skips the kube-proxy addon.
    mode: kubeProxyMode === 'nftables' ? 'nftables' : undefined,
    // /proc/sys is read-only in a node: kube-proxy must not try to raise nf_conntrack_max.
    conntrack: {maxPerCore: 0},
    featureGates: gateMap(featureGates),
  }
}

/** kubeadm init --config: InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration. */
export function renderInitConfig(input: InitConfigInput): string {
  const {cluster, node, criSocket} = input
  const traits = versionTraits(cluster.kubernetesVersion)
  const cpIp = requireIPv4(input.controlPlaneIp ?? node.ip, 'control-plane IP')
  const settings = kubernetesSettings(cluster)
  const init: YamlMap = {
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
    nodeRegistration: nodeRegistration(cluster, traits, node, criSocket, input.dockershim),
    certificateKey: input.certificateKey === undefined ? undefined : requireCertificateKey(input.certificateKey),
  }
  const clusterConfiguration: YamlMap = {
    apiVersion: traits.kubeadmApi,
    kind: 'ClusterConfiguration',
    kubernetesVersion: traits.version.text,
    clusterName: cluster.clusterName,
    controlPlaneEndpoint: `${cpIp}:${API_SERVER_PORT}`,
    imageRepository: input.imageRepository ?? traits.imageRepository,
    apiServer: component(traits, componentArgs([], settings.featureGates, settings.apiServerExtraArgs), {
      certSANs: [
        ...new Set([cpIp, ...(input.controlPlaneName ? [input.controlPlaneName] : []), node.ip, node.name, '127.0.0.1', 'localhost']),
      ],
    }),
    // kubeadm derives --cluster-cidr from podSubnet. With the built-in bridge kube-spawn assigns each
    // node's range itself (nodePodCidr), before the node boots; your own CNI reads the controller
    // manager's allocation, as most do.
    controllerManager: component(
      traits,
      componentArgs(
        [
          ['allocate-node-cidrs', String(cluster.cni !== 'bridge')],
          ['node-cidr-mask-size', String(NODE_CIDR_MASK)],
        ],
        settings.featureGates,
        settings.controllerManagerExtraArgs,
      ),
    ),
    scheduler: component(traits, componentArgs([], settings.featureGates, settings.schedulerExtraArgs)),
    networking: {
      dnsDomain: 'cluster.local',
      podSubnet: cluster.network.podCidr,
      serviceSubnet: cluster.network.serviceCidr,
    },
  }
  const documents = [init, clusterConfiguration, kubeletConfiguration(cluster, traits), kubeProxyConfiguration(cluster)]
  return renderYaml(applyConfigPatches(documents, settings.configPatches))
}

/**
 * kubeadm's discovery file: the cluster's CA and API server, and the bootstrap token as its user. With the
 * token, discovery's request for cluster-info is refused as unauthorized (and asked again 5 s later) until
 * kubeadm init has created the token, by which time what a join reads next exists; anonymous, it would be
 * forbidden as soon as the API server runs, and kubeadm would go on at once (and fail).
 */
export function renderDiscoveryKubeconfig(cluster: Cluster, caPem: string, apiServerIp: string, token = cluster.token): string {
  const server = `https://${requireIPv4(apiServerIp, 'API server IP')}:${API_SERVER_PORT}`
  const ca = Buffer.from(caPem).toString('base64')
  return renderYaml([
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name: cluster.clusterName, cluster: {'certificate-authority-data': ca, server}}],
      contexts: [{name: 'discovery', context: {cluster: cluster.clusterName, user: 'discovery'}}],
      'current-context': 'discovery',
      users: [{name: 'discovery', user: {token}}],
    },
  ])
}

/** Where a kubelet keeps its client certificate and key, as TLS bootstrap leaves them and the kubelet rotates them. */
export const KUBELET_CLIENT_PEM = '/var/lib/kubelet/pki/kubelet-client-current.pem'

/** kubeadm join's preflight check that fails when the node already has a kubelet.conf. */
const KUBELET_CONF_PREFLIGHT_CHECK = 'FileAvailable--etc-kubernetes-kubelet.conf'

/** A kubelet's kubeconfig reading its client certificate and key from KUBELET_CLIENT_PEM: what TLS bootstrap writes. */
export function renderKubeletKubeconfig(cluster: Cluster, caPem: string, apiServerIp: string): string {
  const server = `https://${requireIPv4(apiServerIp, 'API server IP')}:${API_SERVER_PORT}`
  return renderYaml([
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name: cluster.clusterName, cluster: {'certificate-authority-data': Buffer.from(caPem).toString('base64'), server}}],
      contexts: [{name: 'kubelet', context: {cluster: cluster.clusterName, user: 'kubelet'}}],
      'current-context': 'kubelet',
      users: [{name: 'kubelet', user: {'client-certificate': KUBELET_CLIENT_PEM, 'client-key': KUBELET_CLIENT_PEM}}],
    },
  ])
}

/**
 * A rendered kubeadm init configuration with another node's name: for `kubeadm init phase kubeconfig kubelet`,
 * which issues that node's kubelet credentials from the same cluster settings.
 */
export function initConfigForNode(initConfig: string, nodeName: string): string {
  const documents = parseAllDocuments(initConfig).map((d) => d.toJS() as YamlMap)
  const init = documents.find((d) => d.kind === 'InitConfiguration')
  if (!init) throw new TypeError('the kubeadm configuration has no InitConfiguration')
  init.nodeRegistration = {...(init.nodeRegistration as YamlMap), name: nodeName}
  return renderYaml(documents)
}

/** The CA hash in kubeadm's form, sha256:<64 hex digits>. */
export function normalizeCaCertHash(hash: string): string {
  const match = /^(?:sha256:)?([0-9a-f]{64})$/i.exec(hash.trim())
  if (!match) throw new TypeError(`"${hash}" is not a CA certificate hash of the form sha256:<64 hex digits>`)
  return `sha256:${match[1].toLowerCase()}`
}

/**
 * kubeadm join --config for a worker or a further control plane. Discovery pins the cluster CA: by its hash (token
 * discovery), or by the CA itself in a discovery file, which does not wait for the controller manager to sign
 * cluster-info (kubeadm retries token discovery every 5 s until then).
 */
export function renderJoinConfig(input: JoinConfigInput): string {
  const {cluster, node, criSocket} = input
  const controlPlane = node.role === 'control-plane'
  if (node.role !== 'worker' && !controlPlane) throw new TypeError(`node ${node.name} is a ${node.role}; it runs no kubelet`)
  if (controlPlane && input.certificateKey === undefined)
    throw new TypeError(`control plane ${node.name} joins only with the certificate key of kubeadm init --upload-certs`)
  const traits = versionTraits(cluster.kubernetesVersion)
  const cpIp = requireIPv4(input.controlPlaneIp, 'control-plane IP')
  const discoveryTimeout = input.discoveryTimeoutSeconds === undefined ? undefined : `${Math.ceil(input.discoveryTimeoutSeconds)}s`
  const join: YamlMap = {
    apiVersion: traits.kubeadmApi,
    kind: 'JoinConfiguration',
    // v1beta4 moved the discovery timeout into timeouts.
    timeouts: discoveryTimeout && traits.joinTimeouts ? {discovery: discoveryTimeout} : undefined,
    discovery: input.discoveryFile
      ? {
          file: {kubeConfigPath: input.discoveryFile},
          tlsBootstrapToken: input.token ?? cluster.token,
          timeout: discoveryTimeout && !traits.joinTimeouts ? discoveryTimeout : undefined,
        }
      : {
          bootstrapToken: {
            apiServerEndpoint: `${cpIp}:${API_SERVER_PORT}`,
            token: input.token ?? cluster.token,
            caCertHashes: [normalizeCaCertHash(input.caCertHash)],
          },
        },
    nodeRegistration: nodeRegistration(
      cluster,
      traits,
      node,
      criSocket,
      input.dockershim,
      input.kubeletConfIssued ? [KUBELET_CONF_PREFLIGHT_CHECK] : undefined,
    ),
    controlPlane: controlPlane
      ? {
          localAPIEndpoint: {advertiseAddress: requireIPv4(node.ip, `node ${node.name} IP`), bindPort: API_SERVER_PORT},
          certificateKey: requireCertificateKey(input.certificateKey!),
        }
      : undefined,
  }
  return renderYaml(applyConfigPatches([join], kubernetesSettings(cluster).configPatches))
}

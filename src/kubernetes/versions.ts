import {type KubernetesVersion, parseKubernetesVersion} from '../config/version.js'
import {CADVISOR_DOCKER_ENDPOINT} from './kubelet-unit.js'

/**
 * Everything that changes across Kubernetes releases, in one table. Rendering code asks this
 * table; it never compares versions itself.
 */
export interface VersionTraits {
  version: KubernetesVersion
  /** kubeadm config API: v1beta2 for 1.20–1.21, v1beta3 for 1.22–1.30, v1beta4 from 1.31. */
  kubeadmApi: 'kubeadm.k8s.io/v1beta2' | 'kubeadm.k8s.io/v1beta3' | 'kubeadm.k8s.io/v1beta4'
  /** Default image registry kubeadm pulls from. */
  imageRepository: 'k8s.gcr.io' | 'registry.k8s.io'
  /** The pause image kubeadm expects the runtime to use as sandbox. */
  pauseVersion: string
  /** v1beta4 writes extraArgs as a list of {name, value}; older APIs as a map. */
  extraArgsAsList: boolean
  /** The kubelet's --container-runtime=remote flag exists only before 1.27. */
  containerRuntimeFlag: boolean
  /** The CRI socket needs the unix:// scheme from 1.24 on (a plain path is deprecated). */
  criSocketScheme: boolean
  /**
   * KubeletConfiguration has failCgroupV1 from 1.31; from 1.35 it defaults to true and the kubelet
   * refuses cgroup v1 hosts, which is what many nspawn hosts are. kube-spawn sets it to false.
   */
  failCgroupV1Field: boolean
  /** kubeadm init/join's patch-directory flag: --experimental-patches in 1.20–1.21, --patches from 1.22. */
  patchesFlag: '--experimental-patches' | '--patches'
  /** kube-proxy's nftables mode: kube-spawn offers it from 1.31, where it is beta and on by default. */
  nftablesProxyMode: boolean
  /** JoinConfiguration's timeouts (v1beta4, from 1.31) hold the discovery timeout, formerly discovery.timeout. */
  joinTimeouts: boolean
  /**
   * The kubelet's embedded cAdvisor (up to 1.23, while the kubelet carried dockershim) asks Docker for
   * its root directory at every kubelet start, five times a second apart when Docker does not answer
   * (google/cadvisor#3175): 5 s of every kubelet start on a node without Docker.
   */
  cadvisorDockerProbe: boolean
  /** The token controller gives every service account a token Secret (removed in 1.24); 1.20's admission needs it for a pod. */
  serviceAccountTokenSecrets: boolean
}

const PAUSE: Array<[minMinor: number, pause: string]> = [
  [31, '3.10'],
  [26, '3.9'],
  [25, '3.8'],
  [24, '3.7'],
  [23, '3.6'],
  [22, '3.5'],
  [21, '3.4.1'],
  [20, '3.2'],
]

export function versionTraits(text: string): VersionTraits {
  const version = parseKubernetesVersion(text)
  if (!version) throw new Error(`unsupported Kubernetes version ${text}`)
  const {minor} = version
  return {
    version,
    kubeadmApi: minor >= 31 ? 'kubeadm.k8s.io/v1beta4' : minor >= 22 ? 'kubeadm.k8s.io/v1beta3' : 'kubeadm.k8s.io/v1beta2',
    imageRepository: minor >= 25 ? 'registry.k8s.io' : 'k8s.gcr.io',
    pauseVersion: PAUSE.find(([min]) => minor >= min)![1],
    extraArgsAsList: minor >= 31,
    containerRuntimeFlag: minor < 27,
    criSocketScheme: minor >= 24,
    failCgroupV1Field: minor >= 31,
    patchesFlag: minor >= 22 ? '--patches' : '--experimental-patches',
    nftablesProxyMode: minor >= 31,
    joinTimeouts: minor >= 31,
    cadvisorDockerProbe: minor <= 23,
    serviceAccountTokenSecrets: minor <= 23,
  }
}

export function sandboxImage(traits: VersionTraits): string {
  return `${traits.imageRepository}/pause:${traits.pauseVersion}`
}

/** A CRI endpoint as a unix:// URL, the form every supported kubelet accepts for --container-runtime-endpoint. */
export function criEndpoint(socket: string): string {
  return socket.startsWith('unix://') ? socket : `unix://${socket}`
}

/** The CRI socket as this version's kubeadm wants it in nodeRegistration.criSocket. */
export function criSocketFor(traits: VersionTraits, socket: string): string {
  return traits.criSocketScheme ? criEndpoint(socket) : socket.replace(/^unix:\/\//, '')
}

/** The kubelet's built-in dockershim (Kubernetes 1.23 and older): where it finds the CNI plugins. */
export interface Dockershim {
  cniBinDir: string
  cniConfDir: string
}

/**
 * Kubelet flags that must come from kubeadm's nodeRegistration.kubeletExtraArgs for this version.
 * Before 1.27 the kubelet assumes dockershim unless told --container-runtime=remote (kubeadm usually
 * adds both flags itself, but only when it recognises the socket, so kube-spawn states them). With
 * dockershim the kubelet runs the CNI plugins and the sandbox itself, so it is told where they are
 * (kubeadm's own flags for docker lack the CNI directories; Debian's plugins are not in /opt/cni/bin).
 * Without dockershim, kubelets that probe Docker at start are pointed at kube-spawn's answer (--docker).
 */
export function runtimeKubeletArgs(traits: VersionTraits, socket: string, dockershim?: Dockershim): Array<[name: string, value: string]> {
  if (dockershim)
    return [
      ['network-plugin', 'cni'],
      ['cni-bin-dir', dockershim.cniBinDir],
      ['cni-conf-dir', dockershim.cniConfDir],
      ['pod-infra-container-image', sandboxImage(traits)],
    ]
  const args: Array<[name: string, value: string]> = []
  if (traits.containerRuntimeFlag) args.push(['container-runtime', 'remote'], ['container-runtime-endpoint', criEndpoint(socket)])
  if (answersCadvisorDockerProbe(traits, false)) args.push(['docker', CADVISOR_DOCKER_ENDPOINT])
  return args
}

/**
 * Whether the kubelet's cAdvisor is pointed at kube-spawn's answer to its Docker probe (kubelet-unit.ts):
 * when its version probes and Docker does not run the node's containers (a user's kubelet-extra-args
 * `docker` still overrides it).
 */
export function answersCadvisorDockerProbe(traits: VersionTraits, viaDockershim: boolean): boolean {
  return traits.cadvisorDockerProbe && !viaDockershim
}

/**
 * Docker Engine as the nodes' container runtime, as a declaration. Up to Kubernetes 1.23 the kubelet
 * talks to docker through its built-in dockershim; from 1.24 (which removed dockershim) through
 * cri-dockerd, downloaded from its GitHub release and verified against the digest pinned here.
 */
import {
  type FileContext,
  type KubeSpawnHook,
  type RuntimeProvider,
  type RuntimeQuery,
  type RuntimeVariant,
  userError,
} from '@kube-spawn/sdk'

/** The cri-dockerd release used from Kubernetes 1.24 on, and its amd64 archive's SHA-256. */
export const CRI_DOCKERD_VERSION = '0.3.16'
/**
 * cri-dockerd publishes no checksum files, so the digest is pinned here; it equals kubespray's
 * (roles/kubespray_defaults/vars/main/checksums.yml, cri_dockerd_archive_checksums.amd64).
 */
export const CRI_DOCKERD_SHA256 = 'cc7f181ce850130dc375515c54cd8a27e1e862252abc5b7eade7b4a03ddabd8e'
export const CRI_DOCKERD_SOCKET = 'unix:///run/cri-dockerd.sock'
/** The socket the kubelet's dockershim serves, and the exact value kubeadm ≤ 1.23 recognises docker by. */
export const DOCKERSHIM_SOCKET = 'unix:///var/run/dockershim.sock'
const FIRST_WITHOUT_DOCKERSHIM = 24

/**
 * docker's settings in a node: its cgroup driver must be the kubelet's; no docker0 bridge, iptables
 * rules or masquerading of its own (the pod network is CNI's, and docker's FORWARD DROP policy would
 * cut pods off, kubernetes/kubernetes#40182).
 */
export function daemonJson(ctx: Pick<FileContext, 'kubernetes' | 'host'> & {cluster?: Pick<FileContext['cluster'], 'registry'>}): string {
  const registry = ctx.cluster?.registry?.address
  const config = {
    // The cluster's registry speaks plain HTTP.
    ...(registry ? {'insecure-registries': [registry]} : {}),
    ...(ctx.host.capSysResource ? {} : {runtimes: {'kube-spawn-runc': {path: RUNC_WRAPPER_PATH}}, 'default-runtime': 'kube-spawn-runc'}),
    'exec-opts': [`native.cgroupdriver=${ctx.kubernetes.cgroupDriver}`],
    'storage-driver': 'overlay2',
    bridge: 'none',
    iptables: false,
    'ip-masq': false,
    'log-driver': 'json-file',
    'log-opts': {'max-size': '10m', 'max-file': '3'},
  }
  return `${JSON.stringify(config, null, 2)}\n`
}

/** Capability names by number (linux/capability.h), for the wrapper to read the node's bounding set. */
const CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
]

export const RUNC_WRAPPER_PATH = '/usr/local/libexec/kube-spawn/runc'

/**
 * Where nodes lack CAP_SYS_RESOURCE, two things docker asks of runc fail: lowering a container's
 * oom_score_adj below the node's own (the kubelet asks -998 for every pod sandbox), and granting a
 * privileged container (kube-proxy) every capability docker knows, including ones outside the node's
 * bounding set. containerd has restrict_oom_score_adj and grants privileged containers only the
 * capabilities it has itself; docker has neither, so there docker's runtime is this wrapper, which fits
 * the bundle's config.json to the node before runc reads it.
 */
export const RUNC_WRAPPER = `#!/bin/sh
# Written by kube-spawn (runtime-docker): see RUNC_WRAPPER in the plugin.
bundle=
prev=
for arg in "$@"; do
  case "$prev" in --bundle | -b) bundle=$arg ;; esac
  case "$arg" in --bundle=*) bundle=\${arg#--bundle=} ;; esac
  prev=$arg
done
config="$bundle/config.json"
if [ -n "$bundle" ] && [ -f "$config" ]; then
  floor=$(cat /proc/self/oom_score_adj)
  wanted=$(grep -o '"oomScoreAdj":-\\{0,1\\}[0-9]*' "$config" | head -n 1 | cut -d: -f2)
  if [ -n "$wanted" ] && [ "$wanted" -lt "$floor" ]; then
    sed -i "s/\\"oomScoreAdj\\":$wanted/\\"oomScoreAdj\\":$floor/" "$config"
  fi
  bounding=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)
  drop=
  bit=0
  for cap in ${CAPABILITIES.join(' ')}; do
    [ $(((0x$bounding >> bit) & 1)) -eq 1 ] || drop="$drop -e s/\\"CAP_$cap\\",\\{0,1\\}//g"
    bit=$((bit + 1))
  done
  [ -z "$drop" ] || sed -i $drop -e 's/,]/]/g' "$config"
fi
for runc in /usr/sbin/runc /usr/bin/runc; do
  [ -x "$runc" ] && exec "$runc" "$@"
done
echo "kube-spawn runc wrapper: runc not found" >&2
exit 127
`

/** cri-dockerd's service (its upstream unit, with the CNI directories and sandbox image of this cluster). */
export function criDockerdService(ctx: Pick<FileContext, 'kubernetes' | 'cni'>): string {
  return `# Written by kube-spawn (runtime-docker), after cri-dockerd's packaging/systemd/cri-docker.service.
[Unit]
Description=CRI Interface for Docker Application Container Engine
After=network-online.target docker.service
Wants=network-online.target
Requires=cri-docker.socket docker.service

[Service]
Type=notify
ExecStart=/usr/local/bin/cri-dockerd --container-runtime-endpoint fd:// --network-plugin=cni --cni-bin-dir=${ctx.cni.binDir} --cni-conf-dir=${ctx.cni.confDir} --pod-infra-container-image=${ctx.kubernetes.sandboxImage}
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutSec=0
RestartSec=2
Restart=always
StartLimitBurst=3
StartLimitInterval=60s
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process

[Install]
WantedBy=multi-user.target
`
}

export const CRI_DOCKERD_SOCKET_UNIT = `# Written by kube-spawn (runtime-docker), after cri-dockerd's packaging/systemd/cri-docker.socket.
[Unit]
Description=CRI Docker Socket for the API
PartOf=cri-docker.service

[Socket]
ListenStream=%t/cri-dockerd.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
`

export interface CriDockerd {
  url: string
  sha256: string
}

/** [plugin-config.runtime-docker] cri-dockerd-url and cri-dockerd-sha256: a mirror of the release archive. */
export function criDockerdSource(query: Pick<RuntimeQuery, 'pluginConfig'>): CriDockerd & {mirrored: boolean} {
  const config = query.pluginConfig('runtime-docker')
  const url = config['cri-dockerd-url']
  const sha256 = config['cri-dockerd-sha256']
  const bad = (message: string) =>
    userError(`[plugin-config.runtime-docker] ${message}`, {hint: 'fix the definition (docs/plugins.md#docker)'})
  if (url === undefined && sha256 === undefined)
    return {
      url: `https://github.com/Mirantis/cri-dockerd/releases/download/v${CRI_DOCKERD_VERSION}/cri-dockerd-${CRI_DOCKERD_VERSION}.amd64.tgz`,
      sha256: CRI_DOCKERD_SHA256,
      mirrored: false,
    }
  if (typeof url !== 'string' || !/^https?:\/\//.test(url))
    throw bad('cri-dockerd-url must be an http(s) URL of a cri-dockerd release archive')
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256))
    throw bad('cri-dockerd-sha256 must be the archive’s SHA-256 (64 lower-case hex digits), given with cri-dockerd-url')
  return {url, sha256, mirrored: true}
}

const minorOf = (version: string) => Number(/^v?1\.(\d+)/.exec(version)?.[1] ?? 0)
const usesDockershim = (query: Pick<RuntimeQuery, 'kubernetesVersion'>) => minorOf(query.kubernetesVersion) < FIRST_WITHOUT_DOCKERSHIM

/** Kills every container docker runs (the kubelet is already stopped), so that stopping docker is quick. */
const KILL_CONTAINERS = 'ids=$(docker ps -q 2>/dev/null); [ -z "$ids" ] || docker kill $ids >/dev/null 2>&1 || true'

/** From Kubernetes 1.24: cri-dockerd between the kubelet and docker. */
function criDockerdVariant(query: RuntimeQuery): RuntimeVariant {
  const source = criDockerdSource(query)
  return {
    kubelet: 'cri',
    criSocket: CRI_DOCKERD_SOCKET,
    files: [
      ...docker.files!,
      {path: '/usr/local/bin/cri-dockerd', url: source.url, sha256: source.sha256, extract: 'cri-dockerd/cri-dockerd', mode: 0o755},
      {path: '/etc/systemd/system/cri-docker.service', content: criDockerdService},
      {path: '/etc/systemd/system/cri-docker.socket', content: CRI_DOCKERD_SOCKET_UNIT},
    ],
    commands: [...docker.commands, 'cri-dockerd'],
    dataDirs: [...docker.dataDirs, '/var/lib/cri-dockerd'],
    services: ['cri-docker.service', 'docker.service'],
  }
}

export const docker: RuntimeProvider = {
  name: 'docker',
  description: 'Docker Engine from the base image’s packages: dockershim up to Kubernetes 1.23, cri-dockerd from 1.24',
  packages: {debian: {names: ['docker.io', 'containernetworking-plugins']}},
  files: [
    {path: '/etc/docker/daemon.json', content: daemonJson},
    {path: RUNC_WRAPPER_PATH, content: RUNC_WRAPPER, mode: 0o755},
  ],
  configuresRegistry: true,
  commands: ['dockerd', 'docker'],
  dataDirs: ['/var/lib/docker'],
  kubelet: 'dockershim',
  criSocket: DOCKERSHIM_SOCKET,
  cgroupDrivers: ['systemd', 'cgroupfs'],
  cniBinDir: '/usr/lib/cni',
  imageImportCommand: ['docker', 'load', '-i'],
  services: ['docker.service'],
  readinessCommand: ['docker', 'info'],
  stopContainersCommand: ['sh', '-c', KILL_CONTAINERS],
  // dockershim's and cri-dockerd's port-forward run socat (cri-dockerd streaming/streaming_others.go).
  needsSocat: true,
  supports: {images: ['debian']},
  variant: (query) => (usesDockershim(query) ? {} : criDockerdVariant(query)),
  refuse(query) {
    if (usesDockershim(query)) return undefined
    // An offline bundle means no GitHub: cri-dockerd must come from a mirror the user names.
    if (query.kubernetesSource.startsWith('/') && !criDockerdSource(query).mirrored)
      return `container runtime docker on Kubernetes ${query.kubernetesVersion} needs cri-dockerd ${CRI_DOCKERD_VERSION}, downloaded from GitHub, while this cluster installs Kubernetes from an offline bundle: set [plugin-config.runtime-docker] cri-dockerd-url and cri-dockerd-sha256 to a copy this host can reach, use Kubernetes 1.23 or older (dockershim), or use containerd`
    return undefined
  },
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({runtimes: [docker]})

/**
 * CRI-O as the nodes' container runtime, as a declaration. Its packages come from CRI-O's own apt
 * repository, one stream per Kubernetes minor, so the packages are a variant of the cluster
 * (docs/plugins.md#runtimes).
 */
import {
  type AptSource,
  type FileContext,
  type KubeSpawnHook,
  type RuntimeProvider,
  type RuntimeQuery,
  readPluginConfig,
  userError,
} from '@kube-spawn/sdk'

/** The plugin's short name: its [plugin-config.runtime-crio] table. */
export const PLUGIN = 'runtime-crio'

/**
 * The primary key of the isv:cri-o OBS project, which signs every isv:cri-o:stable:v1.XX stream
 * (rsa4096, created 2025-02-11; seen with gpg --show-keys in cri-o/cri-o#9298 for v1.33, and in
 * public notes for v1.35 and v1.36). OBS extends its expiry in place, so the fingerprint is pinned,
 * not the key file's bytes.
 */
export const OBS_KEY_FINGERPRINT = '85B67D5C50100B1AC8CEFE49CBA9C85640A2B579'

/** The first Kubernetes minor with a CRI-O stream in isv:cri-o (older Kubic repositories are gone). */
export const FIRST_MINOR = 28

/** cri-o from the apt source; skopeo and the CNI plugins (cri-o only recommends kubernetes-cni) from Debian. */
export const PACKAGES = ['cri-o', 'containernetworking-plugins', 'skopeo']

export const CRIO_SOCKET = '/var/run/crio/crio.sock'
/** One store for CRI-O and skopeo. */
export const STORAGE = {driver: 'overlay', graphroot: '/var/lib/containers/storage', runroot: '/run/containers/storage'} as const
export const CRIO_LOAD_PATH = '/usr/local/libexec/kube-spawn/crio-load'

/** [plugin-config.runtime-crio]: another repository (a mirror, or builds of one's own) and its key. */
export interface CrioSettings {
  repoUrl?: string
  keyUrl?: string
  keyFingerprint?: string
}

const KEYS = ['repo-url', 'key-url', 'key-fingerprint']

export function crioSettings(ctx: Pick<RuntimeQuery, 'pluginConfig'>): CrioSettings {
  const config = readPluginConfig(ctx, PLUGIN)
  const bad = (message: string) => userError(`[plugin-config.${PLUGIN}] ${message}`, {hint: 'fix the cluster definition'})
  const unknown = config.unknownKeys(KEYS)
  if (unknown.length > 0) throw bad(`has no key ${unknown.map((k) => `"${k}"`).join(', ')} (it knows: ${KEYS.join(', ')})`)
  const url = (key: string) => {
    const value = config.string(key)
    if (value !== undefined && !/^https?:\/\/\S+$/.test(value)) throw bad(`${key} must be an http(s) URL, not ${JSON.stringify(value)}`)
    return value?.replace(/\/+$/, '')
  }
  const fingerprint = config.string('key-fingerprint')?.replace(/\s+/g, '').toUpperCase()
  if (fingerprint !== undefined && !/^[0-9A-F]{40}$/.test(fingerprint))
    throw bad(`key-fingerprint must be the key's 40 hex digits, not ${JSON.stringify(config.string('key-fingerprint'))}`)
  return {repoUrl: url('repo-url'), keyUrl: url('key-url'), keyFingerprint: fingerprint}
}

/** "v1.28.3" → 28. */
export function kubernetesMinor(version: string): number {
  const match = /^v?1\.(\d+)(\.\d+)?$/.exec(version)
  if (!match)
    throw userError(`runtime cri-o cannot read the Kubernetes version ${JSON.stringify(version)}`, {hint: 'use vMAJOR.MINOR.PATCH'})
  return Number(match[1])
}

/** The apt source of CRI-O for a Kubernetes version: CRI-O's minor is Kubernetes' minor. A flat repository. */
export function crioRepo(version: string, settings: CrioSettings = {}): AptSource {
  const repo = settings.repoUrl ?? `https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.${kubernetesMinor(version)}/deb`
  return {
    name: 'cri-o',
    entry: `${repo}/ /`,
    key: {url: settings.keyUrl ?? `${repo}/Release.key`, fingerprint: settings.keyFingerprint ?? OBS_KEY_FINGERPRINT},
  }
}

/**
 * The drop-in over the package's 10-crio.conf. A drop-in replaces a runtime handler's whole table, so
 * both handlers repeat the package's paths. With cgroupfs, conmon must run in the pod's cgroup.
 */
export function crioConfig(ctx: Pick<FileContext, 'kubernetes' | 'cni'>): string {
  const systemd = ctx.kubernetes.cgroupDriver === 'systemd'
  const handler = (name: string) => `[crio.runtime.runtimes.${name}]
runtime_path = "/usr/libexec/crio/${name}"
runtime_root = "/run/${name}"
monitor_path = "/usr/libexec/crio/conmon"
monitor_cgroup = "${systemd ? 'system.slice' : 'pod'}"
`
  return `# Written by kube-spawn (runtime-crio).
[crio]
root = "${STORAGE.graphroot}"
runroot = "${STORAGE.runroot}"
storage_driver = "${STORAGE.driver}"

[crio.api]
listen = "${CRIO_SOCKET}"

[crio.runtime]
cgroup_manager = "${systemd ? 'systemd' : 'cgroupfs'}"
default_runtime = "crun"

${handler('crun')}
${handler('runc')}
[crio.image]
pause_image = "${ctx.kubernetes.sandboxImage}"

[crio.network]
network_dir = "${ctx.cni.confDir}"
plugin_dirs = ["${ctx.cni.binDir}"]
`
}

/** containers-storage's config, which skopeo reads: the same store as CRI-O's, so imported images are CRI-O's. */
export function storageConfig(_ctx?: Pick<FileContext, 'kubernetes'>): string {
  return `# Written by kube-spawn (runtime-crio): the store CRI-O uses (/etc/crio/crio.conf.d/20-kube-spawn.conf).
[storage]
driver = "${STORAGE.driver}"
graphroot = "${STORAGE.graphroot}"
runroot = "${STORAGE.runroot}"
`
}

/**
 * Imports a docker-archive into CRI-O's store. skopeo needs each image's name, and the host appends
 * only the path, so the names come from the archive's manifest.json (no jq in a minbase root).
 * --insecure-policy: a local archive has no signatures to check.
 */
export const CRIO_LOAD = `#!/bin/sh
# Written by kube-spawn (runtime-crio): crio-load ARCHIVE imports a docker-archive (docker save) into CRI-O's store.
set -euf
[ $# -eq 1 ] || { echo "usage: crio-load ARCHIVE" >&2; exit 2; }
archive=$1
[ -r "$archive" ] || { echo "crio-load: cannot read $archive" >&2; exit 1; }
# docker save writes manifest.json; other tools write ./manifest.json.
manifest=$(tar -xOf "$archive" manifest.json 2>/dev/null || tar -xOf "$archive" ./manifest.json 2>/dev/null) || {
  echo "crio-load: $archive has no manifest.json: it is not a docker-archive (docker save) file" >&2
  exit 1
}
# Every "RepoTags": [...] list onto a line of its own, then one name per line.
tags=$(printf '%s' "$manifest" | tr -d '\\n' | sed 's/"RepoTags"[[:space:]]*:[[:space:]]*\\[/\\
@@/g' | sed -n 's/^@@\\([^]]*\\)\\].*/\\1/p' | tr ',' '\\n' | sed -n 's/^[[:space:]]*"\\(.*\\)"[[:space:]]*$/\\1/p')
if [ -z "$tags" ]; then
  echo "crio-load: $archive holds no tagged image (manifest.json has no RepoTags), and CRI-O finds images by name: save it with a tag" >&2
  exit 1
fi
for tag in $tags; do
  skopeo --insecure-policy copy --quiet "docker-archive:$archive:$tag" "containers-storage:$tag"
done
`

/**
 * Stops every pod through CRI with crictl when the Kubernetes source put it in the node (the cri-o
 * package has none); otherwise kills the processes in the pods' cgroups (kubepods*, either driver).
 */
const KILL_CONTAINERS = `if command -v crictl >/dev/null 2>&1; then
  c="crictl --runtime-endpoint unix://${CRIO_SOCKET}"
  ids=$($c ps -q 2>/dev/null) && [ -n "$ids" ] && $c stop --timeout 0 $ids >/dev/null 2>&1
  ids=$($c pods -q 2>/dev/null) && [ -n "$ids" ] && $c stopp $ids >/dev/null 2>&1
else
  find /sys/fs/cgroup -path '*kubepods*' -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
fi
true`

/** Why CRI-O cannot serve this cluster: only its upstream streams exist, from Kubernetes 1.28 on. */
function refusal(query: RuntimeQuery): string | undefined {
  if (crioSettings(query).repoUrl !== undefined) return undefined
  if (kubernetesMinor(query.kubernetesVersion) >= FIRST_MINOR) return undefined
  return `CRI-O's packages exist for Kubernetes 1.${FIRST_MINOR} and newer (the v1.${FIRST_MINOR} and later streams of isv:cri-o:stable on download.opensuse.org), not ${query.kubernetesVersion}; use containerd or docker for older Kubernetes, or set [plugin-config.${PLUGIN}] repo-url to a repository of your own builds`
}

export const REGISTRY_CONF_PATH = '/etc/containers/registries.conf.d/50-kube-spawn-registry.conf'

/** The cluster's registry, plain HTTP, in containers-registries.conf(5) v2 form; a comment alone without one. */
export function registryConfig(ctx: Pick<FileContext, 'cluster'>): string {
  const registry = ctx.cluster.registry?.address
  const head = '# Written by kube-spawn (runtime-cri-o).\n'
  return registry ? `${head}[[registry]]\nlocation = "${registry}"\ninsecure = true\n` : `${head}# The cluster has no registry.\n`
}

export const crio: RuntimeProvider = {
  name: 'cri-o',
  description:
    'CRI-O (crun, runc, conmon) from its upstream apt repository, the stream of the cluster’s Kubernetes minor (1.28 and newer); images imported with skopeo',
  // The apt source depends on the Kubernetes version: variant() gives it; the names alone are known here.
  packages: {debian: {names: PACKAGES}},
  files: [
    {path: '/etc/crio/crio.conf.d/20-kube-spawn.conf', content: crioConfig},
    {path: '/etc/containers/storage.conf', content: storageConfig},
    {path: CRIO_LOAD_PATH, content: CRIO_LOAD, mode: 0o755},
    {path: REGISTRY_CONF_PATH, content: registryConfig},
  ],
  configuresRegistry: true,
  commands: ['crio', 'skopeo'],
  dataDirs: ['/var/lib/containers', '/var/lib/crio'],
  criSocket: `unix://${CRIO_SOCKET}`,
  cgroupDrivers: ['systemd', 'cgroupfs'],
  cniBinDir: '/usr/lib/cni',
  imageImportCommand: [CRIO_LOAD_PATH],
  services: ['crio.service'],
  // `crio status` (in crio itself since v1.28.0) asks the daemon over its socket: it fails until CRI-O serves.
  readinessCommand: ['crio', 'status', '--socket', CRIO_SOCKET, 'info'],
  stopContainersCommand: ['sh', '-c', KILL_CONTAINERS],
  // CRI-O's port-forward is native since v1.19.0 (cri-o/cri-o 7512d31, "Remove socat runtime dependency").
  needsSocat: false,
  supports: {images: ['debian']},
  variant: (query) => ({
    packages: {debian: {names: PACKAGES, aptSources: [crioRepo(query.kubernetesVersion, crioSettings(query))]}},
  }),
  refuse: refusal,
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({runtimes: [crio]})

/**
 * etcd's write-ahead log, sparse. etcd preallocates each 64 MB log segment, and the next one ahead, with
 * fallocate: 128 MB of a control plane's disk from its first second, whatever is written. When fallocate
 * answers "not supported", etcd (3.4 and 3.5, fileutil.Preallocate) falls back to extending the file with
 * ftruncate: the same size, sparse, taking only the space written. A seccomp profile for the etcd pod gives
 * that answer; kubeadm's patches put the pod under it.
 */

/** The profile's path under the kubelet's seccomp root (/var/lib/kubelet/seccomp). */
export const ETCD_SECCOMP_PROFILE = 'kube-spawn/etcd-sparse-wal.json'
export const KUBELET_SECCOMP_ROOT = '/var/lib/kubelet/seccomp'

/** EOPNOTSUPP (ENOTSUP) on Linux: the errno etcd takes its fallback on. */
const EOPNOTSUPP = 95

/** Everything allowed, except fallocate, which fails as unsupported (the pod runs unconfined otherwise, as kubeadm's does). */
export const etcdSeccompProfile = `${JSON.stringify(
  {defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{names: ['fallocate'], action: 'SCMP_ACT_ERRNO', errnoRet: EOPNOTSUPP}]},
  undefined,
  2,
)}\n`

/** A strategic-merge patch of kubeadm's etcd static pod (kubeadm's patch file name: target, patch type). */
export const ETCD_PATCH_FILE = 'etcd+strategic.yaml'
export const etcdPatch = `# Written by kube-spawn: etcd's write-ahead log sparse (docs/kubernetes.md#etcds-write-ahead-log).
spec:
  securityContext:
    seccompProfile:
      type: Localhost
      localhostProfile: ${ETCD_SECCOMP_PROFILE}
`

/**
 * kube-spawn's own kubeadm patches: etcd's, unless the user's kubernetes.patches has a patch for etcd,
 * which then takes its place (kubeadm would apply both, in an order of their names), or the host is slow
 * (its waits scaled: an emulated CPU). There etcd with the sparse log made the VM suite's kubeadm init
 * take 2m27s → 3m23s and its wait for Ready 1m48s → 2m59s, and failed it twice, although the guest's
 * synced writes into a sparse file were no slower than into a preallocated one; so the log stays preallocated.
 */
export function builtInPatches(userFiles: readonly string[], {slowHost}: {slowHost: boolean}): Array<{name: string; content: string}> {
  if (slowHost || userFiles.some((name) => /^etcd[^/]*\.(ya?ml|json)$/.test(name))) return []
  return [{name: ETCD_PATCH_FILE, content: etcdPatch}]
}

/** The kubelet's systemd unit and drop-ins in a node: pure text, golden-file tested. */
import type {VersionTraits} from './versions.js'

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

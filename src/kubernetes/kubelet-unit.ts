/** The kubelet's systemd unit and drop-ins in a node: pure text, golden-file tested. */
import type {NodeFile} from '../node/node-files.js'
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

/**
 * Where the kubelet's cAdvisor is pointed (its --docker flag) on a node without Docker, when its
 * version probes Docker at start (VersionTraits.cadvisorDockerProbe).
 */
export const CADVISOR_DOCKER_ENDPOINT = 'unix:///run/kube-spawn/cadvisor-docker.sock'

/**
 * HTTP on stdin/stdout (socket activation, one process per connection, kept open: the kubelet asks
 * again at every node status update). cAdvisor asks /info for Docker's root directory and /version for
 * its version, and retries five times a second apart until both answer. The root directory given is
 * cAdvisor's own fallback, and version 0.0.0 makes cAdvisor decline to register its Docker container
 * factory, as it does when no Docker answers. Anything else (the client's /_ping) gets an empty success.
 */
const CADVISOR_DOCKER_ANSWER = `#!/bin/sh
CR=$(printf '\\r')
while read -r _ path _; do
  while read -r line && [ -n "\${line%"$CR"}" ]; do :; done
  case "$path" in
    */info) body='{"DockerRootDir":"/var/lib/docker","ServerVersion":"0.0.0"}' ;;
    */version) body='{"Version":"0.0.0","ApiVersion":"1.40"}' ;;
    *) body='' ;;
  esac
  printf 'HTTP/1.1 200 OK\\r\\nApi-Version: 1.40\\r\\nContent-Type: application/json\\r\\nContent-Length: %s\\r\\n\\r\\n%s' "\${#body}" "$body"
done
`

const CADVISOR_DOCKER_UNIT = '/etc/systemd/system/kube-spawn-cadvisor-docker'

/** The answer to cAdvisor's Docker probe: a script, a listening socket, and its per-connection service. */
function cadvisorDockerAnswerFiles(): NodeFile[] {
  const script = '/usr/lib/kube-spawn/cadvisor-docker-answer.sh'
  return [
    {path: script, content: CADVISOR_DOCKER_ANSWER, mode: 0o755},
    {
      path: `${CADVISOR_DOCKER_UNIT}.socket`,
      content: `[Unit]
Description=kube-spawn: answers the kubelet's cAdvisor Docker probe at once (no Docker on this node)

[Socket]
ListenStream=${CADVISOR_DOCKER_ENDPOINT.replace('unix://', '')}
Accept=yes

[Install]
WantedBy=sockets.target
`,
    },
    {
      path: `${CADVISOR_DOCKER_UNIT}@.service`,
      content: `[Unit]
Description=kube-spawn: an answer to the kubelet's cAdvisor Docker probe

[Service]
ExecStart=${script}
StandardInput=socket
`,
    },
    {
      path: '/etc/systemd/system/sockets.target.wants/kube-spawn-cadvisor-docker.socket',
      content: '',
      link: '../kube-spawn-cadvisor-docker.socket',
    },
  ]
}

/**
 * The kubelet's unit files, with their paths in a node; with `answerDockerProbe`, also the answer to
 * cAdvisor's Docker probe (runtimeKubeletArgs points the kubelet at it).
 */
export function kubeletSystemdFiles(runtimeService?: string, traits?: VersionTraits, answerDockerProbe = false): NodeFile[] {
  return [
    {path: KUBELET_UNIT_PATH, content: kubeletUnit()},
    {path: KUBEADM_DROP_IN_PATH, content: kubeadmDropIn(traits)},
    {path: KUBE_SPAWN_DROP_IN_PATH, content: kubeSpawnDropIn(runtimeService)},
    ...(answerDockerProbe ? cadvisorDockerAnswerFiles() : []),
  ]
}

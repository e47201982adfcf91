/**
 * kubeadm init again from a phase that failed because the API server did not answer in time. From
 * upload-config on, kubeadm writes to the API server with a 10 s client timeout, which an API server
 * under its first load on a slow host (an emulated CPU) can exceed. Those phases create or update
 * objects, so running them again is safe; the phases before them (certificates, kubeconfigs, manifests,
 * the kubelet's start) are skipped, since what they made is in place and running.
 */

/** kubeadm init's phases in order (cmd/kubeadm/app/cmd/init.go, 1.15 on); the hidden wait-control-plane runs anyway. */
const INIT_PHASES: readonly string[] = [
  'preflight',
  'certs',
  'kubeconfig',
  'kubelet-start',
  'control-plane',
  'etcd',
  'upload-config',
  'upload-certs',
  'mark-control-plane',
  'bootstrap-token',
  'kubelet-finalize',
  'addon',
]

/** The phases that only write to the API server. */
const API_PHASES = new Set(INIT_PHASES.slice(INIT_PHASES.indexOf('upload-config')))

/** Errors of an API server (or its etcd) that did not answer in time or dropped the connection. */
const TRANSIENT_API_ERRORS = [
  /Client\.Timeout exceeded/,
  /context deadline exceeded/,
  /connection refused/,
  /connection reset by peer/,
  /TLS handshake timeout/,
  /i\/o timeout/,
  /etcdserver: (request timed out|leader changed|too many requests)/,
  /unable to return a response in the time allotted/,
  /http2: server sent GOAWAY/,
]

const SKIP_FLAG = '--skip-phases='

/** The phase kubeadm says failed ("error execution phase addon/kube-proxy: …"), and why. */
export function failedInitPhase(output: string): {phase: string; reason: string} | undefined {
  const match = /^error execution phase ([\w/-]+): (.*)$/m.exec(output)
  return match ? {phase: match[1], reason: match[2].trim()} : undefined
}

/**
 * The same kubeadm init from its failed phase on, when that phase writes to the API server and failed
 * for an API server that did not answer in time; undefined otherwise (the failure stands).
 */
export function resumedInit(argv: readonly string[], output: string): {argv: string[]; phase: string; reason: string} | undefined {
  const failed = failedInitPhase(output)
  if (!failed) return undefined
  const top = failed.phase.split('/')[0]
  if (!API_PHASES.has(top) || !TRANSIENT_API_ERRORS.some((pattern) => pattern.test(failed.reason))) return undefined
  const given =
    argv
      .find((arg) => arg.startsWith(SKIP_FLAG))
      ?.slice(SKIP_FLAG.length)
      .split(',') ?? []
  const before = INIT_PHASES.slice(0, INIT_PHASES.indexOf(top))
  // A phase given whose top-level phase is skipped now is dropped (kubeadm would skip it twice).
  const skips = [...before, ...given.filter((phase) => phase && !before.includes(phase.split('/')[0]))]
  return {argv: [...argv.filter((arg) => !arg.startsWith(SKIP_FLAG)), `${SKIP_FLAG}${skips.join(',')}`], ...failed}
}

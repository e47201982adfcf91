import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {failedInitPhase, resumedInit} from '../../../dist/kubernetes/init-resume.js'

const ARGV = [
  'kubeadm',
  'init',
  '--config=/etc/kube-spawn/kubeadm-init.yaml',
  '--skip-phases=preflight,addon/coredns',
  '--experimental-patches=/etc/kube-spawn/patches',
  '--skip-token-print',
]

/** kubeadm 1.20's output when its kube-proxy addon phase timed out (the VM suite's TCG guest, session 11). */
const KUBE_PROXY_TIMEOUT = `[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace
[kubelet-finalize] Updating "/etc/kubernetes/kubelet.conf" to point to a rotatable kubelet client certificate and key
error execution phase addon/kube-proxy: error when creating kube-proxy service account: unable to create serviceaccount: Post "https://10.22.0.2:6443/api/v1/namespaces/kube-system/serviceaccounts?timeout=10s": context deadline exceeded (Client.Timeout exceeded while awaiting headers)
To see the stack trace of this error execute with --v=5 or higher
`

describe('failedInitPhase', () => {
  it("reads the phase and the reason from kubeadm's error line", () => {
    const failed = failedInitPhase(KUBE_PROXY_TIMEOUT)
    assert.equal(failed?.phase, 'addon/kube-proxy')
    assert.match(failed?.reason ?? '', /^error when creating kube-proxy service account: .*Client\.Timeout exceeded/)
  })

  it('is undefined when kubeadm named no phase', () => {
    assert.equal(failedInitPhase("couldn't initialize a Kubernetes cluster\n"), undefined)
  })
})

describe('resumedInit', () => {
  it('runs again from the failed top-level phase, skipping every phase before it and keeping the skips given', () => {
    const resumed = resumedInit(ARGV, KUBE_PROXY_TIMEOUT)
    assert.equal(resumed?.phase, 'addon/kube-proxy')
    assert.deepEqual(resumed?.argv, [
      'kubeadm',
      'init',
      '--config=/etc/kube-spawn/kubeadm-init.yaml',
      '--experimental-patches=/etc/kube-spawn/patches',
      '--skip-token-print',
      '--skip-phases=preflight,certs,kubeconfig,kubelet-start,control-plane,etcd,upload-config,upload-certs,mark-control-plane,bootstrap-token,kubelet-finalize,addon/coredns',
    ])
  })

  it('from upload-config, the first phase that writes to the API server', () => {
    const output =
      'error execution phase upload-config/kubelet: Error writing Crisocket information for the control-plane node: timed out waiting for the condition: etcdserver: request timed out\n'
    const skips = resumedInit(
      ARGV.filter((arg) => !arg.startsWith('--skip-phases')),
      output,
    )?.argv.at(-1)
    assert.equal(skips, '--skip-phases=preflight,certs,kubeconfig,kubelet-start,control-plane,etcd')
  })

  it('leaves a failure before the API phases alone (its files may be wrong; kubeadm would reuse them)', () => {
    const output = "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster: context deadline exceeded\n"
    assert.equal(resumedInit(ARGV, output), undefined)
    assert.equal(resumedInit(ARGV, 'error execution phase certs/apiserver: context deadline exceeded\n'), undefined)
  })

  it('leaves an API phase alone that failed for another reason than an unanswered API server', () => {
    const output = 'error execution phase addon/kube-proxy: error when parsing kube-proxy configmap template: unknown field "mode"\n'
    assert.equal(resumedInit(ARGV, output), undefined)
  })

  it('leaves a phase alone that it does not know', () => {
    assert.equal(resumedInit(ARGV, 'error execution phase show-join-command: context deadline exceeded\n'), undefined)
  })
})

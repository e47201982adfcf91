import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {
  answersCadvisorDockerProbe,
  criSocketFor,
  runtimeKubeletArgs,
  sandboxImage,
  versionTraits,
} from '../../../dist/kubernetes/versions.js'

describe('versionTraits', () => {
  it('1.20: kubeadm v1beta2, pause 3.2 from k8s.gcr.io', () => {
    const t = versionTraits('v1.20.2')
    assert.equal(t.version.text, 'v1.20.2')
    assert.equal(t.kubeadmApi, 'kubeadm.k8s.io/v1beta2')
    assert.equal(t.imageRepository, 'k8s.gcr.io')
    assert.equal(t.pauseVersion, '3.2')
    assert.equal(sandboxImage(t), 'k8s.gcr.io/pause:3.2')
    assert.equal(t.extraArgsAsList, false)
    assert.equal(t.containerRuntimeFlag, true)
    assert.equal(t.criSocketScheme, false)
  })

  it('1.21: still v1beta2', () => {
    assert.equal(versionTraits('v1.21.14').kubeadmApi, 'kubeadm.k8s.io/v1beta2')
    assert.equal(versionTraits('v1.21.14').pauseVersion, '3.4.1')
  })

  it('1.22–1.24: v1beta3 from k8s.gcr.io; the CRI socket needs unix:// from 1.24', () => {
    assert.equal(versionTraits('v1.22.0').kubeadmApi, 'kubeadm.k8s.io/v1beta3')
    assert.equal(versionTraits('v1.22.0').imageRepository, 'k8s.gcr.io')
    assert.equal(versionTraits('v1.23.0').criSocketScheme, false)
    assert.equal(versionTraits('v1.24.0').criSocketScheme, true)
  })

  it('1.25: kubeadm v1beta3 from registry.k8s.io', () => {
    const t = versionTraits('1.25.0')
    assert.equal(t.kubeadmApi, 'kubeadm.k8s.io/v1beta3')
    assert.equal(t.imageRepository, 'registry.k8s.io')
    assert.equal(sandboxImage(t), 'registry.k8s.io/pause:3.8')
  })

  it('1.27 drops the --container-runtime kubelet flag', () => {
    assert.equal(versionTraits('v1.26.0').containerRuntimeFlag, true)
    assert.equal(versionTraits('v1.27.0').containerRuntimeFlag, false)
  })

  it('1.31: kubeadm v1beta4, extraArgs as a list, pause 3.10', () => {
    const t = versionTraits('v1.31.1')
    assert.equal(t.kubeadmApi, 'kubeadm.k8s.io/v1beta4')
    assert.equal(t.extraArgsAsList, true)
    assert.equal(sandboxImage(t), 'registry.k8s.io/pause:3.10')
  })

  it('sets failCgroupV1 from 1.31 on', () => {
    assert.equal(versionTraits('v1.30.0').failCgroupV1Field, false)
    assert.equal(versionTraits('v1.31.0').failCgroupV1Field, true)
  })

  it('names the kubeadm patches flag --experimental-patches before 1.22, --patches from it', () => {
    assert.equal(versionTraits('v1.21.14').patchesFlag, '--experimental-patches')
    assert.equal(versionTraits('v1.22.0').patchesFlag, '--patches')
  })

  it('offers kube-proxy nftables mode from 1.31', () => {
    assert.equal(versionTraits('v1.30.9').nftablesProxyMode, false)
    assert.equal(versionTraits('v1.31.0').nftablesProxyMode, true)
  })

  it('spells the CRI socket the way each kubeadm wants it', () => {
    const socket = 'unix:///run/containerd/containerd.sock'
    assert.equal(criSocketFor(versionTraits('v1.20.2'), socket), '/run/containerd/containerd.sock')
    assert.equal(criSocketFor(versionTraits('v1.24.0'), socket), socket)
    assert.equal(criSocketFor(versionTraits('v1.24.0'), '/run/containerd/containerd.sock'), socket)
  })

  it("points the cAdvisor of kubelets up to 1.23 at kube-spawn's answer to its Docker probe, unless Docker runs the pods", () => {
    const socket = 'unix:///run/containerd/containerd.sock'
    const docker = (version: string) => runtimeKubeletArgs(versionTraits(version), socket).find(([name]) => name === 'docker')
    assert.deepEqual(docker('v1.20.2'), ['docker', 'unix:///run/kube-spawn/cadvisor-docker.sock'])
    assert.deepEqual(docker('v1.23.17'), ['docker', 'unix:///run/kube-spawn/cadvisor-docker.sock'])
    assert.equal(docker('v1.24.0'), undefined)
    const dockershim = {cniBinDir: '/usr/lib/cni', cniConfDir: '/etc/cni/net.d'}
    assert.equal(
      runtimeKubeletArgs(versionTraits('v1.20.2'), socket, dockershim).find(([name]) => name === 'docker'),
      undefined,
    )
    assert.equal(answersCadvisorDockerProbe(versionTraits('v1.20.2'), true), false)
    assert.equal(answersCadvisorDockerProbe(versionTraits('v1.20.2'), false), true)
    assert.equal(answersCadvisorDockerProbe(versionTraits('v1.24.0'), false), false)
  })

  it('expects service account token Secrets up to 1.23', () => {
    assert.equal(versionTraits('v1.20.2').serviceAccountTokenSecrets, true)
    assert.equal(versionTraits('v1.23.0').serviceAccountTokenSecrets, true)
    assert.equal(versionTraits('v1.24.0').serviceAccountTokenSecrets, false)
  })

  it('rejects unsupported versions', () => {
    assert.throws(() => versionTraits('v1.19.0'), /unsupported Kubernetes version v1\.19\.0/)
    assert.throws(() => versionTraits('latest'), /unsupported/)
  })
})

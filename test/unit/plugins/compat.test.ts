/** Which plugins and runtimes the host accepts (pure). */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {apiRefusal} from '../../../dist/plugins/compat.js'
import {runtimeRefusal} from '../../../dist/runtime/compat.js'
import {artifactCacheDir} from '../../../dist/state/cache-env.js'
import {containerd} from '../../../plugins/runtime-containerd/dist/index.js'

describe('apiRefusal', () => {
  it('accepts a plugin whose range admits the host API', () => {
    assert.equal(apiRefusal({name: 'p', 'kube-spawn': {apiVersion: '^1.0'}}), undefined)
  })
  it('names the plugin, its range and the host API', () => {
    assert.equal(
      apiRefusal({name: 'kube-spawn-plugin-x', version: '2.0.0', 'kube-spawn': {apiVersion: '^2.0'}}),
      'plugin kube-spawn-plugin-x 2.0.0 supports plugin API "^2.0", but this kube-spawn has plugin API 1.3',
    )
    assert.match(apiRefusal({name: 'old'}) ?? '', /^plugin old does not say which plugin API it supports/)
  })
})

describe('runtimeRefusal', () => {
  const query = {
    image: 'debian',
    family: 'debian',
    kubernetesVersion: 'v1.20.2',
    kubernetesSource: 'https://dl.k8s.io',
    cgroupDriver: 'systemd' as const,
    host: {
      machined: true,
      capSysResource: true,
      cgroupVersion: 2 as const,
      hasLibModules: true,
      systemdPid1: true,
      kernel: '6.1.0',
      timeoutScale: 1,
    },
    pluginConfig: () => ({}),
  }
  it('accepts containerd on Debian', () => {
    assert.equal(runtimeRefusal(containerd, query), undefined)
  })
  it('refuses an image family without packages, an unsupported image, Kubernetes out of range, a cgroup driver', () => {
    assert.equal(
      runtimeRefusal(containerd, {...query, image: 'opensuse', family: 'suse'}),
      'container runtime containerd has no packages for suse images (image opensuse); it has packages for: debian, flatcar',
    )
    const picky = {
      ...containerd,
      supports: {images: ['other'], kubernetes: {min: '1.24', max: 'v1.30.9'}},
      cgroupDrivers: ['cgroupfs' as const],
    }
    assert.match(runtimeRefusal(picky, query) ?? '', /does not support image debian; it supports: other/)
    const versions = {...picky, supports: {kubernetes: picky.supports.kubernetes}}
    assert.equal(runtimeRefusal(versions, query), 'container runtime containerd needs Kubernetes 1.24 or newer, not v1.20.2')
    assert.match(
      runtimeRefusal(versions, {...query, kubernetesVersion: 'v1.31.0'}) ?? '',
      /supports Kubernetes up to v1\.30\.9, not v1\.31\.0/,
    )
    assert.match(runtimeRefusal(versions, {...query, kubernetesVersion: 'v1.25.0'}) ?? '', /cannot use the systemd cgroup driver/)
  })
})

describe('artifactCacheDir', () => {
  it("prefers kube-spawn's own variable, and reads oclif's alone with a warning", () => {
    assert.deepEqual(artifactCacheDir({}), {})
    assert.deepEqual(artifactCacheDir({KUBE_SPAWN_ARTIFACT_CACHE_DIR: '/a', KUBE_SPAWN_CACHE_DIR: '/b'}), {dir: '/a'})
    const old = artifactCacheDir({KUBE_SPAWN_CACHE_DIR: '/b'})
    assert.equal(old.dir, '/b')
    assert.match(old.warning ?? '', /KUBE_SPAWN_ARTIFACT_CACHE_DIR/)
  })
})

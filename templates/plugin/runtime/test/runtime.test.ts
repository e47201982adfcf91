/**
 * Unit tests of the runtime declaration: the hook is called directly and the per-node file rendered
 * with a fake context. No cluster and no kube-spawn install are needed. Run with `npm test` (it builds
 * dist/ first).
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {FileContext} from '@kube-spawn/sdk'

import {CONFIG_PATH, providers, runtime, runtimeConfig} from '../dist/index.js'

/** Only what the config reads; the rest of FileContext is left out on purpose. */
function fileContext(cgroupDriver: 'systemd' | 'cgroupfs', capSysResource = true): FileContext {
  return {
    host: {capSysResource},
    kubernetes: {version: '1.33.0', sandboxImage: 'registry.k8s.io/pause:3.10', cgroupDriver},
    cni: {confDir: '/etc/cni/net.d', binDir: '/usr/lib/cni'},
  } as unknown as FileContext
}

describe('kube-spawn:providers', () => {
  it('provides the __NAME__ runtime and nothing else', async () => {
    const provides = await providers({})
    assert.deepEqual(
      provides.runtimes?.map((r) => r.name),
      ['__NAME__'],
    )
    assert.equal(provides.images, undefined)
    assert.equal(provides.workarounds, undefined)
  })
})

describe('the __NAME__ runtime', () => {
  it('is complete: packages for Debian images, a CRI socket, services and a readiness command', () => {
    assert.ok(runtime.packages.debian.names.length > 0)
    assert.match(runtime.criSocket, /^unix:\/\/\//)
    assert.ok(runtime.services.length > 0 && runtime.services.every((s) => s.endsWith('.service')))
    assert.ok(runtime.readinessCommand.length > 0)
    assert.ok(runtime.dataDirs.every((d) => d.startsWith('/')))
    assert.deepEqual(
      runtime.files?.map((f) => f.path),
      [CONFIG_PATH],
    )
  })

  it('renders its config per node: the cgroup driver, sandbox image and CNI dirs follow the cluster', () => {
    const systemd = runtimeConfig(fileContext('systemd'))
    assert.match(systemd, /SystemdCgroup = true/)
    assert.match(systemd, /sandbox_image = "registry\.k8s\.io\/pause:3\.10"/)
    assert.match(systemd, /bin_dir = "\/usr\/lib\/cni"/)
    assert.match(systemd, /conf_dir = "\/etc\/cni\/net\.d"/)
    assert.match(systemd, /restrict_oom_score_adj = false/)

    const cgroupfs = runtimeConfig(fileContext('cgroupfs', false))
    assert.match(cgroupfs, /SystemdCgroup = false/)
    assert.match(cgroupfs, /restrict_oom_score_adj = true/)
  })
})

/** What the host means for a cluster: the one-line host report and the support table (pure). */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {checkSupport, describeHost} from '../../../dist/host/support.js'
import type {HostInfo} from '@kube-spawn/sdk'

import {testHost} from '../helpers/golden.ts'

const v2Systemd: HostInfo = testHost({kernel: '6.1.0-50-amd64'})
const v1NoSystemd: HostInfo = {...v2Systemd, machined: false, cgroupVersion: 1, systemdPid1: false}

describe('describeHost', () => {
  it('names the cgroup version, systemd, machined, the kernel and the backend', () => {
    assert.equal(describeHost(v2Systemd), 'cgroup v2, systemd 252 as PID 1 with machined, kernel 6.1.0-50-amd64, machined backend')
    assert.equal(describeHost(v1NoSystemd), 'cgroup v1, systemd 252 installed, not PID 1, kernel 6.1.0-50-amd64, standalone backend')
    assert.match(describeHost({...v1NoSystemd, systemdVersion: undefined}), /systemd \(version unknown\)/)
    assert.match(describeHost({...v2Systemd, timeoutScale: 3}), /machined backend, waits × 3$/)
  })
})

describe('checkSupport', () => {
  it('has nothing to say about the tested hosts with Kubernetes 1.20', () => {
    assert.deepEqual(checkSupport(v2Systemd, 'v1.20.2'), {refusals: [], warnings: []})
    assert.deepEqual(checkSupport(v1NoSystemd, 'v1.20.2'), {refusals: [], warnings: []})
    assert.deepEqual(checkSupport({...v1NoSystemd, systemdPid1: true, machined: true}, 'v1.30.0'), {refusals: [], warnings: []})
  })

  it('warns that cgroup v1 is in maintenance mode from Kubernetes 1.31', () => {
    const {refusals, warnings} = checkSupport(v1NoSystemd, 'v1.31.0')
    assert.deepEqual(refusals, [])
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /maintenance mode.*cgroup v2/)
  })

  it('warns with the fix that Kubernetes 1.35 and later refuse cgroup v1 by default', () => {
    const {warnings} = checkSupport(v1NoSystemd, 'v1.35.1')
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /1\.35 refuses cgroup v1.*failCgroupV1 = false.*systemd\.unified_cgroup_hierarchy=1/)
    assert.deepEqual(checkSupport(v2Systemd, 'v1.35.1').warnings, [])
  })

  it('warns that cgroup v2 without systemd as PID 1 is untested', () => {
    const {warnings} = checkSupport({...v2Systemd, systemdPid1: false, machined: false}, 'v1.20.2')
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /cgroup v2 without systemd as PID 1 is not tested/)
  })
})

/** The pipeline declaration (src/pipeline/pipelines.ts) keeps the rules the runner and the docs rely on. */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {PIPELINES, phaseStages} from '../../../dist/pipeline/pipelines.js'
import {STAGES} from '@kube-spawn/sdk'

const stagesOf = (phase: Parameters<typeof phaseStages>[0], options = {}) => phaseStages(phase, options).map((d) => d.stage)

describe('pipelines.ts', () => {
  it('declares each phase in STAGES order, every stage once', () => {
    for (const phase of ['create', 'start', 'stop', 'destroy', 'image'] as const) {
      const stages = stagesOf(phase)
      assert.deepEqual(
        stages,
        [...stages].sort((a, b) => STAGES.indexOf(a) - STAGES.indexOf(b)),
        phase,
      )
      assert.equal(new Set(stages).size, stages.length, phase)
    }
  })

  it('covers every stage of STAGES in exactly one of create, start, stop and destroy', () => {
    const all = (['create', 'start', 'stop', 'destroy'] as const).flatMap((phase) => stagesOf(phase))
    assert.deepEqual([...all].sort(), [...STAGES].sort())
  })

  it('makes up create and then start', () => {
    assert.deepEqual(PIPELINES.up, ['create', 'start'])
  })

  it('leaves out exactly the Kubernetes stages with --skip-cluster-init, and keeps mounting the binaries', () => {
    assert.deepEqual(stagesOf('start', {skipClusterInit: true}), ['pre-boot', 'boot', 'post-boot'])
    assert.deepEqual(stagesOf('start').slice(3), ['pre-init', 'init', 'post-init', 'join', 'post-join', 'ready'])
    const preBoot = phaseStages('start', {skipClusterInit: true})[0]
    assert.ok(preBoot.host.some((step) => step.title === 'Mount the Kubernetes binaries into each node'))
  })

  it('runs no host check when building an image: only the steps that make and check the base image', () => {
    assert.deepEqual(
      phaseStages('image').map((d) => [d.stage, d.host.map((step) => step.title)]),
      [['prepare-image', ['Build or fetch the base image', 'Check the base image and use it']]],
    )
  })
})

/** waitFor: the one wait-and-retry helper (p-wait-for underneath). */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {WaitTimeout, waitFor} from '../../../dist/util/wait.js'
import {Interrupted} from '../../../dist/errors.js'

describe('waitFor', () => {
  it('returns what the condition found, probing until then', async () => {
    let probes = 0
    const found = await waitFor(() => (++probes === 3 ? `after ${probes}` : undefined), {timeout: 5000, interval: 5, describe: 'x'})
    assert.equal(found, 'after 3')
    assert.equal(probes, 3)
  })

  it('probes at once: a condition that holds returns without waiting', async () => {
    const started = Date.now()
    assert.equal(await waitFor(async () => 42, {timeout: 5000, interval: 10_000, describe: 'x'}), 42)
    assert.ok(Date.now() - started < 1000)
  })

  it('times out with a HostError that says what it waited for', async () => {
    const started = Date.now()
    await assert.rejects(
      waitFor(() => false, {timeout: 100, interval: 10, describe: 'containerd in ks-a-cp to answer'}),
      (e) => {
        assert.ok(e instanceof WaitTimeout)
        assert.equal(e.exitCode, 1)
        assert.equal(e.message, 'timed out after 0.1 s waiting for containerd in ks-a-cp to answer')
        return true
      },
    )
    assert.ok(Date.now() - started < 2000)
  })

  it('ends with the abort reason when the signal aborts during the pause', async () => {
    const controller = new AbortController()
    setTimeout(() => controller.abort(new Interrupted('SIGINT')), 20)
    await assert.rejects(
      waitFor(() => false, {timeout: 10_000, interval: 5000, describe: 'x', signal: controller.signal}),
      (e) => e instanceof Interrupted && e.exitCode === 130,
    )
  })

  it('passes a probe’s error through at once, without probing again', async () => {
    let probes = 0
    await assert.rejects(
      waitFor(
        () => {
          probes++
          throw new Error('nspawn exited')
        },
        {timeout: 5000, interval: 5, describe: 'x'},
      ),
      /nspawn exited/,
    )
    assert.equal(probes, 1)
  })
})

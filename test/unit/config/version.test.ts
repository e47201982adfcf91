import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {OLDEST_SUPPORTED_MINOR, parseKubernetesVersion} from '../../../dist/config/version.js'

describe('parseKubernetesVersion', () => {
  it('parses releases with or without the v and spells them with it', () => {
    assert.deepEqual(parseKubernetesVersion('v1.20.2'), {major: 1, minor: 20, patch: 2, text: 'v1.20.2'})
    assert.deepEqual(parseKubernetesVersion('1.31.0'), {major: 1, minor: 31, patch: 0, text: 'v1.31.0'})
    assert.equal(parseKubernetesVersion('v1.25.10')?.text, 'v1.25.10')
  })

  it(`accepts v1.${OLDEST_SUPPORTED_MINOR}.0 and newer only`, () => {
    assert.equal(OLDEST_SUPPORTED_MINOR, 20)
    assert.ok(parseKubernetesVersion('v1.20.0'))
    assert.equal(parseKubernetesVersion('v1.19.16'), undefined)
    assert.equal(parseKubernetesVersion('1.19.0'), undefined)
    assert.equal(parseKubernetesVersion('v0.99.0'), undefined)
    assert.equal(parseKubernetesVersion('v2.0.0'), undefined)
  })

  it('rejects anything that is not MAJOR.MINOR.PATCH', () => {
    for (const text of ['latest', 'stable', '', 'v1.20', 'v1.20.2-rc.0', 'v1.20.2+k3s1', 'V1.20.2', ' v1.20.2', 'vv1.20.2', '1.20.x']) {
      assert.equal(parseKubernetesVersion(text), undefined, text)
    }
  })
})

/** The image-debian plugin's options and its rule for which suites boot on which hosts (pure). */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {DEFAULT_SUITE, debianOptions, imageKey, suiteRefusal} from '../../../plugins/image-debian/dist/index.js'

function options(config: Record<string, unknown>) {
  return debianOptions({pluginConfig: () => config}, ['containerd'])
}

describe('image-debian options', () => {
  it('builds bookworm unless [plugin-config.image-debian] names a suite', () => {
    assert.equal(DEFAULT_SUITE, 'bookworm')
    assert.equal(options({}).suite, 'bookworm')
    assert.equal(options({suite: 'trixie'}).suite, 'trixie')
  })

  it('keys the cache by suite: trixie and bookworm images differ, the mirror does not matter', () => {
    assert.match(imageKey(options({suite: 'trixie'})), /^debian-trixie-[0-9a-f]{16}$/)
    assert.notEqual(imageKey(options({})).slice(-16), imageKey(options({suite: 'trixie'})).slice(-16))
    assert.equal(imageKey(options({mirror: 'http://127.0.0.1:1/debian'})), imageKey(options({})))
  })

  it('reads the old key "release" as suite, and refuses a disagreement or a suite that is not a name', () => {
    assert.equal(options({release: 'trixie'}).suite, 'trixie')
    assert.equal(options({release: 'trixie', suite: 'trixie'}).suite, 'trixie')
    assert.throws(() => options({release: 'bookworm', suite: 'trixie'}), /suite = "trixie" and release = "bookworm" disagree/)
    assert.throws(() => options({release: '../x'}), /suite must be a Debian suite name/)
    assert.throws(() => options({suite: '../etc'}), /suite must be a Debian suite name/)
    assert.throws(() => options({suite: 13}), /suite must be a Debian suite name/)
  })
})

describe('suiteRefusal', () => {
  it('lets every suite boot on cgroup v2', () => {
    for (const suite of ['bookworm', 'trixie', 'sid', 'forky', 'some-future-suite']) assert.equal(suiteRefusal(suite, 2), undefined)
  })

  it('lets bookworm boot on cgroup v1', () => {
    assert.equal(suiteRefusal('bookworm', 1), undefined)
  })

  it('refuses trixie and newer on cgroup v1, with systemd 256 as the reason and the fix', () => {
    for (const suite of ['trixie', 'sid', 'forky']) {
      const refusal = suiteRefusal(suite, 1)
      assert.ok(refusal, suite)
      assert.match(refusal, new RegExp(`Debian ${suite} nodes run systemd 25\\d.*systemd 256 and later need a cgroup v2 host`))
      assert.match(refusal, /systemd\.unified_cgroup_hierarchy=1|suite = "bookworm"/)
      assert.ok(!refusal.includes('\n'))
    }
  })
})

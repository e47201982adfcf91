import assert from 'node:assert/strict'
import type {Config} from '@oclif/core'
import {after, before, describe, it} from 'node:test'

import {UserError} from '../../../dist/errors.js'
import {loadCatalog, selectProvider} from '../../../dist/plugins/providers.js'
import type {Offer} from '../../../dist/plugins/providers.js'
import {loadFixtureConfig} from '../helpers/fixture-config.ts'

const offer = (plugin: string, name: string): Offer<{name: string}> => ({plugin, provider: {name}})

describe('selectProvider', () => {
  const offers = [offer('runtime-containerd', 'containerd'), offer('runtime-crio', 'cri-o'), offer('runtime-crio-fork', 'cri-o')]

  it('returns the one provider that answers to the name', () => {
    assert.deepEqual(selectProvider(offers, 'container runtime', 'containerd'), offers[0])
  })

  it('lists what is installed when none answers', () => {
    assert.throws(
      () => selectProvider(offers, 'container runtime', 'docker'),
      (e: unknown) =>
        e instanceof UserError &&
        e.message === 'unknown container runtime "docker"' &&
        e.hint === 'installed: containerd, cri-o; or install a plugin that provides it',
    )
  })

  it('says how to install one when nothing is installed', () => {
    assert.throws(
      () => selectProvider([], 'image', 'debian'),
      (e: unknown) => e instanceof UserError && e.message === 'unknown image "debian"' && /kube-spawn plugins:install/.test(e.hint!),
    )
  })

  it('names the plugins when several answer', () => {
    assert.throws(
      () => selectProvider(offers, 'container runtime', 'cri-o'),
      (e: unknown) =>
        e instanceof UserError &&
        e.message === 'container runtime "cri-o" is provided by several plugins: runtime-crio, runtime-crio-fork' &&
        e.hint === 'uninstall all but one of them',
    )
  })
})

describe('loadCatalog (fixture plugins)', () => {
  let config: Config
  let cleanup: () => Promise<void>
  before(async () => {
    ;({config, cleanup} = await loadFixtureConfig())
  })
  after(async () => cleanup())

  it('collects every offer in plugin-name order', async () => {
    const catalog = await loadCatalog(config)
    assert.deepEqual(
      catalog.runtimes.map((o) => `${o.plugin}:${o.provider.name}`),
      ['ks-fixture-alpha:shared-runtime', 'ks-fixture-alpha:alpha-runtime', 'ks-fixture-beta:shared-runtime'],
    )
    assert.deepEqual(
      catalog.images.map((o) => o.provider.name),
      ['alpha-image'],
    )
    assert.deepEqual(
      catalog.workarounds.map((o) => o.provider.name),
      ['beta-fix'],
    )
  })

  it('refuses a provider name two plugins claim', async () => {
    const catalog = await loadCatalog(config)
    assert.equal(selectProvider(catalog.runtimes, 'container runtime', 'alpha-runtime').plugin, 'ks-fixture-alpha')
    assert.throws(
      () => selectProvider(catalog.runtimes, 'container runtime', 'shared-runtime'),
      /provided by several plugins: ks-fixture-alpha, ks-fixture-beta/,
    )
  })
})

import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {UserError} from '../../../dist/errors.js'
import {loadCatalog, selectProvider} from '../../../dist/plugins/providers.js'
import type {Offer} from '../../../dist/plugins/providers.js'
import {useFixtureConfig} from '../helpers/fixture-config.ts'

/** selectProvider's refusal: a UserError with this message and a hint that matches. */
const refusal = (message: string, hint: string | RegExp) => (e: unknown) =>
  e instanceof UserError && e.message === message && (typeof hint === 'string' ? e.hint === hint : hint.test(e.hint ?? ''))
const offer = (plugin: string, name: string): Offer<{name: string}> => ({plugin, provider: {name}})

describe('selectProvider', () => {
  const offers = [offer('runtime-containerd', 'containerd'), offer('runtime-crio', 'cri-o'), offer('runtime-crio-fork', 'cri-o')]

  it('returns the one provider that answers to the name', () => {
    assert.deepEqual(selectProvider(offers, 'container runtime', 'containerd'), offers[0])
  })

  it('lists what is installed when none answers', () => {
    assert.throws(
      () => selectProvider(offers, 'container runtime', 'docker'),
      refusal('unknown container runtime "docker"', 'installed: containerd, cri-o; or install a plugin that provides it'),
    )
  })

  it('says how to install one when nothing is installed', () => {
    assert.throws(() => selectProvider([], 'image', 'debian'), refusal('unknown image "debian"', /kube-spawn plugins:install/))
  })

  it('names the plugins when several answer', () => {
    assert.throws(
      () => selectProvider(offers, 'container runtime', 'cri-o'),
      refusal('container runtime "cri-o" is provided by several plugins: runtime-crio, runtime-crio-fork', 'uninstall all but one of them'),
    )
  })
})

describe('loadCatalog (fixture plugins)', () => {
  const config = useFixtureConfig()

  it('collects every offer in plugin-name order', async () => {
    const catalog = await loadCatalog(config())
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
    const catalog = await loadCatalog(config())
    assert.equal(selectProvider(catalog.runtimes, 'container runtime', 'alpha-runtime').plugin, 'ks-fixture-alpha')
    assert.throws(
      () => selectProvider(catalog.runtimes, 'container runtime', 'shared-runtime'),
      /provided by several plugins: ks-fixture-alpha, ks-fixture-beta/,
    )
  })
})

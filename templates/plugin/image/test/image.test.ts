/**
 * Unit tests of the image declaration: the hook is called directly, and the key, the checks and the
 * build run with fake contexts (the build's commands are recorded, not run). No cluster, no root and
 * no kube-spawn install are needed. Run with `npm test` (it builds dist/ first).
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {ExecResult, ImageBuildContext, ImageContext, RunOptions, RuntimePackages} from '@kube-spawn/sdk'

import {BASE_PACKAGES, DEFAULT_MIRROR, DEFAULT_SUITE, image, providers} from '../dist/index.js'

const RUNTIME_PACKAGES = ['containerd', 'runc']

/** Only what the image reads; the rest of ImageContext is left out on purpose. */
function imageContext(settings: Record<string, unknown> = {}, packages: RuntimePackages = {names: RUNTIME_PACKAGES}): ImageContext {
  return {
    runtime: {name: 'containerd', packages: {debian: packages}},
    host: {timeoutScale: 1},
    pluginConfig: (name: string) => (name === '__NAME__' ? settings : {}),
  } as unknown as ImageContext
}

function buildContext(settings: Record<string, unknown> = {}) {
  const runs: string[][] = []
  const ctx = {
    rootfs: '/nonexistent/rootfs',
    packages: {names: RUNTIME_PACKAGES},
    host: {timeoutScale: 1},
    pluginConfig: (name: string) => (name === '__NAME__' ? settings : {}),
    async run(argv: string[], _options?: RunOptions): Promise<ExecResult> {
      runs.push(argv)
      return {stdout: '', stderr: '', exitCode: 0}
    },
    output() {},
  }
  return {ctx: ctx as unknown as ImageBuildContext, runs}
}

describe('kube-spawn:providers', () => {
  it('provides the __NAME__ image and nothing else', async () => {
    const provides = await providers({})
    assert.deepEqual(
      provides.images?.map((i) => i.name),
      ['__NAME__'],
    )
    assert.equal(provides.runtimes, undefined)
    assert.equal(provides.workarounds, undefined)
  })
})

describe('the __NAME__ image', () => {
  it('is of the debian family and needs debootstrap on the host', () => {
    assert.equal(image.family, 'debian')
    assert.deepEqual(image.hostCommands, ['debootstrap'])
  })

  it('keys the cache by suite and packages, not by mirror', () => {
    const key = image.key(imageContext())
    assert.match(key, new RegExp(`^__NAME__-${DEFAULT_SUITE}-[0-9a-f]{16}$`))
    assert.equal(image.key(imageContext()), key)
    assert.equal(image.key(imageContext({mirror: 'http://mirror.example/debian'})), key)
    assert.notEqual(image.key(imageContext({suite: 'trixie'})), key)
    assert.notEqual(image.key(imageContext({}, {names: ['cri-o']})), key)
  })

  it('refuses a wrong setting in one line, and a runtime that needs apt sources of its own', () => {
    assert.throws(() => image.key(imageContext({suite: 13})), /\[plugin-config\.__NAME__\] suite must be a string, not 13/)
    assert.equal(image.refuse?.(imageContext()), undefined)
    const entry = {name: 'example', entry: 'https://pkgs.example.org/deb/ /', key: {content: 'KEY'}}
    assert.match(image.refuse?.(imageContext({}, {names: ['cri-o'], aptSources: [entry]})) ?? '', /apt sources/)
  })

  it('builds the root with debootstrap: the base packages and the runtime packages', async () => {
    const {ctx, runs} = buildContext()
    await image.build?.(ctx)
    const packages = [...new Set([...BASE_PACKAGES, ...RUNTIME_PACKAGES])].sort()
    assert.deepEqual(runs, [
      ['debootstrap', '--variant=minbase', `--include=${packages.join(',')}`, DEFAULT_SUITE, ctx.rootfs, DEFAULT_MIRROR],
    ])
  })
})

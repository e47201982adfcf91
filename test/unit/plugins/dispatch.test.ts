import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {HOOK_TIMEOUT_MS, dispatch, shortPluginName} from '../../../dist/plugins/dispatch.js'
import type {StageContext} from '@kube-spawn/sdk'
import {UserError} from '../../../dist/errors.js'
import {useFixtureConfig} from '../helpers/fixture-config.ts'

const ctx = (mode?: string) => ({mode, log: []}) as unknown as StageContext

describe('dispatch (fixture plugins)', () => {
  const config = useFixtureConfig()

  it('the fixture plugins complete in reverse name order under plain runHook', async () => {
    const {successes} = await config().runHook('kube-spawn:providers', {}, 5000, true)
    assert.deepEqual(
      successes.map((s) => s.plugin.name),
      ['ks-fixture-beta', 'ks-fixture-alpha'],
    )
  })

  it('returns the answers sorted by plugin name', async () => {
    const answers = await dispatch(config(), 'kube-spawn:providers', {})
    assert.deepEqual(
      answers.map((a) => a.plugin),
      ['ks-fixture-alpha', 'ks-fixture-beta'],
    )
    assert.deepEqual(answers[1].result, {runtimes: [{name: 'shared-runtime'}], workarounds: [{name: 'beta-fix'}]})
  })

  it('turns a throwing plugin into a UserError that names the plugin and the hook', async () => {
    await assert.rejects(dispatch(config(), 'kube-spawn:tasks', {stage: 'boot', ctx: ctx('throw')}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.equal(e.message, 'plugin ks-fixture-beta failed in hook kube-spawn:tasks: beta cannot plan this')
      assert.match(e.hint!, /uninstall that plugin/)
      assert.equal((e.cause as Error).message, 'beta cannot plan this')
      return true
    })
  })

  it("passes the hint a plugin's error carries", async () => {
    await assert.rejects(dispatch(config(), 'kube-spawn:tasks', {stage: 'boot', ctx: ctx('hint')}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.match(e.message, /^plugin ks-fixture-beta failed in hook kube-spawn:tasks: \[plugin-config\.beta\] size must be a number$/)
      assert.equal(e.hint, 'fix the definition')
      return true
    })
  })

  it('stops waiting for a plugin that never answers and names it', async () => {
    const started = Date.now()
    await assert.rejects(dispatch(config(), 'kube-spawn:tasks', {stage: 'boot', ctx: ctx('hang')}, {timeoutMs: 300}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.match(e.message, /^plugin ks-fixture-alpha failed in hook kube-spawn:tasks: Timed out after 300 ms/)
      return true
    })
    assert.ok(Date.now() - started < 5000)
  })

  it("with onPluginFailure, reports every failing plugin by name and keeps the others' answers", async () => {
    const reported: string[] = []
    const answers = await dispatch(
      config(),
      'kube-spawn:tasks',
      {stage: 'boot', ctx: ctx('throw')},
      {onPluginFailure: (m) => reported.push(m)},
    )
    assert.deepEqual(reported, ['plugin ks-fixture-beta failed in hook kube-spawn:tasks: beta cannot plan this'])
    assert.deepEqual(
      answers.map((a) => a.plugin),
      ['ks-fixture-alpha'],
    )
  })

  it('waits 30 s by default', () => {
    assert.equal(HOOK_TIMEOUT_MS, 30_000)
  })
})

describe('shortPluginName', () => {
  it('drops the npm scope and the kube-spawn-plugin- prefix', () => {
    assert.equal(shortPluginName('@kube-spawn/runtime-containerd'), 'runtime-containerd')
    assert.equal(shortPluginName('kube-spawn-plugin-cilium'), 'cilium')
    assert.equal(shortPluginName('@acme/kube-spawn-plugin-gpu'), 'gpu')
    assert.equal(shortPluginName('plain'), 'plain')
  })
})

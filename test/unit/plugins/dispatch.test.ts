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
    assert.deepEqual(
      answers[1].result.runtimes?.map((r) => r.name),
      ['shared-runtime'],
    )
    assert.deepEqual(answers[1].result.workarounds, [{name: 'beta-fix', description: 'a fixture workaround'}])
  })

  it('turns a throwing plugin into a UserError that names the plugin and the hook', async () => {
    await assert.rejects(dispatch(config(), 'kube-spawn:tasks', {stage: 'boot', ctx: ctx('throw')}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      // The plugin's own file and line, from the error's stack.
      assert.equal(e.message, 'plugin ks-fixture-beta failed in hook kube-spawn:tasks: beta cannot plan this (index.js:11)')
      assert.match(e.hint!, /uninstall that plugin/)
      assert.equal((e.cause as Error).message, 'beta cannot plan this')
      return true
    })
  })

  it("passes the hint a plugin's error carries", async () => {
    await assert.rejects(dispatch(config(), 'kube-spawn:tasks', {stage: 'boot', ctx: ctx('hint')}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.match(
        e.message,
        /^plugin ks-fixture-beta failed in hook kube-spawn:tasks: \[plugin-config\.beta\] size must be a number \(index\.js:12\)$/,
      )
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
    assert.deepEqual(reported, ['plugin ks-fixture-beta failed in hook kube-spawn:tasks: beta cannot plan this (index.js:11)'])
    assert.deepEqual(
      answers.map((a) => a.plugin),
      ['ks-fixture-alpha'],
    )
  })

  it('refuses a hook result that is not an array, naming the plugin', async () => {
    await assert.rejects(dispatch(config(), 'kube-spawn:tasks', {stage: 'boot', ctx: ctx('object')}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.equal(
        e.message,
        "plugin ks-fixture-beta answered kube-spawn:tasks with what the SDK's types do not allow: the result must be an array of tasks, not an object",
      )
      return true
    })
  })

  it('refuses a provider that lacks fields, naming the plugin and the fields', async () => {
    process.env.KS_FIXTURE_MODE = 'bad-provider'
    try {
      await assert.rejects(dispatch(config(), 'kube-spawn:providers', {}), (e: unknown) => {
        assert.ok(e instanceof UserError)
        assert.match(
          e.message,
          /^plugin ks-fixture-beta answered kube-spawn:providers with what the SDK's types do not allow: runtime 1 "half-runtime": packages must be/,
        )
        assert.match(e.message, /criSocket must be a string \(it is missing\)/)
        assert.ok(!e.message.includes('\n'))
        return true
      })
    } finally {
      delete process.env.KS_FIXTURE_MODE
    }
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

describe('dispatch: plugins that cannot load', () => {
  const withSyntax = useFixtureConfig(['syntax'])
  const withFuture = useFixtureConfig(['future'])

  it('names the file and line of a syntax error', async () => {
    await assert.rejects(dispatch(withSyntax(), 'kube-spawn:providers', {}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.match(e.message, /^plugin ks-fixture-syntax failed in hook kube-spawn:providers: .+ \(index\.js:4\)$/)
      return true
    })
  })

  it('refuses a plugin written for another plugin API before its code runs, naming both versions', async () => {
    await assert.rejects(dispatch(withFuture(), 'kube-spawn:providers', {}), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.equal(e.message, 'plugin ks-fixture-future 0.0.0 supports plugin API "^2.0", but this kube-spawn has plugin API 1.3')
      assert.match(e.hint!, /plugins:uninstall/)
      return true
    })
  })

  it('in teardown, reports the refused plugin and keeps the others', async () => {
    const reported: string[] = []
    const answers = await dispatch(withFuture(), 'kube-spawn:providers', {}, {onPluginFailure: (m) => reported.push(m)})
    assert.deepEqual(reported, ['plugin ks-fixture-future 0.0.0 supports plugin API "^2.0", but this kube-spawn has plugin API 1.3'])
    assert.deepEqual(
      answers.map((a) => a.plugin),
      ['ks-fixture-alpha', 'ks-fixture-beta'],
    )
  })
})

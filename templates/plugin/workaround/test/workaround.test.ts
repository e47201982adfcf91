/**
 * Unit tests of the hooks: each is called directly, with a fake context, the way kube-spawn calls it.
 * No cluster and no kube-spawn install are needed. Run with `npm test` (it builds dist/ first).
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {ExecResult, NodeHandle, RunOptions, Stage, StageContext, StageTask, StageTaskWrapper} from '@kube-spawn/sdk'

import {DISABLED, HELLO_COMMAND, HELLO_FILE, providers, tasks} from '../dist/index.js'

/** Every stage, checked against the SDK's Stage type: a missing or unknown stage is a type error. */
const ALL_STAGES = Object.keys({
  preflight: 1,
  'prepare-image': 1,
  'prepare-node': 1,
  'pre-boot': 1,
  boot: 1,
  'post-boot': 1,
  'pre-init': 1,
  init: 1,
  'post-init': 1,
  join: 1,
  'post-join': 1,
  ready: 1,
  stop: 1,
  'power-off': 1,
  destroy: 1,
  remove: 1,
} satisfies Record<Stage, 1>) as Stage[]

interface FakeNode extends NodeHandle {
  calls: string[][]
}

function fakeNode(name: string): FakeNode {
  const calls: string[][] = []
  const unexpected = async () => {
    throw new Error('not expected')
  }
  return {
    name,
    role: name.endsWith('-cp') ? 'control-plane' : 'worker',
    ip: '10.22.0.2',
    dir: `/nonexistent/${name}`,
    calls,
    async exec(argv: string[], _options?: RunOptions): Promise<ExecResult> {
      calls.push(argv)
      return {stdout: '', stderr: '', exitCode: 0}
    },
    writeFile: unexpected,
    copyIn: unexpected,
    async readFile() {
      return undefined
    },
    addBindMount() {
      throw new Error('not expected')
    },
  }
}

/** Only what the plugin reads; the rest of StageContext is left out on purpose. */
function fakeContext(settings: Record<string, unknown> = {}, nodes = [fakeNode('ks-t-cp'), fakeNode('ks-t-w1')]) {
  const warnings: string[] = []
  const ctx = {
    nodes,
    dryRun: false,
    host: {timeoutScale: 1},
    shared: new Map(),
    pluginConfig: (name: string) => (name === '__NAME__' ? settings : {}),
    warn: (message: string) => void warnings.push(message),
  }
  return {ctx: ctx as unknown as StageContext, nodes, warnings}
}

async function tasksFor(stage: Stage, ctx: StageContext): Promise<StageTask[]> {
  return tasks({stage, ctx})
}

async function skipOf(task: StageTask, ctx: StageContext): Promise<unknown> {
  return typeof task.skip === 'function' ? task.skip(ctx) : task.skip
}

/** Runs a task's body with a stand-in for listr2's task wrapper. */
async function runTask(task: StageTask, ctx: StageContext): Promise<{title: unknown; output: unknown}> {
  const wrapper = {title: task.title, output: undefined as unknown}
  await task.task(ctx, wrapper as unknown as StageTaskWrapper)
  return wrapper
}

describe('kube-spawn:providers', () => {
  it('names the __NAME__ workaround', async () => {
    const provides = await providers({})
    assert.deepEqual(
      provides.workarounds?.map((w) => w.name),
      ['__NAME__'],
    )
    assert.equal(provides.runtimes, undefined)
    assert.equal(provides.images, undefined)
  })
})

describe('kube-spawn:tasks', () => {
  it('returns one task in preflight, one in post-boot and none elsewhere', async () => {
    const {ctx} = fakeContext()
    const titles: Record<string, string[]> = {}
    for (const stage of ALL_STAGES) {
      const list = await tasksFor(stage, ctx)
      if (list.length > 0) titles[stage] = list.map((t) => String(t.title))
    }
    assert.deepEqual(titles, {preflight: ['Check the __NAME__ settings'], 'post-boot': ['Say hello from every node']})
  })

  it('post-boot: every node writes the hello file', async () => {
    const {ctx, nodes} = fakeContext()
    const [task] = await tasksFor('post-boot', ctx)
    assert.equal(await skipOf(task, ctx), false)
    const wrapper = await runTask(task, ctx)
    for (const node of nodes) assert.deepEqual(node.calls, [HELLO_COMMAND])
    assert.equal(HELLO_FILE, '/etc/kube-spawn-__NAME__')
    assert.deepEqual(HELLO_COMMAND, ['sh', '-c', `echo hello from $(hostname) > ${HELLO_FILE}`])
    assert.equal(wrapper.output, `wrote ${HELLO_FILE} in ks-t-cp, ks-t-w1`)
  })

  it('is skipped, with the reason, when [plugin-config.__NAME__] enabled = false', async () => {
    const {ctx} = fakeContext({enabled: false})
    for (const stage of ['preflight', 'post-boot'] as const) {
      const [task] = await tasksFor(stage, ctx)
      assert.equal(await skipOf(task, ctx), DISABLED, stage)
    }
    assert.equal(DISABLED, 'disabled by [plugin-config.__NAME__] enabled = false')
  })

  it('runs with enabled = true, and skip() has no side effects (kube-spawn evaluates it for --dry-run)', async () => {
    const {ctx, nodes, warnings} = fakeContext({enabled: true})
    for (const stage of ['preflight', 'post-boot'] as const) {
      const [task] = await tasksFor(stage, ctx)
      assert.equal(await skipOf(task, ctx), false)
    }
    for (const node of nodes) assert.deepEqual(node.calls, [])
    assert.deepEqual(warnings, [])
  })

  it('preflight: a wrong type fails, an unknown key warns', async () => {
    const bad = fakeContext({enabled: 'no'})
    const [check] = await tasksFor('preflight', bad.ctx)
    await assert.rejects(runTask(check, bad.ctx), /\[plugin-config\.__NAME__\] enabled must be true or false, not "no"/)

    const extra = fakeContext({enabled: true, colour: 'blue'})
    await runTask(check, extra.ctx)
    assert.deepEqual(extra.warnings, ['[plugin-config.__NAME__] colour is not a setting of kube-spawn-plugin-__NAME__; it is ignored'])
  })
})

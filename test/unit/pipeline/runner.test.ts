import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {ABORT_GRACE_MS, HOST_OWNER, describePlan, formatPlan, planPipeline, runPipeline} from '../../../dist/pipeline/runner.js'
import {Interrupted, UserError, findUserError} from '../../../dist/errors.js'
import type {PlannedTask} from '../../../dist/pipeline/runner.js'
import type {ClusterContext, StageDeclaration} from '../../../dist/context/index.js'
import {useFixtureConfig} from '../helpers/fixture-config.ts'

type TestContext = ClusterContext & {log: string[]; mode?: string}

const fakeContext = (fields: Partial<TestContext> = {}): TestContext => ({log: [], shared: new Map(), ...fields}) as unknown as TestContext
const planned = (stage: PlannedTask['stage'], owner: string, task: PlannedTask['task']): PlannedTask => ({stage, owner, task})
const logTask = (owner: string, stage: PlannedTask['stage'], title: string): PlannedTask =>
  planned(stage, owner, {title, task: (ctx) => void (ctx as TestContext).log.push(`${stage}: ${title}`)})

describe('describePlan', () => {
  it('lists every task with its owner, and why it would be skipped', async () => {
    const ctx = fakeContext({dryRun: true})
    const planned: PlannedTask[] = [
      {stage: 'preflight', owner: HOST_OWNER, task: {title: 'Check the host', task: () => {}}},
      {stage: 'prepare-image', owner: 'image-debian', task: {title: 'Build', skip: async () => 'image is cached', task: () => {}}},
      {stage: 'prepare-image', owner: 'image-debian', task: {title: 'Plain skip', skip: true, task: () => {}}},
      {stage: 'prepare-image', owner: 'image-debian', task: {title: 'Not skipped', skip: () => false, task: () => {}}},
      {
        stage: 'prepare-node',
        owner: 'other',
        task: {title: 'Disabled', enabled: (c) => !c.dryRun, skip: () => 'never asked', task: () => {}},
      },
      {stage: 'prepare-node', owner: 'other', task: {title: '', task: () => {}}},
    ]
    assert.deepEqual(await describePlan(planned, ctx), [
      {stage: 'preflight', owner: 'kube-spawn', title: 'Check the host'},
      {stage: 'prepare-image', owner: 'image-debian', title: 'Build', skipped: 'image is cached'},
      {stage: 'prepare-image', owner: 'image-debian', title: 'Plain skip', skipped: 'skipped'},
      {stage: 'prepare-image', owner: 'image-debian', title: 'Not skipped'},
      {stage: 'prepare-node', owner: 'other', title: 'Disabled', skipped: 'not enabled here'},
      {stage: 'prepare-node', owner: 'other', title: '(untitled)'},
    ])
  })

  it('does not run any task', async () => {
    const ctx = fakeContext()
    await describePlan([logTask('x', 'boot', 'Boot')], ctx)
    assert.deepEqual(ctx.log, [])
  })
})

describe('formatPlan', () => {
  it('groups the lines by stage with [owner] labels and skip reasons', () => {
    const text = formatPlan('Plan: create cluster "dev":', [
      {stage: 'preflight', owner: 'kube-spawn', title: 'Check the host'},
      {stage: 'preflight', owner: 'image-debian', title: 'Check debootstrap', skipped: 'image is cached'},
      {stage: 'prepare-node', owner: 'runtime-containerd', title: 'Write config'},
    ])
    assert.equal(
      text,
      [
        'Plan: create cluster "dev":',
        '  preflight',
        '    [kube-spawn] Check the host',
        '    [image-debian] Check debootstrap  (skipped: image is cached)',
        '  prepare-node',
        '    [runtime-containerd] Write config',
      ].join('\n'),
    )
  })

  it('says when there is nothing to do', () => {
    assert.equal(formatPlan('Plan:', []), 'Plan:\n  (nothing to do)')
  })
})

describe('runPipeline', () => {
  it('runs the tasks stage by stage, in order, silently', async () => {
    const ctx = fakeContext()
    const planned = [
      logTask(HOST_OWNER, 'pre-boot', 'bridge'),
      logTask('workaround-varlib', 'pre-boot', 'mounts'),
      logTask(HOST_OWNER, 'boot', 'boot'),
      logTask('runtime-containerd', 'post-boot', 'wait'),
    ]
    await runPipeline(planned, ctx, 'silent')
    assert.deepEqual(ctx.log, ['pre-boot: bridge', 'pre-boot: mounts', 'boot: boot', 'post-boot: wait'])
  })

  it('skips tasks that say so', async () => {
    const ctx = fakeContext()
    const skipped = planned('boot', 'x', {title: 'skipped', skip: () => 'not needed', task: () => assert.fail('ran')})
    await runPipeline([skipped, logTask('x', 'boot', 'after')], ctx, 'silent')
    assert.deepEqual(ctx.log, ['boot: after'])
  })

  it("surfaces a failing task's error and runs nothing after it", async () => {
    const ctx = fakeContext()
    const failure = new Error('kubeadm init failed')
    const failing = planned('init', HOST_OWNER, {
      title: 'kubeadm init',
      task: () => {
        throw failure
      },
    })
    await assert.rejects(
      runPipeline(
        [logTask('x', 'pre-init', 'before'), failing, logTask('x', 'init', 'same stage'), logTask('x', 'join', 'later')],
        ctx,
        'silent',
      ),
      (e) => {
        assert.equal(e, failure)
        return true
      },
    )
    assert.deepEqual(ctx.log, ['pre-init: before'])
  })

  it('keeps the [owner] label when a task retitles itself', async () => {
    const ctx = fakeContext()
    const retitling = planned('prepare-image', 'image-debian', {
      title: 'Build the image',
      task: (c, task) => {
        assert.equal(task.title, '[image-debian] Build the image')
        task.title = 'Built the image in 3 s'
        ;(c as TestContext).log.push(task.title)
      },
    })
    await runPipeline([retitling], ctx, 'silent')
    assert.deepEqual(ctx.log, ['[image-debian] Built the image in 3 s'])
  })

  it('stops at an abort: the running task settles, no later task starts, and the run rejects with the reason', async () => {
    const controller = new AbortController()
    const ctx = fakeContext({signal: controller.signal})
    const reason = new Interrupted('SIGINT')
    const waiting = planned('init', HOST_OWNER, {
      title: 'wait',
      task: async (c) => {
        ;(c as TestContext).log.push('waiting')
        controller.abort(reason)
        // A task that honours the signal ends soon after the abort.
        await new Promise((resolve) => setTimeout(resolve, 50))
        ;(c as TestContext).log.push('settled')
      },
    })
    const started = Date.now()
    await assert.rejects(runPipeline([waiting, logTask('x', 'join', 'later')], ctx, 'silent'), (e) => e === reason)
    assert.deepEqual(ctx.log, ['waiting', 'settled'])
    assert.ok(Date.now() - started < ABORT_GRACE_MS)
  })

  it('gives up on a task that ignores the abort after the grace period', async (t) => {
    t.mock.timers.enable({apis: ['setTimeout']})
    const controller = new AbortController()
    const ctx = fakeContext({signal: controller.signal})
    const stuck = planned('boot', 'x', {title: 'stuck', task: () => new Promise(() => {})})
    const run = runPipeline([stuck], ctx, 'silent')
    await new Promise((resolve) => setImmediate(resolve))
    controller.abort(new Interrupted('SIGTERM'))
    await new Promise((resolve) => setImmediate(resolve))
    t.mock.timers.tick(ABORT_GRACE_MS)
    await assert.rejects(run, (e) => e instanceof Interrupted && e.exitCode === 143)
  })

  it('starts nothing when the signal is already aborted', async () => {
    const controller = new AbortController()
    controller.abort(new Interrupted('SIGINT'))
    const ctx = fakeContext({signal: controller.signal})
    await assert.rejects(runPipeline([logTask('x', 'boot', 'never')], ctx, 'silent'), Interrupted)
    assert.deepEqual(ctx.log, [])
  })
})

describe('planPipeline (fixture plugins)', () => {
  const config = useFixtureConfig()

  it("puts the host's tasks first in each stage, then the plugins' in plugin-name order, stages in declared order", async () => {
    const stages: StageDeclaration[] = [
      {stage: 'pre-boot', host: [{title: 'Create the bridge', task: () => {}}]},
      {stage: 'boot', host: [{title: 'Boot the nodes', task: () => {}}]},
    ]
    const planned = await planPipeline(config(), fakeContext(), stages)
    assert.deepEqual(
      planned.map((p) => `${p.stage} [${p.owner}] ${String(p.task.title)}`),
      [
        'pre-boot [kube-spawn] Create the bridge',
        'pre-boot [ks-fixture-alpha] alpha pre-boot',
        'pre-boot [ks-fixture-beta] beta pre-boot',
        'pre-boot [ks-fixture-beta] beta pre-boot skipped',
        'boot [kube-spawn] Boot the nodes',
        'boot [ks-fixture-alpha] alpha boot',
        'boot [ks-fixture-beta] beta boot',
        'boot [ks-fixture-beta] beta boot skipped',
      ],
    )
  })

  it("hands the host's tasks the host's context, whatever listr passes", async () => {
    const ctx = fakeContext()
    const seen: unknown[] = []
    const stages: StageDeclaration[] = [
      {stage: 'boot', host: [{title: 'Boot', skip: (c) => (seen.push(c), false), task: (c) => void seen.push(c)}]},
    ]
    const planned = await planPipeline(config(), ctx, stages)
    await runPipeline(planned.slice(0, 1), ctx, 'silent')
    assert.equal(seen.length, 2)
    for (const c of seen) assert.equal(c, ctx)
  })

  it('plans, describes and runs the plugin tasks', async () => {
    const ctx = fakeContext()
    const planned = await planPipeline(config(), ctx, [{stage: 'post-join', host: []}])
    assert.deepEqual(await describePlan(planned, ctx), [
      {stage: 'post-join', owner: 'ks-fixture-alpha', title: 'alpha post-join'},
      {stage: 'post-join', owner: 'ks-fixture-beta', title: 'beta post-join'},
      {stage: 'post-join', owner: 'ks-fixture-beta', title: 'beta post-join skipped', skipped: 'nothing to do'},
    ])
    await runPipeline(planned, ctx, 'silent')
    assert.deepEqual(ctx.log, ['alpha post-join', 'beta post-join'])
  })

  it('fails naming the plugin when one fails to plan', async () => {
    await assert.rejects(
      planPipeline(config(), fakeContext({mode: 'throw'}), [{stage: 'boot', host: []}]),
      /plugin ks-fixture-beta failed in hook kube-spawn:tasks/,
    )
  })

  it('names the plugin, task and stage when a skip() throws, in --dry-run and in a run', async () => {
    const ctx = fakeContext({mode: 'skip-throws'})
    const planned = await planPipeline(config(), ctx, [{stage: 'post-boot', host: []}])
    const expected = 'plugin ks-fixture-beta: skip() of its task "beta checks" in stage post-boot failed: skip blew up'
    await assert.rejects(describePlan(planned, ctx), (e: unknown) => e instanceof UserError && e.message === expected)
    await assert.rejects(runPipeline(planned, ctx, 'silent'), (e: unknown) => findUserError(e)?.message === expected)
  })
})

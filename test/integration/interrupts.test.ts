/**
 * Interrupts and failures of real commands on a 2-node isolated cluster: Ctrl-C (or SIGTERM) during
 * `up` in its boot, init and join stages leaves nothing on the host and the next `up` works; a failed
 * `up` saves its logs outside the cluster directory it removes and names them; `export logs` saves a
 * running cluster's; Ctrl-C during the start of a stopped cluster leaves it stopped and startable;
 * Ctrl-C during create, while a plugin's task ignores the abort, leaves no cluster directory.
 */
import assert from 'node:assert/strict'
import {readdir, readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {before, describe, it} from 'node:test'

import {
  NO_RESIDUE,
  SKIP_REASON,
  explain,
  fixtureBundle,
  interruptCli,
  isolatedDefinition,
  kubeSpawn,
  seconds,
  writeDefinition,
  writeTestPlugin,
  useTestCluster,
  log,
} from './helpers.ts'

const STEP_TIMEOUT = 15 * 60_000

describe('interrupts and failures of up and start (2 nodes, isolated)', {skip: SKIP_REASON}, () => {
  const test = useTestCluster('i', {label: 'interrupts', nodes: 2, kubeconfig: true})
  const cluster = test.name
  const [cp, worker] = test.machines

  const interruptions = [
    {stage: 'boot', cue: /Boot the nodes/, afterMs: 300, signal: 'SIGTERM', exitCode: 143},
    {stage: 'init', cue: /kubeadm init on the control plane/, afterMs: 8000, signal: 'SIGINT', exitCode: 130},
    {stage: 'join', cue: /kubeadm join the workers/, afterMs: 2000, signal: 'SIGINT', exitCode: 130},
  ] as const
  for (const {stage, cue, afterMs, signal, exitCode} of interruptions) {
    it(`${signal} during up's ${stage} stage tears down everything up made`, {timeout: STEP_TIMEOUT}, async () => {
      const result = await interruptCli(['up', '--config', test.config, '--dir', test.stateRoot], {
        when: cue,
        afterMs,
        signal,
        env: test.cli.env,
      })
      const what = explain(`up interrupted in ${stage}`, result)
      assert.ok(result.signalled, `the cue ${cue} never showed, or up ended before the signal: ${what}`)
      log(`up interrupted in ${stage}: ended ${seconds(result.ms)} after its start`)
      assert.deepEqual(await test.residue(), NO_RESIDUE, what)
      assert.equal(result.code, exitCode, what)
      assert.match(result.stderr, new RegExp(`^kube-spawn: interrupted by ${signal}: the new cluster was removed$`, 'm'), what)
    })
  }

  it(
    'a failed up saves the logs outside the cluster directory, names them, exits 1 and removes the cluster',
    {timeout: STEP_TIMEOUT},
    async () => {
      // Ready within a second is impossible: the start fails in its last stage, after init and join.
      const failing = await writeDefinition(
        test.stateRoot,
        isolatedDefinition({name: cluster, nodes: 2, bundle: await fixtureBundle(), extra: '\n[runtime-config]\ntimeout = "1s"\n'}),
        'failing.toml',
      )
      const result = await test.cli.run(['up', '--config', failing], STEP_TIMEOUT)
      const what = explain('up with a 1 s Ready timeout', result)
      assert.equal(result.code, 1, what)
      const lines = result.stderr.trim().split('\n')
      const errorLine = lines.at(-1)!
      assert.match(errorLine, /^kube-spawn: nodes not Ready after 1s: .*; logs saved in \S+; the new cluster was removed$/, what)
      const logs = /logs saved in (\S+);/.exec(errorLine)![1]
      assert.ok(logs.startsWith(join(test.stateRoot, 'logs', cluster) + '/'), `logs at ${logs}`)
      assert.deepEqual(await test.residue(), NO_RESIDUE)
      await assertEvidence(logs)
    },
  )

  async function assertEvidence(dir: string): Promise<void> {
    assert.match(await readFile(join(dir, 'host.txt'), 'utf8'), /cpuset root cgroup.clone_children/)
    for (const machine of test.machines) {
      const files = await readdir(join(dir, machine))
      for (const file of [
        'kubelet.journal.log',
        'containerd.journal.log',
        'journal.log',
        'systemctl-failed.txt',
        'containers.txt',
        'cgroups.txt',
        'console.log',
      ])
        assert.ok(files.includes(file), `${machine}/${file} in ${files.join(', ')}`)
      assert.match(await readFile(join(dir, machine, 'kubelet.journal.log'), 'utf8'), /kubelet/)
      assert.match(await readFile(join(dir, machine, 'systemctl-failed.txt'), 'utf8'), /UNIT|0 loaded units listed/)
      assert.match(await readFile(join(dir, machine, 'cgroups.txt'), 'utf8'), /cpuset\.cpus = \d/)
    }
    assert.match(await readFile(join(dir, cp, 'kubeadm-init.log'), 'utf8'), /control-plane has initialized successfully/)
    assert.match(await readFile(join(dir, worker, 'kubeadm-join.log'), 'utf8'), /This node has joined the cluster/)
    assert.match(await readFile(join(dir, cp, 'containers.txt'), 'utf8'), /kube-apiserver/)
    const pods = await readdir(join(dir, cp, 'pods'))
    for (const component of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'])
      assert.ok(
        pods.some((p) => p.startsWith(`kube-system_${component}-${cp}_`)),
        `static pod ${component} logs in ${pods.join(', ')}`,
      )
  }

  it('up works after the interrupts and the failure', {timeout: STEP_TIMEOUT}, async () => {
    const result = await test.cli.ok(['up', '--config', test.config], STEP_TIMEOUT)
    log(`up: ${seconds(result.ms)}`)
    assert.ok((await test.cli.status()).machines.every((m) => m.running))
  })

  it("export logs saves the running cluster's logs and prints the directory", {timeout: STEP_TIMEOUT}, async () => {
    const into = join(test.stateRoot, 'exported')
    const result = await test.cli.ok(['export', 'logs', into])
    assert.equal(result.stdout.trim(), into)
    await assertEvidence(into)
    const byDefault = await test.cli.ok(['export', 'logs'])
    assert.ok(byDefault.stdout.trim().startsWith(join(test.cli.clusterDir, 'logs') + '/'), byDefault.stdout)
    assert.ok((await stat(join(byDefault.stdout.trim(), cp, 'kubelet.journal.log'))).size > 0)
  })

  it('Ctrl-C during the start of a stopped cluster leaves it stopped, and it starts again', {timeout: STEP_TIMEOUT}, async () => {
    await test.cli.ok(['stop'])
    const result = await interruptCli(['start', '--dir', test.stateRoot, '-c', cluster], {
      when: /Wait until every node is Ready/,
      env: test.cli.env,
    })
    const what = explain('start interrupted in ready', result)
    assert.ok(result.signalled, what)
    assert.equal(result.code, 130, what)
    assert.match(
      result.stderr,
      /^kube-spawn: interrupted by SIGINT: the nodes were stopped; start them again with "kube-spawn start -c /m,
      what,
    )
    const stopped = await test.residue()
    assert.deepEqual(stopped.processes, [])
    assert.deepEqual(stopped.mounts, [])
    assert.ok((await test.cli.status()).machines.every((m) => !m.running))
    const again = await test.cli.ok(['start'], STEP_TIMEOUT)
    log(`start after the interrupted start: ${seconds(again.ms)}`)
    assert.ok((await test.cli.status()).machines.every((m) => m.running))
  })

  it('destroy leaves nothing behind', {timeout: STEP_TIMEOUT}, async () => {
    await test.cli.ok(['destroy'])
    assert.deepEqual(await test.residue(), NO_RESIDUE)
  })
})

/** A user plugin whose prepare-node task sleeps and ignores the abort signal, so that create can be caught halfway. */
const SLOW_PLUGIN = 'kube-spawn-plugin-slow'
const SLOW_INDEX = `export const providers = async () => ({workarounds: [{name: 'slow', description: 'sleeps in prepare-node'}]})
export const tasks = async ({stage}) =>
  stage === 'prepare-node' ? [{title: 'Sleep a minute', task: () => new Promise((resolve) => setTimeout(resolve, 60_000))}] : []
`

describe('Ctrl-C during create', {skip: SKIP_REASON}, () => {
  const test = useTestCluster('c', {label: 'create-interrupt', nodes: 1, pluginHome: true})
  before(async () => {
    await writeTestPlugin(test.work, SLOW_PLUGIN, SLOW_INDEX)
    const linked = await kubeSpawn(['plugins:link', join(test.work, SLOW_PLUGIN), '--no-install'], {env: test.cli.env})
    assert.equal(linked.code, 0, explain('plugins:link', linked))
  })

  it('leaves no cluster directory, even when a plugin task ignores the abort (given 10 s to settle)', {timeout: STEP_TIMEOUT}, async () => {
    const result = await interruptCli(['create', '--config', test.config, '--dir', test.stateRoot], {
      when: /\[slow\] Sleep a minute/,
      afterMs: 500,
      env: test.cli.env,
    })
    const what = explain('create interrupted in prepare-node', result)
    assert.ok(result.signalled, what)
    assert.equal(result.code, 130, what)
    assert.match(result.stderr, /^kube-spawn: interrupted by SIGINT: the new cluster was removed$/m, what)
    assert.ok(result.ms < 30_000, `create ended ${seconds(result.ms)} after its start, not after the plugin's minute`)
    assert.deepEqual(await test.residue(), NO_RESIDUE)
    assert.deepEqual(
      (await readdir(test.stateRoot)).filter((name) => name.startsWith('kst-')),
      [],
    )
  })
})

/**
 * Teardown never depends on plugins. A cluster runs on "containerd-copy", a runtime that a linked
 * user plugin provides (the core containerd declaration under another name; the host drives it). With that
 * plugin unlinked, and with a plugin that fails to load linked, `stop` and `destroy` still run
 * kube-spawn's own teardown, warn naming the plugin (on stderr, --json included), and leave nothing.
 */
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {before, describe, it} from 'node:test'

import {NO_RESIDUE, REPO, SKIP_REASON, explain, kubeSpawn, writeTestPlugin, useTestCluster} from './helpers.ts'

const STEP_TIMEOUT = 10 * 60_000
const COPY_PLUGIN = 'kube-spawn-plugin-rtcopy'
const BROKEN_PLUGIN = 'kube-spawn-plugin-broken'

/** The core containerd declaration under the name containerd-copy: a runtime is data, so that is all it takes. */
const COPY_INDEX = `import * as core from ${JSON.stringify(join(REPO, 'plugins', 'runtime-containerd', 'dist', 'index.js'))}
export const providers = async () => ({runtimes: [{...core.containerd, name: 'containerd-copy'}]})
export const tasks = async () => []
`

describe("stop and destroy without the cluster's plugins", {skip: SKIP_REASON}, () => {
  const test = useTestCluster('t', {label: 'plugins', nodes: 2, kubeconfig: true, pluginHome: true})
  const cluster = test.name
  const machines = test.machines
  before(async () => {
    await writeTestPlugin(test.work, COPY_PLUGIN, COPY_INDEX)
    await writeTestPlugin(test.work, BROKEN_PLUGIN, "throw new Error('broken on purpose')\n")
  })

  /** Plugin commands take no --dir or -c; they share the test's data directories through the environment. */
  const plugins = async (args: string[]) => {
    const result = await kubeSpawn(args, {env: test.cli.env})
    if (result.code !== 0) throw new Error(explain(`kube-spawn ${args.join(' ')}`, result))
  }
  const link = (name: string) => plugins(['plugins:link', join(test.work, name), '--no-install'])
  const unlink = (name: string) => plugins(['plugins:unlink', name])
  const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('kube-spawn: warning: '))
  const running = async () => (await test.cli.status()).machines.map((m) => m.running)

  it('boots a cluster whose runtime comes from a linked user plugin', {timeout: STEP_TIMEOUT}, async () => {
    await link(COPY_PLUGIN)
    await test.cli.ok(['create', '--config', test.config, '--container-runtime', 'containerd-copy'], STEP_TIMEOUT)
    await test.cli.ok(['start', '--skip-cluster-init'], STEP_TIMEOUT)
    const active = await test.cli.exec(machines[1], ['systemctl', 'is-active', 'containerd'])
    assert.equal(active.stdout.trim(), 'active', explain('systemctl is-active containerd', active))
    assert.deepEqual(await running(), [true, true])
  })

  it(
    'with the runtime plugin gone, stop --json stops the nodes and warns on stderr naming the plugin',
    {timeout: STEP_TIMEOUT},
    async () => {
      await unlink(COPY_PLUGIN)
      const stopped = await test.cli.ok(['stop', '--json'])
      const json = JSON.parse(stopped.stdout) as {cluster: {clusterName: string}; warnings: string[]}
      assert.equal(json.cluster.clusterName, cluster)
      const seen = warnings(stopped.stderr)
      assert.equal(seen.length, 1, stopped.stderr)
      assert.match(
        seen[0],
        /the container runtime plugin of this cluster \(rtcopy\) is missing or broken: unknown container runtime "containerd-copy"/,
      )
      assert.deepEqual(await running(), [false, false])
      assert.deepEqual((await test.residue()).processes, [])
    },
  )

  it('start without the runtime plugin is refused in one line, and the cluster stays as it was', async () => {
    const refused = await test.cli.run(['start'])
    assert.equal(refused.code, 2, explain('start', refused))
    assert.match(
      refused.stderr.trim(),
      /^kube-spawn: unknown container runtime "containerd-copy": installed: containerd, cri-o, docker; or install a plugin that provides it$/,
    )
    assert.deepEqual(await running(), [false, false])
  })

  it('a plugin that fails to load refuses create in one line naming it', async () => {
    await link(BROKEN_PLUGIN)
    const refused = await kubeSpawn(['create', '--dry-run', '--config', test.config, '--dir', test.stateRoot, '-c', `${cluster}x`], {
      env: test.cli.env,
    })
    assert.equal(refused.code, 2, explain('create', refused))
    assert.match(refused.stderr, /^kube-spawn: plugin kube-spawn-plugin-broken failed in hook kube-spawn:providers: broken on purpose/m)
  })

  it(
    'with the runtime plugin gone and a broken plugin linked, destroy of running nodes warns about both and leaves nothing',
    {timeout: STEP_TIMEOUT},
    async () => {
      await unlink(BROKEN_PLUGIN)
      await link(COPY_PLUGIN)
      await test.cli.ok(['start', '--skip-cluster-init'], STEP_TIMEOUT)
      assert.deepEqual(await running(), [true, true])
      await unlink(COPY_PLUGIN)
      await link(BROKEN_PLUGIN)

      const plan = await test.cli.ok(['destroy', '--dry-run'])
      assert.match(plan.stdout, /\[kube-spawn\] Remove the cluster directory/)
      const destroyed = await test.cli.ok(['destroy'], STEP_TIMEOUT)
      const seen = warnings(destroyed.stderr).join('\n')
      assert.match(seen, /plugin kube-spawn-plugin-broken failed in hook kube-spawn:providers: broken on purpose/)
      assert.match(seen, /plugin kube-spawn-plugin-broken failed in hook kube-spawn:tasks: broken on purpose/)
      assert.match(seen, /the container runtime plugin of this cluster \(rtcopy\) is missing or broken/)
      assert.deepEqual(await test.residue(), NO_RESIDUE)
      await unlink(BROKEN_PLUGIN)
    },
  )
})

/**
 * stop and destroy plan and run without the cluster's plugins, and their warnings reach stderr in
 * every output mode, --json included (oclif's own logToStderr is silent there).
 */
import assert from 'node:assert/strict'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, stderrLines} from '../helpers/cli.ts'

let root: string
let cleanup: () => Promise<void>

before(async () => {
  ;({root, cleanup} = await makeWorkDir())
  // The cluster "keep" as it would be after its runtime plugin was uninstalled.
  const definition = join(root, 'keep', 'kspawn.toml')
  await writeFile(
    definition,
    (await readFile(definition, 'utf8')).replace('container-runtime = "containerd"', 'container-runtime = "gone"'),
  )
  await writeFile(join(root, 'keep', 'providers.json'), '{"runtime":"runtime-gone","image":"image-debian"}\n')
})
after(async () => cleanup())

const WARNING =
  /^kube-spawn: warning: the container runtime plugin of this cluster \(runtime-gone\) is missing or broken: unknown container runtime "gone"; kube-spawn's own teardown runs without that plugin's tasks$/

describe('teardown of a cluster whose runtime plugin is gone', () => {
  for (const command of ['stop', 'destroy']) {
    it(`${command} --dry-run plans kube-spawn's own teardown and warns naming the plugin`, async () => {
      const result = await kubeSpawn([command, '--dry-run', '--dir', root, '-c', 'keep'])
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /\[kube-spawn\] /)
      assert.doesNotMatch(result.stdout, /\[runtime-containerd\]/)
      assert.deepEqual(
        stderrLines(result).filter((l) => !WARNING.test(l)),
        [],
      )
      assert.equal(stderrLines(result).length, 1)
    })
  }

  it('the warning is on stderr under --json too, and stdout is only the JSON result', async () => {
    const result = await kubeSpawn(['stop', '--dry-run', '--json', '--dir', root, '-c', 'keep'])
    assert.equal(result.code, 0, result.stderr)
    const json = JSON.parse(result.stdout) as {warnings: string[]; plan: unknown[]}
    assert.equal(json.warnings.length, 1)
    assert.ok(json.plan.length > 0)
    assert.equal(stderrLines(result).length, 1)
    assert.match(stderrLines(result)[0], WARNING)
  })

  it('export logs saves what it can without the runtime plugin, reading stopped nodes from their layers', async () => {
    const into = join(root, '..', 'exported')
    const result = await kubeSpawn(['export', 'logs', into, '--dir', root, '-c', 'keep'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout.trim(), into)
    assert.match(stderrLines(result)[0], WARNING)
    const entries = (await readdir(into)).sort()
    assert.ok(entries.includes('host.txt'), entries.join(', '))
    const machines = entries.filter((e) => e !== 'host.txt')
    assert.equal(machines.length, 2, entries.join(', '))
    for (const machine of machines) {
      const files = await readdir(join(into, machine))
      assert.ok(files.includes('kubelet.journal.log'), files.join(', '))
      assert.ok(!files.includes('.journal.log'), 'no journal of a runtime service without a name')
      assert.match(await readFile(join(into, machine, 'collection-problems.txt'), 'utf8'), /the node was not running/)
    }
  })

  it('start is still refused in one line (exit 2)', async () => {
    const result = await kubeSpawn(['start', '--dry-run', '--dir', root, '-c', 'keep'])
    assert.equal(result.code, 2)
    assert.deepEqual(stderrLines(result), [
      'kube-spawn: unknown container runtime "gone": installed: containerd, cri-o, docker; or install a plugin that provides it',
    ])
  })
})

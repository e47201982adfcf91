/** export kubeadm-config: what it copies out of the nodes' layers, and its one-line refusals. */
import assert from 'node:assert/strict'
import {mkdir, readFile, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, snapshotTree, stderrLines} from '../helpers/cli.ts'

const INIT = 'apiVersion: kubeadm.k8s.io/v1beta2\nkind: InitConfiguration\n'
const JOIN = 'apiVersion: kubeadm.k8s.io/v1beta2\nkind: JoinConfiguration\n'

/** The fixture cluster "keep", initialized, with what kubeadm left in its nodes' own layers. */
async function initializedKeep(root: string): Promise<void> {
  const toml = join(root, 'keep', 'kspawn.toml')
  await writeFile(toml, (await readFile(toml, 'utf8')).replace('initialized = false', 'initialized = true'))
  const put = async (node: string, path: string, content: string) => {
    const file = join(root, 'keep', 'nodes', node, 'upper', path)
    await mkdir(join(file, '..'), {recursive: true})
    await writeFile(file, content)
  }
  await put('ks-keep-cp', 'etc/kube-spawn/kubeadm-init.yaml', INIT)
  await put('ks-keep-cp', 'var/lib/kubelet/config.yaml', 'kind: KubeletConfiguration\n')
  await put('ks-keep-cp', 'var/lib/kubelet/kubeadm-flags.env', 'KUBELET_KUBEADM_ARGS="--node-ip=10.22.5.2"\n')
  await put('ks-keep-w1', 'etc/kube-spawn/kubeadm-join.yaml', JOIN)
  await put('ks-keep-w1', 'var/lib/kubelet/config.yaml', 'kind: KubeletConfiguration\n')
}

describe('export kubeadm-config', () => {
  it('writes each node’s kubeadm and kubelet configuration, mode 0600, and lists them', async () => {
    const {work, root, cleanup} = await makeWorkDir()
    try {
      await initializedKeep(root)
      const out = join(work, 'out')
      const result = await kubeSpawn(['export', 'kubeadm-config', '-c', 'keep', '--dir', root, out], {timeoutMs: 60_000})
      assert.equal(result.code, 0, result.stderr)
      assert.deepEqual((await readdir(out)).sort(), ['ks-keep-cp', 'ks-keep-w1'])
      assert.equal(await readFile(join(out, 'ks-keep-cp', 'kubeadm-init.yaml'), 'utf8'), INIT)
      assert.equal(await readFile(join(out, 'ks-keep-w1', 'kubeadm-join.yaml'), 'utf8'), JOIN)
      assert.deepEqual((await readdir(join(out, 'ks-keep-cp'))).sort(), ['kubeadm-flags.env', 'kubeadm-init.yaml', 'kubelet-config.yaml'])
      assert.equal(((await stat(join(out, 'ks-keep-cp', 'kubeadm-init.yaml'))).mode & 0o777).toString(8), '600')
      assert.match(result.stdout, /^ks-keep-cp\/kubeadm-init\.yaml$/m)
      assert.match(result.stdout, /Wrote 5 file\(s\) to /)
    } finally {
      await cleanup()
    }
  })

  it('refuses a cluster kubeadm has not set up yet, and a non-empty directory, in one line, writing nothing', async () => {
    const {work, root, cleanup} = await makeWorkDir()
    try {
      const out = join(work, 'out')
      const before = await snapshotTree(root)
      const fresh = await kubeSpawn(['export', 'kubeadm-config', '-c', 'keep', '--dir', root, out], {timeoutMs: 60_000})
      assert.notEqual(fresh.code, 0)
      assert.deepEqual(stderrLines(fresh), [
        'kube-spawn: cluster "keep" has not been set up by kubeadm yet, so there is no configuration to export: start it first: kube-spawn start -c keep',
      ])
      assert.deepEqual(await snapshotTree(root), before)

      await initializedKeep(root)
      await mkdir(out)
      await writeFile(join(out, 'mine.txt'), 'keep me')
      const full = await kubeSpawn(['export', 'kubeadm-config', '-c', 'keep', '--dir', root, out], {timeoutMs: 60_000})
      assert.notEqual(full.code, 0)
      assert.equal(stderrLines(full).length, 1)
      assert.match(stderrLines(full)[0], /is not empty: give a new or empty directory/)
      assert.deepEqual(await readdir(out), ['mine.txt'])
    } finally {
      await cleanup()
    }
  })
})

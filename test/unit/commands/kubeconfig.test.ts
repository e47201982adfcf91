/** kube-spawn kubeconfig against temporary state roots: the cluster "keep", started (with an admin.conf) or never started. */
import assert from 'node:assert/strict'
import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, stderrLines} from '../helpers/cli.ts'

/** An admin.conf as kubeadm init writes it for "keep" (control plane ks-keep-cp at 10.22.5.2), with made-up certificates. */
const ADMIN_CONF = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${Buffer.from('ca').toString('base64')}
    server: https://10.22.5.2:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: ${Buffer.from('cert').toString('base64')}
    client-key-data: ${Buffer.from('key').toString('base64')}
`
const INTERNAL_CONF = ADMIN_CONF.replace('server: https://10.22.5.2:6443', 'server: https://ks-keep-cp:6443')

describe('kubeconfig of a started cluster', () => {
  let root: string
  let cleanup: () => Promise<void>
  let adminConf: string
  let internalConf: string
  before(async () => {
    ;({root, cleanup} = await makeWorkDir())
    adminConf = join(root, 'keep', 'admin.conf')
    internalConf = join(root, 'keep', 'admin-internal.conf')
    await writeFile(adminConf, ADMIN_CONF, {mode: 0o600})
  })
  after(() => cleanup())

  /** kubeconfig --json of the cluster "keep", which must exit 0. */
  const kubeconfigJson = async (...flags: string[]) => {
    const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'keep', ...flags, '--json'])
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout) as unknown
  }
  const expected = (path: string, internal: boolean) => ({
    cluster: 'keep',
    path,
    context: 'kubernetes-admin@kubernetes',
    server: internal ? 'https://ks-keep-cp:6443' : 'https://10.22.5.2:6443',
    internal,
  })

  it("prints the path of the cluster's admin.conf", async () => {
    const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'keep'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, `${adminConf}\n`)
    assert.equal(result.stderr, '')
  })

  it('--raw prints the kubeconfig itself', async () => {
    const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'keep', '--raw'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, ADMIN_CONF)
  })

  it('--json gives the path, context and server', async () => {
    assert.deepEqual(await kubeconfigJson(), expected(adminConf, false))
  })

  it('--internal --raw prints the kubeconfig with the control plane by machine name, and writes nothing', async () => {
    const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'keep', '--internal', '--raw'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, INTERNAL_CONF)
    await assert.rejects(stat(internalConf), {code: 'ENOENT'})
  })

  it('--internal writes admin-internal.conf (0600) beside admin.conf and prints its path; admin.conf stays', async () => {
    const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'keep', '--internal'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, `${internalConf}\n`)
    assert.equal(await readFile(internalConf, 'utf8'), INTERNAL_CONF)
    assert.equal((await stat(internalConf)).mode & 0o777, 0o600)
    assert.equal(await readFile(adminConf, 'utf8'), ADMIN_CONF)

    const written = await stat(internalConf)
    assert.deepEqual(await kubeconfigJson('--internal'), expected(internalConf, true))
    const unchanged = await stat(internalConf)
    assert.deepEqual([unchanged.ino, unchanged.mtimeMs], [written.ino, written.mtimeMs], 'an up-to-date file is not rewritten')
  })

  it('an unknown cluster is one line naming the known ones, exit 2', async () => {
    const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'nope'])
    assert.equal(result.code, 2)
    assert.equal(result.stdout, '')
    assert.deepEqual(stderrLines(result), [`kube-spawn: no cluster "nope" in ${root}: known clusters: keep`])
  })
})

describe('kubeconfig of a cluster that was never started', () => {
  let root: string
  let cleanup: () => Promise<void>
  before(async () => {
    ;({root, cleanup} = await makeWorkDir())
  })
  after(() => cleanup())

  for (const flags of [[], ['--raw'], ['--internal']]) {
    it(`${['kubeconfig', ...flags].join(' ')} says so in one line and names the start command, exit 2`, async () => {
      const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'keep', ...flags])
      assert.equal(result.code, 2)
      assert.equal(result.stdout, '')
      assert.deepEqual(stderrLines(result), [
        'kube-spawn: cluster "keep" was never started, so it has no kubeconfig yet: start it with "kube-spawn start -c keep"',
      ])
      await assert.rejects(stat(join(root, 'keep', 'admin-internal.conf')), {code: 'ENOENT'})
    })
  }

  it('--json reports the error as JSON', async () => {
    const result = await kubeSpawn(['kubeconfig', '--dir', root, '-c', 'keep', '--json'])
    assert.equal(result.code, 2)
    assert.deepEqual(JSON.parse(result.stdout), {
      error: {
        message: 'cluster "keep" was never started, so it has no kubeconfig yet: start it with "kube-spawn start -c keep"',
        exitCode: 2,
      },
    })
  })
})

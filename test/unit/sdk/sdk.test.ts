/** The SDK's run-time helpers (pure, or on a temporary root filesystem). */
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, rm, symlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {
  API_VERSION,
  CNI_PLUGINS,
  NODE_COMMANDS,
  answerProblems,
  apiVersionFits,
  isUserError,
  missingFromRoot,
  readPluginConfig,
  userError,
} from '@kube-spawn/sdk'
import {containerd} from '../../../plugins/runtime-containerd/dist/index.js'
import {debian} from '../../../plugins/image-debian/dist/index.js'

describe('API versions', () => {
  it('admits ranges that contain the API version, and nothing malformed', () => {
    assert.equal(API_VERSION, '1.3')
    assert.equal(apiVersionFits('^1.0'), true)
    assert.equal(apiVersionFits('>=1.0 <3'), true)
    assert.equal(apiVersionFits('^2.0'), false)
    assert.equal(apiVersionFits('^1.1'), true)
    assert.equal(apiVersionFits('^1.2'), true)
    assert.equal(apiVersionFits('^1.3'), true)
    assert.equal(apiVersionFits('^1.4'), false)
    assert.equal(apiVersionFits('^1.0', '1.4'), true)
    assert.equal(apiVersionFits('not a range'), false)
  })
})

describe('userError', () => {
  it('brands an error that any copy of the SDK recognises, with hint and exit code', () => {
    const error = userError('bad thing', {hint: 'do this'})
    assert.ok(isUserError(error))
    assert.equal(error.hint, 'do this')
    assert.equal(error.exitCode, 2)
    assert.equal(isUserError(new Error('plain')), false)
    assert.equal(isUserError('a string'), false)
  })
})

describe('readPluginConfig', () => {
  const reader = readPluginConfig({pluginConfig: () => ({greeting: 'hi', enabled: false, count: 3, list: ['a'], bad: 3})}, 'hello')
  it('reads typed values with fallbacks', () => {
    assert.equal(reader.string('greeting'), 'hi')
    assert.equal(reader.string('missing', 'x'), 'x')
    assert.equal(reader.boolean('enabled', true), false)
    assert.equal(reader.number('count'), 3)
    assert.deepEqual(reader.strings('list'), ['a'])
    assert.deepEqual(reader.strings('none'), [])
    assert.deepEqual(reader.unknownKeys(['greeting', 'enabled', 'count', 'list']), ['bad'])
  })
  it('names the table and key of a value of the wrong type', () => {
    assert.throws(
      () => reader.string('bad'),
      (e: unknown) => isUserError(e) && e.message === '[plugin-config.hello] bad must be a string, not 3',
    )
    assert.throws(() => reader.strings('greeting'), /\[plugin-config\.hello\] greeting must be an array of strings, not "hi"/)
  })
})

describe('answerProblems', () => {
  it('accepts the core declarations', () => {
    assert.deepEqual(answerProblems('kube-spawn:providers', {runtimes: [containerd], images: [debian]}), [])
    assert.deepEqual(answerProblems('kube-spawn:tasks', [{title: 't', task: () => {}, skip: () => false}]), [])
  })
  it('names what is wrong, field by field', () => {
    assert.deepEqual(answerProblems('kube-spawn:tasks', {title: 't'}), ['the result must be an array of tasks, not an object'])
    assert.deepEqual(answerProblems('kube-spawn:tasks', undefined), ['the result must be an array of tasks, not undefined'])
    assert.deepEqual(answerProblems('kube-spawn:tasks', [{title: 't', task: 'no'}]), ['task "t": task must be a function'])
    assert.deepEqual(answerProblems('kube-spawn:providers', {images: [{name: 'x', description: 'd', family: 'f', key: () => 'k'}]}), [
      'image "x": it needs build or fetch',
    ])
    const half: Partial<typeof containerd> = {...containerd}
    delete half.criSocket
    assert.deepEqual(answerProblems('kube-spawn:providers', {runtimes: [{...half, dataDirs: '/var/lib/x'}]}), [
      'runtime 1 "containerd": dataDirs must be an array of strings',
      'runtime 1 "containerd": criSocket must be a string (it is missing)',
    ])
    assert.deepEqual(answerProblems('kube-spawn:providers', {runtimes: [{...containerd, files: [{path: 'rel', content: 'x'}]}]}), [
      'runtime 1 "containerd": files must be an array of {path, content} or {path, url, sha256, extract?: a relative member path}',
    ])
  })
})

describe('missingFromRoot', () => {
  let root = ''
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ks-root-'))
    // A merged-/usr root: /bin and /sbin are absolute symlinks that must resolve inside the root.
    await mkdir(join(root, 'usr/bin'), {recursive: true})
    await mkdir(join(root, 'usr/lib/systemd'), {recursive: true})
    await mkdir(join(root, 'usr/lib/cni'), {recursive: true})
    await mkdir(join(root, 'etc'), {recursive: true})
    await symlink('/usr/bin', join(root, 'bin'))
    await symlink('/usr/bin', join(root, 'sbin'))
    await writeFile(join(root, 'usr/lib/systemd/systemd'), '')
    await symlink('/usr/lib/systemd/systemd', join(root, 'usr/bin/init'))
    for (const command of [...NODE_COMMANDS, 'containerd', 'ctr']) await writeFile(join(root, 'usr/bin', command), '')
    for (const plugin of CNI_PLUGINS.slice(1)) await writeFile(join(root, 'usr/lib/cni', plugin), '')
  })
  after(() => rm(root, {recursive: true, force: true}))

  it('names what a root lacks for a runtime', async () => {
    assert.deepEqual(await missingFromRoot(root, containerd), ['/etc/os-release', 'command runc', 'CNI plugin bridge in /usr/lib/cni'])
  })

  it("counts the runtime's own files as present: they are written into the nodes later", async () => {
    const withFiles = {...containerd, files: [{path: '/usr/bin/runc', url: 'http://127.0.0.1/runc', sha256: '0'.repeat(64)}]}
    assert.deepEqual(await missingFromRoot(root, withFiles), ['/etc/os-release', 'CNI plugin bridge in /usr/lib/cni'])
  })

  it('finds nothing missing once it is there, following absolute symlinks inside the root', async () => {
    await writeFile(join(root, 'etc/os-release'), 'ID=test\n')
    await writeFile(join(root, 'usr/bin/runc'), '')
    await writeFile(join(root, 'usr/lib/cni/bridge'), '')
    assert.deepEqual(await missingFromRoot(root, containerd), [])
  })

  it('wants systemd as /sbin/init', async () => {
    await rm(join(root, 'usr/bin/init'))
    await symlink('/usr/bin/sh', join(root, 'usr/bin/init'))
    assert.deepEqual(await missingFromRoot(root, containerd), ['systemd as /sbin/init'])
  })
})

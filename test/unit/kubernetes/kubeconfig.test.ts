import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, unlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {contextName, kubeconfigPath, mergeKubeconfig, removeKubeconfigContext} from '../../../dist/kubernetes/kubeconfig.js'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../../..')
const PREPARE = join(REPO, '../shared/fixtures/kubernetes/prepare-bundle')

function fixtureKubectl(): string | undefined {
  const bundle =
    process.env.KUBE_SPAWN_FIXTURE_BUNDLE ??
    (existsSync(PREPARE) ? execFileSync(PREPARE, {encoding: 'utf8'}).trim().split('\n').pop() : undefined)
  return bundle && existsSync(join(bundle, 'bin/kubectl')) ? join(bundle, 'bin/kubectl') : undefined
}

const kubectl = fixtureKubectl()
const skip = kubectl === undefined ? 'no fixture kubectl (shared/fixtures/kubernetes)' : false

const b64 = (text: string) => Buffer.from(text).toString('base64')
const pem = (kind: string, tag: string) => `-----BEGIN ${kind}-----\n${b64(`${kind} ${tag}`)}\n-----END ${kind}-----\n`

/** An admin.conf as kubeadm writes it, with made-up certificates. */
function adminConf(server: string, tag: string): string {
  return `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${b64(pem('CERTIFICATE', `ca ${tag}`))}
    server: ${server}
  name: dev
contexts:
- context:
    cluster: dev
    user: kubernetes-admin
  name: kubernetes-admin@dev
current-context: kubernetes-admin@dev
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: ${b64(pem('CERTIFICATE', `client ${tag}`))}
    client-key-data: ${b64(pem('RSA PRIVATE KEY', `key ${tag}`))}
`
}

/** A user's kubeconfig written by hand, with a comment and a relative certificate path. */
const USER_CONFIG = `# my clusters
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://other.example:6443", certificate-authority: other-ca.crt}
users:
- name: other
  user: {token: secret-token}
contexts:
- name: other
  context: {cluster: other, user: other}
current-context: other
`

interface Entry {
  name: string
  cluster?: Record<string, string>
  user?: Record<string, string>
  context?: Record<string, string>
}
interface Config {
  'current-context'?: string
  clusters?: Entry[]
  users?: Entry[]
  contexts?: Entry[]
}

function view(file: string): Config {
  return JSON.parse(execFileSync(kubectl!, ['config', `--kubeconfig=${file}`, 'view', '--raw', '-o', 'json'], {encoding: 'utf8'}))
}

const names = (list?: Entry[]) => (list ?? []).map((e) => e.name).sort()

describe('kubeconfigPath', () => {
  it('is the first path of $KUBECONFIG, else ~/.kube/config', () => {
    assert.equal(kubeconfigPath({KUBECONFIG: '/a/one:/b/two', HOME: '/home/u'}), '/a/one')
    assert.equal(kubeconfigPath({KUBECONFIG: ':/b/two', HOME: '/home/u'}), '/b/two')
    assert.equal(kubeconfigPath({KUBECONFIG: '', HOME: '/home/u'}), '/home/u/.kube/config')
    assert.equal(kubeconfigPath({HOME: '/home/u'}), '/home/u/.kube/config')
    assert.equal(contextName('dev'), 'kube-spawn-dev')
  })
})

describe('kubeconfig merge and removal', {skip}, () => {
  let work: string
  let n = 0
  /** A fresh HOME for each test. */
  const home = async () => {
    const dir = join(work, `home-${++n}`)
    await mkdir(dir)
    return dir
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-kubeconfig-'))
  })
  after(async () => {
    if (work) await rm(work, {recursive: true, force: true})
  })

  it('creates ~/.kube/config with the cluster, user and context, private to the user', async () => {
    const env = {HOME: await home()}
    const result = await mergeKubeconfig({cluster: 'dev', adminConf: adminConf('https://10.22.0.2:6443', 'one'), kubectl: kubectl!, env})
    const path = join(env.HOME, '.kube', 'config')
    assert.deepEqual(result, {path, context: 'kube-spawn-dev'})
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    assert.equal((await stat(dirname(path))).mode & 0o777, 0o700)
    assert.ok(!existsSync(`${path}.lock`))
    const config = view(path)
    assert.equal(config['current-context'], 'kube-spawn-dev')
    assert.deepEqual(config.contexts, [{name: 'kube-spawn-dev', context: {cluster: 'kube-spawn-dev', user: 'kube-spawn-dev'}}])
    assert.deepEqual(config.clusters, [
      {
        name: 'kube-spawn-dev',
        cluster: {server: 'https://10.22.0.2:6443', 'certificate-authority-data': b64(pem('CERTIFICATE', 'ca one'))},
      },
    ])
    assert.deepEqual(config.users, [
      {
        name: 'kube-spawn-dev',
        user: {'client-certificate-data': b64(pem('CERTIFICATE', 'client one')), 'client-key-data': b64(pem('RSA PRIVATE KEY', 'key one'))},
      },
    ])
  })

  it("keeps the user's entries and replaces its own on a second merge", async () => {
    const env = {HOME: await home()}
    const path = join(env.HOME, '.kube', 'config')
    await mkdir(dirname(path))
    await writeFile(path, USER_CONFIG, {mode: 0o644})
    await mergeKubeconfig({
      cluster: 'dev',
      adminConf: adminConf('https://10.22.0.2:6443', 'one'),
      kubectl: kubectl!,
      env,
      useContext: false,
    })
    await mergeKubeconfig({
      cluster: 'dev',
      adminConf: adminConf('https://10.22.0.9:6443', 'two'),
      kubectl: kubectl!,
      env,
      useContext: false,
    })
    const config = view(path)
    assert.equal(config['current-context'], 'other')
    assert.deepEqual(names(config.contexts), ['kube-spawn-dev', 'other'])
    assert.deepEqual(names(config.clusters), ['kube-spawn-dev', 'other'])
    assert.deepEqual(names(config.users), ['kube-spawn-dev', 'other'])
    const ours = config.clusters!.find((c) => c.name === 'kube-spawn-dev')!
    assert.deepEqual(ours.cluster, {server: 'https://10.22.0.9:6443', 'certificate-authority-data': b64(pem('CERTIFICATE', 'ca two'))})
    const other = config.clusters!.find((c) => c.name === 'other')!
    assert.equal(other.cluster!['certificate-authority'], 'other-ca.crt', 'relative paths stay relative')
    assert.equal(config.users!.find((u) => u.name === 'other')!.user!.token, 'secret-token')
    assert.equal((await stat(path)).mode & 0o777, 0o600)
  })

  it('writes the first file of $KUBECONFIG and follows a symlinked kubeconfig', async () => {
    const dir = await home()
    const real = join(dir, 'real-config')
    const first = join(dir, 'first')
    const second = join(dir, 'second')
    await writeFile(real, USER_CONFIG)
    await symlink(real, first)
    await writeFile(second, USER_CONFIG)
    await mergeKubeconfig({
      cluster: 'lab',
      adminConf: adminConf('https://10.23.0.2:6443', 'lab'),
      kubectl: kubectl!,
      env: {KUBECONFIG: `${first}:${second}`},
    })
    assert.ok((await lstat(first)).isSymbolicLink())
    assert.deepEqual(names(view(real).contexts), ['kube-spawn-lab', 'other'])
    assert.equal(await readFile(second, 'utf8'), USER_CONFIG)
  })

  it('waits for a lock held by another writer, and gives up after the timeout', async () => {
    const env = {HOME: await home()}
    const path = join(env.HOME, '.kube', 'config')
    await mkdir(dirname(path))
    await writeFile(path, USER_CONFIG)
    await writeFile(`${path}.lock`, '')
    await assert.rejects(
      mergeKubeconfig({cluster: 'dev', adminConf: adminConf('https://10.22.0.2:6443', 'x'), kubectl: kubectl!, env, lockTimeoutMs: 300}),
      {name: 'UserError', message: `${path} is locked: ${path}.lock exists`},
    )
    assert.equal(await readFile(path, 'utf8'), USER_CONFIG)
    assert.ok(existsSync(`${path}.lock`), "another writer's lock is left alone")

    const release = new Promise((resolve) => setTimeout(resolve, 400)).then(() => unlink(`${path}.lock`))
    await mergeKubeconfig({cluster: 'dev', adminConf: adminConf('https://10.22.0.2:6443', 'x'), kubectl: kubectl!, env})
    await release
    assert.deepEqual(names(view(path).contexts), ['kube-spawn-dev', 'other'])
  })

  it('rejects an admin.conf without embedded certificates', async () => {
    const env = {HOME: await home()}
    const broken = adminConf('https://10.22.0.2:6443', 'x').replace(/ {4}client-key-data: .*\n/, '')
    await assert.rejects(mergeKubeconfig({cluster: 'dev', adminConf: broken, kubectl: kubectl!, env}), {
      name: 'UserError',
      message: /admin\.conf of cluster dev lacks/,
    })
    assert.ok(!existsSync(join(env.HOME, '.kube', 'config')))
  })

  it('removes the three entries and the current context, and nothing else', async () => {
    const env = {HOME: await home()}
    const path = join(env.HOME, '.kube', 'config')
    await mkdir(dirname(path))
    await writeFile(path, USER_CONFIG)
    await mergeKubeconfig({cluster: 'dev', adminConf: adminConf('https://10.22.0.2:6443', 'one'), kubectl: kubectl!, env})
    await mergeKubeconfig({
      cluster: 'dev2',
      adminConf: adminConf('https://10.24.0.2:6443', 'two'),
      kubectl: kubectl!,
      env,
      useContext: false,
    })
    assert.equal(view(path)['current-context'], 'kube-spawn-dev')

    assert.equal(await removeKubeconfigContext('dev', kubectl, {env}), true)
    const config = view(path)
    assert.equal(config['current-context'] ?? '', '')
    assert.deepEqual(names(config.contexts), ['kube-spawn-dev2', 'other'])
    assert.deepEqual(names(config.clusters), ['kube-spawn-dev2', 'other'])
    assert.deepEqual(names(config.users), ['kube-spawn-dev2', 'other'])
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    assert.ok(!existsSync(`${path}.lock`))

    const before = await readFile(path, 'utf8')
    assert.equal(await removeKubeconfigContext('dev', kubectl, {env}), false)
    assert.equal(await readFile(path, 'utf8'), before)
  })

  it('is a no-op, needing no kubectl, when the kubeconfig is absent or does not mention the cluster', async () => {
    const env = {HOME: await home(), PATH: ''}
    assert.equal(await removeKubeconfigContext('dev', undefined, {env}), false)
    const path = join(env.HOME, '.kube', 'config')
    await mkdir(dirname(path))
    await writeFile(path, USER_CONFIG)
    assert.equal(await removeKubeconfigContext('dev', '/nonexistent/kubectl', {env}), false)
    assert.equal(await readFile(path, 'utf8'), USER_CONFIG)
  })

  it('finds kubectl on PATH when none is given, and says so when there is none', async () => {
    const env = {HOME: await home(), PATH: dirname(kubectl!)}
    await mergeKubeconfig({cluster: 'dev', adminConf: adminConf('https://10.22.0.2:6443', 'one'), kubectl: kubectl!, env})
    await assert.rejects(removeKubeconfigContext('dev', undefined, {env: {...env, PATH: '/nonexistent'}}), {
      name: 'UserError',
      message: /no kubectl found/,
    })
    assert.equal(await removeKubeconfigContext('dev', undefined, {env}), true)
    assert.deepEqual(view(join(env.HOME, '.kube', 'config')).contexts ?? [], [])
  })
})

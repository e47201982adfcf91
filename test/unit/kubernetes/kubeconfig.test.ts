import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {chown, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, unlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {fixtureBinary} from '../helpers/fixture-bundle.ts'

import {
  contextName,
  describeKubeconfig,
  kubeconfigPath,
  mergeKubeconfig,
  passwdHome,
  removeKubeconfigContext,
  sudoUser,
  withServer,
} from '../../../dist/kubernetes/kubeconfig.js'
import {kubeconfigCredentials} from '../../../dist/kubernetes/api.js'

const kubectl = fixtureBinary('kubectl')
const skip = kubectl === undefined ? 'no fixture kubectl (shared/fixtures/kubernetes)' : false
const skipUnlessRoot = skip || (process.getuid?.() !== 0 ? 'needs root (chown)' : false)

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

describe('kubeconfigCredentials (the API client reads admin.conf)', () => {
  const conf = adminConf('https://10.22.0.2:6443', 't')

  it("reads the server, the CA and the client's certificate and key of the current context", () => {
    assert.deepEqual(kubeconfigCredentials(conf), {
      server: 'https://10.22.0.2:6443',
      ca: pem('CERTIFICATE', 'ca t'),
      cert: pem('CERTIFICATE', 'client t'),
      key: pem('RSA PRIVATE KEY', 'key t'),
    })
  })

  it('refuses a kubeconfig whose current context does not embed its credentials', () => {
    const files = conf
      .replace(/client-certificate-data: .*/, 'client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem')
      .replace(/client-key-data: .*/, 'client-key: /var/lib/kubelet/pki/kubelet-client-current.pem')
    assert.throws(() => kubeconfigCredentials(files), /no embedded client certificate/)
    assert.throws(() => kubeconfigCredentials(conf.replace(/current-context: .*/, 'current-context: other')), /names no server/)
  })
})

describe('kubeconfigPath', () => {
  it('is the first path of $KUBECONFIG, else ~/.kube/config', () => {
    assert.equal(kubeconfigPath({KUBECONFIG: '/a/one:/b/two', HOME: '/home/u'}), '/a/one')
    assert.equal(kubeconfigPath({KUBECONFIG: ':/b/two', HOME: '/home/u'}), '/b/two')
    assert.equal(kubeconfigPath({KUBECONFIG: '', HOME: '/home/u'}), '/home/u/.kube/config')
    assert.equal(kubeconfigPath({HOME: '/home/u'}), '/home/u/.kube/config')
    assert.equal(contextName('dev'), 'kube-spawn-dev')
  })

  const SUDO = {SUDO_USER: 'alice', SUDO_UID: '1000', SUDO_GID: '1001', HOME: '/root'}
  const homes = (uid: number) => (uid === 1000 ? '/home/alice' : undefined)

  it("under sudo is the invoking user's ~/.kube/config, with the home from the passwd database, not HOME", () => {
    assert.equal(kubeconfigPath(SUDO, {processUid: 0, homeOf: homes}), '/home/alice/.kube/config')
    assert.equal(kubeconfigPath({...SUDO, SUDO_UID: '0', SUDO_USER: 'root', HOME: '/elsewhere'}, {processUid: 0}), '/root/.kube/config')
  })

  it('under sudo still prefers $KUBECONFIG', () => {
    assert.equal(kubeconfigPath({...SUDO, KUBECONFIG: '/a/one'}, {processUid: 0, homeOf: homes}), '/a/one')
  })

  it('is HOME when not root, or when a sudo variable is missing or not a number', () => {
    assert.equal(kubeconfigPath(SUDO, {processUid: 1000, homeOf: homes}), '/root/.kube/config')
    for (const broken of [{SUDO_GID: undefined}, {SUDO_USER: ''}, {SUDO_UID: 'alice'}]) {
      assert.equal(kubeconfigPath({...SUDO, ...broken}, {processUid: 0, homeOf: homes}), '/root/.kube/config', JSON.stringify(broken))
    }
  })

  it('says so when the sudo user has no home directory in the passwd database', () => {
    assert.throws(() => kubeconfigPath({...SUDO, SUDO_UID: '4242'}, {processUid: 0, homeOf: homes}), {
      name: 'UserError',
      message: 'cannot find the home directory of alice (uid 4242), who ran kube-spawn through sudo',
    })
  })
})

describe('sudoUser and passwdHome', () => {
  it('reads the invoking user from SUDO_USER, SUDO_UID and SUDO_GID when running as root', () => {
    const env = {SUDO_USER: 'alice', SUDO_UID: '1000', SUDO_GID: '1001'}
    assert.deepEqual(sudoUser(env, 0), {name: 'alice', uid: 1000, gid: 1001})
    assert.equal(sudoUser(env, 1000), undefined)
    assert.equal(sudoUser({}, 0), undefined)
  })

  it('finds a home directory by uid, and none for an unknown uid', () => {
    assert.equal(passwdHome(0), '/root')
    assert.equal(passwdHome(2_147_483_000), undefined)
  })
})

describe('describeKubeconfig and withServer', () => {
  const admin = adminConf('https://10.22.0.2:6443', 'one')

  it("read the current context and its cluster's server", () => {
    assert.deepEqual(describeKubeconfig(admin, 'admin.conf'), {context: 'kubernetes-admin@dev', server: 'https://10.22.0.2:6443'})
  })

  it("change the server and nothing else, keeping kubeadm's layout", () => {
    const rewritten = withServer(admin, 'https://ks-dev-cp:6443', 'admin.conf')
    assert.equal(rewritten, admin.replace('server: https://10.22.0.2:6443', 'server: https://ks-dev-cp:6443'))
    assert.equal(describeKubeconfig(rewritten, 'x').server, 'https://ks-dev-cp:6443')
  })

  it('reject a file that is not YAML or names no server, in one line', () => {
    assert.throws(() => describeKubeconfig('clusters: [', '/x/admin.conf'), {
      name: 'UserError',
      message: /^\/x\/admin\.conf is not valid YAML: [^\n]*[^:]$/,
    })
    assert.throws(() => withServer('kind: Config\n', 'https://a:6443', '/x/admin.conf'), {
      name: 'UserError',
      message: '/x/admin.conf names no API server for its current context',
    })
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

  it('leaves the file alone, running no kubectl, when it already holds the same entries', async () => {
    const env = {HOME: await home()}
    const path = join(env.HOME, '.kube', 'config')
    await mkdir(dirname(path))
    await writeFile(path, USER_CONFIG, {mode: 0o600})
    const admin = adminConf('https://10.22.0.2:6443', 'one')
    await mergeKubeconfig({cluster: 'dev', adminConf: admin, kubectl: kubectl!, env})
    const merged = await readFile(path, 'utf8')
    const noKubectl = join(work, 'no-such-kubectl')
    await mergeKubeconfig({cluster: 'dev', adminConf: admin, kubectl: noKubectl, env})
    assert.equal(await readFile(path, 'utf8'), merged)
    // Anything different goes through kubectl again: another server, or the context no longer current.
    await assert.rejects(mergeKubeconfig({cluster: 'dev', adminConf: adminConf('https://10.22.0.9:6443', 'one'), kubectl: noKubectl, env}))
    execFileSync(kubectl!, ['config', `--kubeconfig=${path}`, 'use-context', 'other'])
    await assert.rejects(mergeKubeconfig({cluster: 'dev', adminConf: admin, kubectl: noKubectl, env}))
    await mergeKubeconfig({cluster: 'dev', adminConf: admin, kubectl: noKubectl, env, useContext: false})
    await mergeKubeconfig({cluster: 'dev', adminConf: admin, kubectl: kubectl!, env})
    assert.equal(view(path)['current-context'], 'kube-spawn-dev')
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

describe('kubeconfig ownership', {skip: skipUnlessRoot}, () => {
  let work: string
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-kubeconfig-owner-'))
  })
  after(async () => {
    if (work) await rm(work, {recursive: true, force: true})
  })

  const SUDO = {SUDO_USER: 'someone', SUDO_UID: '4242', SUDO_GID: '4343'}

  it('under sudo, the kubeconfig and the directory made for it belong to the sudo user, also after removal', async () => {
    const home = join(work, 'sudo-home')
    await mkdir(home)
    const path = join(home, '.kube', 'config')
    const env = {...SUDO, KUBECONFIG: path}
    await mergeKubeconfig({cluster: 'dev', adminConf: adminConf('https://10.22.0.2:6443', 'one'), kubectl: kubectl!, env})
    const owner = async (p: string) => {
      const info = await stat(p)
      return `${info.uid}:${info.gid} ${(info.mode & 0o777).toString(8)}`
    }
    assert.equal(await owner(path), '4242:4343 600')
    assert.equal(await owner(dirname(path)), '4242:4343 700')
    assert.equal((await stat(home)).uid, 0, 'a directory that existed keeps its owner')

    await mergeKubeconfig({cluster: 'dev2', adminConf: adminConf('https://10.24.0.2:6443', 'two'), kubectl: kubectl!, env})
    assert.equal(await removeKubeconfigContext('dev', kubectl, {env}), true)
    assert.equal(await owner(path), '4242:4343 600')
    assert.deepEqual(names(view(path).contexts), ['kube-spawn-dev2'])
  })

  it('without sudo, a replaced kubeconfig keeps its owner', async () => {
    const path = join(work, 'owned-config')
    await writeFile(path, USER_CONFIG, {mode: 0o600})
    await chown(path, 4242, 4343)
    await mergeKubeconfig({
      cluster: 'dev',
      adminConf: adminConf('https://10.22.0.2:6443', 'one'),
      kubectl: kubectl!,
      env: {KUBECONFIG: path},
    })
    const info = await stat(path)
    assert.deepEqual([info.uid, info.gid], [4242, 4343])
    assert.deepEqual(names(view(path).contexts), ['kube-spawn-dev', 'other'])
  })
})

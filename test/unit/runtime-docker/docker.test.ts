/** runtime-docker: its files, its dockershim/cri-dockerd split, its refusals, and cri-dockerd's verified download. */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {answerProblems, type RuntimeProvider, type RuntimeQuery} from '@kube-spawn/sdk'

import {resolveRuntime, runtimeRefusal} from '../../../dist/runtime/compat.js'
import {cachedContentPath, fetchRuntimeFiles} from '../../../dist/runtime/files.js'
import {run} from '../../../dist/util/run.js'
import {golden as goldenFile, testHost} from '../helpers/golden.ts'
import {
  CRI_DOCKERD_SHA256,
  CRI_DOCKERD_SOCKET,
  DOCKERSHIM_SOCKET,
  RUNC_WRAPPER,
  RUNC_WRAPPER_PATH,
  criDockerdService,
  daemonJson,
  docker,
} from '../../../plugins/runtime-docker/dist/index.js'

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), 'golden')
const HOST = testHost({machined: false, cgroupVersion: 1, systemdPid1: false})
const BUNDLE = '/var/cache/kube-spawn-fixtures/kubernetes-v1.20.2'

function query(version: string, config: Record<string, unknown> = {}, source = BUNDLE): RuntimeQuery {
  return {
    kubernetesVersion: version,
    kubernetesSource: source,
    image: 'debian',
    family: 'debian',
    cgroupDriver: 'systemd',
    host: HOST,
    pluginConfig: (name) => (name === 'runtime-docker' ? config : {}),
  }
}

const golden = (file: string, actual: string) => goldenFile(join(GOLDEN, file), actual)

const kubernetes = (cgroupDriver: 'systemd' | 'cgroupfs') => ({version: 'v1.24.0', sandboxImage: 'k8s.gcr.io/pause:3.7', cgroupDriver})

describe('runtime-docker files', () => {
  it('daemon.json follows the cluster’s cgroup driver and leaves bridge, iptables and masquerading to Kubernetes', async () => {
    await golden('daemon.systemd.json', daemonJson({kubernetes: kubernetes('systemd'), host: HOST}))
    await golden('daemon.cgroupfs.json', daemonJson({kubernetes: kubernetes('cgroupfs'), host: HOST}))
    const parsed = JSON.parse(daemonJson({kubernetes: kubernetes('cgroupfs'), host: HOST})) as Record<string, unknown>
    assert.deepEqual(parsed['exec-opts'], ['native.cgroupdriver=cgroupfs'])
    assert.equal(parsed.iptables, false)
    assert.equal(parsed.bridge, 'none')
  })
  it('cri-docker.service passes the CNI directories and the sandbox image', async () => {
    await golden(
      'cri-docker.service',
      criDockerdService({kubernetes: kubernetes('systemd'), cni: {confDir: '/etc/cni/net.d', binDir: '/usr/lib/cni'}}),
    )
  })
  it('daemon.json runs runc through the oom_score_adj wrapper only where nodes lack CAP_SYS_RESOURCE', () => {
    const without = JSON.parse(daemonJson({kubernetes: kubernetes('systemd'), host: {...HOST, capSysResource: false}})) as Record<
      string,
      unknown
    >
    assert.equal(without['default-runtime'], 'kube-spawn-runc')
    assert.deepEqual(without.runtimes, {'kube-spawn-runc': {path: RUNC_WRAPPER_PATH}})
    const withCap = JSON.parse(daemonJson({kubernetes: kubernetes('systemd'), host: HOST})) as Record<string, unknown>
    assert.equal(withCap['default-runtime'], undefined)
  })
  it('the runc wrapper raises an oom_score_adj below the node’s own, drops capabilities outside the node’s bounding set, and passes every argument on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ks-runc-wrapper-'))
    try {
      const fakeRunc = join(dir, 'runc')
      await writeFile(fakeRunc, '#!/bin/sh\necho "runc $*"\n', {mode: 0o755})
      const wrapper = join(dir, 'wrapper')
      await writeFile(wrapper, RUNC_WRAPPER.replace('/usr/sbin/runc /usr/bin/runc', fakeRunc), {mode: 0o755})
      const floor = Number((await readFile('/proc/self/oom_score_adj', 'utf8')).trim())
      for (const [asked, expected] of [
        [-998, floor],
        [1000, 1000],
        [floor, floor],
      ]) {
        const bundle = join(dir, `bundle${asked}`)
        await mkdir(bundle)
        await writeFile(join(bundle, 'config.json'), `{"ociVersion":"1.0.2","process":{"args":["/pause"],"oomScoreAdj":${asked}}}`)
        const out = execFileSync(wrapper, ['--root', '/run/x', 'create', '--bundle', bundle, 'id'], {encoding: 'utf8'})
        assert.equal(out, `runc --root /run/x create --bundle ${bundle} id\n`)
        const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {process: {oomScoreAdj: number}}
        assert.equal(config.process.oomScoreAdj, expected, `asked ${asked}`)
      }
      // A privileged container's capabilities are cut to this process's bounding set (on this project's CI host, without CAP_SYS_RESOURCE).
      const bounding = BigInt(`0x${/^CapBnd:\s*(\w+)$/m.exec(await readFile('/proc/self/status', 'utf8'))![1]}`)
      const all = ['CAP_CHOWN', 'CAP_SYS_ADMIN', 'CAP_SYS_RESOURCE', 'CAP_CHECKPOINT_RESTORE']
      const numbers: Record<string, bigint> = {CAP_CHOWN: 0n, CAP_SYS_ADMIN: 21n, CAP_SYS_RESOURCE: 24n, CAP_CHECKPOINT_RESTORE: 40n}
      const kept = all.filter((cap) => (bounding >> numbers[cap]) & 1n)
      const bundle = join(dir, 'privileged')
      await mkdir(bundle)
      const caps = {bounding: all, effective: all, permitted: [...all].reverse(), inheritable: ['CAP_SYS_RESOURCE']}
      await writeFile(join(bundle, 'config.json'), JSON.stringify({process: {args: ['/pause'], capabilities: caps}}))
      execFileSync(wrapper, ['create', '--bundle', bundle, 'id'])
      const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {process: {capabilities: typeof caps}}
      assert.deepEqual(config.process.capabilities, {
        bounding: kept,
        effective: kept,
        permitted: [...kept].reverse(),
        inheritable: kept.includes('CAP_SYS_RESOURCE') ? ['CAP_SYS_RESOURCE'] : [],
      })
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
  it('has the shape the host checks', () => {
    assert.deepEqual(answerProblems('kube-spawn:providers', {runtimes: [docker]}), [])
  })
})

describe('runtime-docker per Kubernetes version', () => {
  it('uses the kubelet’s dockershim up to 1.23', () => {
    for (const version of ['v1.20.2', 'v1.23.17']) {
      const runtime = resolveRuntime(docker, query(version), 'runtime-docker')
      assert.equal(runtime.kubelet, 'dockershim', version)
      assert.equal(runtime.criSocket, DOCKERSHIM_SOCKET)
      assert.deepEqual(runtime.services, ['docker.service'])
      assert.equal(runtimeRefusal(runtime, query(version)), undefined)
    }
  })
  it('uses cri-dockerd from 1.24, downloaded and verified, with its units and socket', () => {
    const runtime = resolveRuntime(docker, query('v1.24.0', {}, 'https://dl.k8s.io'), 'runtime-docker')
    assert.equal(runtime.kubelet, 'cri')
    assert.equal(runtime.criSocket, CRI_DOCKERD_SOCKET)
    assert.deepEqual(runtime.services, ['cri-docker.service', 'docker.service'])
    const binary = runtime.files!.find((f) => f.path === '/usr/local/bin/cri-dockerd')
    assert.ok(binary && 'url' in binary)
    assert.match(
      binary.url,
      /^https:\/\/github\.com\/Mirantis\/cri-dockerd\/releases\/download\/v0\.3\.16\/cri-dockerd-0\.3\.16\.amd64\.tgz$/,
    )
    assert.equal(binary.sha256, CRI_DOCKERD_SHA256)
    assert.equal(binary.extract, 'cri-dockerd/cri-dockerd')
    assert.ok(runtime.files!.some((f) => f.path === '/etc/systemd/system/cri-docker.socket'))
    assert.ok(runtime.dataDirs.includes('/var/lib/cri-dockerd'))
    assert.equal(runtimeRefusal(runtime, query('v1.24.0', {}, 'https://dl.k8s.io')), undefined)
  })
  it('refuses 1.24+ from an offline bundle unless cri-dockerd comes from a mirror, in one line', () => {
    const refusal = runtimeRefusal(resolveRuntime(docker, query('v1.24.0'), 'runtime-docker'), query('v1.24.0'))
    assert.match(refusal ?? '', /^container runtime docker on Kubernetes v1\.24\.0 needs cri-dockerd 0\.3\.16, downloaded from GitHub/)
    assert.doesNotMatch(refusal ?? '', /\n/)
    const mirror = {'cri-dockerd-url': 'http://127.0.0.1:1/cri-dockerd.tgz', 'cri-dockerd-sha256': 'a'.repeat(64)}
    assert.equal(runtimeRefusal(resolveRuntime(docker, query('v1.24.0', mirror), 'runtime-docker'), query('v1.24.0', mirror)), undefined)
  })
  it('refuses a dockershim runtime on 1.24+, and bad mirror settings, in one line', () => {
    const pinned: RuntimeProvider = {...docker, variant: undefined}
    assert.match(
      runtimeRefusal(pinned, query('v1.24.0')) ?? '',
      /dockershim, which Kubernetes 1\.24 removed: it works up to Kubernetes 1\.23/,
    )
    assert.throws(
      () => resolveRuntime(docker, query('v1.25.0', {'cri-dockerd-url': 'ftp://x'}), 'runtime-docker'),
      /cri-dockerd-url must be an http\(s\) URL/,
    )
    assert.throws(
      () => resolveRuntime(docker, query('v1.25.0', {'cri-dockerd-url': 'http://127.0.0.1/x.tgz'}), 'runtime-docker'),
      /cri-dockerd-sha256 must be the archive’s SHA-256/,
    )
  })
})

describe('cri-dockerd download, verification and cache (a stand-in release on 127.0.0.1; cri-dockerd itself is not run here)', () => {
  let work: string
  let server: Server
  let base: string
  let archive: Buffer
  const requests: string[] = []

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-cri-dockerd-'))
    await mkdir(join(work, 'src', 'cri-dockerd'), {recursive: true})
    await writeFile(join(work, 'src', 'cri-dockerd', 'cri-dockerd'), '#!/bin/sh\necho "cri-dockerd 0.3.16 (stand-in)"\n', {mode: 0o755})
    execFileSync('tar', ['-czf', join(work, 'release.tgz'), '-C', join(work, 'src'), 'cri-dockerd'])
    archive = await readFile(join(work, 'release.tgz'))
    server = createServer((req, res) => {
      requests.push(req.url ?? '')
      if (req.url === '/v0.3.16/cri-dockerd-0.3.16.amd64.tgz') res.writeHead(200, {'content-length': archive.length}).end(archive)
      else res.writeHead(404).end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as {port: number}).port}`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await rm(work, {recursive: true, force: true})
  })

  function contextFor(sha256: string, cacheDir: string) {
    const config = {'cri-dockerd-url': `${base}/v0.3.16/cri-dockerd-0.3.16.amd64.tgz`, 'cri-dockerd-sha256': sha256}
    const runtime = resolveRuntime(docker, query('v1.24.0', config), 'runtime-docker')
    const ctx = {cacheDir, runtime, run, providerPlugins: {runtime: 'runtime-docker', image: 'image-debian'}}
    const file = runtime.files!.find((f) => f.path === '/usr/local/bin/cri-dockerd')!
    return {ctx, file: file as Extract<typeof file, {url: string}>}
  }
  const fetchAll = async (ctx: unknown) => {
    await fetchRuntimeFiles.task(ctx as never, {output: undefined, title: '', skip: () => {}} as never)
  }

  it('downloads the archive once, verifies it, and unpacks the binary from it', async () => {
    const cacheDir = join(work, 'cache-good')
    const sha256 = createHash('sha256').update(archive).digest('hex')
    const {ctx, file} = contextFor(sha256, cacheDir)
    await fetchAll(ctx)
    const binary = cachedContentPath(cacheDir, file)
    assert.match(await readFile(binary, 'utf8'), /cri-dockerd 0\.3\.16 \(stand-in\)/)
    const before = requests.length
    assert.equal(await fetchRuntimeFiles.skip!(ctx as never), 'nothing to download, or all cached')
    await fetchAll(ctx)
    assert.equal(requests.length, before, 'a cached archive is not downloaded again')
  })

  it('refuses an archive whose SHA-256 does not match, and keeps nothing', async () => {
    const cacheDir = join(work, 'cache-bad')
    const {ctx, file} = contextFor('0'.repeat(64), cacheDir)
    await assert.rejects(
      fetchAll(ctx),
      /^UserError: checksum mismatch for \/usr\/local\/bin\/cri-dockerd of container runtime docker from http:\/\/127\.0\.0\.1:\d+\/v0\.3\.16\/cri-dockerd-0\.3\.16\.amd64\.tgz: expected 0{64}, got [0-9a-f]{64}$/,
    )
    assert.equal(existsSync(cachedContentPath(cacheDir, file)), false)
    assert.equal(existsSync(join(cacheDir, 'files', '0'.repeat(64))), false)
  })

  it('names the member an archive lacks', async () => {
    const cacheDir = join(work, 'cache-member')
    const sha256 = createHash('sha256').update(archive).digest('hex')
    const {ctx} = contextFor(sha256, cacheDir)
    const runtime = {
      ...ctx.runtime,
      files: ctx.runtime.files!.map((f) => (f.path === '/usr/local/bin/cri-dockerd' ? {...f, extract: 'cri-dockerd/missing'} : f)),
    }
    await assert.rejects(fetchAll({...ctx, runtime}), /has no member cri-dockerd\/missing/)
  })
})

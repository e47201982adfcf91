import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createReadStream, existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, rm, stat, symlink, utimes, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {fixtureBundle} from '../helpers/fixture-bundle.ts'
import {fetchKubernetes, formatProgress, kubernetesArch, parseSha256Sums, sha256File} from '../../../dist/kubernetes/artifacts.js'

const VERSION = 'v1.20.2'
const BINARIES = ['kubeadm', 'kubelet', 'kubectl']

const bundle = fixtureBundle()
const skip = bundle === undefined ? 'the Kubernetes fixture (shared/fixtures/kubernetes) is not available' : false

/** Serves the fixture binaries in the release layout; counts requests; can corrupt one file. */
class ReleaseServer {
  requests: string[] = []
  corrupt = new Set<string>()
  /** Files whose body stops after the first chunk, with the connection left open. */
  stall = new Set<string>()
  private server: Server | undefined
  base = ''

  private readonly binDir: string
  private readonly digests: Map<string, string>

  constructor(binDir: string, digests: Map<string, string>) {
    this.binDir = binDir
    this.digests = digests
  }

  async start(): Promise<void> {
    const arch = kubernetesArch()
    this.server = createServer((req, res) => {
      this.requests.push(req.url ?? '')
      const match = new RegExp(`^/release/${VERSION}/bin/linux/${arch}/(\\w+)(\\.sha256)?$`).exec(req.url ?? '')
      const binary = match?.[1]
      if (!binary || !this.digests.has(binary)) {
        res.writeHead(404, {'content-type': 'text/plain'}).end('not found\n')
        return
      }
      if (match[2]) {
        res.writeHead(200, {'content-type': 'text/plain'}).end(`${this.digests.get(binary)}  ${binary}\n`)
        return
      }
      const path = join(this.binDir, binary)
      void stat(path).then(({size}) => {
        res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': size})
        let first = true
        const stream = createReadStream(path)
        stream.on('data', (chunk) => {
          const buffer = chunk as Buffer
          // Same length, one byte flipped: only the checksum can tell.
          if (first && this.corrupt.has(binary)) buffer[100] ^= 0xff
          first = false
          if (this.stall.has(binary)) {
            res.write(buffer)
            stream.destroy()
            return
          }
          if (!res.write(buffer)) {
            stream.pause()
            res.once('drain', () => stream.resume())
          }
        })
        stream.on('end', () => res.end())
      })
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    const address = this.server.address() as {port: number}
    this.base = `http://127.0.0.1:${address.port}`
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise((resolve) => this.server?.close(resolve))
  }
}

describe('fetchKubernetes', {skip}, () => {
  let work: string
  let server: ReleaseServer
  const digests = new Map<string, string>()

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-artifacts-'))
    for (const binary of BINARIES) digests.set(binary, await sha256File(join(bundle!, 'bin', binary)))
    server = new ReleaseServer(join(bundle!, 'bin'), digests)
    await server.start()
  })

  after(async () => {
    await server?.stop()
    if (work) await rm(work, {recursive: true, force: true})
  })

  it('downloads, verifies and caches the release binaries', async () => {
    const cacheDir = join(work, 'cache-ok')
    const progress: Array<{binary: string; done: number; total?: number}> = []
    const result = await fetchKubernetes({source: `${server.base}/`, version: VERSION, cacheDir, onProgress: (p) => progress.push(p)})
    const binDir = join(cacheDir, 'kubernetes', VERSION, kubernetesArch())
    assert.equal(result.binDir, binDir)
    assert.equal(result.kubectl, join(binDir, 'kubectl'))
    assert.deepEqual(result.images, [])
    assert.deepEqual((await readdir(binDir)).sort(), ['kubeadm', 'kubectl', 'kubelet'])
    for (const binary of BINARIES) {
      assert.equal(await sha256File(join(binDir, binary)), digests.get(binary))
      assert.equal((await stat(join(binDir, binary))).mode & 0o777, 0o755)
    }
    assert.equal(server.requests.length, 6)
    // Every file ends with a complete progress report.
    for (const binary of BINARIES) {
      const last = progress.filter((p) => p.binary === binary).pop()
      assert.ok(last && last.total && last.done === last.total, `final progress for ${binary}`)
    }
    assert.match(execFileSync(result.kubectl, ['version', '--client', '--short'], {encoding: 'utf8'}), /v1\.20\.2/)

    const again = await fetchKubernetes({source: server.base, version: VERSION, cacheDir})
    assert.deepEqual(again, result)
    assert.equal(server.requests.length, 6, 'a cached version makes no request')
  })

  it('rejects a corrupted download and keeps nothing of it', async () => {
    const cacheDir = join(work, 'cache-corrupt')
    server.corrupt.add('kubelet')
    try {
      await assert.rejects(fetchKubernetes({source: server.base, version: VERSION, cacheDir}), (error: Error & {hint?: string}) => {
        assert.equal(error.name, 'UserError')
        assert.match(
          error.message,
          new RegExp(
            `^checksum mismatch for kubelet v1\\.20\\.2 from ${server.base}/release/v1\\.20\\.2/bin/linux/\\w+/kubelet: expected ${digests.get('kubelet')}, got [0-9a-f]{64}$`,
          ),
        )
        assert.ok(error.hint)
        return true
      })
    } finally {
      server.corrupt.clear()
    }
    const binDir = join(cacheDir, 'kubernetes', VERSION, kubernetesArch())
    // kubeadm came first and was fine; of kubelet there is neither the file nor a temporary.
    assert.deepEqual(await readdir(binDir), ['kubeadm'])
  })

  it('gives up on a download that stalls, and keeps nothing of it', async () => {
    const cacheDir = join(work, 'cache-stall')
    server.stall.add('kubeadm')
    try {
      await assert.rejects(fetchKubernetes({source: server.base, version: VERSION, cacheDir, idleTimeoutMs: 300}), {
        name: 'UserError',
        message: new RegExp(
          `^download of ${server.base}/release/v1\\.20\\.2/bin/linux/\\w+/kubeadm broke off after \\d+ bytes: no data for 0\\.3 s$`,
        ),
      })
    } finally {
      server.stall.clear()
    }
    assert.deepEqual(await readdir(join(cacheDir, 'kubernetes', VERSION, kubernetesArch())), [])
  })

  it('names the URL of a missing release', async () => {
    const cacheDir = join(work, 'cache-404')
    await assert.rejects(fetchKubernetes({source: server.base, version: 'v1.20.3', cacheDir}), {
      name: 'UserError',
      message: new RegExp(`^cannot download ${server.base}/release/v1\\.20\\.3/bin/linux/\\w+/kubeadm\\.sha256: HTTP 404 Not Found$`),
    })
    assert.deepEqual(await readdir(join(cacheDir, 'kubernetes', 'v1.20.3', kubernetesArch())), [])
  })

  it('names the URL when the server cannot be reached', async () => {
    const closed = new ReleaseServer(work, new Map())
    await closed.start()
    const base = closed.base
    await closed.stop()
    await assert.rejects(fetchKubernetes({source: base, version: VERSION, cacheDir: join(work, 'cache-down')}), {
      name: 'UserError',
      message: new RegExp(`^cannot download ${base}/release/v1\\.20\\.2/bin/linux/\\w+/kubeadm\\.sha256: .*ECONNREFUSED`),
    })
  })

  it('installs from an offline bundle and lists its images', async () => {
    const cacheDir = join(work, 'cache-bundle')
    const result = await fetchKubernetes({source: bundle!, version: VERSION, cacheDir})
    assert.equal(result.images.length, 7)
    for (const image of result.images) assert.ok(image.startsWith(join(bundle!, 'images/')) && image.endsWith('.tar'), image)
    for (const binary of BINARIES) {
      assert.equal(await sha256File(join(result.binDir, binary)), digests.get(binary))
      assert.equal((await stat(join(result.binDir, binary))).mode & 0o777, 0o755)
    }
    // Temporaries of a killed run go once they are an hour old; a fresh one may be another run's.
    const stale = join(result.binDir, '.kubelet.0123456789ab.tmp')
    const fresh = join(result.binDir, '.kubectl.ba9876543210.tmp')
    await writeFile(stale, 'partial')
    await writeFile(fresh, 'partial')
    const hourAgo = new Date(Date.now() - 3_700_000)
    await utimes(stale, hourAgo, hourAgo)
    assert.deepEqual(await fetchKubernetes({source: bundle!, version: VERSION, cacheDir}), result)
    assert.ok(!existsSync(stale))
    assert.ok(existsSync(fresh))
  })

  it('rejects a bundle of another version', async () => {
    await assert.rejects(fetchKubernetes({source: bundle!, version: 'v1.25.0', cacheDir: join(work, 'cache-other')}), {
      name: 'UserError',
      message: /holds Kubernetes v1\.20\.2, but the cluster wants v1\.25\.0/,
    })
  })

  /** A bundle of symlinks to the fixture's files. */
  async function fakeBundle(name: string, {imagesTxt = true, sums}: {imagesTxt?: boolean; sums?: string} = {}): Promise<string> {
    const dir = join(work, name)
    await mkdir(join(dir, 'bin'), {recursive: true})
    await mkdir(join(dir, 'images'))
    for (const binary of BINARIES) await symlink(join(bundle!, 'bin', binary), join(dir, 'bin', binary))
    await symlink(join(bundle!, 'images', 'pause.tar'), join(dir, 'images', 'pause.tar'))
    if (imagesTxt) await writeFile(join(dir, 'images.txt'), 'k8s.gcr.io/pause:3.2\n')
    if (sums !== undefined) await writeFile(join(dir, 'bin', 'SHA256SUMS'), sums)
    return dir
  }

  it('rejects a bundle without images.txt, naming what is missing', async () => {
    const dir = await fakeBundle('no-images-txt', {imagesTxt: false})
    await assert.rejects(fetchKubernetes({source: dir, version: VERSION, cacheDir: join(work, 'cache-incomplete')}), {
      name: 'UserError',
      message: `offline bundle ${dir} is incomplete: missing images.txt`,
    })
    await rm(join(dir, 'bin', 'kubelet'))
    await assert.rejects(fetchKubernetes({source: dir, version: VERSION, cacheDir: join(work, 'cache-incomplete')}), {
      message: `offline bundle ${dir} is incomplete: missing bin/kubelet, images.txt`,
    })
  })

  it('verifies a bundle against its bin/SHA256SUMS', async () => {
    const good = [...digests].map(([binary, digest]) => `${digest}  ${binary}`).join('\n')
    const okDir = await fakeBundle('sums-ok', {sums: `${good}\n`})
    const ok = await fetchKubernetes({source: okDir, version: VERSION, cacheDir: join(work, 'cache-sums-ok')})
    assert.deepEqual(ok.images, [join(okDir, 'images', 'pause.tar')])

    const bad = good.replace(digests.get('kubectl')!, '0'.repeat(64))
    const badDir = await fakeBundle('sums-bad', {sums: bad})
    const cacheDir = join(work, 'cache-sums-bad')
    await assert.rejects(fetchKubernetes({source: badDir, version: VERSION, cacheDir}), {
      name: 'UserError',
      message: new RegExp(
        `^checksum mismatch for kubectl v1\\.20\\.2 in ${badDir}: expected 0{64} \\(bin/SHA256SUMS\\), got ${digests.get('kubectl')}$`,
      ),
    })
    assert.deepEqual((await readdir(join(cacheDir, 'kubernetes', VERSION, kubernetesArch()))).sort(), ['kubeadm', 'kubelet'])
  })
})

describe('artifact helpers', () => {
  it('formats a progress line', () => {
    assert.equal(formatProgress({binary: 'kubelet', done: 60_100_000, total: 115_000_000}), 'kubelet [#####-----] 52% 60.1/115.0 MB')
    assert.equal(formatProgress({binary: 'kubectl', done: 0, total: 10}), 'kubectl [----------] 0% 0.0/0.0 MB')
    assert.equal(formatProgress({binary: 'kubeadm', done: 2_500_000}), 'kubeadm 2.5 MB')
  })

  it('maps Node architectures to Kubernetes ones', () => {
    assert.equal(kubernetesArch('x64'), 'amd64')
    assert.equal(kubernetesArch('arm64'), 'arm64')
    assert.throws(() => kubernetesArch('ia32'), {name: 'UserError'})
  })

  it('parses sha256sum output', () => {
    const a = 'a'.repeat(64)
    const b = 'B'.repeat(64)
    assert.deepEqual(
      [...parseSha256Sums(`${a}  kubeadm\n${b} *./kubelet\nnonsense\n`)],
      [
        ['kubeadm', a],
        ['kubelet', 'b'.repeat(64)],
      ],
    )
  })
})

/**
 * image-flatcar's build against a stand-in release served on 127.0.0.1: the DIGESTS' signature, the
 * SHA-512, the unpacked root and the download cache. Boots no nodes.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {chmod, link, lchown, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile, chown} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {HostInfo, ImageBuildContext} from '@kube-spawn/sdk'
import {IMAGE_FILE, MASKED_UNITS, flatcar} from '../../plugins/image-flatcar/dist/index.js'
import {downloadVerified} from '../../dist/util/download.js'
import {run} from '../../dist/util/run.js'
import {
  type FileServer,
  type Standin,
  type TestKey,
  buildFlatcarStandin,
  clearsign,
  flatcarDigests,
  makeTestKey,
  serveDirectory,
} from '../helpers/flatcar-standin.ts'

const VERSION = '3033.2.4'
const tools = ['bzip2', 'debugfs', 'gpg', 'gpgv', 'mke2fs', 'sfdisk']
const missing = tools.filter((tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], {stdio: 'ignore'})
    return false
  } catch {
    return true
  }
})
const skip =
  process.getuid?.() !== 0 ? 'needs root (the root keeps its owners)' : missing.length > 0 ? `needs ${missing.join(', ')}` : false

describe('image-flatcar builds from a signed release', {skip}, () => {
  let tmp: string
  let served: string
  let cacheDir: string
  let server: FileServer
  let good: TestKey
  let other: TestKey
  let expired: TestKey
  let standin: Standin
  let builds = 0

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'kube-spawn-flatcar-'))
    served = join(tmp, 'served')
    cacheDir = join(tmp, 'cache')
    const root = join(tmp, 'source')
    // A few files of each kind the unpacking must keep.
    await mkdir(join(root, 'etc/systemd/system'), {recursive: true})
    await mkdir(join(root, 'usr/bin'), {recursive: true})
    await mkdir(join(root, 'usr/lib'), {recursive: true})
    await mkdir(join(root, 'home/core'), {recursive: true})
    await writeFile(join(root, 'usr/lib/os-release'), 'ID=debian\n')
    await symlink('../usr/lib/os-release', join(root, 'etc/os-release'))
    await symlink('../run/systemd/resolve/resolv.conf', join(root, 'etc/resolv.conf'))
    await writeFile(join(root, 'usr/bin/tool'), '#!/bin/sh\necho tool\n', {mode: 0o755})
    await writeFile(join(root, 'usr/bin/su'), '#!/bin/sh\n', {mode: 0o755})
    await chmod(join(root, 'usr/bin/su'), 0o4755)
    await link(join(root, 'usr/bin/tool'), join(root, 'usr/bin/tool-again'))
    await symlink('tool', join(root, 'usr/bin/link'))
    await writeFile(join(root, 'home/core/secret'), 'mine\n', {mode: 0o600})
    await chmod(join(root, 'home/core'), 0o2750)
    await symlink('secret', join(root, 'home/core/link'))
    for (const path of ['home/core', 'home/core/secret']) await chown(join(root, path), 1000, 1001)
    await lchown(join(root, 'home/core/link'), 1000, 1001)
    execFileSync('mkfifo', [join(root, 'etc/fifo')])
    ;[good, other, expired] = await Promise.all([
      makeTestKey('Flatcar Test'),
      makeTestKey('Someone Else'),
      makeTestKey('Flatcar Old', {expiredSubkey: true}),
    ])
    standin = await buildFlatcarStandin({root, dir: served, version: VERSION, key: good, size: '16M'})
    server = await serveDirectory(served)
  })

  after(async () => {
    await server?.close()
    await Promise.all([good, other, expired].map((key) => key?.dispose()))
    if (tmp) await rm(tmp, {recursive: true, force: true})
  })

  /** A release of `version` holding the stand-in's image, with these DIGESTS signed by `key`. */
  async function release(version: string, key: TestKey, digests?: (text: string) => string): Promise<string> {
    const dir = join(served, version)
    await mkdir(dir, {recursive: true})
    const image = join(dir, IMAGE_FILE)
    if (!existsSync(image)) await link(standin.image, image)
    const text = await flatcarDigests(image, IMAGE_FILE)
    await writeFile(`${image}.DIGESTS`, digests ? digests(text) : text)
    await clearsign(key, `${image}.DIGESTS`, `${image}.DIGESTS.asc`)
    return `${image}.DIGESTS.asc`
  }

  /** A build context as the host makes it: a fresh root beside nothing else, the host's runner and verified download. */
  async function build(table: Record<string, unknown>): Promise<{rootfs: string; result: Promise<void>}> {
    const rootfs = join(tmp, `build-${++builds}`, 'rootfs')
    await mkdir(rootfs, {recursive: true})
    const settings = {version: VERSION, 'base-url': server.base, 'signing-key': good.publicKey, 'allow-cgroup-v1': true, ...table}
    const ctx: ImageBuildContext = {
      rootfs,
      packages: {names: []},
      host: {cgroupVersion: 1} as HostInfo,
      pluginConfig: (name) => (name === 'image-flatcar' ? settings : {}),
      run: (argv, options) => run(argv, options),
      output: () => {},
      cacheDir,
      download: async ({url, digest, what}) => {
        assert.ok('sha512' in digest, 'Flatcar publishes SHA-512 digests')
        const dest = join(cacheDir, 'files', digest.sha512)
        if (existsSync(dest)) return dest
        await mkdir(dirname(dest), {recursive: true})
        await downloadVerified({url, dest, sha256: digest.sha512, algorithm: 'sha512', what: what ?? url, hint: 'test'})
        return dest
      },
    }
    return {rootfs, result: flatcar.build!(ctx)}
  }

  const imageRequests = () => server.requests.filter((path) => path.endsWith(IMAGE_FILE)).length
  /** Nothing unpacked, and no work files left beside the root. */
  async function assertNothingLeft(rootfs: string): Promise<void> {
    assert.deepEqual(await readdir(rootfs), [])
    assert.deepEqual(await readdir(dirname(rootfs)), ['rootfs'])
  }

  it('unpacks the ROOT partition with owners, modes, symlinks and hardlinks, fit for nodes', async () => {
    const {rootfs, result} = await build({})
    await result
    assert.equal(imageRequests(), 1)
    assert.match(await readFile(join(rootfs, 'etc/os-release'), 'utf8'), /^ID=flatcar$/m)
    assert.match(await readFile(join(rootfs, 'usr/share/flatcar/release'), 'utf8'), new RegExp(`FLATCAR_RELEASE_VERSION=${VERSION}`))
    const mode = async (path: string) => (await lstat(join(rootfs, path))).mode & 0o7777
    const owner = async (path: string) => {
      const stat = await lstat(join(rootfs, path))
      return [stat.uid, stat.gid]
    }
    assert.equal(await mode('usr/bin/tool'), 0o755)
    assert.equal(await mode('usr/bin/su'), 0o4755)
    assert.equal(await mode('home/core'), 0o2750)
    assert.equal(await mode('home/core/secret'), 0o600)
    assert.deepEqual(await owner('home/core'), [1000, 1001])
    assert.deepEqual(await owner('home/core/secret'), [1000, 1001])
    assert.deepEqual(await owner('home/core/link'), [1000, 1001])
    assert.deepEqual(await owner('usr/bin/tool'), [0, 0])
    assert.equal(await readlink(join(rootfs, 'usr/bin/link')), 'tool')
    assert.equal((await lstat(join(rootfs, 'usr/bin/tool-again'))).ino, (await lstat(join(rootfs, 'usr/bin/tool'))).ino)
    // rdump skips FIFOs and device nodes.
    assert.equal(existsSync(join(rootfs, 'etc/fifo')), false)
    for (const unit of MASKED_UNITS) assert.equal(await readlink(join(rootfs, 'etc/systemd/system', unit)), '/dev/null')
    // The host writes resolv.conf into nodes: a plain file, not a link into systemd-resolved.
    assert.ok((await lstat(join(rootfs, 'etc/resolv.conf'))).isFile())
    assert.deepEqual(await readdir(dirname(rootfs)), ['rootfs'])
  })

  it('takes the image from the cache the second time', async () => {
    const before = imageRequests()
    const {rootfs, result} = await build({})
    await result
    assert.equal(imageRequests(), before)
    assert.match(await readFile(join(rootfs, 'etc/os-release'), 'utf8'), /^ID=flatcar$/m)
  })

  it('refuses an image whose SHA-512 is not the signed one', async () => {
    await release('3033.2.5', good, (text) =>
      text.replace(/(# SHA512 HASH\n)(\w)/, (_, head: string, c: string) => head + (c === '0' ? '1' : '0')),
    )
    const {rootfs, result} = await build({version: '3033.2.5'})
    await assert.rejects(result, /checksum mismatch for the Flatcar 3033\.2\.5 developer container/)
    await assertNothingLeft(rootfs)
  })

  it('refuses DIGESTS whose signed text was changed', async () => {
    const asc = await release('3033.2.6', good)
    const text = await readFile(asc, 'utf8')
    await writeFile(
      asc,
      text.replace(/^([0-9a-f])/m, (c) => (c === '0' ? '1' : '0')),
    )
    const requests = imageRequests()
    const {rootfs, result} = await build({version: '3033.2.6'})
    await assert.rejects(result, (error: Error) => {
      assert.match(
        error.message,
        /3033\.2\.6\/flatcar_developer_container\.bin\.bz2\.DIGESTS\.asc is not signed by the key .* \(gpgv: BADSIG\)$/,
      )
      assert.doesNotMatch(error.message, /\n/)
      return true
    })
    assert.equal(imageRequests(), requests)
    await assertNothingLeft(rootfs)
  })

  it('refuses DIGESTS signed by a key other than the configured one', async () => {
    await release('3033.2.7', other)
    const {rootfs, result} = await build({version: '3033.2.7'})
    await assert.rejects(
      result,
      new RegExp(`is not signed by the key ${good.fingerprint} of .*public\\.asc \\(gpgv: (ERRSIG|NO_PUBKEY)\\)`),
    )
    await assertNothingLeft(rootfs)
  })

  it("refuses a test signature with the shipped key: it accepts only Flatcar's", async () => {
    const {rootfs, result} = await build({'signing-key': undefined})
    await assert.rejects(result, /DIGESTS\.asc is not signed by Flatcar's image signing key F88CFEDEFF29A5B4D9523864E25D9AED0593B34A/)
    await assertNothingLeft(rootfs)
  })

  it('accepts a release signed by a subkey that has expired since', async () => {
    await release('3033.2.8', expired)
    const {rootfs, result} = await build({version: '3033.2.8', 'signing-key': expired.publicKey})
    await result
    assert.match(await readFile(join(rootfs, 'etc/os-release'), 'utf8'), /^ID=flatcar$/m)
  })

  it('names the URL when the release is not there', async () => {
    const {rootfs, result} = await build({version: '1.2.3'})
    await assert.rejects(
      result,
      /cannot download http:\/\/127\.0\.0\.1:\d+\/1\.2\.3\/flatcar_developer_container\.bin\.bz2\.DIGESTS\.asc: HTTP 404/,
    )
    await assertNothingLeft(rootfs)
  })
})

/** image-flatcar's pure pieces: the GPT reader, DIGESTS, gpgv's verdict, settings, cache key and refusals. */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {type HostInfo, type ImageContext, type RuntimeProvider, isUserError} from '@kube-spawn/sdk'
import {
  FLATCAR_KEY_FINGERPRINT,
  IMAGE_FILE,
  SHIPPED_KEY,
  flatcar,
  flatcarOptions,
  hasExt4Magic,
  imageKey,
  parseDigests,
  parseGpt,
  providers,
  readGpt,
  signedBy,
} from '../../../plugins/image-flatcar/dist/index.js'

const LINUX_DATA = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
const EFI = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'
const has = (command: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
}
const skipDisk = ['sfdisk', 'mke2fs', 'truncate', 'dd'].every(has) ? false : 'needs sfdisk, mke2fs, truncate and dd'

let tmp: string
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kube-spawn-flatcar-unit-'))
})
after(async () => {
  await rm(tmp, {recursive: true, force: true})
})

const config = (table: Record<string, unknown>) => ({pluginConfig: (name: string) => (name === 'image-flatcar' ? table : {})})
const thrown = (work: () => unknown): Error => {
  try {
    work()
  } catch (error) {
    return error as Error
  }
  assert.fail('expected an error')
}

describe('parseGpt', {skip: skipDisk}, () => {
  it('finds partition 9 named ROOT in a disk made by sfdisk, where sfdisk says it is', async () => {
    const disk = join(tmp, 'disk.img')
    execFileSync('truncate', ['-s', '24M', disk])
    const layout = [
      'label: gpt',
      `d1 : start=2048, size=4096, type=${EFI}, name="EFI-SYSTEM"`,
      `d9 : start=8192, size=32768, type=${LINUX_DATA}, name="ROOT"`,
    ]
    execFileSync('sfdisk', ['-q', disk], {input: `${layout.join('\n')}\n`})
    const partitions = await readGpt(disk)
    assert.deepEqual(
      partitions.map(({number, type, name, firstLba, lastLba}) => ({number, type, name, firstLba, lastLba})),
      [
        {number: 1, type: EFI, name: 'EFI-SYSTEM', firstLba: 2048, lastLba: 6143},
        {number: 9, type: LINUX_DATA, name: 'ROOT', firstLba: 8192, lastLba: 40959},
      ],
    )
    const root = partitions[1]
    assert.equal(root.offset, 8192 * 512)
    assert.equal(root.size, 32768 * 512)
    // And as sfdisk itself reads the table back.
    const dump = JSON.parse(execFileSync('sfdisk', ['--json', disk], {encoding: 'utf8'})) as {
      partitiontable: {partitions: {node: string; start: number; size: number; name: string}[]}
    }
    const nine = dump.partitiontable.partitions.find((p) => p.node.endsWith('9'))!
    assert.deepEqual([nine.start, nine.size, nine.name], [root.firstLba, root.lastLba - root.firstLba + 1, 'ROOT'])

    // The ext4 magic is where the filesystem starts, not elsewhere.
    assert.equal(await hasExt4Magic(disk, root.offset), false)
    const fs = join(tmp, 'fs.img')
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', fs, '16M'])
    execFileSync('dd', [`if=${fs}`, `of=${disk}`, 'bs=512', `seek=${root.firstLba}`, 'conv=notrunc,sparse', 'status=none'])
    assert.equal(await hasExt4Magic(disk, root.offset), true)
    assert.equal(await hasExt4Magic(disk, partitions[0].offset), false)
  })

  it('refuses what is not a GPT or is cut short', async () => {
    assert.match(thrown(() => parseGpt(Buffer.alloc(4096))).message, /no GPT/)
    const disk = await readFile(join(tmp, 'disk.img'))
    assert.match(thrown(() => parseGpt(disk.subarray(0, 1024))).message, /beyond the bytes read/)
    assert.equal(parseGpt(disk.subarray(0, 34 * 512)).length, 2)
    const notGpt = join(tmp, 'zeros.img')
    await writeFile(notGpt, Buffer.alloc(8192))
    await assert.rejects(readGpt(notGpt), /no GPT/)
  })
})

describe('parseDigests', () => {
  const sha512 = 'ab'.repeat(64)
  const digests = [
    '# MD5 HASH',
    `${'1'.repeat(32)}  ${IMAGE_FILE}`,
    '# SHA1 HASH',
    `${'2'.repeat(40)}  ${IMAGE_FILE}`,
    '# SHA512 HASH',
    `${'cd'.repeat(64)}  flatcar_production_image.bin.bz2`,
    `${sha512.toUpperCase()}  ${IMAGE_FILE}`,
    '',
  ].join('\n')

  it("takes the SHA512 of the file from Flatcar's sections", () => {
    assert.equal(parseDigests(digests, IMAGE_FILE), sha512)
    assert.equal(parseDigests(digests.replaceAll('\n', '\r\n'), IMAGE_FILE), sha512)
  })

  it('refuses DIGESTS without it, with a malformed one, or with two', () => {
    assert.match(thrown(() => parseDigests(digests, 'other.bin.bz2')).message, /no SHA512 of other\.bin\.bz2/)
    // The MD5 line is in another section.
    assert.match(thrown(() => parseDigests(digests.replace('# SHA512 HASH', '# SHA256 HASH'), IMAGE_FILE)).message, /no SHA512/)
    assert.match(thrown(() => parseDigests(`# SHA512 HASH\nabc  ${IMAGE_FILE}\n`, IMAGE_FILE)).message, /malformed/)
    assert.match(thrown(() => parseDigests(`${digests}${'ef'.repeat(64)}  ${IMAGE_FILE}\n`, IMAGE_FILE)).message, /twice/)
  })
})

describe('signedBy (gpgv status lines)', () => {
  const primary = FLATCAR_KEY_FINGERPRINT
  const subkey = '52F145DFD00BBDCD928CBB5A32DA80F91EF52974'
  const validsig = (fpr: string) => `[GNUPG:] VALIDSIG ${subkey} 2025-06-01 1748736000 0 4 0 1 10 01 ${fpr}`
  const status = (...lines: string[]) => ['[GNUPG:] NEWSIG', ...lines].join('\n')

  it('accepts a good signature, and an expired subkey, of the primary key', () => {
    assert.equal(signedBy(status('[GNUPG:] GOODSIG 32DA80F91EF52974 Flatcar', validsig(primary)), [primary]), true)
    assert.equal(signedBy(status('[GNUPG:] EXPKEYSIG 32DA80F91EF52974 Flatcar', validsig(primary.toLowerCase())), [primary]), true)
  })

  it('refuses bad, unknown, revoked and foreign signatures', () => {
    assert.equal(signedBy(status('[GNUPG:] GOODSIG 1 x', validsig('A'.repeat(40))), [primary]), false)
    assert.equal(signedBy(status('[GNUPG:] BADSIG 32DA80F91EF52974 Flatcar'), [primary]), false)
    assert.equal(signedBy(status('[GNUPG:] ERRSIG 1 22 10 01 1 9', '[GNUPG:] NO_PUBKEY 1'), [primary]), false)
    assert.equal(signedBy(status('[GNUPG:] REVKEYSIG 1 x', validsig(primary)), [primary]), false)
    assert.equal(signedBy(status('[GNUPG:] GOODSIG 1 x'), [primary]), false)
    assert.equal(signedBy('', [primary]), false)
  })
})

describe('settings and cache key', () => {
  it('defaults to the stable channel on the release server', () => {
    assert.deepEqual(flatcarOptions(config({version: '4152.2.0'})), {
      channel: 'stable',
      version: '4152.2.0',
      baseUrl: 'https://stable.release.flatcar-linux.net/amd64-usr',
      signingKey: undefined,
      allowCgroupV1: false,
    })
    const beta = flatcarOptions(config({version: '4230.1.0', channel: 'beta', 'base-url': 'http://127.0.0.1:1/x/'}))
    assert.equal(beta.channel, 'beta')
    assert.equal(beta.baseUrl, 'http://127.0.0.1:1/x')
    assert.equal(flatcarOptions(config({version: '4081.3.0', channel: 'lts'})).baseUrl, 'https://lts.release.flatcar-linux.net/amd64-usr')
  })

  it('needs an explicit version, and says in one line what to write', () => {
    for (const table of [{}, {version: 'current'}, {version: '4152.2'}, {version: 4152}]) {
      const error = thrown(() => flatcarOptions(config(table)))
      assert.ok(isUserError(error), error.message)
      assert.match(error.message, /^\[plugin-config\.image-flatcar\] version .*write version = "4152\.2\.0"/)
      assert.doesNotMatch(error.message, /\n/)
    }
    assert.match(
      thrown(() => flatcarOptions(config({version: '1.2.3', channel: 'edge'}))).message,
      /channel must be one of alpha, beta, stable, lts/,
    )
    assert.match(
      thrown(() => flatcarOptions(config({version: '1.2.3', 'allow-cgroup-v1': 'yes'}))).message,
      /allow-cgroup-v1 must be true or false/,
    )
  })

  it('keys the root by channel, version and signing key, not by the server', async () => {
    const key = (table: Record<string, unknown>) => imageKey(flatcarOptions(config(table)))
    const base = key({version: '4152.2.0'})
    assert.match(base, /^flatcar-stable-4152\.2\.0-[0-9a-f]{12}$/)
    assert.equal(key({version: '4152.2.0', 'base-url': 'http://127.0.0.1:1'}), base)
    assert.notEqual(key({version: '4152.2.1'}), base)
    assert.match(key({version: '4152.2.0', channel: 'beta'}), /^flatcar-beta-4152\.2\.0-/)
    const own = join(tmp, 'own.asc')
    await writeFile(own, 'one key')
    const withOwn = key({version: '4152.2.0', 'signing-key': own})
    assert.notEqual(withOwn, base)
    await writeFile(own, 'another key')
    assert.notEqual(key({version: '4152.2.0', 'signing-key': own}), withOwn)
    const missing = thrown(() => key({version: '4152.2.0', 'signing-key': join(tmp, 'nope.asc')}))
    assert.ok(isUserError(missing))
    assert.match(missing.message, /signing-key .*nope\.asc cannot be read/)
  })
})

describe('refusals', () => {
  const runtime = (name: string, flatcarNames?: string[]) =>
    ({name, packages: {debian: {names: ['x']}, ...(flatcarNames ? {flatcar: {names: flatcarNames}} : {})}}) as unknown as RuntimeProvider
  const context = (rt: RuntimeProvider, cgroupVersion: 1 | 2, table: Record<string, unknown> = {}): ImageContext =>
    ({cluster: {}, runtime: rt, host: {cgroupVersion} as HostInfo, ...config({version: '4152.2.0', ...table})}) as unknown as ImageContext

  it('refuses runtimes that need packages, naming containerd', () => {
    const refusal = flatcar.refuse!(context(runtime('docker', ['docker.io']), 2))
    assert.match(refusal!, /runtime docker needs packages \(docker\.io\).*no package manager.*\(containerd\)/)
    assert.doesNotMatch(refusal!, /\n/)
    assert.equal(flatcar.refuse!(context(runtime('containerd', []), 2)), undefined)
  })

  it('refuses a cgroup v1 host unless allow-cgroup-v1 is set', () => {
    const refusal = flatcar.refuse!(context(runtime('containerd', []), 1))
    assert.match(refusal!, /systemd 256 or later.*cgroup v1.*systemd\.unified_cgroup_hierarchy=1.*allow-cgroup-v1 = true/)
    assert.doesNotMatch(refusal!, /\n/)
    assert.equal(flatcar.refuse!(context(runtime('containerd', []), 1, {'allow-cgroup-v1': true})), undefined)
  })

  it('declares the image and what it needs on the host', async () => {
    assert.deepEqual((await providers({})).images, [flatcar])
    assert.equal(flatcar.family, 'flatcar')
    assert.deepEqual(flatcar.hostCommands, ['bzip2', 'debugfs', 'gpgv', 'gpg'])
    assert.equal(typeof flatcar.build, 'function')
  })
})

describe('the shipped signing key', {skip: has('gpg') ? false : 'needs gpg'}, () => {
  it("is Flatcar's image signing key", async () => {
    const home = await mkdtemp(join(tmp, 'gpg-'))
    const listing = execFileSync('gpg', ['--homedir', home, '--batch', '--with-colons', '--show-keys', SHIPPED_KEY], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    const lines = listing.split('\n')
    const primary = lines[lines.findIndex((line) => line.startsWith('pub:')) + 1]
    assert.equal(primary.split(':')[9], FLATCAR_KEY_FINGERPRINT)
    assert.match(listing, /Flatcar Buildbot \(Official Builds\) <buildbot@flatcar-linux\.org>/)
  })
})

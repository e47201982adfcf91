/**
 * Flatcar Container Linux nodes, from the developer container of one release: its DIGESTS are checked
 * against Flatcar's image signing key, the image against the SHA-512 in them, and the ROOT partition
 * is unpacked without loop devices (docs/plugins.md#images).
 */
import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {
  type ImageBuildContext,
  type ImageContext,
  type ImageProvider,
  type KubeSpawnHook,
  readPluginConfig,
  userError,
} from '@kube-spawn/sdk'

import {hasExt4Magic, readGpt, unpackExt4} from './disk.js'

export {parseGpt, readGpt, hasExt4Magic, listExt4, type GptPartition} from './disk.js'

/** Bump when the build steps below change, so that old cache entries are not reused. */
export const BUILD_VERSION = '1'
export const CHANNELS = ['alpha', 'beta', 'stable', 'lts'] as const
export type Channel = (typeof CHANNELS)[number]
export const IMAGE_FILE = 'flatcar_developer_container.bin.bz2'
/** The primary key of "Flatcar Buildbot (Official Builds)"; its signing subkeys rotate yearly. */
export const FLATCAR_KEY_FINGERPRINT = 'F88CFEDEFF29A5B4D9523864E25D9AED0593B34A'
export const SHIPPED_KEY = fileURLToPath(new URL('../keys/flatcar-image-signing-key.asc', import.meta.url))
export const FIRST_SYSTEMD_WITHOUT_CGROUP_V1 = 256

/**
 * Units that cannot work in a node, masked: updates and reboots are the cluster's business; sysext and
 * confext images need loop devices and dm-verity; the rest resize, remount or mount partitions of a
 * disk that nodes do not have. Masking a unit the image lacks does no harm.
 */
export const MASKED_UNITS = [
  'update-engine.service',
  'update-engine-stub.service',
  'update-engine-stub.timer',
  'locksmithd.service',
  'systemd-sysext.service',
  'systemd-confext.service',
  'ensure-sysext.service',
  'extend-filesystems.service',
  'remount-root.service',
  'boot.mount',
  'oem.mount',
  'usr-share-oem.mount',
]

export interface FlatcarOptions {
  channel: Channel
  version: string
  baseUrl: string
  /** An OpenPGP key file that replaces the shipped key; undefined for the shipped key. */
  signingKey?: string
  allowCgroupV1: boolean
}

const TABLE = '[plugin-config.image-flatcar]'
const hint = 'fix the cluster definition (docs/configuration.md)'

/** [plugin-config.image-flatcar]: channel, version, base-url, signing-key, allow-cgroup-v1. */
export function flatcarOptions(ctx: Pick<ImageContext, 'pluginConfig'>): FlatcarOptions {
  const config = readPluginConfig(ctx, 'image-flatcar')
  const channel = config.string('channel', 'stable')
  if (!(CHANNELS as readonly string[]).includes(channel))
    throw userError(`${TABLE} channel must be one of ${CHANNELS.join(', ')}, not ${JSON.stringify(channel)}`, {hint})
  // An explicit version: the cache key must not depend on the network, and "current" moves.
  // Read raw, so that a number (version = 4152) gets the same advice as a malformed string.
  const version: unknown = ctx.pluginConfig('image-flatcar').version
  if (typeof version !== 'string' || !/^\d+\.\d+\.\d+$/.test(version))
    throw userError(
      `${TABLE} version ${version === undefined ? 'is missing' : `${JSON.stringify(version)} is not a Flatcar release`}: write version = "4152.2.0" or another release of the ${channel} channel (https://www.flatcar.org/releases)`,
      {hint},
    )
  const baseUrl = config.string('base-url', `https://${channel}.release.flatcar-linux.net/amd64-usr`).replace(/\/+$/, '')
  return {
    channel: channel as Channel,
    version,
    baseUrl,
    signingKey: config.string('signing-key'),
    allowCgroupV1: config.boolean('allow-cgroup-v1', false),
  }
}

/** What identifies the signing key in the cache key: the shipped key's fingerprint, or an override's bytes. */
function keyIdentity(options: FlatcarOptions): string {
  if (options.signingKey === undefined) return FLATCAR_KEY_FINGERPRINT
  try {
    return createHash('sha256').update(readFileSync(options.signingKey)).digest('hex')
  } catch (error) {
    throw userError(`${TABLE} signing-key ${options.signingKey} cannot be read: ${(error as Error).message}`, {hint})
  }
}

/** The cache key: channel, version, signing key and build version. The base URL does not change what is built. */
export function imageKey(options: FlatcarOptions): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([BUILD_VERSION, keyIdentity(options)]))
    .digest('hex')
  return `flatcar-${options.channel}-${options.version}-${digest.slice(0, 12)}`
}

/** Why this image cannot serve the cluster on this host, or undefined. */
export function flatcarRefusal(ctx: ImageContext): string | undefined {
  const options = flatcarOptions(ctx)
  const names = ctx.runtime.packages.flatcar?.names ?? []
  if (names.length > 0)
    return `runtime ${ctx.runtime.name} needs packages (${names.join(', ')}), but Flatcar has no package manager: on image flatcar only runtimes that use the image's own binaries (containerd) work`
  if (ctx.host.cgroupVersion === 1 && !options.allowCgroupV1)
    return `Flatcar ${options.version} runs systemd ${FIRST_SYSTEMD_WITHOUT_CGROUP_V1} or later, which does not boot on this cgroup v1 host: boot the host with systemd.unified_cgroup_hierarchy=1, or set ${TABLE} allow-cgroup-v1 = true for an image whose systemd is older`
  return undefined
}

/**
 * The DIGESTS' SHA-512 of `file`: Flatcar's DIGESTS hold "# MD5 HASH", "# SHA1 HASH" and "# SHA512 HASH"
 * sections, each followed by "<hex>  <file>" lines.
 */
export function parseDigests(text: string, file: string): string {
  let section = ''
  const found = new Set<string>()
  for (const line of text.split(/\r?\n/)) {
    const header = /^#\s*(\S+)\s+HASH\s*$/i.exec(line)
    if (header) section = header[1].toUpperCase()
    const entry = /^([0-9a-fA-F]+)\s+\*?(.+?)\s*$/.exec(line)
    if (section === 'SHA512' && entry && entry[2] === file) found.add(entry[1].toLowerCase())
  }
  const [digest] = found
  if (found.size !== 1 || !/^[0-9a-f]{128}$/.test(digest))
    throw new Error(found.size === 0 ? `they list no SHA512 of ${file}` : `their SHA512 of ${file} is malformed or listed twice`)
  return digest
}

/** Whether gpgv's status lines say the data is signed by one of `primaries` (and by nothing else). */
export function signedBy(status: string, primaries: string[]): boolean {
  const lines = status
    .split('\n')
    .filter((line) => line.startsWith('[GNUPG:] '))
    .map((line) => line.slice(9).trim().split(/\s+/))
  const has = (...keywords: string[]) => lines.some(([keyword]) => keywords.includes(keyword))
  const valid = lines.filter(([keyword]) => keyword === 'VALIDSIG')
  // An expired subkey (EXPKEYSIG) still vouches for a release it signed while it was valid; a revoked one does not.
  if (has('BADSIG', 'ERRSIG', 'REVKEYSIG', 'EXPSIG', 'NO_PUBKEY') || !has('GOODSIG', 'EXPKEYSIG') || valid.length === 0) return false
  // VALIDSIG's last field is the primary key's fingerprint, also for a signature made by a subkey.
  return valid.every((fields) => primaries.includes(fields.at(-1)!.toUpperCase()))
}

/** The primary keys' fingerprints in an OpenPGP key file, read without a keyring. */
async function primaryFingerprints(ctx: ImageBuildContext, home: string, keyFile: string): Promise<string[]> {
  const {stdout} = await ctx.run(['gpg', '--homedir', home, '--batch', '--with-colons', '--show-keys', keyFile], {allowFailure: true})
  const lines = stdout.split('\n').map((line) => line.split(':'))
  return lines.flatMap((fields, i) => (fields[0] === 'fpr' && lines[i - 1]?.[0] === 'pub' ? [fields[9].toUpperCase()] : []))
}

/** A small file as text; what goes wrong is one line naming the URL. */
async function fetchText(ctx: ImageBuildContext, url: string): Promise<string> {
  const hint = 'check version and base-url in [plugin-config.image-flatcar], and that the host can reach the server'
  const signals = [AbortSignal.timeout(120_000), ...(ctx.signal ? [ctx.signal] : [])]
  let response: Response
  try {
    response = await fetch(url, {signal: AbortSignal.any(signals)})
  } catch (error) {
    ctx.signal?.throwIfAborted()
    const cause = (error as {cause?: Error}).cause ?? (error as Error)
    throw userError(`cannot download ${url}: ${cause.message}`, {hint, exitCode: 1})
  }
  if (!response.ok) throw userError(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`.trimEnd(), {hint, exitCode: 1})
  return response.text()
}

/** The DIGESTS text that gpgv verified: only what the signature covers, never the file as downloaded. */
async function verifiedDigests(ctx: ImageBuildContext, options: FlatcarOptions, work: string): Promise<string> {
  const url = `${options.baseUrl}/${options.version}/${IMAGE_FILE}.DIGESTS.asc`
  const signed = await fetchText(ctx, url)
  const keyFile = options.signingKey ?? SHIPPED_KEY
  const home = join(work, 'gnupg')
  await mkdir(home, {mode: 0o700})
  const found = await primaryFingerprints(ctx, home, keyFile)
  const primaries = options.signingKey === undefined ? found.filter((fpr) => fpr === FLATCAR_KEY_FINGERPRINT) : found
  if (primaries.length === 0)
    throw options.signingKey === undefined
      ? userError(`the shipped key ${keyFile} is not Flatcar's image signing key ${FLATCAR_KEY_FINGERPRINT}`, {
          hint: 'reinstall the plugin',
        })
      : userError(`${TABLE} signing-key ${keyFile} holds no OpenPGP public key`, {hint})
  const keyName =
    options.signingKey === undefined
      ? `Flatcar's image signing key ${FLATCAR_KEY_FINGERPRINT}`
      : `the key ${primaries.join(', ')} of ${keyFile}`
  // gpgv wants a binary keyring; --dearmor passes binary keys through unchanged.
  const keyring = join(home, 'trusted.gpg')
  await ctx.run(['gpg', '--homedir', home, '--batch', '--yes', '--dearmor', '--output', keyring, keyFile])
  // Named apart, so that gpgv finds no file it could take for detached data.
  const input = join(work, 'signed.asc')
  const verified = join(work, 'verified.txt')
  await writeFile(input, signed)
  const result = await ctx.run(['gpgv', '--homedir', home, '--status-fd', '1', '--keyring', keyring, '--output', verified, input], {
    allowFailure: true,
  })
  if (result.exitCode !== 0 || !signedBy(result.stdout, primaries)) {
    const status = result.stdout.match(/^\[GNUPG:\] (BADSIG|ERRSIG|NO_PUBKEY|REVKEYSIG|EXPSIG|NODATA)\b/m)?.[1]
    throw userError(`${url} is not signed by ${keyName}${status ? ` (gpgv: ${status})` : ''}`, {
      hint: 'the file is damaged or was tampered with, or the key rotated: then set signing-key in [plugin-config.image-flatcar]',
      exitCode: 1,
    })
  }
  return readFile(verified, 'utf8')
}

async function build(ctx: ImageBuildContext): Promise<void> {
  const options = flatcarOptions(ctx)
  const url = `${options.baseUrl}/${options.version}/${IMAGE_FILE}`
  const what = `the Flatcar ${options.version} developer container`
  // Beside the root, in the host's private build directory: the host sweeps it if a build is killed.
  const work = await mkdtemp(join(dirname(ctx.rootfs), '.flatcar-'))
  try {
    ctx.output(`verifying ${IMAGE_FILE}.DIGESTS.asc`)
    const digests = await verifiedDigests(ctx, options, work)
    let sha512: string
    try {
      sha512 = parseDigests(digests, IMAGE_FILE)
    } catch (error) {
      throw userError(`the DIGESTS of Flatcar ${options.version}: ${(error as Error).message}`, {hint: 'report it to Flatcar', exitCode: 1})
    }
    const compressed = await ctx.download({url, digest: {sha512}, what})
    ctx.output(`decompressing ${what}`)
    const disk = join(work, 'disk.img')
    const failed = join(work, 'bzip2.failed')
    // Sparse: most of the 6 GiB partition is empty. dash has no pipefail, so bzip2 reports through a file.
    await ctx.run(
      [
        'sh',
        '-c',
        '{ bzip2 -dc -- "$1" || echo $? >"$3"; } | cp --sparse=always /dev/stdin "$2" && test ! -e "$3"',
        'sh',
        compressed,
        disk,
        failed,
      ],
      {timeoutMs: 30 * 60_000},
    )
    const bad = (message: string) => userError(`${what}: ${message}`, {hint: 'report it to the image plugin', exitCode: 1})
    const partitions = await readGpt(disk).catch((error: Error) => {
      throw bad(error.message)
    })
    const root = partitions.find((p) => p.name === 'ROOT')
    if (!root) throw bad(`it has no partition named ROOT (it has: ${partitions.map((p) => `${p.number} ${p.name}`).join(', ')})`)
    if (!(await hasExt4Magic(disk, root.offset))) throw bad(`its partition ${root.number} (ROOT) holds no ext4 filesystem`)
    await unpackExt4(ctx.run, `${disk}?offset=${root.offset}`, ctx.rootfs, ctx.output)
    await fitForNodes(ctx.rootfs)
  } finally {
    await rm(work, {recursive: true, force: true})
  }
}

/** What nodes need of the root: units that cannot work masked, and plain files where the host writes. */
async function fitForNodes(rootfs: string): Promise<void> {
  const units = join(rootfs, 'etc/systemd/system')
  await mkdir(units, {recursive: true})
  for (const unit of MASKED_UNITS) {
    await rm(join(units, unit), {recursive: true, force: true})
    await symlink('/dev/null', join(units, unit))
  }
  // The host writes resolv.conf into every node and an empty machine-id into the root: through a
  // symlink (Flatcar points resolv.conf at systemd-resolved) they would land elsewhere.
  for (const file of ['etc/resolv.conf', 'etc/machine-id']) {
    const stat = await lstat(join(rootfs, file)).catch(() => undefined)
    if (stat?.isSymbolicLink()) {
      await rm(join(rootfs, file))
      await writeFile(join(rootfs, file), '')
    }
  }
}

export const flatcar: ImageProvider = {
  name: 'flatcar',
  description:
    'Flatcar Container Linux: the developer container of the release in [plugin-config.image-flatcar], checked against its signing key, unpacked without loop devices',
  family: 'flatcar',
  key: (ctx) => imageKey(flatcarOptions(ctx)),
  refuse: flatcarRefusal,
  hostCommands: ['bzip2', 'debugfs', 'gpgv', 'gpg'],
  build,
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({images: [flatcar]})

/**
 * The Kubernetes binaries a cluster needs (kubeadm, kubelet, kubectl), from an official release URL
 * or an offline bundle directory, verified and cached per version and architecture:
 *
 *   <cacheDir>/kubernetes/<version>/<arch>/{kubeadm,kubelet,kubectl}
 *
 * A file appears under its final name only after it was verified: it is written to a temporary file
 * in the same directory, checked, then renamed. So whatever sits in the cache is whole and checked,
 * and a later run reuses it without asking the network. A bundle and a release of the same version
 * share the cache entry; both were verified against their source when they entered it.
 */
import {createHash} from 'node:crypto'
import {constants} from 'node:fs'
import {chmod, copyFile, mkdir, open, readdir, readFile, rename, rm, stat} from 'node:fs/promises'
import {isAbsolute, join} from 'node:path'

import {parseKubernetesVersion} from '../config/version.js'
import {errorMessage, UserError} from '../errors.js'
import {downloadVerified, httpGet, tempPath} from '../util/download.js'
import {run} from '../util/run.js'

export const KUBERNETES_BINARIES = ['kubeadm', 'kubelet', 'kubectl'] as const
export type KubernetesBinary = (typeof KUBERNETES_BINARIES)[number]

export interface DownloadProgress {
  binary: KubernetesBinary
  /** Bytes received so far. */
  done: number
  /** Bytes expected, from Content-Length; undefined when the server does not say. */
  total?: number
}

export interface FetchKubernetesOptions {
  /** An http(s) URL to download releases from (e.g. https://dl.k8s.io), or the absolute path of an offline bundle. */
  source: string
  /** vMAJOR.MINOR.PATCH */
  version: string
  cacheDir: string
  /** Called while a binary downloads (at most every 100 ms, and once at the end of each file). */
  onProgress?: (progress: DownloadProgress) => void
  /** The Kubernetes architecture name; defaults to the host's. */
  arch?: string
  /** Abort a download that receives nothing for this long (default 60 s). */
  idleTimeoutMs?: number
}

export interface KubernetesArtifacts {
  /** The cache directory holding kubeadm, kubelet and kubectl. */
  binDir: string
  kubeadm: string
  kubelet: string
  kubectl: string
  /** crictl, when the bundle has one (bin/crictl). */
  crictl?: string
  /** The bundle's image archives (docker-archive tars), sorted by name; empty for a release download. */
  images: string[]
}

/** Node's process.arch as Kubernetes names it. */
export function kubernetesArch(arch: string = process.arch): string {
  const names: Record<string, string> = {x64: 'amd64', arm64: 'arm64'}
  const name = names[arch]
  if (!name) throw new UserError(`no Kubernetes binaries for the ${arch} architecture`, {hint: 'run kube-spawn on an amd64 or arm64 host'})
  return name
}

/** Where a release binary lives below a download base URL. */
export function releaseUrl(base: string, version: string, arch: string, binary: string): string {
  return `${base.replace(/\/+$/, '')}/release/${version}/bin/linux/${arch}/${binary}`
}

/** The cache directory of one version and architecture. */
export function kubernetesCacheDir(cacheDir: string, version: string, arch: string): string {
  return join(cacheDir, 'kubernetes', version, arch)
}

/** A progress line for a task's output, e.g. `kubelet [#####-----] 52% 60.1/115.0 MB`. */
export function formatProgress({binary, done, total}: DownloadProgress, width = 10): string {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1)
  if (!total) return `${binary} ${mb(done)} MB`
  const fraction = Math.min(1, done / total)
  const filled = Math.round(fraction * width)
  return `${binary} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(fraction * 100)}% ${mb(done)}/${mb(total)} MB`
}

/** Fetches (or finds in the cache) the binaries of `version` from `source`. */
export async function fetchKubernetes(options: FetchKubernetesOptions): Promise<KubernetesArtifacts> {
  // The definition's version and source were checked when it was read (config/definition.ts).
  const parsed = parseKubernetesVersion(options.version)
  if (!parsed) throw new TypeError(`Kubernetes version "${options.version}" was not validated`)
  const version = parsed.text
  const arch = options.arch ?? kubernetesArch()
  const binDir = kubernetesCacheDir(options.cacheDir, version, arch)
  const paths = {
    kubeadm: join(binDir, 'kubeadm'),
    kubelet: join(binDir, 'kubelet'),
    kubectl: join(binDir, 'kubectl'),
  }

  if (/^https?:\/\//.test(options.source)) {
    await mkdir(binDir, {recursive: true})
    await removeStaleTemps(binDir)
    for (const binary of KUBERNETES_BINARIES) {
      if (await isFile(paths[binary])) continue
      await downloadRelease({...options, base: options.source, version, arch, binary, dest: paths[binary]})
    }
    return {binDir, ...paths, images: []}
  }

  if (!isAbsolute(options.source)) throw new TypeError(`kubernetes.source "${options.source}" was not validated`)
  const bundle = await checkBundle(options.source, version)
  await mkdir(binDir, {recursive: true})
  await removeStaleTemps(binDir)
  for (const binary of KUBERNETES_BINARIES) {
    if (await isFile(paths[binary])) continue
    const expected = bundle.sums?.get(binary)
    if (bundle.sums && !expected) {
      throw new UserError(`offline bundle ${bundle.dir}: bin/SHA256SUMS has no entry for ${binary}`, {
        hint: 'add it, or re-create the bundle',
      })
    }
    await copyVerified(join(bundle.dir, 'bin', binary), paths[binary], expected, `${binary} ${version} in ${bundle.dir}`)
  }
  // crictl is optional: with it in the nodes, kubeadm's preflight can run.
  const crictl = join(binDir, 'crictl')
  if (!(await isFile(crictl)) && (await isFile(join(bundle.dir, 'bin', 'crictl')))) {
    await copyVerified(join(bundle.dir, 'bin', 'crictl'), crictl, bundle.sums?.get('crictl'), `crictl in ${bundle.dir}`)
  }
  return {binDir, ...paths, images: bundle.images, ...((await isFile(crictl)) ? {crictl} : {})}
}

// ---------------------------------------------------------------------------------------------------
// Release downloads
// ---------------------------------------------------------------------------------------------------

interface DownloadJob {
  base: string
  version: string
  arch: string
  binary: KubernetesBinary
  dest: string
  onProgress?: (progress: DownloadProgress) => void
  idleTimeoutMs?: number
}

const downloadHint = 'check kubernetes.source and kubernetes-version, and that the host can reach the server'

async function expectedDigest(url: string, signal: AbortSignal, binary: string): Promise<string> {
  const text = await (await httpGet(url, signal, downloadHint)).text()
  const digest = text.trim().split(/\s+/)[0]?.toLowerCase() ?? ''
  if (!/^[0-9a-f]{64}$/.test(digest)) {
    throw new UserError(`${url} holds no SHA-256 digest for ${binary}`, {hint: downloadHint})
  }
  return digest
}

function downloadRelease(job: DownloadJob): Promise<void> {
  const url = releaseUrl(job.base, job.version, job.arch, job.binary)
  return downloadVerified({
    url,
    dest: job.dest,
    sha256: (signal) => expectedDigest(`${url}.sha256`, signal, job.binary),
    what: `${job.binary} ${job.version}`,
    hint: downloadHint,
    mode: 0o755,
    onProgress: job.onProgress && ((p) => job.onProgress?.({binary: job.binary, done: p.done, total: p.total})),
    idleTimeoutMs: job.idleTimeoutMs,
  })
}

// ---------------------------------------------------------------------------------------------------
// Offline bundles
// ---------------------------------------------------------------------------------------------------

interface Bundle {
  dir: string
  images: string[]
  /** bin/SHA256SUMS, when the bundle has one: binary name → digest. */
  sums?: Map<string, string>
}

const BUNDLE_HINT =
  'an offline bundle holds bin/ (kubeadm, kubelet, kubectl), images/ (docker-archive tars) and images.txt (one image reference a line)'

/** Checks a bundle's layout and version (read-only; create runs it before anything is written); returns its image archives and checksums. */
export async function checkBundle(dir: string, version: string): Promise<Bundle> {
  const info = await stat(dir).catch(() => undefined)
  if (!info?.isDirectory()) throw new UserError(`offline bundle ${dir} does not exist or is not a directory`, {hint: BUNDLE_HINT})

  const missing: string[] = []
  for (const binary of KUBERNETES_BINARIES) if (!(await isFile(join(dir, 'bin', binary)))) missing.push(`bin/${binary}`)
  const imagesDir = join(dir, 'images')
  const images = (await isDirectory(imagesDir))
    ? (await readdir(imagesDir))
        .filter((name) => name.endsWith('.tar'))
        .sort()
        .map((name) => join(imagesDir, name))
    : undefined
  if (!images) missing.push('images/')
  else if (images.length === 0) missing.push('images/*.tar')
  const list = await readFile(join(dir, 'images.txt'), 'utf8').catch(() => undefined)
  if (list === undefined) missing.push('images.txt')
  else if (!list.split('\n').some((line) => line.trim() && !line.trim().startsWith('#'))) missing.push('image references in images.txt')
  if (missing.length > 0) throw new UserError(`offline bundle ${dir} is incomplete: missing ${missing.join(', ')}`, {hint: BUNDLE_HINT})

  // The cache is keyed by version, so a bundle of another release must not enter it under this one.
  const kubeadm = join(dir, 'bin', 'kubeadm')
  const result = await run([kubeadm, 'version', '-o', 'short'], {allowFailure: true, timeoutMs: 30_000}).catch((error) => ({
    stdout: '',
    stderr: errorMessage(error),
    exitCode: 1,
  }))
  const found = result.stdout.trim()
  if (result.exitCode !== 0) {
    throw new UserError(`cannot run ${kubeadm}: ${(result.stderr || result.stdout).trim().split('\n').pop()}`, {
      hint: `the bundle must hold Linux ${kubernetesArch()} binaries`,
    })
  }
  if (found !== version) {
    throw new UserError(`offline bundle ${dir} holds Kubernetes ${found}, but the cluster wants ${version}`, {
      hint: 'point kubernetes.source at a bundle of that version, or change kubernetes-version',
    })
  }

  const sumsText = await readFile(join(dir, 'bin', 'SHA256SUMS'), 'utf8').catch(() => undefined)
  return {dir, images: images!, sums: sumsText === undefined ? undefined : parseSha256Sums(sumsText)}
}

/** Parses sha256sum output: `<hex>  <name>` or `<hex> *<name>` per line. */
export function parseSha256Sums(text: string): Map<string, string> {
  const sums = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line.trim())
    if (match) sums.set(match[2].replace(/^\.\//, ''), match[1].toLowerCase())
  }
  return sums
}

/**
 * Copies a bundle binary into the cache (a reflink where the filesystem can, else a copy: the cache
 * must not change when the bundle does), verifies the copy against the bundle's SHA256SUMS when it
 * has one, and renames it into place.
 */
async function copyVerified(src: string, dest: string, expected: string | undefined, what: string): Promise<void> {
  const temp = tempPath(dest)
  try {
    await copyFile(src, temp, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL)
    await chmod(temp, 0o755)
    if (expected !== undefined) {
      const actual = await sha256File(temp)
      if (actual !== expected) {
        throw new UserError(`checksum mismatch for ${what}: expected ${expected} (bin/SHA256SUMS), got ${actual}`, {
          hint: 'the bundle is corrupt; re-create it',
        })
      }
    }
    const handle = await open(temp, 'r')
    await handle.sync().finally(() => handle.close())
    await rename(temp, dest)
  } finally {
    await rm(temp, {force: true})
  }
}

// ---------------------------------------------------------------------------------------------------

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  const handle = await open(path, 'r')
  try {
    for await (const chunk of handle.createReadStream({autoClose: false})) hash.update(chunk as Buffer)
  } finally {
    await handle.close()
  }
  return hash.digest('hex')
}

/** A temporary name in the destination's directory, so the final rename is atomic. */

/** Temporary files a killed run left behind (an hour old: a running download keeps its file fresh). */
async function removeStaleTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!/^\..+\.[0-9a-f]{12}\.tmp$/.test(name)) continue
    const info = await stat(join(dir, name)).catch(() => undefined)
    if (info && Date.now() - info.mtimeMs > 3_600_000) await rm(join(dir, name), {force: true})
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false
}

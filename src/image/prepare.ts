/**
 * The base image, driven by the image plugin's declaration: the host checks it fits, builds or fetches
 * its root into the cache by key, checks the root against what nodes need, and hands it to the nodes.
 *
 *   <cacheDir>/images/<key>/{rootfs/,image.json}
 *
 * A root is built into a private temporary directory and renamed into place, so the cache never holds
 * a half-built image, and a concurrent build of the same key simply loses the rename race.
 */
import {mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {
  type AptSource,
  type DownloadRequest,
  type ImageBuildContext,
  type RuntimePackages,
  isUserError,
  missingFromRoot,
} from '@kube-spawn/sdk'

import type {ClusterContext, HostStep} from '../context/index.js'
import {UserError, errorMessage} from '../errors.js'
import {cachedFilePath} from '../runtime/files.js'
import {downloadVerified, httpGet} from '../util/download.js'

export function imageDir(cacheDir: string, key: string): string {
  return join(cacheDir, 'images', key)
}

const exists = (path: string) => stat(path).then(Boolean, () => false)

/** Runs one of the image plugin's functions; what it throws names the plugin. */
async function fromImagePlugin<T>(ctx: ClusterContext, what: string, work: () => T | Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    const plugin = ctx.providerPlugins.image
    const hint = isUserError(error) || error instanceof UserError ? error.hint : undefined
    throw new UserError(`image ${ctx.image.name} (plugin ${plugin}): ${what}: ${errorMessage(error)}`, {
      hint: hint ?? 'fix or uninstall that plugin (kube-spawn plugins)',
      exitCode: isUserError(error) || error instanceof UserError ? error.exitCode : 1,
      cause: error,
    })
  }
}

/** The cache key of the cluster's base image, computed once per context. */
const keys = new WeakMap<ClusterContext, string>()
export async function baseImageKey(ctx: ClusterContext): Promise<string> {
  const known = keys.get(ctx)
  if (known) return known
  const key = await fromImagePlugin(ctx, 'its settings', () => ctx.image.key(ctx))
  if (typeof key !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(key))
    throw new UserError(`image ${ctx.image.name} (plugin ${ctx.providerPlugins.image}) gave the cache key ${JSON.stringify(key)}`, {
      hint: 'a key is letters, digits, dots, dashes and underscores; fix the plugin',
    })
  keys.set(ctx, key)
  return key
}

const isCached = async (ctx: ClusterContext) => exists(join(imageDir(ctx.cacheDir, await baseImageKey(ctx)), 'image.json'))

/**
 * The image's settings give a key, and the image accepts this cluster on this host. Runs before any
 * output (also in --dry-run) and again in preflight.
 */
export async function assertImageFits(ctx: ClusterContext): Promise<string> {
  const key = await baseImageKey(ctx)
  const refusal = await fromImagePlugin(ctx, 'its check', () => ctx.image.refuse?.(ctx))
  if (refusal)
    throw new UserError(refusal, {hint: `refused by image ${ctx.image.name} of plugin ${ctx.providerPlugins.image}`, exitCode: 1})
  return key
}

/** preflight: the image accepts the cluster and this host, and the host has what building it needs. */
export const checkImage: HostStep = {
  title: 'Check that the base image can be made and used here',
  task: async (ctx, task) => {
    const key = await assertImageFits(ctx)
    const cached = await isCached(ctx)
    if (!cached) {
      for (const command of ctx.image.hostCommands ?? []) {
        const found = await ctx.run(['sh', '-c', `command -v ${command}`], {allowFailure: true})
        if (found.exitCode !== 0)
          throw new UserError(`${command} is not installed, and image ${ctx.image.name} needs it to build ${key}`, {
            hint: `install it (on Debian: apt-get install ${command})`,
          })
      }
    }
    task.title = `Image ${ctx.image.name} (${ctx.image.family}) fits: ${key}${cached ? ', cached' : ''}`
  },
}

/** prepare-image: build or fetch the root when the cache lacks it. */
export const makeBaseImage: HostStep = {
  title: 'Build or fetch the base image',
  titleFor: async (ctx) => `${ctx.image.build ? 'Build' : 'Fetch'} the ${ctx.image.name} base image ${await baseImageKey(ctx)}`,
  skip: async (ctx) => ((await isCached(ctx)) ? `image ${await baseImageKey(ctx)} is cached` : false),
  task: async (ctx, task) => {
    const key = await baseImageKey(ctx)
    const started = Date.now()
    task.title = `Make the ${ctx.image.name} base image ${key}`
    await makeImage(ctx, key, (line) => (task.output = line))
    task.title = `Made the ${ctx.image.name} base image ${key} in ${Math.round((Date.now() - started) / 1000)} s`
  },
}

/** prepare-image: the nodes' base is the cached root, once it holds what nodes need. */
export const useBaseImage: HostStep = {
  title: 'Check the base image and use it',
  task: async (ctx, task) => {
    const key = await baseImageKey(ctx)
    const rootfs = join(imageDir(ctx.cacheDir, key), 'rootfs')
    await assertRootComplete(ctx, rootfs, key)
    ctx.baseImage = {rootfs, key}
    task.title = `Use the base image ${key}`
  },
}

async function assertRootComplete(ctx: ClusterContext, rootfs: string, key: string): Promise<void> {
  const missing = await missingFromRoot(rootfs, ctx.runtime)
  if (missing.length > 0)
    throw new UserError(
      `the root filesystem of image ${key} (image ${ctx.image.name}, plugin ${ctx.providerPlugins.image}, runtime ${ctx.runtime.name}) lacks: ${missing.join(', ')}`,
      {hint: 'the image or runtime plugin must provide these (docs/plugins.md#what-a-root-filesystem-must-contain)', exitCode: 1},
    )
}

async function makeImage(ctx: ClusterContext, key: string, output: (line: string) => void): Promise<void> {
  const images = join(ctx.cacheDir, 'images')
  const final = imageDir(ctx.cacheDir, key)
  await mkdir(images, {recursive: true, mode: 0o700})
  await removeAbandonedBuilds(images)
  const temp = join(images, `.build-${key}-${process.pid}`)
  const rootfs = join(temp, 'rootfs')
  await rm(temp, {recursive: true, force: true})
  try {
    await mkdir(rootfs, {recursive: true, mode: 0o755})
    const {build, fetch} = ctx.image
    if (build) {
      const buildCtx: ImageBuildContext = {
        rootfs,
        packages: await resolvedPackages(ctx),
        host: ctx.host,
        pluginConfig: ctx.pluginConfig,
        run: ctx.run,
        output,
        signal: ctx.signal,
        cacheDir: ctx.cacheDir,
        download: (request) => downloadForImage(ctx, request, output),
      }
      await fromImagePlugin(ctx, 'its build failed', () => build.call(ctx.image, buildCtx))
    } else if (fetch) {
      const source = await fromImagePlugin(ctx, 'its fetch', () => fetch.call(ctx.image, ctx))
      const archive = await downloadCached(ctx, source.url, source.sha256, `image ${ctx.image.name}`, output)
      output(`unpacking ${source.url}`)
      await ctx.run(['tar', '-xpf', archive, '-C', rootfs, '--numeric-owner'], {timeoutMs: 30 * 60_000})
    } else
      throw new UserError(`image ${ctx.image.name} (plugin ${ctx.providerPlugins.image}) has neither build nor fetch`, {
        hint: 'fix the plugin',
      })
    // Each node writes its own machine-id; an empty file tells systemd it is not a first boot.
    await writeFile(join(rootfs, 'etc/machine-id'), '')
    await assertRootComplete(ctx, rootfs, key)
    await writeFile(
      join(temp, 'image.json'),
      `${JSON.stringify({key, image: ctx.image.name, family: ctx.image.family, built: new Date().toISOString()}, null, 2)}\n`,
    )
    try {
      await rename(temp, final)
    } catch (error) {
      if (!(await exists(join(final, 'image.json')))) throw error
      await rm(temp, {recursive: true, force: true})
    }
  } catch (error) {
    await rm(temp, {recursive: true, force: true})
    throw error
  }
}

/** The runtime's packages for the image's family, with every apt key fetched and verified into inline content. */
export async function resolvedPackages(ctx: ClusterContext): Promise<RuntimePackages> {
  const packages = ctx.runtime.packages[ctx.image.family] ?? {names: []}
  const aptSources: AptSource[] = []
  for (const source of packages.aptSources ?? []) {
    const {key} = source
    if ('content' in key) aptSources.push(source)
    else if ('sha256' in key) {
      const path = await downloadCached(ctx, key.url, key.sha256, `the apt key of ${source.name}`, () => undefined)
      aptSources.push({...source, key: {content: await readFile(path, 'utf8')}})
    } else aptSources.push({...source, key: {content: await fetchKeyByFingerprint(ctx, source.name, key)}})
  }
  return {names: packages.names, ...(aptSources.length > 0 ? {aptSources} : {})}
}

async function downloadCached(
  ctx: ClusterContext,
  url: string,
  sha256: string,
  what: string,
  output: (line: string) => void,
  algorithm: 'sha256' | 'sha512' = 'sha256',
): Promise<string> {
  const dest = cachedFilePath(ctx.cacheDir, sha256)
  if (await exists(dest)) return dest
  await mkdir(join(ctx.cacheDir, 'files'), {recursive: true, mode: 0o700})
  await downloadVerified({
    url,
    dest,
    sha256,
    algorithm,
    what,
    hint: 'check that the host can reach the server',
    onProgress: ({done}) => output(`${url}: ${Math.round(done / 1048576)} MiB`),
  })
  return dest
}

/**
 * An apt key checked by its primary key's fingerprint rather than its bytes: a key whose expiry is
 * extended in place keeps its fingerprint. Small and fetched once per build, so not cached.
 */
export async function fetchKeyByFingerprint(ctx: ClusterContext, name: string, key: {url: string; fingerprint: string}): Promise<string> {
  const hint = `check that the host can reach the server, or report it to the runtime plugin (${ctx.providerPlugins.runtime})`
  const response = await httpGet(key.url, ctx.signal ?? new AbortController().signal, hint)
  const content = await response.text()
  const fingerprints = await keyFingerprints(ctx, content)
  const wanted = key.fingerprint.toUpperCase()
  if (!fingerprints.includes(wanted))
    throw new UserError(
      `the apt key of ${name} from ${key.url} is not the key ${wanted} (it holds: ${fingerprints.join(', ') || 'no OpenPGP key'})`,
      {hint: `the key was replaced or tampered with; if its owner rotated it, update the runtime plugin (${ctx.providerPlugins.runtime})`},
    )
  return content
}

/** The primary keys' fingerprints in an OpenPGP key file (armoured or binary), read without a keyring. */
export async function keyFingerprints(ctx: Pick<ClusterContext, 'run'>, content: string): Promise<string[]> {
  const home = await mkdtemp(join(tmpdir(), 'kube-spawn-gpg-'))
  try {
    const {stdout} = await ctx.run(['gpg', '--homedir', home, '--batch', '--with-colons', '--show-keys'], {
      input: content,
      allowFailure: true,
    })
    const lines = stdout.split('\n').map((line) => line.split(':'))
    // A fingerprint line (fpr) follows its key line; only primary keys (pub) count.
    return lines.flatMap((fields, i) => (fields[0] === 'fpr' && lines[i - 1]?.[0] === 'pub' ? [fields[9]] : []))
  } finally {
    await rm(home, {recursive: true, force: true})
  }
}

/** ImageBuildContext.download: a verified download into the artifact cache, by its digest. */
async function downloadForImage(ctx: ClusterContext, request: DownloadRequest, output: (line: string) => void): Promise<string> {
  const [algorithm, digest] =
    'sha512' in request.digest ? (['sha512', request.digest.sha512] as const) : (['sha256', request.digest.sha256] as const)
  if (!/^[0-9a-fA-F]+$/.test(digest) || digest.length !== (algorithm === 'sha512' ? 128 : 64))
    throw new UserError(
      `image ${ctx.image.name} (plugin ${ctx.providerPlugins.image}) asked to download ${request.url} with a malformed ${algorithm} digest "${digest}"`,
      {hint: 'fix the plugin'},
    )
  return downloadCached(
    ctx,
    request.url,
    digest.toLowerCase(),
    request.what ?? `${request.url} for image ${ctx.image.name}`,
    output,
    algorithm,
  )
}

/** A build interrupted by a kill leaves .build-<key>-<pid>; remove those whose process is gone. */
/** Removes the `.build-<key>-<pid>` dirs in `images` whose process is gone (an interrupted build). */
export async function removeAbandonedBuilds(images: string): Promise<void> {
  for (const entry of await readdir(images).catch(() => [] as string[])) {
    const pid = Number(/^\.build-.*-(\d+)$/.exec(entry)?.[1])
    if (!pid) continue
    const alive = await readFile(`/proc/${pid}/cmdline`, 'utf8').then(
      () => true,
      () => false,
    )
    if (!alive || pid === process.pid) await rm(join(images, entry), {recursive: true, force: true})
  }
}

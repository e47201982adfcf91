/**
 * The runtime's shared image store: the bundle's images imported once, into one node, then hard-linked
 * into the data dir of every new node before it boots, so that a node's import is a no-op. Kept beside
 * the base image it was made with (removing that image's cache entry removes its stores), keyed by the
 * runtime, the base image and the bundle's image archives.
 */
import {createHash} from 'node:crypto'
import {link, mkdir, open, readdir, rename, rm, writeFile} from 'node:fs/promises'
import {basename, join} from 'node:path'

import type {ClusterContext, HostNode} from '../context/index.js'
import type {RuntimeImageStore} from '@kube-spawn/sdk'
import {errorMessage} from '../errors.js'
import {imageDir, removeAbandonedBuilds} from '../image/prepare.js'
import {sha256File} from '../kubernetes/artifacts.js'
import {exists} from '../util/fs.js'
import {waitForRuntimeIn} from './lifecycle.js'
import {run} from '../util/run.js'

/** The store's key: what the runtime's data would differ by. */
export function imageStoreKey(parts: {
  runtime: string
  store: RuntimeImageStore
  baseImage: string
  images: readonly {name: string; identity: string}[]
}): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16)
}

/** The files of an image archive that name every blob in it by digest: docker-archive's, then OCI's. */
const ARCHIVE_MANIFESTS = ['manifest.json', 'index.json']

/**
 * What identifies an image archive's content: the SHA-256 of its manifest, which names the image's config
 * and layers by digest, read from the tar's headers without reading the layers (an unpacked bundle is
 * rewritten at each preparation, so its files' times say nothing); the whole file's SHA-256 if it has none.
 */
export async function archiveIdentity(path: string): Promise<string> {
  const handle = await open(path, 'r')
  try {
    const readAt = async (position: number, length: number) => {
      const buffer = Buffer.alloc(length)
      const {bytesRead} = await handle.read(buffer, 0, length, position)
      return buffer.subarray(0, bytesRead)
    }
    const text = (bytes: Buffer) => bytes.toString('utf8').replace(/\0.*$/s, '')
    let longName: string | undefined
    for (let offset = 0; ;) {
      const header = await readAt(offset, 512)
      if (header.length < 512 || header.every((byte) => byte === 0)) break
      const size = Number.parseInt(text(header.subarray(124, 136)).trim() || '0', 8)
      const type = String.fromCharCode(header[156])
      const prefix = text(header.subarray(345, 500))
      const name = longName ?? (prefix ? `${prefix}/${text(header.subarray(0, 100))}` : text(header.subarray(0, 100)))
      longName = undefined
      const data = offset + 512
      if (type === 'L') longName = text(await readAt(data, size))
      else if ((type === '0' || type === '\0') && ARCHIVE_MANIFESTS.includes(name.replace(/^\.\//, '')))
        return createHash('sha256')
          .update(await readAt(data, size))
          .digest('hex')
      offset = data + Math.ceil(size / 512) * 512
    }
  } finally {
    await handle.close()
  }
  return sha256File(path)
}

/** Where the store of this cluster's runtime, base image and images is (present or not), or undefined when there is none to have. */
export async function imageStorePath(ctx: ClusterContext, images: readonly string[]): Promise<string | undefined> {
  const store = ctx.runtime.imageStore
  if (!store || images.length === 0 || !ctx.baseImage) return undefined
  const archives = await Promise.all(images.map(async (image) => ({name: basename(image), identity: await archiveIdentity(image)})))
  const key = imageStoreKey({runtime: ctx.runtime.name, store, baseImage: ctx.baseImage.key, images: archives})
  return join(imageDir(ctx.cacheDir, ctx.baseImage.key), 'image-stores', key)
}

/** The host directory bound at the store's dir in the node (the varlib workaround's), if any. */
export function storeDataDir(ctx: ClusterContext, node: HostNode): string | undefined {
  const dir = ctx.runtime.imageStore?.dir
  return dir === undefined ? undefined : node.mounts.find((mount) => mount.dst === dir && !mount.readOnly)?.src
}

const emptyDir = async (path: string) =>
  Promise.all((await readdir(path)).map((entry) => rm(join(path, entry), {recursive: true, force: true})))
const isEmptyDir = (path: string) =>
  readdir(path).then(
    (entries) => entries.length === 0,
    () => false,
  )
/**
 * Whether a file in `from` can be hard-linked into `to`: not across filesystems, and not across two mounts
 * of the same one (a bind mount, as in a container), which share a device number; so it is tried.
 */
async function canHardLink(from: string, to: string): Promise<boolean> {
  const probe = `.link-probe-${process.pid}`
  await writeFile(join(from, probe), '')
  try {
    await link(join(from, probe), join(to, probe))
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EXDEV') return false
    throw error
  } finally {
    await Promise.all([rm(join(from, probe), {force: true}), rm(join(to, probe), {force: true})])
  }
}

/**
 * Fills `dst` with `src`'s tree: directories made anew, files hard-linked, except the store's rewritten
 * files (relative to the tree), which get copies of their own, and its instance files, which are left out.
 */
export async function linkTree(src: string, dst: string, store: RuntimeImageStore): Promise<void> {
  await mkdir(dst, {recursive: true, mode: 0o700})
  await run(['cp', '-a', '--link', `${src}/.`, `${dst}/`])
  for (const file of store.rewrittenFiles) {
    if (!(await exists(join(src, file)))) continue
    await rm(join(dst, file), {force: true})
    await run(['cp', '-a', join(src, file), join(dst, file)])
  }
  for (const file of store.instanceFiles ?? []) await rm(join(dst, file), {force: true})
}

/** Why a node cannot take the store, or undefined when it can. */
async function unfitFor(ctx: ClusterContext, node: HostNode, store: string): Promise<string | undefined> {
  const dataDir = storeDataDir(ctx, node)
  if (!dataDir) return `no host directory is bound at ${ctx.runtime.imageStore?.dir} (the varlib workaround binds it)`
  if (!(await isEmptyDir(dataDir))) return `${dataDir} is not empty`
  if (!(await canHardLink(join(store, '..'), dataDir)))
    return `${dataDir} and the store are on different filesystems or mounts (hard links cannot cross them)`
  return undefined
}

/** Links the store into each node that can take it; returns the nodes that have it now. */
export async function linkImageStore(ctx: ClusterContext, store: string): Promise<{linked: HostNode[]; unfit: string[]}> {
  const linked: HostNode[] = []
  const unfit: string[] = []
  if (!(await exists(store))) return {linked, unfit}
  const spec = ctx.runtime.imageStore
  if (!spec) return {linked, unfit}
  for (const node of ctx.nodes) {
    const why = await unfitFor(ctx, node, store)
    if (why) {
      unfit.push(`${node.name}: ${why}`)
      continue
    }
    const dataDir = storeDataDir(ctx, node)!
    try {
      await linkTree(store, dataDir, spec)
      linked.push(node)
    } catch (error) {
      // The node imports the images itself, into a data dir as empty as it was.
      await emptyDir(dataDir)
      unfit.push(`${node.name}: ${errorMessage(error)}`)
    }
  }
  return {linked, unfit}
}

/**
 * Makes the store from a node that has just imported every image: its runtime stopped so its files are
 * at rest, its data dir linked into a temporary dir renamed into place, its runtime started again.
 * A store made meanwhile by another run wins; this one is dropped. Returns why no store was made, if none
 * was; a runtime that does not come back is an error.
 */
export async function makeImageStore(ctx: ClusterContext, node: HostNode, store: string): Promise<string | undefined> {
  const {services, imageStore} = ctx.runtime
  const dataDir = storeDataDir(ctx, node)
  if (!imageStore || !dataDir) return `no host directory is bound at the runtime's image dir in ${node.name}`
  const stores = join(store, '..')
  await mkdir(stores, {recursive: true, mode: 0o700})
  if (!(await canHardLink(dataDir, stores)))
    return `${stores} and ${dataDir} are on different filesystems or mounts (hard links cannot cross them)`
  await removeAbandonedBuilds(stores)
  const temp = join(stores, `.build-${basename(store)}-${process.pid}`)
  let failure: string | undefined
  await node.exec(['systemctl', 'stop', ...[...services].reverse()], {timeoutMs: 30_000})
  try {
    await linkTree(dataDir, temp, imageStore)
    await rename(temp, store).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error
    })
  } catch (error) {
    failure = errorMessage(error)
  } finally {
    await rm(temp, {recursive: true, force: true})
    await node.exec(['systemctl', 'start', ...services], {timeoutMs: 30_000})
  }
  await waitForRuntimeIn(ctx, node)
  return failure
}

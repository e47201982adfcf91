/** The Kubernetes binaries and the bundle's images: fetched into the cache, then mounted into the nodes and imported. */
import {basename, join} from 'node:path'

import type {ClusterContext, HostStep} from '../context/index.js'
import type {StageContext, StageTaskWrapper} from '@kube-spawn/sdk'
import {type KubernetesArtifacts, fetchKubernetes, formatProgress} from './artifacts.js'
import {imageStorePath, linkImageStore, makeImageStore, storeDataDir} from '../runtime/image-store.js'
import {exists} from '../util/fs.js'

/** Where the cached Kubernetes binaries and bundle images appear inside every node (read-only). */
export const NODE_BIN_DIR = '/opt/kube-spawn/kubernetes/bin'
export const NODE_IMAGES_DIR = '/opt/kube-spawn/images'
const ARTIFACTS = 'kubernetes-artifacts'

/** What fetchArtifacts found, for the later stages of the same run. */
export function artifacts(ctx: StageContext): KubernetesArtifacts {
  const found = ctx.shared.get(ARTIFACTS) as KubernetesArtifacts | undefined
  if (!found) throw new Error('Kubernetes artifacts were not fetched before they were needed')
  return found
}

/** Fetches (or finds in the cache) and verifies the Kubernetes binaries, with a progress bar. */
export async function fetchArtifacts(ctx: StageContext, task: StageTaskWrapper): Promise<KubernetesArtifacts> {
  const fetched = await fetchKubernetes({
    source: ctx.cluster.kubernetes.source,
    version: ctx.cluster.kubernetesVersion,
    cacheDir: ctx.cacheDir,
    onProgress: (progress) => (task.output = formatProgress(progress)),
  })
  ctx.shared.set(ARTIFACTS, fetched)
  return fetched
}

/** Create: fetch and verify the binaries, so a bad source fails before any node exists. */
export const fetchKubernetesStep: HostStep = {
  title: 'Fetch and verify Kubernetes',
  task: async (ctx, task) => {
    await fetchArtifacts(ctx, task)
    task.title = `Fetch and verify Kubernetes ${ctx.cluster.kubernetesVersion} (${ctx.cluster.kubernetes.source})`
  },
}

export const mountKubernetesBinaries: HostStep = {
  title: 'Mount the Kubernetes binaries into each node',
  task: async (ctx, task) => {
    const found = await fetchArtifacts(ctx, task)
    for (const node of ctx.nodes) {
      node.addBindMount({src: found.binDir, dst: NODE_BIN_DIR, readOnly: true})
      if (found.images.length > 0) node.addBindMount({src: join(found.images[0], '..'), dst: NODE_IMAGES_DIR, readOnly: true})
    }
  },
}

/** The images of the control plane's static pods, by archive name: a worker never runs them. */
const CONTROL_PLANE_IMAGE = /^(etcd|kube-apiserver|kube-controller-manager|kube-scheduler)\b.*\.tar$/

/** The bundle's image archives a node needs: all on a control plane, the rest on a worker. */
export function imagesForRole(images: readonly string[], role: string): string[] {
  return role === 'control-plane' ? [...images] : images.filter((image) => !CONTROL_PLANE_IMAGE.test(basename(image)))
}

const LINKED = 'image-store-linked'
const linkedNodes = (ctx: StageContext) => (ctx.shared.get(LINKED) as Set<string> | undefined) ?? new Set<string>()

const STORE_PATH = 'image-store-path'
/** The shared image store's path, worked out once per run (its key reads each archive's manifest). */
async function storePath(ctx: ClusterContext): Promise<string | undefined> {
  if (!ctx.shared.has(STORE_PATH)) ctx.shared.set(STORE_PATH, await imageStorePath(ctx, artifacts(ctx).images))
  return ctx.shared.get(STORE_PATH) as string | undefined
}

/**
 * boot, before the nodes boot (after the plugins' pre-boot mounts): the runtime's shared image store, when
 * there is one for this runtime, base image and bundle, is hard-linked into each new node's data dir.
 */
export const linkSharedImageStore: HostStep = {
  title: 'Link the shared image store into the new nodes',
  skip: (ctx) =>
    ctx.cluster.state.initialized
      ? 'the nodes have their images from the first start'
      : !ctx.runtime.imageStore
        ? `the ${ctx.runtime.name} runtime shares no image store`
        : false,
  task: async (ctx, task) => {
    const store = await storePath(ctx)
    if (!store) {
      task.title = 'Link the shared image store: none for a release download (the runtime pulls the images)'
      return
    }
    const {linked, unfit} = await linkImageStore(ctx, store)
    ctx.shared.set(LINKED, new Set(linked.map((node) => node.name)))
    for (const why of unfit) task.output = `not linked into ${why}`
    task.title =
      linked.length > 0
        ? `Link the shared image store ${basename(store)} into ${linked.length} of ${ctx.nodes.length} nodes`
        : `Link the shared image store: none yet (the first start makes it), or no node can take it`
  },
}

/**
 * pre-init: each node that has not the shared store imports the images it runs; the first control plane
 * to do so then makes the store, so that the next nodes made from the same base image and bundle skip this.
 */
export const importBundleImages: HostStep = {
  title: 'Import the bundle images into every node',
  skip: (ctx) => (ctx.cluster.state.initialized ? 'the nodes have them from the first start' : false),
  task: async (ctx, task) => {
    const images = artifacts(ctx).images
    if (images.length === 0) {
      task.title = 'Import images: none in a release download; the runtime pulls them'
      return
    }
    const linked = linkedNodes(ctx)
    const perNode = ctx.nodes.filter((node) => !linked.has(node.name)).map((node) => ({node, images: imagesForRole(images, node.role)}))
    if (perNode.length === 0) {
      task.title = 'Import the bundle images: every node has them from the shared image store'
      return
    }
    const total = perNode.reduce((sum, {images}) => sum + images.length, 0)
    let done = 0
    await Promise.all(
      perNode.map(async ({node, images}) => {
        for (const image of images) {
          await node.exec([...ctx.runtime.imageImportCommand, `${NODE_IMAGES_DIR}/${basename(image)}`], {
            timeoutMs: 300_000 * ctx.host.timeoutScale,
          })
          task.output = `${++done}/${total} imported`
        }
      }),
    )
    const store = await storePath(ctx)
    const source = perNode.find(({node, images: imported}) => imported.length === images.length && storeDataDir(ctx, node))?.node
    if (store && source && !(await exists(store))) {
      task.output = `making the shared image store from ${source.name}`
      // The store only spares later nodes their import: without it this cluster is as good.
      const notMade = await makeImageStore(ctx, source, store)
      if (notMade) ctx.warn(`no shared image store was made, so the nodes of later clusters import the images themselves: ${notMade}`)
    }
    task.title = `Import the bundle images into ${perNode.length} of ${ctx.nodes.length} nodes${linked.size > 0 ? ' (the rest have the shared image store)' : ''}`
  },
}

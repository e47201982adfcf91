/** The runtime's files in the nodes: downloaded and verified once into the cache, written into every node. */
import {mkdir, mkdtemp, rename, rm, stat} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import type {Cluster, FileContext, RuntimeFile} from '@kube-spawn/sdk'

import type {ClusterContext, HostNode, HostStep} from '../context/index.js'
import {UserError, errorMessage} from '../errors.js'
import {downloadVerified} from '../util/download.js'
import {runtimeProxyEnvironment} from '../util/proxy.js'

/** Where the host writes the pod network's CNI config in a node. */
export const CNI_CONF_DIR = '/etc/cni/net.d'

/** A downloaded file in the artifact cache, by its checksum. */
export function cachedFilePath(cacheDir: string, sha256: string): string {
  return join(cacheDir, 'files', sha256)
}

type DownloadedFile = Extract<RuntimeFile, {url: string}>
const isDownload = (file: RuntimeFile): file is DownloadedFile => 'url' in file

/** Where a downloaded file's content is: the download itself, or the archive member it names, unpacked beside it. */
export function cachedContentPath(cacheDir: string, file: DownloadedFile): string {
  const download = cachedFilePath(cacheDir, file.sha256)
  return file.extract ? join(`${download}.d`, file.extract) : download
}

/** prepare-image: the runtime's downloads (binaries, archives), verified against their SHA-256, cached. */
export const fetchRuntimeFiles: HostStep = {
  title: 'Fetch the container runtime’s files',
  skip: async (ctx) => ((await missingDownloads(ctx)).length === 0 ? 'nothing to download, or all cached' : false),
  task: async (ctx, task) => {
    await mkdir(join(ctx.cacheDir, 'files'), {recursive: true, mode: 0o700})
    for (const file of await missingDownloads(ctx)) {
      const archive = cachedFilePath(ctx.cacheDir, file.sha256)
      if (!(await exists(archive))) await download(ctx, task, file)
      if (file.extract) await extractMember(ctx, file, archive)
    }
  },
}

async function download(ctx: ClusterContext, task: {output?: string}, file: DownloadedFile): Promise<void> {
  await downloadVerified({
    url: file.url,
    dest: cachedFilePath(ctx.cacheDir, file.sha256),
    sha256: file.sha256,
    what: `${file.path} of container runtime ${ctx.runtime.name}`,
    hint: `check that the host can reach the server, or report it to the runtime plugin (${ctx.providerPlugins.runtime})`,
    onProgress: ({done, total}) =>
      (task.output = `${file.path}: ${Math.round(done / 1048576)}${total ? `/${Math.round(total / 1048576)}` : ''} MiB`),
  })
}

/** Unpacks one member of a verified archive into <archive>.d (through a temporary directory, so it appears whole). */
async function extractMember(ctx: ClusterContext, file: DownloadedFile, archive: string): Promise<void> {
  const member = file.extract!
  const temp = await mkdtemp(`${archive}.tmp-`)
  try {
    const result = await ctx.run(['tar', '-xf', archive, '-C', temp, '--no-same-owner', member], {allowFailure: true})
    if (result.exitCode !== 0)
      throw new UserError(
        `the archive ${file.url} of container runtime ${ctx.runtime.name} has no member ${member}: ${result.stderr.trim().split('\n')[0]}`,
        {hint: `report it to the runtime plugin (${ctx.providerPlugins.runtime})`},
      )
    // Only this member moves into <archive>.d: other members of the same archive may be there already.
    const dest = join(`${archive}.d`, member)
    await mkdir(dirname(dest), {recursive: true, mode: 0o700})
    await rename(join(temp, member), dest)
  } finally {
    await rm(temp, {recursive: true, force: true})
  }
}

const exists = (path: string) => stat(path).then(Boolean, () => false)

async function missingDownloads(ctx: ClusterContext) {
  const downloads = (ctx.runtime.files ?? []).filter(isDownload)
  const present = await Promise.all(downloads.map((f) => exists(cachedContentPath(ctx.cacheDir, f))))
  return downloads.filter((_, i) => !present[i])
}

/** What a runtime file's content is rendered from, for one node. */
export function fileContext(ctx: ClusterContext, node: HostNode): FileContext {
  return {
    cluster: ctx.cluster,
    node: {name: node.name, ip: node.ip, role: node.role},
    kubernetes: ctx.kubernetes,
    host: ctx.host,
    cni: {confDir: CNI_CONF_DIR, binDir: ctx.runtime.cniBinDir},
    image: {name: ctx.image.name, family: ctx.image.family},
  }
}

/**
 * The drop-in every runtime service gets: after the node's cgroup and network set-up, and a bounded
 * stop so that power-off stays quick.
 */
export const SERVICE_DROP_IN = `[Unit]
After=kube-spawn-cgroups.service kube-spawn-network.service
Wants=kube-spawn-cgroups.service

[Service]
TimeoutStopSec=10s
`

/** The drop-in beside SERVICE_DROP_IN that passes the host's proxies on, for image pulls. */
export const PROXY_DROP_IN = '20-kube-spawn-proxy.conf'

/** PROXY_DROP_IN's content for the cluster, from the host's environment; undefined when it names no proxy. */
export function proxyDropIn(env: Record<string, string | undefined>, cluster: Cluster): string | undefined {
  const lines = runtimeProxyEnvironment(env, {
    nodeSubnet: cluster.network.clusterSubnet ?? cluster.network.subnet,
    podCidr: cluster.network.podCidr,
    serviceCidr: cluster.network.serviceCidr,
    nodeNames: cluster.machines.map((m) => m.name),
  })
  return lines && `[Service]\n${lines.join('\n')}\n`
}

/**
 * prepare-node: the runtime's files, its services' drop-ins, and the services enabled. Only create runs
 * it, so the proxies a cluster's runtime uses are those of the create command's environment.
 */
export const installRuntimeFiles: HostStep = {
  title: 'Install the container runtime’s files and enable its services in each node',
  task: async (ctx, task) => {
    const files = ctx.runtime.files ?? []
    const proxy = proxyDropIn(process.env, ctx.cluster)
    await Promise.all(
      ctx.nodes.map(async (node) => {
        for (const file of files) {
          if (isDownload(file)) await node.copyIn(cachedContentPath(ctx.cacheDir, file), file.path, file.mode ?? 0o755)
          else await node.writeFile(file.path, renderFile(file.content, ctx, node, file.path), file.mode ?? 0o644)
        }
        for (const service of ctx.runtime.services) {
          const dropIns = `/etc/systemd/system/${service}.d`
          await node.writeFile(`${dropIns}/10-kube-spawn.conf`, SERVICE_DROP_IN)
          // 0600: a proxy URL may hold a password. Removed without a proxy: a node laid out again keeps no stale one.
          if (proxy) await node.writeFile(`${dropIns}/${PROXY_DROP_IN}`, proxy, 0o600)
          else await node.removeFile(`${dropIns}/${PROXY_DROP_IN}`)
          const unit = await unitPath(node, files, service)
          if (unit) await node.symlink(`/etc/systemd/system/multi-user.target.wants/${service}`, unit)
        }
      }),
    )
    task.title = `Installed ${files.length} file(s) of container runtime ${ctx.runtime.name} and enabled ${ctx.runtime.services.join(', ')} in each node${proxy ? ', with the host’s proxy' : ''}`
  },
}

function renderFile(content: string | ((ctx: FileContext) => string), ctx: ClusterContext, node: HostNode, path: string): string {
  if (typeof content === 'string') return content
  try {
    return content(fileContext(ctx, node))
  } catch (error) {
    throw new UserError(`plugin ${ctx.providerPlugins.runtime} failed to render ${path} for ${node.name}: ${errorMessage(error)}`, {
      hint: 'fix or uninstall that plugin (kube-spawn plugins)',
      cause: error,
    })
  }
}

/** The unit file of a service: one the runtime ships, or one the image's packages installed. */
async function unitPath(node: HostNode, files: RuntimeFile[], service: string): Promise<string | undefined> {
  const shipped = files.find((f) => f.path.endsWith(`/${service}`) && f.path.includes('/systemd/'))
  if (shipped) return shipped.path
  for (const dir of ['/etc/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system']) {
    if ((await node.readFile(`${dir}/${service}`)) !== undefined) return `${dir}/${service}`
  }
  return undefined
}

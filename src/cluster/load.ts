/**
 * load image-archive and load image: images into the running nodes through the runtime's own import
 * command, the way the offline bundle's images get there, so that pods can run them with
 * imagePullPolicy: Never.
 */
import {open, rm, stat} from 'node:fs/promises'
import {basename, join, resolve} from 'node:path'

import {Listr} from 'listr2'

import type {ClusterContext, Env, HostNode} from '../context/index.js'
import {UserError} from '../errors.js'
import {leaderPid} from '../node/handle.js'
import {run} from '../util/run.js'
import {buildContext} from './context.js'

/** Where archives wait in a node while its runtime imports them. */
const NODE_LOAD_DIR = '/var/tmp/kube-spawn-load'

export interface LoadResult {
  nodes: string[]
  archives: string[]
  warnings: string[]
}

/** Every file is a tar archive (docker-archive or OCI): checked before any node is touched. */
export async function checkArchives(files: string[]): Promise<string[]> {
  const paths = files.map((f) => resolve(f))
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined)
    if (!info) throw new UserError(`no such file: ${path}`, {hint: 'give the path of an image archive, e.g. one made by docker save'})
    if (!info.isFile())
      throw new UserError(`${path} is not a file`, {
        hint: 'give the path of an image archive (docker save, podman save, ctr images export)',
      })
    if (!(await isTar(path)))
      throw new UserError(`${path} is not an image archive (not a tar file)`, {
        hint: 'give a docker-archive or OCI archive, e.g. from docker save IMAGE -o FILE (a compressed archive must be decompressed first)',
      })
  }
  return paths
}

/** POSIX tar: "ustar" at offset 257 of the first header. */
async function isTar(path: string): Promise<boolean> {
  const file = await open(path, 'r')
  try {
    const {bytesRead, buffer} = await file.read(Buffer.alloc(265), 0, 265, 0)
    return bytesRead === 265 && buffer.toString('latin1', 257, 262) === 'ustar'
  } finally {
    await file.close()
  }
}

/** The nodes to load into: all, or those named (machine names, or their short form cp, w1, …). */
export function selectNodes<T extends {name: string}>(nodes: T[], cluster: string, names: string[] | undefined): T[] {
  if (!names || names.length === 0) return nodes
  const prefix = `ks-${cluster}-`
  return names.map((name) => {
    const node = nodes.find((n) => n.name === name || n.name === `${prefix}${name}`)
    if (!node)
      throw new UserError(`cluster "${cluster}" has no node "${name}"`, {hint: `its nodes: ${nodes.map((n) => n.name).join(', ')}`})
    return node
  })
}

export async function loadImageArchives(env: Env, name: string, files: string[], options: {nodes?: string[]} = {}): Promise<LoadResult> {
  const archives = await checkArchives(files)
  const cluster = await env.root.load(name)
  const ctx = await buildContext(env, cluster)
  const nodes = selectNodes(ctx.nodes, name, options.nodes)
  const stopped = []
  for (const node of nodes) if ((await leaderPid(ctx.clusterDir, node.name)) === undefined) stopped.push(node.name)
  if (stopped.length > 0)
    throw new UserError(`cluster "${name}" has nodes that do not run: ${stopped.join(', ')}`, {
      hint: `start it first: kube-spawn start -c ${name}`,
    })
  if (ctx.runtime.imageImportCommand.length === 0)
    throw new UserError(`container runtime ${ctx.runtime.name} has no image import command`, {
      hint: 'install its plugin again (kube-spawn providers)',
    })
  await new Listr(
    nodes.map((node) => ({
      title: `Load ${archives.length} archive(s) into ${node.name}`,
      task: (_: unknown, task: {output: string}) => loadInto(ctx, node, archives, task),
    })),
    {concurrent: true, exitOnError: true, renderer: env.renderer, fallbackRenderer: 'simple', registerSignalListeners: false} as never,
  ).run()
  return {nodes: nodes.map((n) => n.name), archives, warnings: ctx.warnings}
}

/** Copies each archive into the node, imports it with the runtime's command, and removes the copy. */
async function loadInto(ctx: ClusterContext, node: HostNode, archives: string[], task: {output: string}): Promise<void> {
  for (const [i, archive] of archives.entries()) {
    const inNode = join(NODE_LOAD_DIR, `${i}-${basename(archive)}`)
    task.output = `${basename(archive)}: copying`
    await node.copyIn(archive, inNode, 0o600)
    try {
      task.output = `${basename(archive)}: importing (${i + 1}/${archives.length})`
      const result = await node.exec([...ctx.runtime.imageImportCommand, inNode], {
        allowFailure: true,
        timeoutMs: 600_000 * ctx.host.timeoutScale,
      })
      if (result.exitCode !== 0)
        throw new UserError(
          `${ctx.runtime.name} in ${node.name} could not import ${archive}: ${lastLine(result.stderr || result.stdout)}`,
          {
            hint: 'check that it is a docker-archive or OCI image archive for this machine’s architecture',
            exitCode: 1,
          },
        )
    } finally {
      await node.exec(['rm', '-f', inNode], {allowFailure: true})
    }
  }
}

const lastLine = (text: string) => text.trim().split('\n').at(-1) ?? ''

/** Host tools that can save an image to a docker-archive, in the order they are tried. */
const HOST_SAVERS: Array<{name: string; probe: string[]; save: (refs: string[], file: string) => string[]}> = [
  {name: 'docker', probe: ['docker', 'version'], save: (refs, file) => ['docker', 'image', 'save', '-o', file, ...refs]},
  {
    name: 'podman',
    probe: ['podman', 'version'],
    save: (refs, file) => ['podman', 'save', '--multi-image-archive', '--format', 'docker-archive', '-o', file, ...refs],
  },
  {name: 'containerd', probe: ['ctr', 'version'], save: (refs, file) => ['ctr', 'images', 'export', file, ...refs]},
]

/** load image: saves the images from the host's docker, podman or containerd, then loads the archive. */
export async function loadHostImages(
  env: Env,
  name: string,
  refs: string[],
  options: {nodes?: string[]} = {},
): Promise<LoadResult & {source: string}> {
  await env.root.load(name)
  let saver: (typeof HOST_SAVERS)[number] | undefined
  const silent: string[] = []
  for (const candidate of HOST_SAVERS) {
    const installed = await run(['sh', '-c', 'command -v "$1"', 'sh', candidate.probe[0]], {allowFailure: true})
    if (installed.exitCode !== 0) continue
    const probe = await run(candidate.probe, {allowFailure: true, timeoutMs: 30_000})
    if (probe.exitCode === 0) {
      saver = candidate
      break
    }
    // Installed but not answering (a docker CLI without its daemon, say) is worth naming.
    silent.push(`${candidate.name} is installed, but ${candidate.probe.join(' ')} failed: ${lastLine(probe.stderr || probe.stdout)}`)
  }
  if (!saver)
    throw new UserError(
      `this host has no docker, podman or containerd (ctr) that answers, to take the images from${silent.length > 0 ? ` (${silent.join('; ')})` : ''}`,
      {hint: 'start or install one, or save the images to an archive and run kube-spawn load image-archive FILE'},
    )
  const archive = join(env.root.path, '.load', `images-${process.pid}.tar`)
  await run(['mkdir', '-p', join(env.root.path, '.load')])
  try {
    const saved = await run(saver.save(refs, archive), {allowFailure: true})
    if (saved.exitCode !== 0)
      throw new UserError(`${saver.name} could not save ${refs.join(', ')}: ${lastLine(saved.stderr || saved.stdout)}`, {
        hint: `check the names with ${saver.name === 'containerd' ? 'ctr images ls' : `${saver.name} images`}`,
      })
    const result = await loadImageArchives(env, name, [archive], options)
    return {...result, source: saver.name}
  } finally {
    await rm(archive, {force: true})
  }
}

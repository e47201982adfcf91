import {access, chmod, copyFile, mkdir, readFile, realpath, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import type {KubeSpawnHook, NodeHandle, RuntimeProvider, StageContext} from '@kube-spawn/sdk'

/**
 * Issue 5: "kubectl port-forward needs socat in the node". Who runs socat for a port-forward depends on
 * the runtime behind the kubelet's CRI streaming server:
 *   - containerd before 1.4 (and the kubelet's own dockershim) ran `socat - TCP4:localhost:PORT` in the
 *     pod's network namespace, so a node without socat could not forward ports;
 *   - containerd 1.4 and later dial the port from Go inside the sandbox's network namespace
 *     (containerd/cri#1470; pkg/cri/server/sandbox_portforward_linux.go in 1.6) and never run socat.
 * Debian bookworm's containerd is 1.6, so on kube-spawn's default stack port-forward works without socat
 * (measured: a no-socat node forwards fine). This plugin therefore acts only where it is needed: where
 * the node image lacks socat and the runtime is one that runs it (or `mode = "always"` asks for it).
 *
 * The socat it puts in is the host's (or [plugin-config.workaround-socat] binary) with its whole
 * shared-library closure from ldd, run through that closure's own dynamic loader, so the node's own
 * libraries (another glibc, no OpenSSL) do not matter. The files stay on the host, in the cluster
 * directory, and are bind-mounted read-only into every node at /usr/local/lib/kube-spawn-socat; a small
 * wrapper at /usr/local/bin/socat runs them.
 */
export const PLUGIN = 'workaround-socat'
/** Where the copied socat and its libraries appear in a node (a read-only bind mount). */
export const NODE_LIB_DIR = '/usr/local/lib/kube-spawn-socat'
/** The wrapper the node's PATH finds. */
export const NODE_WRAPPER = '/usr/local/bin/socat'
export const DEFAULT_BINARY = '/usr/bin/socat'
/** Where Debian images have socat; checked in the node's own layer and in the base image. */
export const IMAGE_SOCAT = '/usr/bin/socat'
/** glibc loads these with dlopen (name lookups), so they are not in ldd's list; they must match the copied libc. */
export const GLIBC_DLOPEN_LIBS = ['libnss_files.so.2', 'libnss_dns.so.2', 'libresolv.so.2']

export type Mode = 'auto' | 'always' | 'never'
const MODES: readonly Mode[] = ['auto', 'always', 'never']

export interface SocatOptions {
  /** auto: only where the runtime runs socat; always: wherever the image lacks socat; never: off. */
  mode: Mode
  /** The host binary to put into nodes. */
  binary: string
}

/** [plugin-config.workaround-socat]: mode ("auto", "always", "never") and binary (a host path). */
export function socatOptions(config: Record<string, unknown>): SocatOptions {
  const mode = config.mode ?? 'auto'
  if (typeof mode !== 'string' || !MODES.includes(mode as Mode)) {
    throw new Error(`[plugin-config.${PLUGIN}] mode must be one of ${MODES.map((m) => `"${m}"`).join(', ')}, not ${JSON.stringify(mode)}`)
  }
  const binary = config.binary ?? DEFAULT_BINARY
  if (typeof binary !== 'string' || !binary.startsWith('/')) {
    throw new Error(`[plugin-config.${PLUGIN}] binary must be an absolute host path, not ${JSON.stringify(binary)}`)
  }
  return {mode: mode as Mode, binary}
}

/** What a dynamically linked program needs at run time, from `ldd PROGRAM`. */
export interface LddClosure {
  /** The program is static: it needs nothing. */
  static: boolean
  /** The dynamic loader (the ELF interpreter), e.g. /lib64/ld-linux-x86-64.so.2. */
  loader?: string
  /** Shared libraries: the name the program asks for (the soname) and the file ldd found for it. */
  libraries: {name: string; path: string}[]
}

/** Parses ldd's output. A library that ldd cannot find is an error: the copy would not run. */
export function parseLdd(output: string): LddClosure {
  const closure: LddClosure = {static: false, libraries: []}
  const missing: string[] = []
  for (const raw of output.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    if (/statically linked|not a dynamic executable/.test(line)) {
      closure.static = true
      continue
    }
    let match = /^(\S+) => not found$/.exec(line)
    if (match) {
      missing.push(match[1])
      continue
    }
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"; some ldds print the loader this way too.
    match = /^(\S+) => (\/\S+)(?: \(0x[0-9a-f]+\))?$/.exec(line)
    if (match) {
      if (isLoader(match[1])) closure.loader = match[2]
      else closure.libraries.push({name: match[1], path: match[2]})
      continue
    }
    // "/lib64/ld-linux-x86-64.so.2 (0x...)" is the loader; "linux-vdso.so.1 (0x...)" is the kernel's, not a file.
    match = /^(\/\S+)(?: \(0x[0-9a-f]+\))?$/.exec(line)
    if (match) closure.loader = match[1]
  }
  if (missing.length > 0) throw new Error(`ldd cannot find ${missing.join(', ')}`)
  if (!closure.static && !closure.loader && closure.libraries.length > 0) throw new Error('ldd named no dynamic loader')
  return closure
}

function isLoader(name: string): boolean {
  return name.startsWith('/') && /\/ld[-.]/.test(name)
}

/** The wrapper at /usr/local/bin/socat. `argv0` (glibc 2.33+) keeps socat's own name in its messages. */
export function wrapperScript(closure: LddClosure, {argv0 = false}: {argv0?: boolean} = {}): string {
  const head = `#!/bin/sh
# Put here by kube-spawn's ${PLUGIN} plugin: the host's socat with its own shared libraries
# (bind-mounted read-only at ${NODE_LIB_DIR}), so that it runs whatever this node's libraries are.
dir=${NODE_LIB_DIR}
`
  if (closure.static || !closure.loader) return `${head}exec "$dir/socat" "$@"\n`
  const name = argv0 ? ' --argv0 socat' : ''
  return `${head}exec "$dir/lib/${basename(closure.loader)}" --library-path "$dir/lib"${name} "$dir/socat" "$@"\n`
}

/** The installed version of a Debian package, from the text of /var/lib/dpkg/status. */
export function dpkgVersion(status: string, pkg: string): string | undefined {
  for (const stanza of status.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(stanza)?.[1]?.trim()
    if (field('Package') !== pkg) continue
    if (!/ installed$/.test(field('Status') ?? '')) continue
    return field('Version')
  }
  return undefined
}

/** "1.6.20~ds1-1+deb12u3" → {release: "1.6.20", major: 1, minor: 6}; an epoch ("2:1.4.3-1") is dropped. */
export function upstreamRelease(version: string): {release: string; major: number; minor: number} | undefined {
  const match = /^(?:\d+:)?((\d+)\.(\d+)(?:\.\d+)?)/.exec(version)
  return match ? {release: match[1], major: Number(match[2]), minor: Number(match[3])} : undefined
}

export interface RuntimeNeed {
  needed: boolean
  /** Why, for the task title or the skip reason. */
  why: string
}

/**
 * Whether the node's runtime runs socat for kubectl port-forward, from its declaration (needsSocat):
 * always, never, or below a version of one of its packages. An unknown version counts as yes.
 */
export function runtimeNeedsSocat(runtime: string, declared: RuntimeProvider['needsSocat'], version: string | undefined): RuntimeNeed {
  if (declared === false) return {needed: false, why: `the ${runtime} runtime forwards ports without socat`}
  if (declared === true) return {needed: true, why: `the ${runtime} runtime runs socat for kubectl port-forward`}
  const found = version === undefined ? undefined : upstreamRelease(version)
  if (!found) return {needed: true, why: `${declared.package} of unknown version may run socat for kubectl port-forward`}
  const since = upstreamRelease(declared.belowVersion)
  const native = since !== undefined && (found.major > since.major || (found.major === since.major && found.minor >= since.minor))
  return native
    ? {
        needed: false,
        why: `${declared.package} ${found.release} forwards ports itself (without socat since ${declared.belowVersion}), so nothing in the node runs socat`,
      }
    : {needed: true, why: `${declared.package} ${found.release} runs socat for kubectl port-forward`}
}

export interface Decision {
  /** The nodes that get socat; empty when the task is skipped. */
  nodes: NodeHandle[]
  /** The skip reason, or false. */
  skip: string | false
  why: string
}

/** The decision from what was found: pure, so it is tested without nodes. */
export function decide({
  mode,
  lacking,
  need,
}: {
  mode: Mode
  /** The nodes whose root has no socat. */
  lacking: NodeHandle[]
  need: RuntimeNeed
}): Decision {
  if (mode === 'never') return {nodes: [], skip: `turned off ([plugin-config.${PLUGIN}] mode = "never")`, why: ''}
  if (lacking.length === 0) return {nodes: [], skip: 'socat is in the node image', why: ''}
  if (mode === 'auto' && !need.needed) return {nodes: [], skip: need.why, why: need.why}
  return {nodes: lacking, skip: false, why: mode === 'always' ? `[plugin-config.${PLUGIN}] mode = "always"` : need.why}
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  )

/** A file of the node's root: its own layer (or the merged root while it runs) first, then the base image. */
async function nodeHas(ctx: StageContext, node: NodeHandle, path: string): Promise<boolean> {
  if ((await node.readFile(path)) !== undefined) return true
  return ctx.baseImage ? exists(join(ctx.baseImage.rootfs, path)) : false
}

async function nodeText(ctx: StageContext, node: NodeHandle, path: string): Promise<string | undefined> {
  const own = await node.readFile(path)
  if (own !== undefined || !ctx.baseImage) return own
  return readFile(join(ctx.baseImage.rootfs, path), 'utf8').catch(() => undefined)
}

/** The runtime's version as the node's package database records it (Debian-based images). */
async function runtimeVersion(ctx: StageContext): Promise<string | undefined> {
  const node = ctx.nodes[0]
  if (!node) return undefined
  const status = await nodeText(ctx, node, '/var/lib/dpkg/status')
  if (!status) return undefined
  const declared = ctx.runtime.needsSocat
  return typeof declared === 'object' ? dpkgVersion(status, declared.package) : undefined
}

/** Looks at the nodes once per pipeline: the skip check and the task share the answer. */
const decisions = new WeakMap<StageContext, Promise<Decision>>()
export function decision(ctx: StageContext): Promise<Decision> {
  let found = decisions.get(ctx)
  if (!found) {
    found = (async () => {
      const {mode} = socatOptions(ctx.pluginConfig(PLUGIN))
      if (mode === 'never') return decide({mode, lacking: [], need: {needed: false, why: ''}})
      const has = await Promise.all(ctx.nodes.map((node) => nodeHas(ctx, node, IMAGE_SOCAT)))
      const lacking = ctx.nodes.filter((_, i) => !has[i])
      const need =
        lacking.length > 0
          ? runtimeNeedsSocat(ctx.runtime.name, ctx.runtime.needsSocat, await runtimeVersion(ctx))
          : {needed: false, why: ''}
      return decide({mode, lacking, need})
    })()
    decisions.set(ctx, found)
  }
  return found
}

/** Copies the binary, its libraries and its loader into dir (on the host); returns the closure. */
export async function stageSocat(ctx: StageContext, binary: string, dir: string): Promise<{closure: LddClosure; argv0: boolean}> {
  if (!(await exists(binary))) {
    throw new Error(
      `socat is not on the host at ${binary}: apt-get install socat, or set [plugin-config.${PLUGIN}] binary to a socat for the nodes`,
    )
  }
  const ldd = await ctx.run(['ldd', binary], {allowFailure: true})
  let closure: LddClosure
  try {
    closure = parseLdd(`${ldd.stdout}\n${ldd.stderr}`)
  } catch (error) {
    throw new Error(`cannot collect the libraries of ${binary}: ${error instanceof Error ? error.message : String(error)}`, {cause: error})
  }
  if (ldd.exitCode !== 0 && !closure.static) throw new Error(`ldd ${binary} failed: ${(ldd.stderr || ldd.stdout).trim()}`)

  await rm(dir, {recursive: true, force: true})
  await mkdir(join(dir, 'lib'), {recursive: true, mode: 0o755})
  await chmod(dir, 0o755)
  // copyFile follows symlinks, so each name gets the real file's content.
  const put = async (from: string, to: string, mode: number) => {
    await copyFile(await realpath(from), to)
    await chmod(to, mode)
  }
  await put(binary, join(dir, 'socat'), 0o755)
  let argv0 = false
  if (!closure.static && closure.loader) {
    for (const lib of closure.libraries) await put(lib.path, join(dir, 'lib', basename(lib.name)), 0o644)
    await put(closure.loader, join(dir, 'lib', basename(closure.loader)), 0o755)
    const libc = closure.libraries.find((l) => basename(l.name) === 'libc.so.6')
    if (libc) {
      for (const extra of GLIBC_DLOPEN_LIBS) {
        const from = join(dirname(libc.path), extra)
        if (!(await exists(join(dir, 'lib', extra))) && (await exists(from))) await put(from, join(dir, 'lib', extra), 0o644)
      }
    }
    const help = await ctx.run([closure.loader, '--help'], {allowFailure: true})
    argv0 = help.stdout.includes('--argv0')
  }
  return {closure, argv0}
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({
  workarounds: [
    {
      name: 'socat',
      description: "The host's socat (with its libraries) in nodes whose image lacks it, where the runtime runs socat for port-forward",
    },
  ],
})

export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage}) => {
  // pre-boot: the node roots are writable (their own layers) and bind mounts for the boot are still open,
  // and the kubelet, which serves port-forward, has not started.
  if (stage !== 'pre-boot') return []
  return [
    {
      title: 'Give nodes without socat a working one',
      skip: async (ctx) => (await decision(ctx)).skip,
      task: async (ctx, task) => {
        const {nodes, why} = await decision(ctx)
        const {binary} = socatOptions(ctx.pluginConfig(PLUGIN))
        const dir = join(ctx.clusterDir, PLUGIN)
        const {closure, argv0} = await stageSocat(ctx, binary, dir)
        const wrapper = wrapperScript(closure, {argv0})
        for (const node of nodes) {
          node.addBindMount({src: dir, dst: NODE_LIB_DIR, readOnly: true})
          await node.writeFile(NODE_WRAPPER, wrapper, 0o755)
        }
        const libs = closure.static ? 'static' : `${closure.libraries.length} libraries`
        task.title = `Put ${binary} (${libs}) into ${nodes.map((n) => n.name).join(', ')}: ${why}`
      },
    },
  ]
}

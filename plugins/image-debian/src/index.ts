/**
 * Debian images, as a declaration: the host caches the root by key, calls build when it is missing,
 * and checks the result (docs/plugins.md#images).
 */
import {createHash} from 'node:crypto'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {type ImageBuildContext, type ImageContext, type ImageProvider, type KubeSpawnHook, userError} from '@kube-spawn/sdk'

/** Bump when the build steps below change, so that old cache entries are not reused. */
export const BUILD_VERSION = '1'
export const DEFAULT_SUITE = 'bookworm'
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian'

/** What every node needs whatever its runtime. */
export const BASE_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'iproute2',
  'iptables',
  'conntrack',
  'ethtool',
  'ebtables',
  'kmod',
  'socat',
  'ca-certificates',
  'util-linux',
  'mount',
  'procps',
  'iputils-ping',
]

/**
 * The systemd each suite ships. systemd 256 and later refuse to boot on cgroup v1, also inside a node,
 * so those suites need a cgroup v2 host. Suites not listed (codenames to come) are not checked.
 */
export const SUITE_SYSTEMD: Record<string, number> = {
  bullseye: 247,
  bookworm: 252,
  trixie: 257,
  forky: 258,
  testing: 257,
  sid: 258,
  unstable: 258,
}
export const FIRST_SYSTEMD_WITHOUT_CGROUP_V1 = 256

export interface DebianOptions {
  suite: string
  mirror: string
  packages: string[]
}

/** [plugin-config.image-debian]: suite, mirror, extra-packages, exclude-packages. */
export function debianOptions(ctx: Pick<ImageContext, 'pluginConfig'>, runtimePackages: string[]): DebianOptions {
  const config = ctx.pluginConfig('image-debian')
  const bad = (message: string) =>
    userError(`[plugin-config.image-debian] ${message}`, {hint: 'fix the definition (docs/configuration.md)'})
  // "release" is the key's old name, still read so that clusters created with it keep working.
  if (config.release !== undefined && config.suite !== undefined && config.release !== config.suite)
    throw bad(
      `suite = ${JSON.stringify(config.suite)} and release = ${JSON.stringify(config.release)} disagree: release is the old name of suite, drop it`,
    )
  const suite = config.suite ?? config.release
  if (suite !== undefined && (typeof suite !== 'string' || !/^[a-z][a-z0-9-]*$/.test(suite)))
    throw bad(`suite must be a Debian suite name such as "trixie", not ${JSON.stringify(suite)}`)
  const list = (key: string) => (Array.isArray(config[key]) ? (config[key] as unknown[]).map(String) : [])
  const exclude = new Set(list('exclude-packages'))
  return {
    suite: typeof suite === 'string' ? suite : DEFAULT_SUITE,
    mirror: typeof config.mirror === 'string' ? config.mirror : (process.env.KUBE_SPAWN_DEBIAN_MIRROR ?? DEFAULT_MIRROR),
    packages: [...new Set([...BASE_PACKAGES, ...runtimePackages, ...list('extra-packages')])].filter((p) => !exclude.has(p)).sort(),
  }
}

/** The cache key: suite, package set and build version. The mirror does not change what is built. */
export function imageKey(options: DebianOptions): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([options.suite, options.packages, BUILD_VERSION]))
    .digest('hex')
  return `debian-${options.suite}-${digest.slice(0, 16)}`
}

/**
 * Builds the root with debootstrap. The runtime's packages come from the suite, or, where the runtime
 * names apt sources, from those, installed with apt-get in a chroot after debootstrap.
 */
async function build(ctx: ImageBuildContext, options: DebianOptions): Promise<void> {
  const fromSources = new Set(ctx.packages.aptSources ? ctx.packages.names : [])
  const include = options.packages.filter((p) => !fromSources.has(p))
  ctx.output(`debootstrap ${options.suite} from ${options.mirror}`)
  await ctx.run(['debootstrap', '--variant=minbase', `--include=${include.join(',')}`, options.suite, ctx.rootfs, options.mirror], {
    timeoutMs: 30 * 60_000,
  })
  if (fromSources.size > 0) await installFromSources(ctx, [...fromSources])
  await rm(join(ctx.rootfs, 'var/lib/dbus/machine-id'), {force: true})
  await rm(join(ctx.rootfs, 'var/cache/apt/archives'), {recursive: true, force: true})
  await rm(join(ctx.rootfs, 'var/lib/apt/lists'), {recursive: true, force: true})
  await mkdir(join(ctx.rootfs, 'var/cache/apt/archives/partial'), {recursive: true})
  await mkdir(join(ctx.rootfs, 'var/lib/apt/lists/partial'), {recursive: true})
}

/** The runtime's apt sources and keys into the root, then its packages with apt-get; no service starts in the chroot. */
export async function installFromSources(ctx: ImageBuildContext, packages: string[]): Promise<void> {
  const root = ctx.rootfs
  await mkdir(join(root, 'etc/apt/keyrings'), {recursive: true})
  for (const source of ctx.packages.aptSources ?? []) {
    if (!('content' in source.key)) throw new Error(`the key of apt source ${source.name} was not fetched`)
    const keyring = `/etc/apt/keyrings/${source.name}.${source.key.content.includes('BEGIN PGP') ? 'asc' : 'gpg'}`
    await writeFile(join(root, keyring), source.key.content)
    await writeFile(join(root, `etc/apt/sources.list.d/${source.name}.list`), `deb [signed-by=${keyring}] ${source.entry}\n`)
  }
  const policy = join(root, 'usr/sbin/policy-rc.d')
  await writeFile(policy, '#!/bin/sh\nexit 101\n', {mode: 0o755})
  try {
    ctx.output(`apt-get install ${packages.join(' ')} from the runtime's apt sources`)
    await ctx.run(['chroot', root, 'apt-get', 'update'], {timeoutMs: 10 * 60_000})
    await ctx.run(['chroot', root, 'apt-get', 'install', '-y', '--no-install-recommends', ...packages], {
      timeoutMs: 30 * 60_000,
    })
  } finally {
    await rm(policy, {force: true})
  }
}

/** Why a suite's nodes cannot boot on this host, or undefined when they can. */
export function suiteRefusal(suite: string, cgroupVersion: 1 | 2): string | undefined {
  const systemd = SUITE_SYSTEMD[suite]
  if (cgroupVersion === 2 || systemd === undefined || systemd < FIRST_SYSTEMD_WITHOUT_CGROUP_V1) return undefined
  return `Debian ${suite} nodes run systemd ${systemd}, and systemd ${FIRST_SYSTEMD_WITHOUT_CGROUP_V1} and later need a cgroup v2 host: boot this host with systemd.unified_cgroup_hierarchy=1, or use suite = "bookworm"`
}

const optionsFor = (ctx: ImageContext) => debianOptions(ctx, ctx.runtime.packages.debian?.names ?? [])

export const debian: ImageProvider = {
  name: 'debian',
  description:
    'Debian (bookworm by default, or the suite in [plugin-config.image-debian]) built with debootstrap, cached by suite and package set',
  family: 'debian',
  key: (ctx) => imageKey(optionsFor(ctx)),
  refuse: (ctx) => suiteRefusal(optionsFor(ctx).suite, ctx.host.cgroupVersion),
  hostCommands: ['debootstrap'],
  build: (ctx) => build(ctx, debianOptions(ctx, ctx.packages.names)),
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({images: [debian]})

/** What is truly this plugin's own: a warning about the old name of a setting. */
export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage, ctx}) =>
  stage === 'preflight' && ctx.image.name === debian.name && 'release' in ctx.pluginConfig('image-debian')
    ? [
        {
          title: 'Warn about [plugin-config.image-debian] release',
          task: (c) => c.warn('[plugin-config.image-debian] release is the old name of suite: write suite = "…" instead'),
        },
      ]
    : []

/**
 * kube-spawn-plugin-__NAME__: a base image for kube-spawn's nodes, as a declaration. The host caches
 * the root filesystem by key, calls build when the cache has no root for the key, and checks the result.
 *
 * As generated, the image "__NAME__" is a minimal Debian built with debootstrap, with what every node
 * needs plus the runtime's packages. Change the suite, the packages or the whole build to your image's.
 * Use it in a cluster definition (kspawn.toml) with:
 *
 *     image = "__NAME__"
 *
 *     [plugin-config.__NAME__]
 *     suite = "bookworm"                        # the Debian suite (default: bookworm)
 *     mirror = "http://deb.debian.org/debian"   # where debootstrap downloads from
 */
import {createHash} from 'node:crypto'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'

import {type ImageBuildContext, type ImageContext, type ImageProvider, type KubeSpawnHook, readPluginConfig} from '@kube-spawn/sdk'

/** The image's name: what image in kspawn.toml selects. It also keys its [plugin-config.__NAME__] table. */
export const NAME = '__NAME__'

/** Bump when the build below changes, so that roots built the old way are not reused. */
export const BUILD_VERSION = '1'
export const DEFAULT_SUITE = 'bookworm'
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian'

/** What every node needs whatever its runtime: systemd as init, networking and kubeadm's preflight tools. */
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

export interface Settings {
  suite: string
  mirror: string
}

/** [plugin-config.__NAME__]: suite and mirror. A value of the wrong type is a one-line error naming the key. */
export function settings(ctx: Pick<ImageContext, 'pluginConfig'>): Settings {
  const config = readPluginConfig(ctx, NAME)
  return {suite: config.string('suite', DEFAULT_SUITE), mirror: config.string('mirror', DEFAULT_MIRROR)}
}

/** The image's packages: the base set and the runtime's packages for the debian family, sorted. */
export function packagesFor(runtimePackages: string[]): string[] {
  return [...new Set([...BASE_PACKAGES, ...runtimePackages])].sort()
}

/** The cache key: suite, packages and build version. The mirror does not change what is built. */
export function imageKey(suite: string, packages: string[]): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([suite, packages, BUILD_VERSION]))
    .digest('hex')
  return `${NAME}-${suite}-${digest.slice(0, 16)}`
}

/** Builds the root into ctx.rootfs (empty when called) with debootstrap. */
async function build(ctx: ImageBuildContext): Promise<void> {
  const {suite, mirror} = settings(ctx)
  const packages = packagesFor(ctx.packages.names)
  ctx.output(`debootstrap ${suite} from ${mirror}`)
  await ctx.run(['debootstrap', '--variant=minbase', `--include=${packages.join(',')}`, suite, ctx.rootfs, mirror], {
    timeoutMs: 30 * 60_000 * ctx.host.timeoutScale,
  })
  // Every node gets a machine ID of its own at boot: none may be baked into the shared root.
  await rm(join(ctx.rootfs, 'var/lib/dbus/machine-id'), {force: true})
}

export const image: ImageProvider = {
  name: NAME,
  description: `Debian built with debootstrap by kube-spawn-plugin-${NAME}`,
  // The family picks the runtime's packages: runtime.packages.debian.
  family: 'debian',
  key: (ctx) => imageKey(settings(ctx).suite, packagesFor(ctx.runtime.packages.debian?.names ?? [])),
  // Runs in --dry-run too: only reads the context.
  refuse: (ctx) =>
    ctx.runtime.packages.debian?.aptSources
      ? `runtime ${ctx.runtime.name} installs packages from apt sources of its own, which image ${NAME} does not add`
      : undefined,
  hostCommands: ['debootstrap'],
  build,
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({images: [image]})

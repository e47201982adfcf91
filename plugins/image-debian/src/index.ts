import {createHash} from 'node:crypto'
import {mkdir, readdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {KubeSpawnHook, StageContext} from 'kube-spawn/sdk'

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
export function debianOptions(ctx: Pick<StageContext, 'pluginConfig' | 'runtime'>): DebianOptions {
  const config = ctx.pluginConfig('image-debian')
  const bad = (message: string) =>
    Object.assign(new Error(`[plugin-config.image-debian] ${message}`), {hint: 'fix the definition (docs/configuration.md)'})
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
    packages: [...new Set([...BASE_PACKAGES, ...ctx.runtime.packages, ...list('extra-packages')])].filter((p) => !exclude.has(p)).sort(),
  }
}

/** The cache key: suite, package set and build version. The mirror does not change what is built. */
export function imageKey(options: DebianOptions): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([options.suite, options.packages, BUILD_VERSION]))
    .digest('hex')
  return `debian-${options.suite}-${digest.slice(0, 16)}`
}

export function imageDir(cacheDir: string, key: string): string {
  return join(cacheDir, 'images', key)
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  )

/**
 * Builds into a private temporary directory and renames it into place, so the cache never holds a
 * half-built image, and a concurrent build of the same key simply loses the rename race.
 */
async function buildImage(ctx: StageContext, options: DebianOptions, key: string, output: (line: string) => void): Promise<string> {
  const images = join(ctx.cacheDir, 'images')
  const final = imageDir(ctx.cacheDir, key)
  await mkdir(images, {recursive: true, mode: 0o700})
  await removeAbandonedBuilds(images)
  const temp = join(images, `.build-${key}-${process.pid}`)
  await rm(temp, {recursive: true, force: true})
  try {
    output(`debootstrap ${options.suite} from ${options.mirror}`)
    await ctx.run(
      ['debootstrap', '--variant=minbase', `--include=${options.packages.join(',')}`, options.suite, join(temp, 'rootfs'), options.mirror],
      {
        timeoutMs: 30 * 60_000,
      },
    )
    const root = join(temp, 'rootfs')
    // Each node writes its own machine-id; an empty file tells systemd it is not a first boot.
    await writeFile(join(root, 'etc/machine-id'), '')
    await rm(join(root, 'var/lib/dbus/machine-id'), {force: true})
    await rm(join(root, 'var/cache/apt/archives'), {recursive: true, force: true})
    await rm(join(root, 'var/lib/apt/lists'), {recursive: true, force: true})
    await mkdir(join(root, 'var/cache/apt/archives/partial'), {recursive: true})
    await mkdir(join(root, 'var/lib/apt/lists/partial'), {recursive: true})
    await writeFile(join(temp, 'image.json'), `${JSON.stringify({key, ...options, built: new Date().toISOString()}, null, 2)}\n`)
    try {
      await rename(temp, final)
    } catch (error) {
      if (!(await exists(join(final, 'image.json')))) throw error
      await rm(temp, {recursive: true, force: true})
    }
    return final
  } catch (error) {
    await rm(temp, {recursive: true, force: true})
    throw error
  }
}

/** A build interrupted by a kill leaves .build-<key>-<pid>; remove those whose process is gone. */
async function removeAbandonedBuilds(images: string): Promise<void> {
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

/** Why a suite's nodes cannot boot on this host, or undefined when they can. */
export function suiteRefusal(suite: string, cgroupVersion: 1 | 2): string | undefined {
  const systemd = SUITE_SYSTEMD[suite]
  if (cgroupVersion === 2 || systemd === undefined || systemd < FIRST_SYSTEMD_WITHOUT_CGROUP_V1) return undefined
  return `Debian ${suite} nodes run systemd ${systemd}, and systemd ${FIRST_SYSTEMD_WITHOUT_CGROUP_V1} and later need a cgroup v2 host: boot this host with systemd.unified_cgroup_hierarchy=1, or use suite = "bookworm"`
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({
  images: [
    {
      name: 'debian',
      description:
        'Debian (bookworm by default, or the suite in [plugin-config.image-debian]) built with debootstrap, cached by suite and package set',
    },
  ],
})

export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage, ctx}) => {
  if (ctx.image.name !== 'debian') return []
  const options = debianOptions(ctx)
  const key = imageKey(options)
  const cached = () => exists(join(imageDir(ctx.cacheDir, key), 'image.json'))
  if (stage === 'preflight') {
    return [
      {
        title: `Check that the host can boot Debian ${options.suite} nodes`,
        task: async (c, task) => {
          const systemd = SUITE_SYSTEMD[options.suite]
          const refusal = suiteRefusal(options.suite, c.host.cgroupVersion)
          if (refusal) throw new Error(refusal)
          if ('release' in c.pluginConfig('image-debian'))
            c.warn('[plugin-config.image-debian] release is the old name of suite: write suite = "…" instead')
          task.title = `Debian ${options.suite} nodes${systemd ? ` (systemd ${systemd})` : ''} can boot on this cgroup v${c.host.cgroupVersion} host`
        },
      },
      {
        title: 'Check that debootstrap is installed',
        skip: async () => ((await cached()) ? `image ${key} is cached` : false),
        task: async (c) => {
          const found = await c.run(['sh', '-c', 'command -v debootstrap'], {allowFailure: true})
          if (found.exitCode !== 0) throw new Error('debootstrap is not installed: apt-get install debootstrap')
        },
      },
    ]
  }
  if (stage === 'prepare-image') {
    return [
      {
        title: `Build the Debian ${options.suite} base image ${key}`,
        skip: async () => ((await cached()) ? `image ${key} is cached` : false),
        task: async (c, task) => {
          const started = Date.now()
          await buildImage(c, options, key, (line) => (task.output = line))
          task.title = `Built the Debian ${options.suite} base image ${key} in ${Math.round((Date.now() - started) / 1000)} s`
        },
      },
      {
        title: 'Use the cached base image',
        task: async (c) => {
          c.baseImage = {rootfs: join(imageDir(c.cacheDir, key), 'rootfs'), key}
        },
      },
    ]
  }
  return []
}

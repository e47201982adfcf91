import {createHash} from 'node:crypto'
import {mkdir, readdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {KubeSpawnHook, StageContext} from 'kube-spawn/sdk'

/** Bump when the build steps below change, so that old cache entries are not reused. */
export const BUILD_VERSION = '1'
export const DEFAULT_RELEASE = 'bookworm'
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

export interface DebianOptions {
  release: string
  mirror: string
  packages: string[]
}

/** [plugin-config.image-debian]: release, mirror, extra-packages, exclude-packages. */
export function debianOptions(ctx: Pick<StageContext, 'pluginConfig' | 'runtime'>): DebianOptions {
  const config = ctx.pluginConfig('image-debian')
  const list = (key: string) => (Array.isArray(config[key]) ? (config[key] as unknown[]).map(String) : [])
  const exclude = new Set(list('exclude-packages'))
  return {
    release: typeof config.release === 'string' ? config.release : DEFAULT_RELEASE,
    mirror: typeof config.mirror === 'string' ? config.mirror : (process.env.KUBE_SPAWN_DEBIAN_MIRROR ?? DEFAULT_MIRROR),
    packages: [...new Set([...BASE_PACKAGES, ...ctx.runtime.packages, ...list('extra-packages')])].filter((p) => !exclude.has(p)).sort(),
  }
}

/** The cache key: release, package set and build version. The mirror does not change what is built. */
export function imageKey(options: DebianOptions): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([options.release, options.packages, BUILD_VERSION]))
    .digest('hex')
  return `debian-${options.release}-${digest.slice(0, 16)}`
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
    output(`debootstrap ${options.release} from ${options.mirror}`)
    await ctx.run(
      [
        'debootstrap',
        '--variant=minbase',
        `--include=${options.packages.join(',')}`,
        options.release,
        join(temp, 'rootfs'),
        options.mirror,
      ],
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

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({
  images: [{name: 'debian', description: 'Debian (bookworm by default) built with debootstrap, cached by release and package set'}],
})

export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage, ctx}) => {
  if (ctx.image.name !== 'debian') return []
  const options = debianOptions(ctx)
  const key = imageKey(options)
  const cached = () => exists(join(imageDir(ctx.cacheDir, key), 'image.json'))
  if (stage === 'preflight') {
    return [
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
        title: `Build the Debian ${options.release} base image ${key}`,
        skip: async () => ((await cached()) ? `image ${key} is cached` : false),
        task: async (c, task) => {
          const started = Date.now()
          await buildImage(c, options, key, (line) => (task.output = line))
          task.title = `Built the Debian ${options.release} base image ${key} in ${Math.round((Date.now() - started) / 1000)} s`
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

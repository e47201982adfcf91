import {readFile} from 'node:fs/promises'

import {run} from '../util/run.js'
import {WaitTimeout, waitFor} from '../util/wait.js'
import type {nodePaths} from './layout.js'

/** The node's merged root: its own layer over the base image. */
export async function mountOverlay(base: string, paths: ReturnType<typeof nodePaths>): Promise<void> {
  if (await isMounted(paths.rootfs)) return
  await run(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${paths.upper},workdir=${paths.work}`, paths.rootfs])
}

/** Unmounts, retrying while the mount is busy, and lazily as a last resort. */
export async function unmount(path: string): Promise<void> {
  const unmounted = await waitFor(
    async () => {
      if (await isMounted(path)) await run(['umount', path], {allowFailure: true})
      return !(await isMounted(path)) || undefined
    },
    {timeout: 2000, interval: 100, describe: `${path} to unmount`},
  ).catch((error: unknown) => (error instanceof WaitTimeout ? false : Promise.reject(error)))
  if (!unmounted) await run(['umount', '-l', path], {allowFailure: true})
}

export async function isMounted(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8')
  return mounts.split('\n').some((line) => line.split(' ')[1] === path)
}

import {readFile} from 'node:fs/promises'
import {setTimeout as sleep} from 'node:timers/promises'

import {run} from '../util/run.js'
import type {nodePaths} from './layout.js'

/** The node's merged root: its own layer over the base image. */
export async function mountOverlay(base: string, paths: ReturnType<typeof nodePaths>): Promise<void> {
  if (await isMounted(paths.rootfs)) return
  await run(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${paths.upper},workdir=${paths.work}`, paths.rootfs])
}

/** Unmounts, retrying while the mount is busy, and lazily as a last resort. */
export async function unmount(path: string): Promise<void> {
  for (let attempt = 0; attempt < 20 && (await isMounted(path)); attempt++) {
    const result = await run(['umount', path], {allowFailure: true})
    if (result.exitCode !== 0) await sleep(100)
  }
  if (await isMounted(path)) await run(['umount', '-l', path], {allowFailure: true})
}

export async function isMounted(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8')
  return mounts.split('\n').some((line) => line.split(' ')[1] === path)
}

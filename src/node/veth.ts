import {readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {ClusterContext} from '../context/index.js'
import {run} from '../util/run.js'
import {nodePaths} from './layout.js'

/**
 * After a crash nspawn leaves the node's host-side veth behind and the next boot fails with "File
 * exists". nspawn shortens long names with a hash, so the name is recorded at boot rather than guessed.
 */
export async function removeStaleVeth(clusterDir: string, machine: string): Promise<void> {
  const file = join(nodePaths(clusterDir, machine).dir, 'veth')
  const veth = (await readFile(file, 'utf8').catch(() => '')).trim()
  if (veth) {
    const shown = await run(['ip', 'link', 'show', veth], {allowFailure: true})
    if (shown.exitCode === 0) await run(['ip', 'link', 'del', veth], {allowFailure: true})
  }
  await rm(file, {force: true})
}

/** The host end of the node's host0: the interface whose index host0's iflink names. */
export async function recordVeth(ctx: ClusterContext, machine: string): Promise<void> {
  const node = ctx.machines.find((n) => n.name === machine)!
  const iflink = (await node.exec(['cat', '/sys/class/net/host0/iflink'], {allowFailure: true})).stdout.trim()
  for (const name of await readdir('/sys/class/net').catch(() => [] as string[])) {
    if ((await readFile(`/sys/class/net/${name}/ifindex`, 'utf8').catch(() => '')).trim() === iflink) {
      await writeFile(join(nodePaths(ctx.clusterDir, machine).dir, 'veth'), `${name}\n`)
      return
    }
  }
}

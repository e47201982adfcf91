import {stat} from 'node:fs/promises'

import type {HostStep} from '../context/index.js'
import {assertHostReady, checkDisk, examineHost} from './preflight.js'

/** preflight: what the host is, and whether clusters can run on it (docs/hosts.md). */
export const checkHost: HostStep = {
  title: 'Check the host',
  task: async (ctx, task) => {
    const examined = await examineHost(ctx.host, {stateRoot: ctx.stateRoot, kubernetesVersion: ctx.kubernetes.version})
    assertHostReady(examined.failures)
    for (const warning of examined.warnings) ctx.warn(warning)
    task.title = `Checked the host: ${examined.description}`
  },
}

/** prepare-image: room for the nodes, and for the base image where it would land. */
export const checkDiskSpace: HostStep = {
  title: 'Check free disk space',
  task: async (ctx) => {
    // The base image may live in a cache on another filesystem; count it only where it would land.
    const cache = await stat(ctx.cacheDir).catch(() => undefined)
    const elsewhere = cache !== undefined && cache.dev !== (await stat(ctx.stateRoot)).dev
    assertHostReady(await checkDisk({stateRoot: ctx.stateRoot, nodes: ctx.cluster.nodes, imageCached: elsewhere}))
  },
}

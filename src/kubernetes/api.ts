/** The cluster's API, through the cluster's own kubectl and admin.conf. */
import {join} from 'node:path'

import type {StageContext} from '@kube-spawn/sdk'
import {run} from '../util/run.js'
import {artifacts} from './binaries.js'

/** kubeadm's admin.conf, copied into the cluster directory after init. */
export const ADMIN_CONF = 'admin.conf'

export interface NodeObject {
  metadata: {name: string}
  spec: {podCIDR?: string}
  status: {conditions?: Array<{type: string; status: string; lastHeartbeatTime?: string; reason?: string; message?: string}>}
}

/** kubectl with the cluster's admin.conf; `input` goes to its stdin (for apply -f -). */
export async function kubectl(ctx: StageContext, args: string[], timeoutMs = 20_000, input?: string) {
  return run(
    [
      artifacts(ctx).kubectl,
      `--kubeconfig=${join(ctx.clusterDir, ADMIN_CONF)}`,
      `--request-timeout=${Math.ceil(timeoutMs / 1000)}s`,
      ...args,
    ],
    {
      timeoutMs: timeoutMs + 5000,
      allowFailure: true,
      ...(input === undefined ? {} : {input}),
    },
  )
}

/** The nodes, or undefined while the API server does not answer. */
export async function getNodes(ctx: StageContext): Promise<NodeObject[] | undefined> {
  const result = await kubectl(ctx, ['get', 'nodes', '-o', 'json'])
  if (result.exitCode !== 0) return undefined
  return (JSON.parse(result.stdout) as {items: NodeObject[]}).items
}

/** Waiting for every node to be Ready by a heartbeat of this start. */
import {parseDuration} from '../config/definition.js'
import type {ClusterContext, HostStep} from '../context/index.js'
import {HostError} from '../errors.js'
import type {StageTaskWrapper} from '@kube-spawn/sdk'
import {WaitTimeout} from '../util/wait.js'
import {BOOTED_MACHINES} from '../node/boot.js'
import {type NodeObject, watchNodesUntil} from './api.js'

export const waitUntilReady: HostStep = {
  title: 'Wait until every node is Ready',
  task: async (ctx, task) => waitForReady(ctx, ctx.startedAt, task),
}

/** Ready by a heartbeat newer than this start: right after a restart the API still shows the old status. */
async function waitForReady(ctx: ClusterContext, startedAt: number, task: StageTaskWrapper): Promise<void> {
  const timeoutMs = parseDuration(ctx.cluster.runtimeConfig.timeout)! * ctx.host.timeoutScale
  // A node that kept running (one control plane was powered off alone, say) reports its status only every
  // few minutes when nothing changes: only the nodes this command booted need a heartbeat of this start.
  const booted = ctx.shared.get(BOOTED_MACHINES) as Set<string> | undefined
  const fresh = (n: NodeObject) => {
    const ready = n.status.conditions?.find((c) => c.type === 'Ready')
    if (booted && !booted.has(n.metadata.name)) return ready?.status === 'True'
    // Heartbeats have second resolution; allow for the truncation.
    return ready?.status === 'True' && Date.parse(ready.lastHeartbeatTime ?? '') >= startedAt - 1000
  }
  let nodes: NodeObject[] = []
  const readyCount = () => ctx.nodes.filter((n) => nodes.some((o) => o.metadata.name === n.name && fresh(o))).length
  const allReady = await watchNodesUntil(ctx, (current) => (nodes = current) && readyCount() === ctx.nodes.length, {
    timeout: timeoutMs,
    describe: 'every node to be Ready',
    onChange: (current) => {
      nodes = current
      task.output = `${readyCount()}/${ctx.nodes.length} Ready`
    },
  })
    .then(() => true)
    .catch((error: unknown) => (error instanceof WaitTimeout ? false : Promise.reject(error)))
  if (allReady) return
  const reasons = await Promise.all(
    ctx.nodes
      .filter((n) => !nodes.some((o) => o.metadata.name === n.name && fresh(o)))
      .map(async (n) => {
        const condition = nodes.find((o) => o.metadata.name === n.name)?.status.conditions?.find((c) => c.type === 'Ready')
        const kubelet = await n.exec(['systemctl', 'is-active', 'kubelet'], {allowFailure: true}).catch(() => undefined)
        return `${n.name} (${condition ? `${condition.reason}: ${condition.message}` : 'not registered'}; kubelet ${kubelet?.stdout.trim() ?? 'unreachable'})`
      }),
  )
  const waited =
    ctx.host.timeoutScale === 1 ? ctx.cluster.runtimeConfig.timeout : `${ctx.cluster.runtimeConfig.timeout} × ${ctx.host.timeoutScale}`
  throw new HostError(`nodes not Ready after ${waited}: ${reasons.join('; ')}`, {
    hint: 'see kube-spawn exec NODE -- journalctl -u kubelet',
  })
}

/** Waiting for every node to be Ready by a heartbeat of this start. */
import {parseDuration} from '../config/definition.js'
import type {ClusterContext, HostStep} from '../context/index.js'
import {HostError} from '../errors.js'
import type {StageTaskWrapper} from '@kube-spawn/sdk'
import {WaitTimeout} from '../util/wait.js'
import {BOOTED_MACHINES} from '../node/boot.js'
import {type ApiObject, DEFAULT_SERVICE_ACCOUNTS, KUBE_SYSTEM_PODS, NODES, type NodeObject, watchUntil} from './api.js'
import {versionTraits} from './versions.js'

/** runtime-config.timeout, scaled for a slow host: how long each wait of the ready stage may take. */
const readyTimeoutMs = (ctx: ClusterContext) => parseDuration(ctx.cluster.runtimeConfig.timeout)! * ctx.host.timeoutScale

export const waitUntilReady: HostStep = {
  title: 'Wait until every node is Ready',
  task: async (ctx, task) => waitForReady(ctx, ctx.startedAt, task),
}

/** Ready by a heartbeat newer than this start: right after a restart the API still shows the old status. */
async function waitForReady(ctx: ClusterContext, startedAt: number, task: StageTaskWrapper): Promise<void> {
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
  const allReady = await watchUntil<NodeObject>(ctx, NODES, (current) => (nodes = current) && readyCount() === ctx.nodes.length, {
    timeout: readyTimeoutMs(ctx),
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

const STATIC_POD_MANIFESTS = '/etc/kubernetes/manifests'
/** How long a kubelet gets to post its mirror pods before it is restarted (once), which posts them at its first sync. */
const MIRROR_POD_GRACE_MS = 10_000

/**
 * The kubelet posts a static pod's mirror pod at a sync after its Node object exists: at once when it
 * starts with the node registered (kubeadm init restarts it at the end), otherwise at its periodic sync a
 * minute later (a control plane that joined). Until then `kubectl get pods` lacks the control plane.
 * kubeadm names a static pod after its manifest's file.
 */
export const waitForStaticPods: HostStep = {
  title: "Wait until the control planes' static pods show in the API",
  task: async (ctx, task) => {
    const expected = new Map(
      await Promise.all(
        ctx.nodes.map(async (node) => {
          const listing = await node.exec(['ls', STATIC_POD_MANIFESTS], {allowFailure: true})
          const manifests = listing.exitCode === 0 ? listing.stdout.split('\n').filter((f) => f.endsWith('.yaml')) : []
          return [node, manifests.map((file) => `${file.slice(0, -'.yaml'.length)}-${node.name}`)] as const
        }),
      ),
    )
    let missing = [...expected.values()].flat()
    let restarts: Promise<unknown>[] = []
    const restartLagging = setTimeout(() => {
      const lagging = ctx.nodes.filter((node) => expected.get(node)!.some((name) => missing.includes(name)))
      task.output = `restarting the kubelet of ${lagging.map((n) => n.name).join(', ')}`
      restarts = lagging.map((node) => node.exec(['systemctl', 'restart', 'kubelet'], {allowFailure: true}).catch(() => {}))
    }, MIRROR_POD_GRACE_MS * ctx.host.timeoutScale)
    try {
      await watchUntil<ApiObject>(
        ctx,
        KUBE_SYSTEM_PODS,
        (pods) => {
          missing = [...expected.values()].flat().filter((name) => !pods.some((p) => p.metadata.name === name))
          task.output = missing.length > 0 ? `waiting for ${missing.join(', ')}` : 'all shown'
          return missing.length === 0
        },
        {timeout: readyTimeoutMs(ctx), describe: 'the static pods to show in the API'},
      )
    } catch (error) {
      if (!(error instanceof WaitTimeout)) throw error
      throw new HostError(`the static pods ${missing.join(', ')} do not show in the API`, {
        hint: 'see kube-spawn exec NODE -- journalctl -u kubelet',
      })
    } finally {
      clearTimeout(restartLagging)
      await Promise.all(restarts)
    }
  },
}

interface ServiceAccountObject extends ApiObject {
  secrets?: Array<{name: string}>
}

/**
 * A pod can be created only once the controller manager has made its namespace's `default` service account
 * (and, before Kubernetes 1.24, that account's token Secret, which 1.20's admission requires). The joins no
 * longer wait for the controller manager (their kubelet certificates are issued beforehand), so `up` could
 * return before it: `kubectl run` right after failed with "serviceaccount default not found".
 */
export const waitForDefaultServiceAccount: HostStep = {
  title: "Wait until the controller manager has made the default namespace's service account",
  task: async (ctx, task) => {
    const needsToken = versionTraits(ctx.cluster.kubernetesVersion).serviceAccountTokenSecrets
    try {
      await watchUntil<ServiceAccountObject>(
        ctx,
        DEFAULT_SERVICE_ACCOUNTS,
        (accounts) => {
          const account = accounts.find((a) => a.metadata.name === 'default')
          const made = account !== undefined && (!needsToken || (account.secrets?.length ?? 0) > 0)
          task.output = made ? 'made' : account ? 'waiting for its token' : 'waiting for it'
          return made
        },
        {timeout: readyTimeoutMs(ctx), describe: 'the default service account'},
      )
    } catch (error) {
      if (!(error instanceof WaitTimeout)) throw error
      const cp = ctx.nodes.find((n) => n.role === 'control-plane')!
      throw new HostError('the controller manager has not made the default service account, so no pod can be created', {
        hint: `see kube-spawn exec ${cp.name} -- kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system logs kube-controller-manager-${cp.name}`,
      })
    }
  },
}

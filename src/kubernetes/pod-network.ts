/** The pod network: each node's pod CIDR on its bridge CNI, and routes between the nodes and from the host. */
import type {ClusterContext, HostStep} from '../context/index.js'
import {HostError} from '../errors.js'
import {run} from '../util/run.js'
import {WaitTimeout} from '../util/wait.js'
import {getNodes} from './api.js'
import {CNI_CONFLIST_PATH, renderCniConflist} from './cni.js'

/** The controller manager allocates each node's pod CIDR soon after it registers (after a start, once the API is back). */
const POD_CIDR_TIMEOUT_MS = 120_000

export const configurePodNetworkStep: HostStep = {
  title: 'Configure the pod network (bridge CNI and routes between nodes)',
  skip: (ctx) => (ctx.cluster.cni === 'none' ? 'cni = "none": apply your own CNI' : false),
  task: async (ctx) => configurePodNetwork(ctx),
}

/** Each node bridges its pods on its own podCIDR; routes to the other nodes' podCIDRs go via their node IPs. */
async function configurePodNetwork(ctx: ClusterContext): Promise<void> {
  const timeoutMs = POD_CIDR_TIMEOUT_MS * ctx.host.timeoutScale
  let cidrs = new Map<string, string>()
  let apiAnswered = false
  await ctx
    .waitFor(
      async () => {
        const nodes = await getNodes(ctx)
        apiAnswered ||= nodes !== undefined
        cidrs = new Map((nodes ?? []).filter((n) => n.spec.podCIDR).map((n) => [n.metadata.name, n.spec.podCIDR!]))
        return ctx.nodes.every((n) => cidrs.has(n.name)) || undefined
      },
      {timeout: timeoutMs, interval: 1000, describe: 'a pod CIDR for every node'},
    )
    .catch((error: unknown) => (error instanceof WaitTimeout ? undefined : Promise.reject(error)))
  if (!apiAnswered) {
    throw new HostError(`the API server did not answer within ${Math.round(timeoutMs / 1000)} s`, {
      hint: 'see its logs: kube-spawn exec <control-plane> -- journalctl -u kubelet',
    })
  }
  const missing = ctx.nodes.filter((n) => !cidrs.has(n.name)).map((n) => n.name)
  if (missing.length > 0) {
    throw new HostError(`no pod CIDR was allocated to ${missing.join(', ')}`, {
      hint: 'check the controller manager: kube-spawn exec <control-plane> -- journalctl -u kubelet',
    })
  }
  await Promise.all(
    ctx.nodes.map(async (node) => {
      const routes = ctx.nodes.filter((o) => o !== node).map((o) => `${cidrs.get(o.name)} ${o.ip}`)
      await node.writeFile(CNI_CONFLIST_PATH, renderCniConflist(cidrs.get(node.name)!))
      await node.writeFile('/etc/kube-spawn/pod-routes', `${routes.join('\n')}\n`)
      await node.exec(['/usr/lib/kube-spawn/network-setup.sh'])
    }),
  )
  // The host reaches pods through the node that runs them.
  for (const node of ctx.nodes) await run(['ip', 'route', 'replace', cidrs.get(node.name)!, 'via', node.ip])
}

/**
 * The pod network (cni = "bridge"): kube-spawn gives each node a pod range of its own, in node order,
 * so the bridge CNI and the routes between nodes are in place before a kubelet starts, and no node
 * waits for the controller manager to allocate one.
 */
import type {ClusterContext, HostStep} from '../context/index.js'
import {HostError, errorMessage} from '../errors.js'
import {nodePodCidr} from '../net/pod-cidr.js'
import {run} from '../util/run.js'
import {recordNodePodCidrs} from './api.js'
import {CNI_CONFLIST_PATH, renderCniConflist} from './cni.js'

const skipWithoutBridge = (ctx: ClusterContext) => (ctx.cluster.cni === 'none' ? 'cni = "none": apply your own CNI' : false)

/** Each node's pod range by node name. */
export function podCidrs(ctx: Pick<ClusterContext, 'cluster' | 'nodes'>): Map<string, string> {
  return new Map(ctx.nodes.map((node, index) => [node.name, nodePodCidr(ctx.cluster.network.podCidr, index)]))
}

export const configurePodNetworkStep: HostStep = {
  title: 'Configure the pod network (bridge CNI and routes between nodes)',
  skip: skipWithoutBridge,
  task: async (ctx) => {
    const cidrs = podCidrs(ctx)
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
  },
}

/** The ranges kube-spawn assigned, written once into the Node objects, where kubectl and CNIs look for them. */
export const recordPodCidrsStep: HostStep = {
  title: "Record each node's pod range in its Node object",
  skip: skipWithoutBridge,
  task: async (ctx) =>
    recordNodePodCidrs(ctx, podCidrs(ctx)).catch((error: unknown) => {
      throw new HostError(`could not record the nodes' pod ranges: ${errorMessage(error)}`)
    }),
}

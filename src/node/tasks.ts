import {randomBytes} from 'node:crypto'
import {mkdir, rm} from 'node:fs/promises'

import type {Cluster} from '../config/definition.js'
import type {ClusterContext, HostStep} from '../context/index.js'
import {UserError} from '../errors.js'
import {writeClusterRecords} from '../state/cluster-files.js'
import {POWER_OFF_TIMEOUT_MS, bootNodes, endNodes, forgetNodes} from './boot.js'
import {nodePaths} from './layout.js'
import {assertHostPortsFree, ensureNetwork, hostMappings, removeNetwork, removePortRules} from './network.js'
import {nodeFiles, writeNodeFiles} from './node-files.js'
import {roleFiles} from '../cluster/infra.js'

/** prepare-node: the node layers on the base image of prepare-image, and each node's identity. */
export const layOutNodes: HostStep = {
  title: 'Lay out each node: own layer, identity, address and host fixes',
  task: async (ctx) => {
    if (!ctx.baseImage) throw new UserError(`no base image was prepared for image "${ctx.image.name}"`, {hint: 'see the output above'})
    await writeClusterRecords(ctx.clusterDir, ctx.baseImage, ctx.providerPlugins)
    await writeNodeIdentities(ctx)
  },
}

/** Each node gets its own copy-on-write layer and identity. The machine-id is random: derived ones repeat in VMs. */
export async function writeNodeIdentities(ctx: ClusterContext): Promise<void> {
  const hosts = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', ...ctx.machines.map((n) => `${n.ip} ${n.name}`)].join(
    '\n',
  )
  for (const node of ctx.machines) {
    const paths = nodePaths(ctx.clusterDir, node.name)
    // The node dir keeps other users out; the upper dir becomes the node's "/" and must be 0755.
    await mkdir(paths.dir, {recursive: true, mode: 0o700})
    await Promise.all([paths.upper, paths.work, paths.rootfs].map((dir) => mkdir(dir, {recursive: true, mode: 0o755})))
    if ((await node.readFile('/etc/machine-id'))?.trim().length !== 32) {
      await node.writeFile('/etc/machine-id', `${randomBytes(16).toString('hex')}\n`, 0o444)
    }
    await node.writeFile('/etc/hostname', `${node.name}\n`)
    await node.writeFile('/etc/hosts', `${hosts}\n`)
    await writeNodeFiles(node, [...nodeFiles(ctx, node.ip, node.name), ...roleFiles(ctx, node)])
  }
}

/** pre-boot: the cluster's bridge and its iptables rules (isolated, or NAT out). */
export const createBridge: HostStep = {
  title: 'Create the cluster bridge and its firewall rules',
  task: async (ctx, task) => {
    await assertHostPortsFree(ctx.cluster)
    await ensureNetwork(ctx.cluster)
    task.title = `Create the cluster bridge and its firewall rules (${ctx.cluster.network.egress ? 'egress with NAT' : 'isolated'})`
  },
}

/** pre-boot: the [bindmount] entries, cluster-wide and per machine. */
export const addUserMounts: HostStep = {
  title: 'Add the bind mounts from the definition',
  skip: (ctx) => (allUserMounts(ctx.cluster) === 0 ? 'the definition has no [bindmount] entries' : false),
  task: async (ctx) => {
    for (const node of ctx.machines) {
      const own = ctx.cluster.machines.find((m) => m.name === node.name)?.bindmount
      for (const b of [ctx.cluster.bindmount, ...(own ? [own] : [])]) {
        for (const m of b.readOnly) node.addBindMount({...m, readOnly: true})
        for (const m of b.readWrite) node.addBindMount(m)
      }
    }
  },
}

function allUserMounts(cluster: Cluster): number {
  const count = (b: Cluster['bindmount']) => b.readOnly.length + b.readWrite.length
  return count(cluster.bindmount) + cluster.machines.reduce((n, m) => n + count(m.bindmount), 0)
}

export const bootTheNodes: HostStep = {
  title: 'Boot the nodes',
  task: async (ctx, task) => {
    await bootNodes(ctx, task)
  },
}

export const powerOffNodes: HostStep = {
  title: 'Power the nodes off',
  task: async (ctx, task) => endNodes(ctx, POWER_OFF_TIMEOUT_MS, task),
}

export const stopAnyNode: HostStep = {title: 'Stop any running node', task: async (ctx) => endNodes(ctx, 0)}

/** power-off: nothing forwards to a stopped node; the bridge and its other rules stay for the next start. */
export const removePortMappings: HostStep = {
  title: 'Remove the port mappings',
  skip: (ctx) => (hostMappings(ctx.cluster).length === 0 ? 'the definition has no [[port-mapping]] and no registry' : false),
  task: async (ctx) => removePortRules(ctx.cluster),
}

export const removeBridge: HostStep = {
  title: 'Remove the bridge and firewall rules',
  task: async (ctx) => removeNetwork(ctx.cluster.clusterName),
}

export const forgetTheNodes: HostStep = {title: "Remove the nodes' cgroups and registrations", task: async (ctx) => forgetNodes(ctx)}

export const removeClusterDir: HostStep = {
  title: 'Remove the cluster directory',
  task: async (ctx) => {
    await rm(ctx.clusterDir, {recursive: true, force: true})
  },
}

import type {Cluster, Role} from '../config/definition.js'
import {leaderPid} from '../node/handle.js'
import {bridgeName} from '../node/names.js'
import type {StateRoot} from '../state/store.js'

export interface MachineStatus {
  name: string
  ip: string
  role: Role
  running: boolean
}

export interface ClusterStatus {
  name: string
  kubernetesVersion: string
  containerRuntime: string
  image: string
  subnet: string | undefined
  bridge: string
  initialized: boolean
  machines: MachineStatus[]
}

/** The cluster as recorded, with `running` read from the host rather than trusted from the file. */
export async function clusterStatus(root: StateRoot, cluster: Cluster): Promise<ClusterStatus> {
  const dir = root.clusterDir(cluster.clusterName)
  const machines = await Promise.all(
    cluster.machines.map(async (m) => ({name: m.name, ip: m.ip, role: m.role, running: (await leaderPid(dir, m.name)) !== undefined})),
  )
  return {
    name: cluster.clusterName,
    kubernetesVersion: cluster.kubernetesVersion,
    containerRuntime: cluster.containerRuntime,
    image: cluster.image,
    subnet: cluster.network.clusterSubnet,
    bridge: bridgeName(cluster.clusterName),
    initialized: cluster.state.initialized,
    machines,
  }
}

export async function listClusters(root: StateRoot): Promise<ClusterStatus[]> {
  const names = await root.list()
  return Promise.all(names.map(async (name) => clusterStatus(root, await root.load(name))))
}

/** Columns padded to the widest cell. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

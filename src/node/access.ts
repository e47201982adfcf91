import {execa} from 'execa'

import type {Cluster} from '../config/definition.js'
import {UserError} from '../errors.js'
import type {StateRoot} from '../state/store.js'
import {leaderPid, nodeExecPrefix} from './handle.js'

/** Finds a running node of the cluster by its machine name (or its index: 0 is the control plane). */
export async function runningNode(root: StateRoot, cluster: Cluster, node: string): Promise<number> {
  const machine = cluster.machines.find((m) => m.name === node) ?? cluster.machines[Number(node)]
  if (!machine) {
    throw new UserError(`cluster "${cluster.clusterName}" has no node "${node}"`, {
      hint: `nodes: ${cluster.machines.map((m) => m.name).join(', ')}`,
    })
  }
  const pid = await leaderPid(root.clusterDir(cluster.clusterName), machine.name)
  if (pid === undefined)
    throw new UserError(`node ${machine.name} is not running`, {hint: `start it with "kube-spawn start -c ${cluster.clusterName}"`})
  return pid
}

/** Runs a command in the node with the terminal attached; resolves to its exit code. */
export async function execInteractive(pid: number, argv: string[]): Promise<number> {
  const [file, ...args] = [...nodeExecPrefix(pid), ...(process.stdin.isTTY ? ['TERM=' + (process.env.TERM ?? 'xterm')] : []), ...argv]
  const result = await execa(file, args, {stdio: 'inherit', reject: false})
  return result.exitCode ?? 1
}

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

/**
 * Runs a command in the node with the terminal attached; resolves to its exit code. The node's own
 * systemd starts it as a transient unit (systemd-run), so the command lives in the node's cgroup tree
 * and dies with the node on every backend; nsenter alone would leave it in the caller's cgroup.
 */
export async function execInteractive(pid: number, argv: string[]): Promise<number> {
  const [file, ...args] = [...nodeExecPrefix(pid), ...nodeUnitCommand(argv, {tty: Boolean(process.stdin.isTTY && process.stdout.isTTY)})]
  const result = await execa(file, args, {stdio: 'inherit', reject: false})
  return result.exitCode ?? 1
}

/** systemd-run inside the node: waits, passes the exit code through, and removes the unit afterwards. */
export function nodeUnitCommand(argv: string[], {tty}: {tty: boolean}): string[] {
  const environment = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'LANG=C.UTF-8']
  if (tty) environment.push(`TERM=${process.env.TERM ?? 'xterm'}`)
  return [
    'systemd-run',
    '--quiet',
    '--wait',
    '--collect',
    '--service-type=exec',
    tty ? '--pty' : '--pipe',
    '--working-directory=/root',
    ...environment.map((e) => `--setenv=${e}`),
    '--',
    ...argv,
  ]
}

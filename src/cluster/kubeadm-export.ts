/**
 * export kubeadm-config: the configurations a cluster's nodes run, as kubeadm and the kubelet read
 * them, copied out of the nodes, for replaying the cluster with kubeadm on real machines or in Cluster
 * API (docs/kubernetes.md#replaying-a-cluster-elsewhere).
 */
import {mkdir, readdir, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import type {Env, HostNode} from '../context/index.js'
import {UserError} from '../errors.js'
import {INIT_CONFIG, JOIN_CONFIG} from '../kubernetes/kubeadm.js'
import {leaderPid} from '../node/handle.js'
import {buildContext} from './context.js'

/** What each node holds, by the name it is saved under: kubeadm's input and what kubeadm wrote for the kubelet. */
const NODE_FILES: Array<[saveAs: string, path: string]> = [
  ['kubeadm-init.yaml', INIT_CONFIG],
  ['kubeadm-join.yaml', JOIN_CONFIG],
  ['kubelet-config.yaml', '/var/lib/kubelet/config.yaml'],
  ['kubeadm-flags.env', '/var/lib/kubelet/kubeadm-flags.env'],
]

export interface ExportedConfig {
  path: string
  files: string[]
  warnings: string[]
}

async function catInNode(node: HostNode, path: string): Promise<string | undefined> {
  const result = await node.exec(['cat', path], {allowFailure: true})
  // The exec output lost its final newline.
  return result.exitCode === 0 ? `${result.stdout.replace(/\n?$/, '\n')}` : undefined
}

export async function exportKubeadmConfig(env: Env, name: string, dir: string): Promise<ExportedConfig> {
  const cluster = await env.root.load(name)
  if (!cluster.state.initialized)
    throw new UserError(`cluster "${name}" has not been set up by kubeadm yet, so there is no configuration to export`, {
      hint: `start it first: kube-spawn start -c ${name}`,
    })
  const path = resolve(dir)
  const present = await readdir(path).catch(() => [])
  if (present.length > 0)
    throw new UserError(`${path} is not empty`, {hint: 'give a new or empty directory, so that nothing of yours is overwritten'})
  const ctx = await buildContext(env, cluster, {withoutPlugins: true})
  const files: string[] = []
  for (const node of ctx.nodes) {
    // A running node is asked: its /var/lib/kubelet may be a bind mount (workaround-varlib) that its layer lacks.
    const running = (await leaderPid(ctx.clusterDir, node.name)) !== undefined
    for (const [saveAs, nodePath] of NODE_FILES) {
      const content = running ? await catInNode(node, nodePath) : await node.readFile(nodePath)
      if (content === undefined) continue
      await mkdir(join(path, node.name), {recursive: true, mode: 0o700})
      // The init and join configurations hold the bootstrap token.
      await writeFile(join(path, node.name, saveAs), content, {mode: 0o600})
      files.push(join(node.name, saveAs))
    }
  }
  if (!files.some((f) => f.endsWith('kubeadm-init.yaml')))
    throw new UserError(`the control plane of cluster "${name}" holds no ${INIT_CONFIG}`, {
      hint: 'the cluster was set up by an older kube-spawn, or its node was changed by hand',
    })
  return {path, files, warnings: ctx.warnings}
}

/**
 * A cluster's admin kubeconfig: the admin.conf kubeadm init wrote, which the start pipeline copies to
 * <dir>/<cluster>/admin.conf. Its server is the control plane's IP on the cluster bridge, which the
 * host and the nodes reach alike. The internal variant names the control plane by its machine name
 * instead, as kind does: every node's /etc/hosts resolves it and the API server's certificate lists
 * it, so it works from inside any node, and from pods or tools that see the node names but not the IP.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {UserError} from '../errors.js'
import {describeKubeconfig, withServer} from '../kubernetes/kubeconfig.js'
import type {StateRoot} from '../state/store.js'
import {writeFileAtomic} from '../util/fs.js'
import {apiServerHost} from '../node/names.js'

export const ADMIN_CONF_FILE = 'admin.conf'
export const INTERNAL_CONF_FILE = 'admin-internal.conf'

export interface ClusterKubeconfig {
  cluster: string
  /** The file that holds the kubeconfig; absent for --internal --raw, which writes nothing. */
  path?: string
  /** The kubeconfig's current context, as kubeadm named it. */
  context?: string
  server: string
  internal: boolean
  /** The kubeconfig itself (YAML), when asked for. */
  kubeconfig?: string
}

export interface ClusterKubeconfigOptions {
  /** The kubeconfig for inside the nodes, with the control plane's machine name as the server. */
  internal?: boolean
  /** Return the YAML; for --internal, instead of writing admin-internal.conf. */
  raw?: boolean
}

/** Finds (and for --internal, derives) a cluster's admin kubeconfig; a cluster never started has none. */
export async function clusterKubeconfig(
  root: StateRoot,
  name: string,
  {internal = false, raw = false}: ClusterKubeconfigOptions = {},
): Promise<ClusterKubeconfig> {
  const cluster = await root.load(name)
  const dir = root.clusterDir(cluster.clusterName)
  const adminPath = join(dir, ADMIN_CONF_FILE)
  const admin = await readFile(adminPath, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error
    throw new UserError(`cluster "${cluster.clusterName}" was never started, so it has no kubeconfig yet`, {
      hint: `start it with "kube-spawn start -c ${cluster.clusterName}"`,
    })
  })
  const {context, server} = describeKubeconfig(admin, adminPath)
  if (!internal) return {cluster: cluster.clusterName, path: adminPath, context, server, internal, ...(raw ? {kubeconfig: admin} : {})}

  if (!cluster.machines.some((m) => m.role === 'control-plane'))
    throw new UserError(`cluster "${cluster.clusterName}" has no control plane node in ${root.definitionPath(name)}`)
  // The load balancer's name with several control planes: the API server's certificate names it too.
  const internalServer = withHost(server, apiServerHost(cluster).name, adminPath)
  const text = withServer(admin, internalServer, adminPath)
  const result = {cluster: cluster.clusterName, context, server: internalServer, internal}
  if (raw) return {...result, kubeconfig: text}

  const path = join(dir, INTERNAL_CONF_FILE)
  // Rewritten only when admin.conf changed, so repeated calls leave the file (and its mtime) alone.
  if ((await readFile(path, 'utf8').catch(() => undefined)) !== text) await writeFileAtomic(path, text, 0o600)
  return {...result, path}
}

/** The server URL with another host name: https://10.22.0.2:6443 becomes https://ks-dev-cp:6443. */
function withHost(server: string, host: string, source: string): string {
  if (!URL.canParse(server)) throw new UserError(`${source}: the server "${server}" is not a URL`)
  const url = new URL(server)
  url.hostname = host
  return url.href.replace(/\/$/, '')
}

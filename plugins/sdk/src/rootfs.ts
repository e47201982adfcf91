import {lstat, readlink} from 'node:fs/promises'
import {join, posix} from 'node:path'

import type {RuntimeProvider} from './types.js'

/** Commands the host itself runs in every node (systemd, kubeadm's preflight, the pod network). */
export const NODE_COMMANDS = ['sh', 'systemctl', 'mount', 'ip', 'iptables', 'nsenter', 'conntrack', 'ethtool', 'ebtables']
/** The CNI plugins the host's pod network config uses, looked for in the runtime's cniBinDir. */
export const CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap']
/** Where a node's shell looks for commands. */
export const NODE_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
const SYSTEMD_BINARIES = ['/usr/lib/systemd/systemd', '/lib/systemd/systemd']

/**
 * Resolves `path` as the node would see it with `root` as its "/", to a path on the host: symlinks
 * (absolute ones too, such as /var/run -> /run) are followed inside the root, never onto the host. The
 * last component is followed only with followLast, so that a writer replaces a symlink there rather
 * than writing through it. Whether the result exists is not checked.
 */
export async function resolveInRoot(root: string, path: string, {followLast = false} = {}): Promise<string> {
  const parts = posix.normalize(`/${path}`).split('/').filter(Boolean)
  const resolved: string[] = []
  for (let hops = 0, i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (part === '..') {
      resolved.pop()
      continue
    }
    const candidate = join(root, ...resolved, part)
    const follow = followLast || i < parts.length - 1
    const info = follow ? await lstat(candidate).catch(() => undefined) : undefined
    if (info?.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`too many symlinks resolving ${path} in ${root}`)
      const target = await readlink(candidate)
      const rest = parts.slice(i + 1)
      const base = target.startsWith('/') ? [] : resolved
      parts.splice(0, parts.length, ...[...base, ...target.split('/').filter(Boolean), ...rest])
      resolved.length = 0
      i = -1
      continue
    }
    resolved.push(part)
  }
  return join(root, ...resolved)
}

/** Where `path` of the root ends up after every symlink, when something is there. */
async function existingInRoot(root: string, path: string): Promise<string | undefined> {
  const resolved = await resolveInRoot(root, path, {followLast: true}).catch(() => undefined)
  return resolved !== undefined && (await lstat(resolved).catch(() => undefined)) ? resolved : undefined
}

/**
 * What a root filesystem lacks for a runtime, counting the runtime's own files as present, as short phrases ("systemd as /sbin/init", "command
 * containerd", "CNI plugin bridge in /usr/lib/cni"); empty when it has everything
 * (docs/plugins.md#what-a-root-filesystem-must-contain).
 */
export async function missingFromRoot(root: string, runtime: Pick<RuntimeProvider, 'commands' | 'cniBinDir' | 'files'>): Promise<string[]> {
  const missing: string[] = []
  // The runtime's own files (binaries, CNI plugins) are written into every node after the check.
  const provided = new Set((runtime.files ?? []).map((file) => file.path))
  const present = async (path: string) => provided.has(path) || (await existingInRoot(root, path)) !== undefined
  if (!(await present('/etc/os-release'))) missing.push('/etc/os-release')
  const init = await existingInRoot(root, '/sbin/init')
  const systemd = await Promise.all(SYSTEMD_BINARIES.map((p) => existingInRoot(root, p)))
  if (!init || !systemd.includes(init)) missing.push('systemd as /sbin/init')
  for (const command of [...new Set([...NODE_COMMANDS, ...runtime.commands])]) {
    const found = await Promise.all(NODE_PATH.map((dir) => present(`${dir}/${command}`)))
    if (!found.some(Boolean)) missing.push(`command ${command}`)
  }
  for (const plugin of CNI_PLUGINS) {
    if (!(await present(`${runtime.cniBinDir}/${plugin}`))) missing.push(`CNI plugin ${plugin} in ${runtime.cniBinDir}`)
  }
  return missing
}

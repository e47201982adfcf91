import {lstat, readlink} from 'node:fs/promises'
import {posix} from 'node:path'

import type {RuntimeProvider} from './types.js'

/** Commands the host itself runs in every node (systemd, kubeadm's preflight, the pod network). */
export const NODE_COMMANDS = ['sh', 'systemctl', 'mount', 'ip', 'iptables', 'nsenter', 'conntrack', 'ethtool', 'ebtables']
/** The CNI plugins the host's pod network config uses, looked for in the runtime's cniBinDir. */
export const CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap']
/** Where a node's shell looks for commands. */
export const NODE_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
const SYSTEMD_BINARIES = ['/usr/lib/systemd/systemd', '/lib/systemd/systemd']

/** Follows a path inside `root` the way the node would see it: absolute symlinks point into root too. */
export async function resolveInRoot(root: string, path: string, hops = 0): Promise<string | undefined> {
  if (hops > 40) return undefined
  let resolved = '/'
  const parts = path.split('/').filter((p) => p !== '' && p !== '.')
  for (let i = 0; i < parts.length; i++) {
    const next = posix.join(resolved, parts[i])
    const stats = await lstat(posix.join(root, next)).catch(() => undefined)
    if (!stats) return undefined
    if (stats.isSymbolicLink()) {
      const target = await readlink(posix.join(root, next))
      const rest = parts.slice(i + 1).join('/')
      const joined = target.startsWith('/') ? posix.join(target, rest) : posix.join(resolved, target, rest)
      return resolveInRoot(root, joined, hops + 1)
    }
    resolved = next
  }
  return resolved
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
  const present = async (path: string) => provided.has(path) || (await resolveInRoot(root, path)) !== undefined
  if (!(await resolveInRoot(root, '/etc/os-release'))) missing.push('/etc/os-release')
  const init = await resolveInRoot(root, '/sbin/init')
  const systemd = await Promise.all(SYSTEMD_BINARIES.map((p) => resolveInRoot(root, p)))
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

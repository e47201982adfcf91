import {lstat, readlink} from 'node:fs/promises'
import {join, posix} from 'node:path'

/**
 * Resolves `path` as the node would see it with `root` as its "/": symlinks in parent directories
 * (absolute ones too, such as /var/run -> /run) are followed inside the root, never onto the host.
 * The last component is not followed, so that a symlink there is replaced rather than written through.
 */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  const parts = posix.normalize(`/${path}`).split('/').filter(Boolean)
  const resolved: string[] = []
  for (let hops = 0, i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (part === '..') {
      resolved.pop()
      continue
    }
    const candidate = join(root, ...resolved, part)
    const isLast = i === parts.length - 1
    const info = isLast ? undefined : await lstat(candidate).catch(() => undefined)
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

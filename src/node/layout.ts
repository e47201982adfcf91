import {join} from 'node:path'

/** Where one node keeps its data on the host, inside the cluster directory. */
export function nodePaths(clusterDir: string, machine: string) {
  const dir = join(clusterDir, 'nodes', machine)
  return {
    dir,
    /** The node's own copy-on-write layer: everything it changes in its root. */
    upper: join(dir, 'upper'),
    work: join(dir, 'work'),
    /** Where the merged root is mounted while the node runs. */
    rootfs: join(dir, 'rootfs'),
    /** The PID of the node's init (the nspawn child) while it runs. */
    leaderFile: join(dir, 'leader.pid'),
    console: join(dir, 'console.log'),
  }
}

/**
 * What explains a failed start: every node's journals, failed units, containers, static pods' logs,
 * kubeadm's output and console, saved to a directory before anything is torn down. `export logs`
 * saves the same for a running cluster.
 */
import {cp, mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {errorMessage} from '../errors.js'
import {leaderPid} from '../node/handle.js'
import {nodePaths} from '../node/layout.js'
import {run} from '../util/run.js'
import type {ClusterContext, HostNode} from '../context/index.js'

/** Each command may take this long; a hung node must not hold up the error report. */
const COMMAND_TIMEOUT_MS = 30_000
const JOURNAL_LINES = '20000'

/** A directory name that sorts by time and is safe in a path: 2026-12-02T01-23-45Z. */
export function timestampName(date = new Date()): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '-')
}

/** Saves every node's evidence below dest (one directory per node, plus host.txt); returns dest. */
export async function collectLogs(ctx: ClusterContext, dest: string): Promise<string> {
  await mkdir(dest, {recursive: true, mode: 0o700})
  await Promise.all([hostFacts(dest), ...ctx.machines.map((node) => nodeLogs(ctx, node, join(dest, node.name)))])
  return dest
}

async function nodeLogs(ctx: ClusterContext, node: HostNode, dir: string): Promise<void> {
  await mkdir(dir, {recursive: true})
  const paths = nodePaths(ctx.clusterDir, node.name)
  const problems: string[] = []
  const attempt = async (what: string, work: () => Promise<unknown>) => {
    try {
      await work()
    } catch (error) {
      problems.push(`${what}: ${errorMessage(error)}`)
    }
  }
  // Files kube-spawn keeps on the host: the console, and kubeadm's output (see kubernetes/kubeadm.ts).
  for (const name of await readdir(paths.dir).catch(() => [] as string[])) {
    if (name === 'console.log' || /^kubeadm-.*\.log$/.test(name)) await attempt(name, () => cp(join(paths.dir, name), join(dir, name)))
  }
  const running = (await leaderPid(ctx.clusterDir, node.name)) !== undefined
  // A runtime whose plugin is gone has no services to ask for.
  const units = ['kubelet.service', ...ctx.runtime.services]
  if (running) {
    const save = (file: string, argv: string[]) =>
      attempt(file, async () => {
        const result = await node.exec(argv, {allowFailure: true, timeoutMs: COMMAND_TIMEOUT_MS})
        await writeFile(join(dir, file), result.stdout + (result.stderr ? `\n--- stderr ---\n${result.stderr}` : ''))
      })
    await Promise.all([
      ...units.map((unit) => save(`${unit.replace(/\.service$/, '')}.journal.log`, journal(['-u', unit]))),
      save('journal.log', journal([])),
      save('systemctl-failed.txt', ['systemctl', '--failed', '--no-pager', '--all']),
      save('containers.txt', ['sh', '-c', CONTAINERS]),
      save('cgroups.txt', ['sh', '-c', CGROUPS]),
      // The static pods' (and every other pod's) container logs, as the kubelet writes them.
      attempt('pods', () => copyIfPresent(join(paths.rootfs, 'var/log/pods'), join(dir, 'pods'))),
    ])
  } else {
    // A stopped node's persistent journal is still in its own layer.
    const journalDir = join(paths.upper, 'var/log/journal')
    await Promise.all(
      [...units.map((unit) => [`${unit.replace(/\.service$/, '')}.journal.log`, ['-u', unit]] as const), ['journal.log', []] as const].map(
        ([file, args]) =>
          attempt(file, async () => {
            const result = await run(['journalctl', `--directory=${journalDir}`, ...journal(args).slice(1)], {
              allowFailure: true,
              timeoutMs: COMMAND_TIMEOUT_MS,
            })
            await writeFile(join(dir, file), result.stdout + result.stderr)
          }),
      ),
    )
    await attempt('pods', () => copyIfPresent(join(paths.upper, 'var/log/pods'), join(dir, 'pods')))
    problems.push('the node was not running: journals read from its layer, no container list')
  }
  if (problems.length > 0) await writeFile(join(dir, 'collection-problems.txt'), `${problems.join('\n')}\n`)
}

function journal(args: readonly string[]): string[] {
  return ['journalctl', '--no-pager', '-o', 'short-precise', '-n', JOURNAL_LINES, ...args]
}

/** crictl when the node has it; ctr otherwise (containerd's own client). */
const CONTAINERS = `if command -v crictl >/dev/null; then
  echo '$ crictl pods'; crictl pods; echo; echo '$ crictl ps -a'; crictl ps -a
else
  echo '$ ctr -n k8s.io containers ls'; ctr -n k8s.io containers ls; echo; echo '$ ctr -n k8s.io tasks ls'; ctr -n k8s.io tasks ls
fi 2>&1`

/** The cgroup layout the node's runtime sees; empty cpuset.cpus or mems stop every container. */
const CGROUPS = `echo '$ cat /proc/self/cgroup'; cat /proc/self/cgroup
echo; echo '$ findmnt -t cgroup,cgroup2'; findmnt -t cgroup,cgroup2
for f in cpuset.cpus cpuset.mems cgroup.clone_children; do
  [ -e /sys/fs/cgroup/cpuset/$f ] && echo "/sys/fs/cgroup/cpuset/$f = $(cat /sys/fs/cgroup/cpuset/$f)"
done 2>&1; true`

async function copyIfPresent(from: string, to: string): Promise<void> {
  if ((await readdir(from).catch(() => undefined)) === undefined) return
  await cp(from, to, {recursive: true, verbatimSymlinks: true})
}

/** The host's side: kernel, cgroup layout and the cpuset root, which every node inherits from. */
async function hostFacts(dest: string): Promise<void> {
  const read = (path: string) =>
    readFile(path, 'utf8').then(
      (t) => t.trim(),
      (e: unknown) => `(${errorMessage(e)})`,
    )
  const uname = await run(['uname', '-a'], {allowFailure: true})
  const lines = [
    `date: ${new Date().toISOString()}`,
    `uname: ${uname.stdout.trim()}`,
    `loadavg: ${await read('/proc/loadavg')}`,
    `cpuset root cgroup.clone_children: ${await read('/sys/fs/cgroup/cpuset/cgroup.clone_children')}`,
    `cpuset root cpus: ${await read('/sys/fs/cgroup/cpuset/cpuset.cpus')}`,
    `cpuset kube-spawn/ cpus: ${await read('/sys/fs/cgroup/cpuset/kube-spawn/cpuset.cpus')}`,
    `cpuset kube-spawn/ mems: ${await read('/sys/fs/cgroup/cpuset/kube-spawn/cpuset.mems')}`,
    '',
    '/proc/self/mounts (cgroup):',
    ...(await read('/proc/self/mounts')).split('\n').filter((l) => / cgroup2? /.test(l)),
  ]
  await writeFile(join(dest, 'host.txt'), `${lines.join('\n')}\n`)
}

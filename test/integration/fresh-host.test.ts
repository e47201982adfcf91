/**
 * The first `up` after a host boots, on a busy machine. After a boot the cpuset hierarchy's root has
 * cgroup.clone_children = 0 and no kube-spawn cgroup; a cpuset cgroup made then has no cpus and mems,
 * and runc cannot start any container in it (docs/nodes.md, "The first up after a boot"). This puts
 * the host back in that state, keeps both cores busy with two CPU-bound processes, and runs a real
 * 2-node `up` from the offline bundle. Only cgroup v1 hosts have a cpuset hierarchy of that kind.
 */
import assert from 'node:assert/strict'
import {type ChildProcess, spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readdir, readFile, rmdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {NO_RESIDUE, SKIP_REASON, seconds, useTestCluster, log} from './helpers.ts'

const CPUSET = '/sys/fs/cgroup/cpuset'
const CLONE_CHILDREN = join(CPUSET, 'cgroup.clone_children')
const KUBE_SPAWN_CPUSET = join(CPUSET, 'kube-spawn')
const STEP_TIMEOUT = 25 * 60_000

const skip = SKIP_REASON || (existsSync(CLONE_CHILDREN) ? false : 'no cgroup v1 cpuset hierarchy on this host')

/** Removes a cgroup tree deepest first; fails (EBUSY) where a process still lives in it. */
async function removeCgroupTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, {withFileTypes: true})) if (entry.isDirectory()) await removeCgroupTree(join(dir, entry.name))
  await rmdir(dir)
}

const read = async (path: string) => (await readFile(path, 'utf8')).trim()

describe('the first up after a boot, on a loaded 2-core host (cgroup v1 cpuset)', {skip}, () => {
  const test = useTestCluster('b', {label: 'fresh', nodes: 2, kubeconfig: true})
  const machines = test.machines
  let originalCloneChildren: string | undefined
  const hogs: ChildProcess[] = []

  before(async () => {
    originalCloneChildren = await read(CLONE_CHILDREN)
    // As after a boot: no kube-spawn cpuset (other clusters' running nodes would make this fail) and clone_children off.
    if (existsSync(KUBE_SPAWN_CPUSET)) await removeCgroupTree(KUBE_SPAWN_CPUSET)
    await writeFile(CLONE_CHILDREN, '0')
    for (let i = 0; i < 2; i++) hogs.push(spawn('sha256sum', ['/dev/zero'], {stdio: 'ignore'}))
  })

  after(async () => {
    for (const hog of hogs) hog.kill('SIGKILL')
    if (originalCloneChildren !== undefined) await writeFile(CLONE_CHILDREN, originalCloneChildren)
  })

  it("up brings every node Ready, and the nodes' cpusets have cpus and mems", {timeout: STEP_TIMEOUT}, async () => {
    assert.equal(await read(CLONE_CHILDREN), '0')
    assert.equal(existsSync(KUBE_SPAWN_CPUSET), false)
    assert.ok(
      hogs.every((h) => h.exitCode === null && h.pid !== undefined),
      'the CPU hogs run',
    )

    const result = await test.cli.ok(['up', '--config', test.config], STEP_TIMEOUT)
    log(`up with both cores busy: ${seconds(result.ms)}; load ${await read('/proc/loadavg')}`)

    const rootCpus = await read(join(CPUSET, 'cpuset.cpus'))
    assert.equal(await read(join(KUBE_SPAWN_CPUSET, 'cpuset.cpus')), rootCpus)
    for (const machine of machines) {
      assert.equal(await read(join(KUBE_SPAWN_CPUSET, machine, 'cpuset.cpus')), rootCpus, machine)
      assert.notEqual(await read(join(KUBE_SPAWN_CPUSET, machine, 'cpuset.mems')), '', machine)
    }
    // kube-spawn fills its own cgroups and leaves the host's setting alone.
    assert.equal(await read(CLONE_CHILDREN), '0')
    const tasks = await test.cli.exec(machines[0], ['ctr', '-n', 'k8s.io', 'tasks', 'ls'])
    assert.ok((tasks.stdout.match(/RUNNING/g) ?? []).length >= 5, `the control plane's containers run:\n${tasks.stdout}${tasks.stderr}`)
  })

  it('destroy leaves nothing behind, the kube-spawn cpuset included', {timeout: STEP_TIMEOUT}, async () => {
    await test.cli.ok(['destroy'])
    assert.deepEqual(await test.residue(), NO_RESIDUE)
    assert.equal(existsSync(KUBE_SPAWN_CPUSET), false)
  })
})

/**
 * Real nodes on this host (standalone backend, no machined): create, boot, stop, boot again and
 * destroy an isolated 3-node cluster, checking the host after each step; then that containerd's data
 * lives in a host directory and survives a restart. Needs root, systemd-nspawn and debootstrap.
 */
import assert from 'node:assert/strict'
import {readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {before, describe, it} from 'node:test'

import {
  SKIP_REASON,
  type StatusJson,
  bridgeAddress,
  iptablesRulesOf,
  linkExists,
  mountsUnder,
  nodeCgroupDirs,
  nspawnProcesses,
  seconds,
  waitFor,
  useTestCluster,
  log,
  CREATE_TIMEOUT,
  STEP_TIMEOUT,
} from './helpers.ts'

describe('a 3-node isolated cluster, standalone backend', {skip: SKIP_REASON}, () => {
  const test = useTestCluster('n', {label: 'nodes', nodes: 3})
  const cluster = test.name
  let machines: string[] = []
  let firstStatus: StatusJson

  it('creates the cluster', {timeout: CREATE_TIMEOUT}, async () => {
    const created = await test.cli.ok(['create', '--config', test.config], CREATE_TIMEOUT)
    log(`create: ${seconds(created.ms)}`)
    const status = await test.cli.status()
    assert.equal(status.machines.length, 3)
    machines = status.machines.map((m) => m.name)
    assert.deepEqual(machines, [`ks-${cluster}-cp`, `ks-${cluster}-w1`, `ks-${cluster}-w2`])
    assert.ok(status.machines.every((m) => !m.running))
  })

  it('boots every node with start --skip-cluster-init', {timeout: STEP_TIMEOUT}, async () => {
    const started = await test.cli.ok(['start', '--skip-cluster-init'], STEP_TIMEOUT)
    log(`start (3 nodes): ${seconds(started.ms)}`)
    firstStatus = await test.cli.status()
    assert.equal(firstStatus.backend, 'standalone')
    assert.ok(
      firstStatus.machines.every((m) => m.running),
      JSON.stringify(firstStatus.machines),
    )
    assert.equal((await nspawnProcesses(machines)).length, 3)
  })

  it('runs systemd and containerd in every node', {timeout: STEP_TIMEOUT}, async () => {
    for (const node of machines) {
      const system = await test.cli.exec(node, ['systemctl', 'is-system-running'])
      assert.match(system.stdout.trim(), /^(running|degraded)$/, `${node}: ${system.stdout}${system.stderr}`)
      const containerd = await test.cli.exec(node, ['systemctl', 'is-active', 'containerd'])
      assert.equal(containerd.stdout.trim(), 'active', `${node}: containerd is ${containerd.stdout}${containerd.stderr}`)
      assert.equal(containerd.code, 0)
    }
  })

  it('lets every node reach every other node and the host bridge', {timeout: STEP_TIMEOUT}, async () => {
    const gateway = bridgeAddress(firstStatus.subnet)
    assert.match(gateway, /^10\.22\.\d+\.1$/)
    for (const from of firstStatus.machines) {
      const targets = [gateway, ...firstStatus.machines.filter((m) => m.name !== from.name).map((m) => m.ip)]
      for (const ip of targets) {
        const ping = await test.cli.exec(from.name, ['ping', '-c', '1', '-W', '2', ip])
        assert.equal(ping.code, 0, `${from.name} -> ${ip}: ${ping.stdout}${ping.stderr}`)
      }
    }
  })

  it(
    "exec runs in the node, as a unit of the node's systemd, and passes its exit code and streams through",
    {timeout: STEP_TIMEOUT},
    async () => {
      for (const node of machines) {
        const hostname = await test.cli.exec(node, ['hostname'])
        assert.equal(hostname.code, 0, hostname.stderr)
        assert.equal(hostname.stdout.trim(), node)
      }
      const seven = await test.cli.exec(machines[1], ['sh', '-c', 'echo out; echo err >&2; exit 7'])
      assert.equal(seven.code, 7)
      assert.equal(seven.stdout, 'out\n')
      assert.equal(seven.stderr, 'err\n')
      // A transient unit of the node's own systemd, not the caller's cgroup (docs/nodes.md).
      const cgroup = await test.cli.exec(machines[1], ['cat', '/proc/self/cgroup'])
      assert.equal(cgroup.code, 0, cgroup.stderr)
      assert.match(cgroup.stdout, /^(\d+:name=systemd|0:):.*\/system\.slice\/run-[ur][0-9a-f]+\.service$/m, cgroup.stdout)
    },
  )

  it('stop leaves no nspawn process of the cluster', {timeout: STEP_TIMEOUT}, async () => {
    const marker = await test.cli.exec(machines[2], ['sh', '-c', `echo ${cluster}-kept > /root/kst-marker && sync`])
    assert.equal(marker.code, 0, marker.stderr)
    const stopped = await test.cli.ok(['stop'], STEP_TIMEOUT)
    log(`stop (3 nodes): ${seconds(stopped.ms)}`)
    assert.deepEqual(await nspawnProcesses(machines), [])
    const status = await test.cli.status()
    assert.ok(
      status.machines.every((m) => !m.running),
      JSON.stringify(status.machines),
    )
    // The nodes' roots are unmounted while they are off.
    assert.deepEqual(await mountsUnder(test.stateRoot), [])
  })

  it('start brings the same nodes back with the same addresses and data', {timeout: STEP_TIMEOUT}, async () => {
    const started = await test.cli.ok(['start', '--skip-cluster-init'], STEP_TIMEOUT)
    log(`start again (3 nodes): ${seconds(started.ms)}`)
    const status = await test.cli.status()
    assert.deepEqual(
      status.machines.map((m) => [m.name, m.ip, m.running]),
      firstStatus.machines.map((m) => [m.name, m.ip, true]),
    )
    assert.equal(status.subnet, firstStatus.subnet)
    const marker = await test.cli.exec(machines[2], ['cat', '/root/kst-marker'])
    assert.equal(marker.code, 0, marker.stderr)
    assert.equal(marker.stdout.trim(), `${cluster}-kept`)
    // The address is live again, not just recorded.
    const ping = await test.cli.exec(machines[0], ['ping', '-c', '1', '-W', '2', status.machines[2].ip])
    assert.equal(ping.code, 0, ping.stdout + ping.stderr)
  })

  it('destroy leaves nothing behind', {timeout: STEP_TIMEOUT}, async () => {
    const bridge = firstStatus.bridge
    assert.ok(await linkExists(bridge), `bridge ${bridge} exists before destroy`)
    assert.notDeepEqual(await iptablesRulesOf(cluster), [], 'the cluster has iptables rules before destroy')
    const destroyed = await test.cli.ok(['destroy'], STEP_TIMEOUT)
    log(`destroy (3 running nodes): ${seconds(destroyed.ms)}`)
    assert.ok(await waitFor(async () => (await nspawnProcesses(machines)).length === 0, 5000), 'no nspawn process is left')
    assert.equal(await linkExists(bridge), false, `bridge ${bridge} is gone`)
    assert.deepEqual(await iptablesRulesOf(cluster), [])
    assert.deepEqual(await mountsUnder(test.stateRoot), [])
    assert.deepEqual(await nodeCgroupDirs(machines), [], "the nodes' cgroup subtrees are removed")
    await assert.rejects(stat(test.cli.clusterDir), {code: 'ENOENT'})
  })
})

describe('containerd data lives on the host (workaround-varlib)', {skip: SKIP_REASON}, () => {
  const test = useTestCluster('v', {
    label: 'varlib',
    nodes: 1,
    // The bundle's image archives, read-only in the node, through the definition's [bindmount].
    extra: (bundle) => `
[bindmount]
read-only = [{src = "${join(bundle, 'images')}", dst = "/mnt/kst-images"}]
`,
  })
  const [machine] = test.machines
  const IMAGE = 'k8s.gcr.io/pause:3.2'
  let hostDir: string
  before(() => {
    hostDir = join(test.stateRoot, test.name, 'nodes', machine, 'var-lib', 'containerd')
  })

  const images = async () => {
    const listed = await test.cli.exec(machine, ['ctr', '-n', 'k8s.io', 'images', 'ls', '-q'])
    assert.equal(listed.code, 0, listed.stderr)
    return listed.stdout.split('\n').map((l) => l.trim())
  }

  it('boots a node whose /var/lib/containerd is a host directory', {timeout: CREATE_TIMEOUT}, async () => {
    const up = await test.cli.ok(['up', '--skip-cluster-init', '--config', test.config], CREATE_TIMEOUT)
    log(`up (1 node): ${seconds(up.ms)}`)
    assert.ok((await stat(hostDir)).isDirectory(), `${hostDir} exists`)
    // containerd keeps its metadata there, not in the node's overlay layer.
    assert.ok(
      await waitFor(async () => (await readdir(hostDir)).includes('io.containerd.metadata.v1.bolt'), 10_000),
      `containerd's metadata is in ${hostDir}: ${(await readdir(hostDir)).join(', ')}`,
    )
    const upperContainerd = join(test.stateRoot, test.name, 'nodes', machine, 'upper', 'var', 'lib', 'containerd')
    const inLayer = await readdir(upperContainerd).catch(() => [] as string[])
    assert.deepEqual(inLayer, [], "nothing of containerd's lands in the node's own layer")
  })

  it('imports an image archive with ctr, into the host directory', {timeout: STEP_TIMEOUT}, async () => {
    const imported = await test.cli.exec(machine, ['ctr', '-n', 'k8s.io', 'images', 'import', '/mnt/kst-images/pause.tar'], 120_000)
    assert.equal(imported.code, 0, imported.stdout + imported.stderr)
    assert.ok((await images()).includes(IMAGE), `${IMAGE} is listed`)
    const blobs = await readdir(join(hostDir, 'io.containerd.content.v1.content', 'blobs', 'sha256'))
    assert.ok(blobs.length >= 2, `the image's blobs are in the host directory (${blobs.length})`)
  })

  it('still lists the image after stop and start', {timeout: STEP_TIMEOUT}, async () => {
    await test.cli.ok(['stop'], STEP_TIMEOUT)
    await test.cli.ok(['start', '--skip-cluster-init'], STEP_TIMEOUT)
    assert.ok((await images()).includes(IMAGE), `${IMAGE} is listed after a restart`)
  })

  it('destroy removes the node and its data', {timeout: STEP_TIMEOUT}, async () => {
    await test.cli.ok(['destroy'], STEP_TIMEOUT)
    assert.deepEqual(await nspawnProcesses([machine]), [])
    assert.deepEqual(await mountsUnder(test.stateRoot), [])
    await assert.rejects(stat(hostDir), {code: 'ENOENT'})
  })
})

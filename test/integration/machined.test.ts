/**
 * The machined backend for real. This host's PID 1 is not systemd, so kube-spawn runs inside an
 * outer nspawn "host" node that runs systemd and systemd-machined (see outer-host.ts); there it
 * detects machined and runs every node as a transient unit registered with machined.
 * The outer host has no network link (--private-network), and the inner cluster is isolated too.
 */
import assert from 'node:assert/strict'
import {stat} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {
  type CliResult,
  type StatusJson,
  Cli,
  SKIP_REASON,
  bridgeAddress,
  cleanupCluster,
  explain,
  fixtureBundle,
  isolatedDefinition,
  makeStateRoot,
  nodeCgroupDirs,
  nspawnProcesses,
  seconds,
  uniqueClusterName,
  waitFor,
  writeDefinition,
  log,
  STEP_TIMEOUT,
} from './helpers.ts'
import {OUTER_STATE, OuterHost, machinectlList, outerRootfs} from './outer-host.ts'

const PREPARE_TIMEOUT = 40 * 60_000

describe('a 2-node isolated cluster on the machined backend (inside an outer systemd host)', {skip: SKIP_REASON}, () => {
  const cluster = uniqueClusterName('m')
  const machines = [`ks-${cluster}-cp`, `ks-${cluster}-w1`]
  let stateRoot: string
  let outer: OuterHost
  let firstStatus: StatusJson

  /** kube-spawn inside the outer host, acting on the inner cluster; fails with its output unless it exits 0. */
  const inner = async (args: string[], timeoutMs = STEP_TIMEOUT): Promise<CliResult> => {
    const result = await outer.kubeSpawn([...args, '--dir', `${OUTER_STATE}/root`, '-c', cluster], timeoutMs)
    if (result.code !== 0) throw new Error(explain(`kube-spawn ${args.join(' ')} (in the outer host)`, result))
    return result
  }
  const innerExec = (node: string, argv: string[]) =>
    outer.kubeSpawn(['exec', '--dir', `${OUTER_STATE}/root`, '-c', cluster, node, '--', ...argv], 60_000)
  const innerStatus = async (): Promise<StatusJson> => JSON.parse((await inner(['status', '--json'], 60_000)).stdout) as StatusJson
  /** The inner cluster's machines that machinectl in the outer host lists. */
  const registered = async () => (await machinectlList(outer)).filter((m) => machines.includes(m))

  before(async () => {
    stateRoot = await makeStateRoot('machined')
    const bundle = await fixtureBundle()
    const definition = isolatedDefinition({name: cluster, nodes: 2, bundle})

    // The outer host has no network, so the node image and the Kubernetes binaries must be in the
    // shared cache before kube-spawn runs inside it: a create on this host puts them there.
    const prep = uniqueClusterName('p')
    const prepRoot = await makeStateRoot('machined-prep')
    try {
      const prepCli = new Cli(prepRoot, prep)
      const config = await writeDefinition(prepRoot, isolatedDefinition({name: prep, nodes: 1, bundle}))
      const created = await prepCli.ok(['create', '--config', config], PREPARE_TIMEOUT)
      log(`node image and Kubernetes binaries cached (${seconds(created.ms)})`)
      await prepCli.ok(['destroy'], STEP_TIMEOUT)
    } finally {
      await cleanupCluster(prep, prepRoot)
    }

    const rootfs = await outerRootfs(log)
    outer = new OuterHost({machine: `ks-${cluster}-host`, stateRoot, rootfs, readOnlyPaths: [bundle]})
    const started = Date.now()
    await outer.boot()
    log(`outer host ${outer.machine} running after ${seconds(Date.now() - started)}`)
    await writeDefinition(outer.innerState, definition)
  })

  after(async () => {
    if (!stateRoot) return
    if (outer?.leader !== undefined) {
      await outer.kubeSpawn(['destroy', '--dir', `${OUTER_STATE}/root`, '-c', cluster], STEP_TIMEOUT).catch(() => undefined)
      await outer.kill()
    }
    // The outer host's cgroups, and the inner nodes' subtrees in the host hierarchies, go here.
    const swept = await cleanupCluster(cluster, stateRoot)
    if (swept.trim()) log(`cleanup after ${cluster}:\n${swept.trim()}`)
  })

  it('kube-spawn in the outer host creates and boots the nodes as machined machines', {timeout: STEP_TIMEOUT}, async () => {
    const created = await inner(['create', '--config', `${OUTER_STATE}/kspawn-test.toml`])
    const started = await inner(['start', '--skip-cluster-init'])
    log(`create: ${seconds(created.ms)}, start (2 nodes, machined): ${seconds(started.ms)}`)
    assert.deepEqual((await registered()).sort(), [...machines].sort())
    firstStatus = await innerStatus()
    assert.equal(firstStatus.backend, 'machined')
    assert.deepEqual(
      firstStatus.machines.map((m) => [m.name, m.running]),
      machines.map((m) => [m, true]),
    )
    // The nodes run as transient units of the outer host's systemd.
    for (const machine of machines) {
      const unit = await outer.run(['systemctl', 'is-active', `kube-spawn-${machine}.service`])
      assert.equal(unit.stdout.trim(), 'active', `${machine}: ${unit.stdout}${unit.stderr}`)
    }
  })

  it('runs systemd and containerd in every node, and the nodes reach each other', {timeout: STEP_TIMEOUT}, async () => {
    const gateway = bridgeAddress(firstStatus.subnet)
    for (const node of firstStatus.machines) {
      const system = await innerExec(node.name, ['systemctl', 'is-system-running'])
      assert.match(system.stdout.trim(), /^(running|degraded)$/, `${node.name}: ${system.stdout}${system.stderr}`)
      const containerd = await innerExec(node.name, ['systemctl', 'is-active', 'containerd'])
      assert.equal(containerd.stdout.trim(), 'active', `${node.name}: ${containerd.stdout}${containerd.stderr}`)
      for (const ip of [gateway, ...firstStatus.machines.filter((m) => m !== node).map((m) => m.ip)]) {
        const ping = await innerExec(node.name, ['ping', '-c', '1', '-W', '2', ip])
        assert.equal(ping.code, 0, `${node.name} -> ${ip}: ${ping.stdout}${ping.stderr}`)
      }
    }
  })

  it('exec returns the hostname and passes the exit code through', {timeout: STEP_TIMEOUT}, async () => {
    const hostname = await innerExec(machines[1], ['hostname'])
    assert.equal(hostname.code, 0, hostname.stderr)
    assert.equal(hostname.stdout.trim(), machines[1])
    assert.equal((await innerExec(machines[0], ['sh', '-c', 'exit 7'])).code, 7)
  })

  it('stop powers the nodes off and machined forgets them', {timeout: STEP_TIMEOUT}, async () => {
    const marker = await innerExec(machines[1], ['sh', '-c', `echo ${cluster}-kept > /root/kst-marker && sync`])
    assert.equal(marker.code, 0, marker.stderr)
    const stopped = await inner(['stop'])
    log(`stop (2 nodes, machined): ${seconds(stopped.ms)}`)
    assert.deepEqual(await registered(), [])
    assert.deepEqual(await nspawnProcesses(machines), [])
    assert.ok((await innerStatus()).machines.every((m) => !m.running))
  })

  it('start brings the same nodes back with their addresses and data', {timeout: STEP_TIMEOUT}, async () => {
    const started = await inner(['start', '--skip-cluster-init'])
    log(`start again (2 nodes, machined): ${seconds(started.ms)}`)
    assert.deepEqual((await registered()).sort(), [...machines].sort())
    const status = await innerStatus()
    assert.deepEqual(
      status.machines.map((m) => [m.name, m.ip, m.running]),
      firstStatus.machines.map((m) => [m.name, m.ip, true]),
    )
    const marker = await innerExec(machines[1], ['cat', '/root/kst-marker'])
    assert.equal(marker.stdout.trim(), `${cluster}-kept`, marker.stderr)
  })

  it('destroy removes the nodes from machined and leaves nothing in the outer host', {timeout: STEP_TIMEOUT}, async () => {
    const destroyed = await inner(['destroy'])
    log(`destroy (2 running nodes, machined): ${seconds(destroyed.ms)}`)
    assert.deepEqual(await registered(), [])
    assert.ok(await waitFor(async () => (await nspawnProcesses(machines)).length === 0, 5000), 'no nspawn process is left')
    const units = await outer.run(['systemctl', 'list-units', '--all', '--plain', '--no-legend', `kube-spawn-ks-${cluster}-*`])
    assert.equal(units.stdout.trim(), '', 'no transient unit is left')
    const bridge = await outer.run(['ip', 'link', 'show', firstStatus.bridge])
    assert.notEqual(bridge.code, 0, `bridge ${firstStatus.bridge} is gone from the outer host`)
    const rules = await outer.run(['iptables-save'])
    assert.doesNotMatch(rules.stdout, new RegExp(`kube-spawn:${cluster}\\b`))
    const mounts = await outer.run(['cat', '/proc/self/mounts'])
    assert.doesNotMatch(mounts.stdout, new RegExp(`${OUTER_STATE}/root/`))
    await assert.rejects(stat(join(outer.innerState, 'root', cluster)), {code: 'ENOENT'})
    // The nodes' cgroup subtrees are in this host's hierarchies, which the outer host sees read-only.
    assert.deepEqual(await nodeCgroupDirs(machines), [], "the nodes' cgroup subtrees are removed")
  })
})

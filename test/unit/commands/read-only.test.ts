/** list, status and the --dry-run plans read the state root and change nothing. */
import assert from 'node:assert/strict'
import {stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, snapshotTree} from '../helpers/cli.ts'

let work: string
let root: string
let cleanup: () => Promise<void>
let snapshot: Record<string, string>

before(async () => {
  ;({work, root, cleanup} = await makeWorkDir())
  snapshot = await snapshotTree(root)
})
after(async () => {
  assert.deepEqual(await snapshotTree(root), snapshot, 'no command changed the state root')
  await cleanup()
})

describe('list', () => {
  it('--json is an array of the clusters', async () => {
    const result = await kubeSpawn(['list', '--dir', root, '--json'])
    assert.equal(result.code, 0, result.stderr)
    const clusters = JSON.parse(result.stdout)
    assert.ok(Array.isArray(clusters))
    assert.deepEqual(
      clusters.map((c: {name: string}) => c.name),
      ['keep'],
    )
    assert.equal(clusters[0].subnet, '10.22.5.0/24')
    assert.equal(clusters[0].machines.length, 2)
  })

  it('prints a table', async () => {
    const result = await kubeSpawn(['list', '--dir', root])
    assert.equal(result.code, 0, result.stderr)
    assert.match(
      result.stdout,
      /^NAME\s+NODES\s+RUNNING\s+VERSION\s+RUNTIME\s+SUBNET\nkeep\s+2\s+0\s+v1\.20\.2\s+containerd\s+10\.22\.5\.0\/24\n$/,
    )
  })

  it('says so when there are no clusters, and creates no state root', async () => {
    const missing = join(work, 'no-such-root')
    const result = await kubeSpawn(['list', '--dir', missing])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, `No clusters in ${missing}.\n`)
    assert.deepEqual(JSON.parse((await kubeSpawn(['list', '--dir', missing, '--json'])).stdout), [])
    await assert.rejects(stat(missing), {code: 'ENOENT'})
  })

  it('reads --dir from KUBE_SPAWN_DIR', async () => {
    const result = await kubeSpawn(['list', '--json'], {env: {KUBE_SPAWN_DIR: root}})
    assert.equal(JSON.parse(result.stdout)[0].name, 'keep')
  })
})

describe('status', () => {
  it('--json has the name and the machines with name, ip, role and running', async () => {
    const result = await kubeSpawn(['status', '--dir', root, '-c', 'keep', '--json'])
    assert.equal(result.code, 0, result.stderr)
    const status = JSON.parse(result.stdout)
    assert.equal(status.name, 'keep')
    assert.deepEqual(status.machines, [
      {name: 'ks-keep-cp', ip: '10.22.5.2', role: 'control-plane', running: false},
      {name: 'ks-keep-w1', ip: '10.22.5.3', role: 'worker', running: false},
    ])
    assert.equal(status.initialized, false)
  })

  it('prints a summary and a table', async () => {
    const result = await kubeSpawn(['status', '--dir', root, '-c', 'keep'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /^Cluster keep: v1\.20\.2, containerd on debian, bridge ks-keep 10\.22\.5\.0\/24/)
    assert.match(result.stdout, /^ks-keep-cp\s+control-plane\s+10\.22\.5\.2\s+no$/m)
    assert.match(result.stdout, /^ks-keep-w1\s+worker\s+10\.22\.5\.3\s+no$/m)
  })
})

describe('create --dry-run', () => {
  it('prints the plan with [owner] labels and changes nothing', async () => {
    const result = await kubeSpawn(['create', '--dir', root, '-c', 'dry', '--nodes', '2', '--dry-run'])
    assert.equal(result.code, 0, result.stderr)
    const lines = result.stdout.split('\n')
    assert.equal(lines[0], 'Plan: create cluster "dry" (2 nodes, containerd, debian, v1.20.2):')
    const stages = lines.filter((l) => /^ {2}\S/.test(l)).map((l) => l.trim())
    assert.deepEqual(stages, ['preflight', 'prepare-image', 'prepare-node'])
    assert.ok(lines.includes('    [kube-spawn] Check the host'), result.stdout)
    // The image and the runtime are declarations the host acts on: their steps name them.
    assert.ok(
      lines.some((l) => /^ {4}\[kube-spawn\] Build the debian base image debian-bookworm-[0-9a-f]{16}/.test(l)),
      result.stdout,
    )
    assert.ok(lines.includes('    [kube-spawn] Check that the container runtime fits the cluster'), result.stdout)
    for (const line of lines.slice(1).filter((l) => l.startsWith('    '))) assert.match(line, /^ {4}\[[a-z0-9-]+\] \S/)
    await assert.rejects(stat(join(root, 'dry')), {code: 'ENOENT'})
  })

  it('reads the definition from --config', async () => {
    await writeFile(join(work, 'dry.toml'), 'cluster-name = "fromfile"\nnodes = 1\nkubernetes-version = "v1.25.3"\n')
    const result = await kubeSpawn(['create', '--dir', root, '--config', join(work, 'dry.toml'), '--dry-run'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /^Plan: create cluster "fromfile" \(1 nodes, containerd, debian, v1\.25\.3\):/)
  })

  it('--json returns the plan and the allocated cluster, with the token redacted', async () => {
    const result = await kubeSpawn(['create', '--dir', root, '-c', 'dry', '--nodes', '2', '--dry-run', '--json'])
    assert.equal(result.code, 0, result.stderr)
    const out = JSON.parse(result.stdout)
    assert.match(out.cluster.token, /^[a-z0-9]{6}\.<redacted>$/)
    assert.notEqual(out.cluster.network.clusterSubnet, '10.22.5.0/24', 'the subnet of "keep" is taken')
    assert.deepEqual(
      out.cluster.machines.map((m: {name: string; role: string}) => `${m.name} ${m.role}`),
      ['ks-dry-cp control-plane', 'ks-dry-w1 worker'],
    )
    assert.ok(out.plan.length > 0)
    for (const line of out.plan) assert.deepEqual(Object.keys(line).slice(0, 3), ['stage', 'owner', 'title'])
  })

  it('does not create a state root that does not exist', async () => {
    const missing = join(work, 'fresh-root')
    const result = await kubeSpawn(['create', '--dir', missing, '--dry-run'])
    assert.equal(result.code, 0, result.stderr)
    await assert.rejects(stat(missing), {code: 'ENOENT'})
  })
})

describe('destroy --dry-run', () => {
  it('prints the plan for an existing cluster and changes nothing', async () => {
    const result = await kubeSpawn(['destroy', '--dir', root, '-c', 'keep', '--dry-run'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /^Plan: destroy cluster "keep":\n {2}remove\n {4}\[kube-spawn\] /)
  })
})

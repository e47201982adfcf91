/**
 * A real create → list --json → status → destroy of an isolated two-node cluster, with Kubernetes from
 * the offline fixture bundle. create runs the host checks and builds (or reuses) the Debian base image
 * in the shared test cache: the first run on a machine takes a few minutes, later ones seconds.
 * Nothing is booted.
 */
import assert from 'node:assert/strict'
import {readdir, readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {SKIP_REASON, TEST_CACHE_DIR, explain, kubeSpawn, useTestCluster, CREATE_TIMEOUT} from './helpers.ts'

describe('create, list, status, destroy', {skip: SKIP_REASON, timeout: CREATE_TIMEOUT + 5 * 60_000}, () => {
  const test = useTestCluster('r', {label: 'round-trip', nodes: 2})

  it('round-trips a two-node cluster', {timeout: CREATE_TIMEOUT}, async () => {
    const {name, cli, config, stateRoot} = test
    const created = await cli.ok(['create', '--config', config], CREATE_TIMEOUT)
    assert.match(created.stdout, new RegExp(`Created cluster "${name}" with 2 nodes on 10\\.\\d+\\.\\d+\\.0/24`))

    const clusterDir = cli.clusterDir
    assert.equal((await stat(join(clusterDir, 'kspawn.toml'))).mode & 0o777, 0o600)
    const toml = await readFile(join(clusterDir, 'kspawn.toml'), 'utf8')
    assert.match(toml, /^cluster-subnet = "10\.\d+\.\d+\.0\/24"$/m)
    assert.equal(toml.match(/^\[\[machines\]\]$/gm)?.length, 2)
    for (const machine of test.machines) {
      for (const dir of ['upper', 'work', 'rootfs'])
        assert.ok((await stat(join(clusterDir, 'nodes', machine, dir))).isDirectory(), `${machine}/${dir}`)
    }
    assert.ok(!(await readdir(stateRoot)).includes('cache'), 'the shared cache (KUBE_SPAWN_ARTIFACT_CACHE_DIR) was used')
    assert.ok((await readdir(join(TEST_CACHE_DIR, 'images'))).some((entry) => entry.startsWith('debian-')))

    const listed = await kubeSpawn(['list', '--dir', stateRoot, '--json'])
    assert.equal(listed.code, 0, explain('list --json', listed))
    const clusters = JSON.parse(listed.stdout)
    assert.ok(Array.isArray(clusters))
    assert.deepEqual(
      clusters.map((c: {name: string}) => c.name),
      [name],
    )

    const status = await cli.status()
    assert.equal(status.name, name)
    assert.deepEqual(
      status.machines.map((m) => [m.name, m.role, m.running]),
      [
        [`ks-${name}-cp`, 'control-plane', false],
        [`ks-${name}-w1`, 'worker', false],
      ],
    )
    for (const m of status.machines) assert.match(m.ip, /^10\.\d+\.\d+\.\d+$/)
    const text = await cli.ok(['status'], 60_000)
    assert.match(text.stdout, new RegExp(`^Cluster ${name}: v1\\.20\\.2, containerd on debian`))

    const again = await cli.run(['create', '--config', config], 60_000)
    assert.equal(again.code, 2, explain('a second create', again))
    assert.match(again.stderr, new RegExp(`^kube-spawn: cluster "${name}" already exists`))

    const destroyed = await cli.ok(['destroy'], 5 * 60_000)
    assert.match(destroyed.stdout, new RegExp(`Cluster "${name}" is destroyed\\.`))
    await assert.rejects(stat(clusterDir), {code: 'ENOENT'})
    assert.deepEqual(JSON.parse((await kubeSpawn(['list', '--dir', stateRoot, '--json'])).stdout), [])
  })
})

/**
 * A real create → list --json → status → destroy in a temporary --dir. create runs the host checks
 * and builds (or reuses) the Debian base image in KUBE_SPAWN_CACHE_DIR, shared across test runs:
 * the first run takes a minute or two, later ones about a second. Nothing is booted.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readdir, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {TEST_CACHE_DIR, kubeSpawn} from '../helpers/cli.ts'

const notRoot = process.getuid?.() !== 0 ? 'needs root (create runs debootstrap and writes node layers)' : false

describe('create, list, status, destroy', {skip: notRoot, timeout: 20 * 60_000}, () => {
  const name = `unit-rt-${process.pid}`
  let root: string
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ks-roundtrip-'))
  })
  after(async () => {
    await kubeSpawn(['destroy', '--dir', root, '-c', name])
    await rm(root, {recursive: true, force: true})
  })

  it('round-trips a two-node cluster', async () => {
    const created = await kubeSpawn(['create', '--dir', root, '-c', name, '--nodes', '2'])
    assert.equal(created.code, 0, created.stderr + created.stdout)
    assert.match(created.stdout, new RegExp(`Created cluster "${name}" with 2 nodes on 10\\.\\d+\\.\\d+\\.0/24`))

    const clusterDir = join(root, name)
    assert.equal((await stat(join(clusterDir, 'kspawn.toml'))).mode & 0o777, 0o600)
    const toml = await readFile(join(clusterDir, 'kspawn.toml'), 'utf8')
    assert.match(toml, /^cluster-subnet = "10\.\d+\.\d+\.0\/24"$/m)
    assert.equal(toml.match(/^\[\[machines\]\]$/gm)?.length, 2)
    for (const machine of [`ks-${name}-cp`, `ks-${name}-w1`]) {
      for (const dir of ['upper', 'work', 'rootfs'])
        assert.ok((await stat(join(clusterDir, 'nodes', machine, dir))).isDirectory(), `${machine}/${dir}`)
    }
    assert.ok(!(await readdir(root)).includes('cache'), 'the shared cache (KUBE_SPAWN_CACHE_DIR) was used')
    assert.ok((await readdir(join(TEST_CACHE_DIR, 'images'))).some((entry) => entry.startsWith('debian-')))

    const listed = await kubeSpawn(['list', '--dir', root, '--json'])
    assert.equal(listed.code, 0, listed.stderr)
    const clusters = JSON.parse(listed.stdout)
    assert.ok(Array.isArray(clusters))
    assert.deepEqual(
      clusters.map((c: {name: string}) => c.name),
      [name],
    )

    const status = await kubeSpawn(['status', '--dir', root, '-c', name, '--json'])
    assert.equal(status.code, 0, status.stderr)
    const s = JSON.parse(status.stdout)
    assert.equal(s.name, name)
    assert.deepEqual(
      s.machines.map((m: {name: string; role: string; running: boolean}) => [m.name, m.role, m.running]),
      [
        [`ks-${name}-cp`, 'control-plane', false],
        [`ks-${name}-w1`, 'worker', false],
      ],
    )
    for (const m of s.machines) assert.match(m.ip, /^10\.\d+\.\d+\.\d+$/)
    const text = await kubeSpawn(['status', '--dir', root, '-c', name])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, new RegExp(`^Cluster ${name}: v1\\.20\\.2, containerd on debian`))

    const again = await kubeSpawn(['create', '--dir', root, '-c', name])
    assert.equal(again.code, 2)
    assert.match(again.stderr, new RegExp(`^kube-spawn: cluster "${name}" already exists`))

    const destroyed = await kubeSpawn(['destroy', '--dir', root, '-c', name])
    assert.equal(destroyed.code, 0, destroyed.stderr + destroyed.stdout)
    assert.match(destroyed.stdout, new RegExp(`Cluster "${name}" is destroyed\\.`))
    await assert.rejects(stat(clusterDir), {code: 'ENOENT'})
    assert.deepEqual(JSON.parse((await kubeSpawn(['list', '--dir', root, '--json'])).stdout), [])
  })
})

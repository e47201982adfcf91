/**
 * The workaround-storage-pool plugin on real btrfs loopback pools (the /var/lib/machines.raw layout):
 *
 *   - a 600 MiB pool is too small for 2 nodes: create grows its image file, the loop device and the
 *     file system before the host's own disk check, prepares the nodes on it, and the nodes boot
 *     (start --skip-cluster-init);
 *   - a pool whose image file sits on a 700 MiB tmpfs cannot grow: create fails with the reason, and
 *     no node directory is made.
 *
 * Every cluster is isolated (egress = false) and takes Kubernetes from the offline bundle. Everything
 * lives below one /tmp/kube-spawn-test-* directory; the after hook destroys the cluster, unmounts,
 * detaches the loop devices and removes it all, even when an assertion failed.
 *
 *   node --test --test-concurrency=1 --test-reporter=spec test/integration/storage-pool.test.ts
 */
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {mkdir, readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {requiredBytes} from '../../plugins/workaround-storage-pool/dist/index.js'
import {
  CLEANUP_SCRIPT,
  Cli,
  type StatusJson,
  cleanupCluster,
  explain,
  fixtureBundle,
  isolatedDefinition,
  makeStateRoot,
  mountsUnder,
  runProgram,
  seconds,
  uniqueClusterName,
  writeDefinition,
  log,
  CREATE_TIMEOUT,
  MINUTE,
} from './helpers.ts'

const MiB = 1024 ** 2
const POOL_SIZE = 600 * MiB

/** Runs a host command and fails the test with its output unless it exits 0. */
async function sh(file: string, args: string[]): Promise<string> {
  const result = await runProgram(file, args, {timeoutMs: 2 * MINUTE})
  if (result.code !== 0) throw new Error(explain(`${file} ${args.join(' ')}`, result))
  return result.stdout.trim()
}

/** Device size and estimated free space, in bytes, from `btrfs filesystem usage -b`. */
async function btrfsUsage(mountPoint: string): Promise<{size: number; free: number}> {
  const text = await sh('btrfs', ['filesystem', 'usage', '-b', mountPoint])
  const field = (name: string) => Number(new RegExp(`^\\s*${name}:\\s+(\\d+)`, 'm').exec(text)?.[1])
  return {size: field('Device size'), free: field('Free \\(estimated\\)')}
}

interface Pool {
  image: string
  mountPoint: string
  loop?: string
  /** A tmpfs the image lives on, when the test made one. */
  hostMount?: string
}

/** A btrfs file system in an image file of POOL_SIZE, on a loop device, mounted at mountPoint. */
async function makePool(pool: Pool): Promise<void> {
  await sh('truncate', ['-s', String(POOL_SIZE), pool.image])
  await sh('mkfs.btrfs', ['-q', pool.image])
  pool.loop = await sh('losetup', ['--find', '--show', pool.image])
  await mkdir(pool.mountPoint, {recursive: true})
  await sh('mount', [pool.loop, pool.mountPoint])
}

/** Unmounts and detaches, tolerating what is already gone (the order matters: the loop holds the tmpfs). */
async function removePool(pool: Pool): Promise<void> {
  const quiet = (file: string, args: string[]) => runProgram(file, args, {timeoutMs: MINUTE}).catch(() => undefined)
  if ((await mountsUnder(pool.mountPoint)).length > 0) {
    const unmounted = await quiet('umount', ['-R', pool.mountPoint])
    if (unmounted?.code !== 0) await quiet('umount', ['-R', '-l', pool.mountPoint])
  }
  if (pool.loop) {
    const backing = await runProgram('losetup', ['--noheadings', '--output', 'BACK-FILE', pool.loop], {timeoutMs: MINUTE})
    if (backing.code === 0 && backing.stdout.trim() === pool.image) await quiet('losetup', ['-d', pool.loop])
  }
  if (pool.hostMount && (await mountsUnder(pool.hostMount)).length > 0) await quiet('umount', [pool.hostMount])
}

describe('workaround-storage-pool: a btrfs loopback state root', {skip: process.getuid?.() !== 0 ? 'needs root' : false}, () => {
  const growing = uniqueClusterName('g')
  const full = uniqueClusterName('f')
  let work = ''
  let bundle = ''
  const pools: Pool[] = []
  const created: Array<{name: string; stateRoot: string}> = []

  before(
    async () => {
      bundle = await fixtureBundle()
      work = await makeStateRoot('pool')
    },
    {timeout: 15 * MINUTE},
  )

  after(
    async () => {
      if (!work) return
      for (const {name, stateRoot} of created) {
        if (!existsSync(join(stateRoot, name, 'kspawn.toml'))) continue
        const destroyed = await new Cli(stateRoot, name).run(['destroy'], 5 * MINUTE)
        if (destroyed.code !== 0) log(explain(`after: destroy ${name}`, destroyed))
      }
      for (const {name, stateRoot} of created) {
        // Kills any node left running and unmounts its roots, without removing anything yet.
        const swept = await runProgram('bash', [CLEANUP_SCRIPT, name, stateRoot], {timeoutMs: 2 * MINUTE})
        if (swept.stdout.trim()) log(`cleanup after ${name}:\n${swept.stdout.trim()}`)
      }
      for (const pool of pools) await removePool(pool)
      const swept = await cleanupCluster(growing, work)
      if (swept.trim()) log(swept.trim())
      if (existsSync(work)) log(`after: kept ${work}, still mounted: ${(await mountsUnder(work)).join(', ')}`)
    },
    {timeout: 10 * MINUTE},
  )

  it('grows a 600 MiB pool for 2 nodes at create, and the nodes boot from it', {timeout: CREATE_TIMEOUT + 10 * MINUTE}, async () => {
    const pool: Pool = {image: join(work, 'pool.raw'), mountPoint: join(work, 'pool')}
    pools.push(pool)
    await makePool(pool)
    const stateRoot = join(pool.mountPoint, 'state')
    const before = await btrfsUsage(pool.mountPoint)
    assert.ok(before.free < requiredBytes(2), `a fresh 600 MiB pool is too small for 2 nodes (free ${before.free})`)

    const cli = new Cli(stateRoot, growing)
    const config = await writeDefinition(work, isolatedDefinition({name: growing, nodes: 2, bundle}))
    created.push({name: growing, stateRoot})
    const made = await cli.ok(['create', '--config', config], CREATE_TIMEOUT)
    log(`create on the pool: ${seconds(made.ms)}`)
    assert.match(
      `${made.stdout}\n${made.stderr}`,
      /\[workaround-storage-pool\] Grew the storage pool \S+pool\.raw from 600 MiB to [\d.]+ GiB/,
    )

    const size = (await stat(pool.image)).size
    const after = await btrfsUsage(pool.mountPoint)
    log(`image ${POOL_SIZE} → ${size} bytes; btrfs device size ${before.size} → ${after.size}, free ${before.free} → ${after.free}`)
    assert.ok(size > POOL_SIZE, `the image file grew (${size} bytes)`)
    assert.ok(after.size > before.size, 'btrfs filesystem usage shows a larger device')
    assert.ok(after.free > before.free, 'btrfs filesystem usage shows more free space')
    assert.equal(after.size, size, 'the file system fills the grown image')
    const nodes = await readdir(join(stateRoot, growing, 'nodes'))
    assert.deepEqual(nodes.sort(), [`ks-${growing}-cp`, `ks-${growing}-w1`])

    const started = await cli.ok(['start', '--skip-cluster-init'], 10 * MINUTE)
    log(`start --skip-cluster-init on the pool: ${seconds(started.ms)}`)
    const status = JSON.parse((await cli.ok(['status', '--json'], MINUTE)).stdout) as StatusJson
    assert.deepEqual(
      status.machines.map((m) => [m.name, m.running]),
      [
        [`ks-${growing}-cp`, true],
        [`ks-${growing}-w1`, true],
      ],
    )
    const up = await cli.exec(`ks-${growing}-w1`, ['systemctl', 'is-system-running', '--wait'], 2 * MINUTE)
    assert.match(up.stdout.trim(), /^(running|degraded)$/, explain('systemctl is-system-running', up))

    await cli.ok(['destroy'], 5 * MINUTE)
  })

  it('fails create with the reason, before any node is made, when the host cannot grow the pool', {timeout: 5 * MINUTE}, async () => {
    const hostMount = join(work, 'small-host')
    await mkdir(hostMount)
    await sh('mount', ['-t', 'tmpfs', '-o', 'size=700M', 'tmpfs', hostMount])
    const pool: Pool = {image: join(hostMount, 'pool.raw'), mountPoint: join(work, 'full-pool'), hostMount}
    pools.push(pool)
    await makePool(pool)
    const stateRoot = join(pool.mountPoint, 'state')

    const cli = new Cli(stateRoot, full)
    const config = await writeDefinition(work, isolatedDefinition({name: full, nodes: 2, bundle}))
    created.push({name: full, stateRoot})
    const result = await cli.run(['create', '--config', config], 5 * MINUTE)
    assert.notEqual(result.code, 0, explain('create on a pool that cannot grow', result))
    const message = `${result.stdout}\n${result.stderr}`
    assert.match(
      message,
      new RegExp(
        `cannot grow the storage pool ${pool.image} by [\\d.]+ GiB: the host has \\d+ MiB free on ${hostMount}: ` +
          'free space there or use --dir on a larger file system',
      ),
    )
    assert.ok(!existsSync(join(stateRoot, full)), `no cluster directory (so no node directory) is left: ${join(stateRoot, full)}`)
    assert.equal((await stat(pool.image)).size, POOL_SIZE, 'the image file did not grow')
  })
})

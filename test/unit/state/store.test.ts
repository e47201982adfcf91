import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import {mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, it} from 'node:test'

import {resolveDefinition} from '../../../dist/config/definition.js'
import {UserError} from '../../../dist/errors.js'
import {DEFINITION_FILE, StateRoot, withLock} from '../../../dist/state/store.js'

let dir: string
let root: StateRoot

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ks-store-'))
  root = new StateRoot(join(dir, 'root'))
})
afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

const cluster = (name: string) => resolveDefinition({'cluster-name': name, nodes: 1, network: {'cluster-subnet': '10.22.4.0/24'}}, 'test')

const isUserError = (pattern: RegExp) => (error: unknown) => error instanceof UserError && pattern.test(error.message)

describe('StateRoot paths', () => {
  it('puts each cluster in its own directory and the cache beside them', () => {
    assert.equal(root.clusterDir('dev'), join(dir, 'root', 'dev'))
    assert.equal(root.definitionPath('dev'), join(dir, 'root', 'dev', DEFINITION_FILE))
    assert.equal(root.cacheDir, join(dir, 'root', 'cache'))
    assert.equal(new StateRoot('/x', '/shared/cache').cacheDir, '/shared/cache')
  })

  it('refuses names that would escape the root or clash with the cache', () => {
    assert.throws(() => root.clusterDir('../etc'), isUserError(/cluster name "\.\.\/etc" is not a lower-case DNS-1123 label/))
    assert.throws(() => root.clusterDir('UPPER'), isUserError(/cluster name "UPPER"/))
    assert.throws(() => root.clusterDir('cache'), isUserError(/cluster name "cache" is reserved/))
  })
})

describe('StateRoot save / load / list', () => {
  it('saves atomically, private to root, and loads the same cluster back', async () => {
    const c = await cluster('dev')
    await root.save(c)
    assert.deepEqual(await root.load('dev'), c)
    assert.equal((await stat(root.clusterDir('dev'))).mode & 0o777, 0o700)
    assert.equal((await stat(root.definitionPath('dev'))).mode & 0o777, 0o600)
    assert.deepEqual(await readdir(root.clusterDir('dev')), [DEFINITION_FILE], 'no temporary file is left behind')
  })

  it('replaces the file by rename rather than rewriting it in place', async () => {
    const c = await cluster('dev')
    await root.save(c)
    const before = await stat(root.definitionPath('dev'))
    await root.save({...c, state: {initialized: true}})
    const after = await stat(root.definitionPath('dev'))
    assert.notEqual(after.ino, before.ino)
    assert.equal((await root.load('dev')).state.initialized, true)
    assert.deepEqual(await readdir(root.clusterDir('dev')), [DEFINITION_FILE])
  })

  it('lists clusters sorted, skipping the cache, dot directories, stray files and directories without kspawn.toml', async () => {
    for (const name of ['zeta', 'alpha', 'mid']) await root.save(await cluster(name))
    await mkdir(join(root.path, 'cache', 'images'), {recursive: true})
    await mkdir(join(root.path, '.locks'), {recursive: true})
    await mkdir(join(root.path, 'half-made'))
    await writeFile(join(root.path, 'stray.toml'), '')
    assert.deepEqual(await root.list(), ['alpha', 'mid', 'zeta'])
    assert.equal(await root.has('mid'), true)
    assert.equal(await root.has('half-made'), false)
  })

  it('lists nothing, and creates nothing, for a root that does not exist', async () => {
    assert.deepEqual(await root.list(), [])
    await assert.rejects(stat(root.path), {code: 'ENOENT'})
  })

  it('names the known clusters when asked for an unknown one', async () => {
    await assert.rejects(root.load('nope'), (e: unknown) => e instanceof UserError && /create one/.test(e.hint!))
    await root.save(await cluster('one'))
    await root.save(await cluster('two'))
    await assert.rejects(
      root.load('nope'),
      (e: unknown) => e instanceof UserError && e.message === `no cluster "nope" in ${root.path}` && e.hint === 'known clusters: one, two',
    )
  })

  it('reports a corrupt kspawn.toml with its path', async () => {
    await root.save(await cluster('dev'))
    await writeFile(root.definitionPath('dev'), 'nodes = [\n')
    await assert.rejects(root.load('dev'), isUserError(new RegExp(`^${root.definitionPath('dev')}:\\d+:\\d+: malformed TOML`)))
  })

  it('removes a cluster directory', async () => {
    await root.save(await cluster('dev'))
    await root.remove('dev')
    assert.deepEqual(await root.list(), [])
  })
})

describe('StateRoot locks', () => {
  it('lets one holder lock a cluster; a second lock says the cluster is busy', async () => {
    await root.ensure()
    const lock = await root.lock('dev')
    await assert.rejects(root.lock('dev'), (e: unknown) => {
      assert.ok(e instanceof UserError)
      assert.match(e.message, new RegExp(`^cluster "dev" is busy: kube-spawn process ${process.pid} is working on it$`))
      assert.equal(e.exitCode, 3)
      return true
    })
    const other = await root.lock('other')
    await other.release()
    await lock.release()
    await (await root.lock('dev')).release()
  })

  it('locks the whole root under the name "."', async () => {
    const lock = await root.lock('.')
    await assert.rejects(root.lock('.'), isUserError(/^the state root is busy/))
    await lock.release()
  })

  it('refuses to lock a cluster with a bad name', async () => {
    await assert.rejects(root.lock('../x'), isUserError(/cluster name "\.\.\/x"/))
  })

  it('names a live holder in another process', async () => {
    const child = spawn('sleep', ['30'], {stdio: 'ignore'})
    try {
      await mkdir(join(root.path, '.locks'), {recursive: true})
      await writeFile(join(root.path, '.locks', 'dev.lock'), `${child.pid}\n`)
      await assert.rejects(root.lock('dev'), isUserError(new RegExp(`process ${child.pid} is working on it`)))
    } finally {
      child.kill()
    }
  })

  it('takes over a stale lock left by a dead process', async () => {
    const dead = spawnSync('true').pid
    assert.ok(dead > 0)
    await mkdir(join(root.path, '.locks'), {recursive: true})
    const path = join(root.path, '.locks', 'dev.lock')
    await writeFile(path, `${dead}\n`)
    const lock = await root.lock('dev')
    assert.equal(await readFile(path, 'utf8'), `${process.pid}\n`)
    await lock.release()
    await assert.rejects(stat(path), {code: 'ENOENT'})
  })

  it('takes over a lock file without a pid', async () => {
    await mkdir(join(root.path, '.locks'), {recursive: true})
    await writeFile(join(root.path, '.locks', 'dev.lock'), '')
    await (await root.lock('dev')).release()
  })

  it('withLock releases the lock when the work fails', async () => {
    await assert.rejects(
      withLock(root, 'dev', async () => {
        throw new Error('boom')
      }),
      /boom/,
    )
    assert.equal(await withLock(root, 'dev', async () => 42), 42)
    assert.deepEqual(await readdir(join(root.path, '.locks')), [])
  })
})

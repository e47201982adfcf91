/** The shared image store's key, its tree linking, and the runtime field's shape check. */
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, utimes, writeFile} from 'node:fs/promises'
import {createHash} from 'node:crypto'
import {tmpdir} from 'node:os'
import {execFileSync} from 'node:child_process'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {answerProblems} from '@kube-spawn/sdk'

import {archiveIdentity, imageStoreKey, linkImageStore, linkTree} from '../../../dist/runtime/image-store.js'
import {containerd} from '../../../plugins/runtime-containerd/dist/index.js'

const parts = {
  runtime: 'containerd',
  store: {dir: '/var/lib/containerd', rewrittenFiles: ['meta.db']},
  baseImage: 'debian-bookworm-abc',
  images: [{name: 'pause.tar', identity: 'a1'}],
}

describe('imageStoreKey', () => {
  it('is the same for the same runtime, base image and archives', () => {
    assert.equal(imageStoreKey(parts), imageStoreKey(structuredClone(parts)))
    assert.match(imageStoreKey(parts), /^[0-9a-f]{16}$/)
  })

  it('changes with the runtime, its store, the base image and each archive', () => {
    const variants = [
      {...parts, runtime: 'docker'},
      {...parts, store: {...parts.store, rewrittenFiles: []}},
      {...parts, baseImage: 'debian-trixie-def'},
      {...parts, images: [{...parts.images[0], identity: 'a2'}]},
      {...parts, images: [{...parts.images[0], name: 'pause-3.2.tar'}]},
      {...parts, images: [...parts.images, {name: 'etcd.tar', identity: 'b1'}]},
    ]
    const keys = new Set([imageStoreKey(parts), ...variants.map(imageStoreKey)])
    assert.equal(keys.size, variants.length + 1)
  })
})

describe('archiveIdentity', () => {
  const sha256 = (data: string) => createHash('sha256').update(data).digest('hex')

  it("is the digest of a docker-archive's manifest.json, whatever the file's time or its layers' place", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ks-archive-'))
    t.after(() => rm(dir, {recursive: true, force: true}))
    const manifest = '[{"Config":"c0ffee.json","RepoTags":["k8s.gcr.io/pause:3.2"],"Layers":["abc/layer.tar"]}]'
    await mkdir(join(dir, 'in/abc'), {recursive: true})
    await writeFile(join(dir, 'in/abc/layer.tar'), 'x'.repeat(3000))
    await writeFile(join(dir, 'in/c0ffee.json'), '{}')
    await writeFile(join(dir, 'in/manifest.json'), manifest)
    const archive = join(dir, 'pause.tar')
    execFileSync('tar', ['-cf', archive, '-C', join(dir, 'in'), 'abc', 'c0ffee.json', 'manifest.json'])
    assert.equal(await archiveIdentity(archive), sha256(manifest))

    await utimes(archive, new Date(0), new Date(0))
    assert.equal(await archiveIdentity(archive), sha256(manifest), 'the same content, another time')
    const reordered = join(dir, 'reordered.tar')
    execFileSync('tar', ['-cf', reordered, '-C', join(dir, 'in'), './manifest.json', 'c0ffee.json', 'abc'])
    assert.equal(await archiveIdentity(reordered), sha256(manifest), 'the manifest first, named ./manifest.json')
  })

  it('is the digest of the whole file for an archive with no manifest', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ks-archive-'))
    t.after(() => rm(dir, {recursive: true, force: true}))
    await writeFile(join(dir, 'layer'), 'data')
    const archive = join(dir, 'plain.tar')
    execFileSync('tar', ['-cf', archive, '-C', dir, 'layer'])
    assert.equal(
      await archiveIdentity(archive),
      createHash('sha256')
        .update(await readFile(archive))
        .digest('hex'),
    )
  })
})

describe('linkTree', () => {
  it('hard-links every file, copies the rewritten ones, leaves out the instance files, and makes the directories anew', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ks-link-'))
    t.after(() => rm(dir, {recursive: true, force: true}))
    const src = join(dir, 'src')
    await mkdir(join(src, 'blobs/sha256'), {recursive: true})
    await mkdir(join(src, 'bolt'), {recursive: true})
    await mkdir(join(src, 'empty'), {mode: 0o711})
    await writeFile(join(src, 'blobs/sha256/aa'), 'layer')
    await writeFile(join(src, 'bolt/meta.db'), 'db')
    await writeFile(join(src, 'bolt/uuid'), 'instance')
    await symlink('blobs/sha256/aa', join(src, 'link'))

    const dst = join(dir, 'dst')
    await linkTree(src, dst, {dir: '/var/lib/x', rewrittenFiles: ['bolt/meta.db', 'bolt/absent.db'], instanceFiles: ['bolt/uuid']})

    const [blobSrc, blobDst] = await Promise.all([stat(join(src, 'blobs/sha256/aa')), stat(join(dst, 'blobs/sha256/aa'))])
    assert.equal(blobDst.ino, blobSrc.ino, 'a blob is the same file')
    const [dbSrc, dbDst] = await Promise.all([stat(join(src, 'bolt/meta.db')), stat(join(dst, 'bolt/meta.db'))])
    assert.notEqual(dbDst.ino, dbSrc.ino, 'a rewritten file is a copy')
    assert.equal(await readFile(join(dst, 'bolt/meta.db'), 'utf8'), 'db')
    assert.notEqual((await stat(join(dst, 'bolt'))).ino, (await stat(join(src, 'bolt'))).ino)
    assert.equal((await stat(join(dst, 'empty'))).mode & 0o777, 0o711)
    assert.equal(await stat(join(dst, 'bolt/uuid')).catch(() => 'absent'), 'absent', 'an instance file is left out')
    assert.equal(await readlink(join(dst, 'link')), 'blobs/sha256/aa')

    await writeFile(join(dst, 'bolt/meta.db'), 'changed in the node')
    assert.equal(await readFile(join(src, 'bolt/meta.db'), 'utf8'), 'db', 'the store keeps its own copy')
  })
})

describe('linkImageStore', () => {
  it('links the store into each empty data dir on its filesystem, and says why not into the others', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'ks-stores-'))
    const elsewhere = await mkdtemp('/dev/shm/ks-stores-')
    t.after(() => Promise.all([rm(dir, {recursive: true, force: true}), rm(elsewhere, {recursive: true, force: true})]))
    const store = join(dir, 'cache', 'image-stores', '0123456789abcdef')
    await mkdir(join(store, 'blobs'), {recursive: true})
    await writeFile(join(store, 'blobs', 'aa'), 'layer')
    await writeFile(join(store, 'meta.db'), 'db')
    const dataDir = async (name: string, base = dir) => {
      const path = join(base, name, 'var-lib', 'containerd')
      await mkdir(path, {recursive: true})
      return path
    }
    const node = (name: string, src?: string) => ({name, mounts: src ? [{src, dst: '/var/lib/containerd'}] : []})
    const fresh = await dataDir('fresh')
    const used = await dataDir('used')
    await writeFile(join(used, 'meta.db'), 'its own')
    const ctx = {
      runtime: {...containerd, imageStore: {dir: '/var/lib/containerd', rewrittenFiles: ['meta.db']}},
      nodes: [node('fresh', fresh), node('used', used), node('unbound'), node('elsewhere', await dataDir('elsewhere', elsewhere))],
    }

    const {linked, unfit} = await linkImageStore(ctx as never, store)
    assert.deepEqual(
      linked.map((n: {name: string}) => n.name),
      ['fresh'],
    )
    assert.equal((await stat(join(fresh, 'blobs', 'aa'))).ino, (await stat(join(store, 'blobs', 'aa'))).ino)
    assert.equal(unfit.length, 3)
    assert.match(unfit[0], /^used: .* is not empty$/)
    assert.match(unfit[1], /^unbound: no host directory is bound at \/var\/lib\/containerd/)
    assert.match(unfit[2], /^elsewhere: .* are on different filesystems/)
    assert.equal(await readFile(join(used, 'meta.db'), 'utf8'), 'its own', 'a node that has data keeps it')
  })

  it('says why not into a data dir behind a bind mount of the same filesystem (link(2) refuses to cross mounts)', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('bind mounts need root')
    const dir = await mkdtemp(join(tmpdir(), 'ks-stores-'))
    const store = join(dir, 'cache', 'image-stores', '0123456789abcdef')
    await mkdir(store, {recursive: true})
    await writeFile(join(store, 'meta.db'), 'db')
    const bound = join(dir, 'bound')
    await mkdir(join(dir, 'source', 'node', 'var-lib', 'containerd'), {recursive: true})
    await mkdir(bound)
    execFileSync('mount', ['--bind', join(dir, 'source'), bound])
    t.after(async () => {
      execFileSync('umount', [bound])
      await rm(dir, {recursive: true, force: true})
    })
    const dataDir = join(bound, 'node', 'var-lib', 'containerd')
    const ctx = {runtime: containerd, nodes: [{name: 'bound', mounts: [{src: dataDir, dst: '/var/lib/containerd'}]}]}
    const {linked, unfit} = await linkImageStore(ctx as never, store)
    assert.deepEqual(linked, [])
    assert.match(unfit[0], /^bound: .* are on different filesystems or mounts/)
    assert.deepEqual(await readdir(dataDir), [], 'the probe is gone')
    assert.deepEqual(await readdir(join(dir, 'cache', 'image-stores')), ['0123456789abcdef'], 'no probe left in the cache')
  })

  it('links nothing while there is no store', async () => {
    const ctx = {runtime: containerd, nodes: [{name: 'n', mounts: [{src: '/nonexistent', dst: '/var/lib/containerd'}]}]}
    assert.deepEqual(await linkImageStore(ctx as never, '/nonexistent/store'), {linked: [], unfit: []})
  })
})

describe('RuntimeProvider.imageStore', () => {
  it('is accepted as containerd declares it, and refused with a path that leaves its dir', () => {
    assert.deepEqual(answerProblems('kube-spawn:providers', {runtimes: [containerd]}), [])
    const bad = {...containerd, imageStore: {dir: '/var/lib/containerd', rewrittenFiles: ['../etc/passwd']}}
    assert.deepEqual(answerProblems('kube-spawn:providers', {runtimes: [bad]}), [
      'runtime 1 "containerd": imageStore must be {dir: an absolute path, rewrittenFiles and instanceFiles?: relative paths below it}',
    ])
  })
})

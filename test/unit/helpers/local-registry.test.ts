/** The local npm registry of the tests (test/helpers/local-registry.ts): npm installs from it, and from nothing else. */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {REPO, cleanEnv, runProgram} from '../../helpers/cli.ts'
import type {CliResult} from '../../helpers/cli.ts'
import {startLocalRegistry} from '../../helpers/local-registry.ts'

const NPM_CLI = join(REPO, 'node_modules', 'npm', 'bin', 'npm-cli.js')

let work = ''

/** A package in work/<dir>: a package.json and an index.js. */
async function writePackage(dir: string, manifest: Record<string, unknown>): Promise<string> {
  const path = join(work, dir)
  await mkdir(path, {recursive: true})
  await writeFile(join(path, 'package.json'), JSON.stringify(manifest, null, 2))
  await writeFile(join(path, 'index.js'), 'export const hello = "hello"\n')
  return path
}

/** npm with a cache of its own, so that nothing it once fetched from the internet is used. */
async function npm(cwd: string, ...args: string[]): Promise<CliResult> {
  const result = await runProgram(process.execPath, [NPM_CLI, ...args, '--no-audit', '--no-fund'], {
    cwd,
    fullEnv: cleanEnv({npm_config_cache: await mkdtemp(join(work, 'npm-cache-')), npm_config_update_notifier: 'false'}),
    timeoutMs: 2 * 60_000,
  })
  assert.equal(result.code, 0, `npm ${args.join(' ')} in ${cwd}:\n${result.stdout}\n${result.stderr}`)
  return result
}

async function versionIn(dir: string): Promise<string> {
  return (JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as {version: string}).version
}

describe('startLocalRegistry', () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-local-registry-test-'))
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })

  it('lets npm install a package and its dependencies from the repository, with --registry and a fresh cache', async () => {
    const probe = await writePackage('probe', {
      name: 'ks-local-registry-probe',
      version: '1.2.3',
      type: 'module',
      main: 'index.js',
      dependencies: {'p-wait-for': '^6.0.0'},
      devDependencies: {'ks-no-such-dev-dependency': '^1.0.0'},
    })
    const project = await writePackage('project', {name: 'project', version: '1.0.0', private: true})
    const registry = await startLocalRegistry([probe], {workDir: work})
    try {
      assert.match(registry.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
      // Resolved URLs in the lockfile, whatever the user's npmrc says, to see where the packages came from.
      await npm(project, 'install', 'ks-local-registry-probe', '--registry', registry.url, '--omit-lockfile-registry-resolved=false')
    } finally {
      await registry.close()
    }
    const modules = join(project, 'node_modules')
    assert.equal(await versionIn(join(modules, 'ks-local-registry-probe')), '1.2.3')
    assert.equal(await versionIn(join(modules, 'p-wait-for')), await versionIn(join(REPO, 'node_modules', 'p-wait-for')))
    const lock = JSON.parse(await readFile(join(project, 'package-lock.json'), 'utf8')) as {packages: Record<string, {resolved?: string}>}
    for (const name of ['ks-local-registry-probe', 'p-wait-for'])
      assert.ok(lock.packages[`node_modules/${name}`]?.resolved?.startsWith(registry.url), `${name} came from the local registry`)
  })

  it('serves a scoped package given as a .tgz: its packument under both spellings, its tarball, 404 for the rest', async () => {
    const dir = await writePackage('scoped', {name: '@ks-test/scoped-probe', version: '0.4.0', bin: 'index.js'})
    const packed = await npm(work, 'pack', dir, '--pack-destination', work, '--ignore-scripts', '--json')
    const tarball = join(work, (JSON.parse(packed.stdout) as Array<{filename: string}>)[0].filename)
    const registry = await startLocalRegistry([tarball])
    try {
      const escaped = await fetch(`${registry.url}@ks-test%2fscoped-probe`)
      assert.equal(escaped.status, 200)
      const packument = (await escaped.json()) as {
        name: string
        'dist-tags': {latest: string}
        versions: Record<string, {name: string; version: string; bin: Record<string, string>; dist: Record<string, string>}>
      }
      assert.equal(packument.name, '@ks-test/scoped-probe')
      assert.deepEqual(packument['dist-tags'], {latest: '0.4.0'})
      const version = packument.versions['0.4.0']
      assert.deepEqual(version.bin, {'scoped-probe': 'index.js'})
      assert.deepEqual(await (await fetch(`${registry.url}@ks-test/scoped-probe`)).json(), packument)

      assert.ok(version.dist.tarball.startsWith(`${registry.url}-/`))
      const bytes = Buffer.from(await (await fetch(version.dist.tarball)).arrayBuffer())
      assert.deepEqual(bytes, await readFile(tarball))
      assert.equal(version.dist.integrity, `sha512-${createHash('sha512').update(bytes).digest('base64')}`)
      assert.equal(version.dist.shasum, createHash('sha1').update(bytes).digest('hex'))

      for (const path of ['ks-no-such-package', '-/ks-no-such-package-1.0.0.tgz', '']) {
        const missing = await fetch(`${registry.url}${path}`)
        assert.equal(missing.status, 404, path)
        assert.deepEqual(await missing.json(), {error: 'Not found'})
      }
    } finally {
      await registry.close()
    }
  })

  it('refuses a package whose dependency it cannot find, naming the dependency', async () => {
    const dir = await writePackage('orphan', {name: 'ks-orphan', version: '1.0.0', dependencies: {'ks-no-such-dependency': '^2.0.0'}})
    await assert.rejects(startLocalRegistry([dir]), /ks-no-such-dependency@\^2\.0\.0 of ks-orphan@1\.0\.0/)
  })
})

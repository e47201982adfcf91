/**
 * The plugin templates (templates/plugin/) and the example made from them: examples/plugin-template
 * is exactly what `plugins:new hello --kind workaround` writes, and it installs, tests and packs with
 * npm as a third party's plugin would, its SDK bundled. npm gets its packages from a local registry
 * (test/helpers/local-registry.ts) and from nothing else.
 */
import assert from 'node:assert/strict'
import {cp, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {REPO, cleanEnv, runProgram} from '../../helpers/cli.ts'
import type {CliResult} from '../../helpers/cli.ts'
import {startLocalRegistry} from '../../helpers/local-registry.ts'
import {PLUGIN_KINDS, TEMPLATES_DIR, renderPlugin} from '../../../dist/plugins/scaffold.js'

const EXAMPLE = join(REPO, 'examples', 'plugin-template')
const NPM_CLI = join(REPO, 'node_modules', 'npm', 'bin', 'npm-cli.js')
const MINUTE = 60_000

/** Every file below dir, relative and sorted, without what a build, an install or a pack leaves. */
async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .filter((path) => !/^(node_modules|dist)\//.test(path) && path !== 'package-lock.json' && !path.endsWith('.tgz'))
    .sort()
}

describe('templates/plugin', () => {
  it('holds the common files and, per kind, src/index.ts and test/<kind>.test.ts', async () => {
    assert.deepEqual(await sourceFiles(join(TEMPLATES_DIR, 'common')), [
      'README.md',
      'gitignore',
      'package.json',
      'tsconfig.json',
      'tsconfig.test.json',
    ])
    for (const kind of PLUGIN_KINDS)
      assert.deepEqual(await sourceFiles(join(TEMPLATES_DIR, kind)), ['src/index.ts', `test/${kind}.test.ts`])
  })

  it('examples/plugin-template is the workaround named hello, file for file', async () => {
    const rendered = await renderPlugin('hello', 'workaround')
    assert.deepEqual(await sourceFiles(EXAMPLE), [...rendered.keys()].sort())
    for (const [path, text] of rendered) {
      assert.equal(await readFile(join(EXAMPLE, path), 'utf8'), text, `examples/plugin-template/${path} differs from the template's output`)
    }
  })
})

describe('examples/plugin-template with npm, as a third party builds it', {timeout: 10 * MINUTE}, () => {
  let work = ''
  let copy = ''

  /** npm with a cache of its own, so that nothing it once fetched from the internet is used. */
  async function npm(...args: string[]): Promise<CliResult> {
    const result = await runProgram(process.execPath, [NPM_CLI, ...args, '--no-audit', '--no-fund'], {
      cwd: copy,
      fullEnv: cleanEnv({npm_config_cache: join(work, 'npm-cache'), npm_config_update_notifier: 'false'}),
      timeoutMs: 5 * MINUTE,
    })
    assert.equal(result.code, 0, `npm ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`)
    return result
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-plugin-example-'))
    copy = join(work, 'kube-spawn-plugin-hello')
    // A clean checkout of the folder: no node_modules, no build, no packs.
    await cp(EXAMPLE, copy, {recursive: true, filter: (src) => !/\/(node_modules|dist)(\/|$)|\.tgz$/.test(src.slice(EXAMPLE.length))})
  })
  after(async () => {
    await rm(work, {recursive: true, force: true})
  })

  it('has no lockfile: its first npm install makes one', async () => {
    assert.ok(!(await readdir(copy)).includes('package-lock.json'))
  })

  it('npm install (from a local registry), npm test, npm pack with @kube-spawn/sdk and its dependencies bundled', async () => {
    // The SDK as built (npm run build), its dependencies and the devDependencies' closure from the repository.
    const registry = await startLocalRegistry(
      [join(REPO, 'plugins', 'sdk'), join(REPO, 'node_modules', 'typescript'), join(REPO, 'node_modules', '@types', 'node')],
      {workDir: work},
    )
    try {
      await npm('install', '--registry', registry.url)
    } finally {
      await registry.close()
    }
    const installed = await readdir(join(copy, 'node_modules'))
    assert.ok(!installed.includes('@oclif'), 'the optional peer dependency @oclif/core is not installed')

    const tested = await npm('test', '--offline')
    assert.match(tested.stdout, /ℹ fail 0/)
    assert.doesNotMatch(tested.stdout, /ℹ pass 0/)

    // The JSON, without what the prepack script (the build) may print around it.
    const {stdout} = await npm('pack', '--dry-run', '--json', '--offline')
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('[\n'), stdout.lastIndexOf(']') + 1)) as Array<{
      filename: string
      bundled: string[]
      files: Array<{path: string}>
    }>
    assert.equal(packed.filename, 'kube-spawn-plugin-hello-0.1.0.tgz')
    assert.deepEqual([...packed.bundled].sort(), ['@kube-spawn/sdk', 'p-wait-for', 'semver'])
    const paths = packed.files.map((f) => f.path)
    for (const path of [
      'package.json',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'node_modules/@kube-spawn/sdk/package.json',
      'node_modules/@kube-spawn/sdk/dist/index.js',
      'node_modules/p-wait-for/package.json',
      'node_modules/semver/package.json',
    ])
      assert.ok(paths.includes(path), `${path} is packed`)
    assert.deepEqual(
      paths.filter((p) => /^(src|test)\//.test(p) || p.startsWith('node_modules/typescript/') || p.startsWith('node_modules/@types/')),
      [],
      'no sources, tests or devDependencies are packed',
    )
  })
})

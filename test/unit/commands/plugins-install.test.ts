/**
 * kube-spawn's plugins:install and plugins:link (src/commands/plugins, src/plugins/install-guard.ts):
 * a plugin that kube-spawn would refuse is refused at install or link time, with one line on stderr
 * that names it and says why, and nothing of it is left in the data directory. The fixtures are in
 * test/fixtures/bad-plugins; npm runs offline against a fresh cache, in a fresh data directory per test.
 */
import assert from 'node:assert/strict'
import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {API_VERSION} from '@kube-spawn/sdk'
import {asOneLine, localSourcePath, manifestRefusal, npmFailureLine} from '../../../dist/plugins/install-guard.js'
import {cleanEnv, runProgram} from '../../helpers/cli.ts'
import {type CliResult, FIXTURES, REPO, kubeSpawn, stderrLines} from '../helpers/cli.ts'

const BAD = join(FIXTURES, 'bad-plugins')
const NPM_CLI = join(REPO, 'node_modules', 'npm', 'bin', 'npm-cli.js')
const CASES = ['good', 'no-oclif', 'syntax-error', 'future-api', 'no-api']

/** The fixture's package name: test/fixtures/bad-plugins/no-oclif is ks-install-no-oclif. */
const pkg = (fixture: string) => `ks-install-${fixture}`

/** npm offline, with its own cache and no user npmrc. */
function npmEnv(work: string): Record<string, string> {
  return {
    npm_config_offline: 'true',
    npm_config_cache: join(work, 'npm-cache'),
    npm_config_userconfig: join(work, 'npmrc'),
    npm_config_update_notifier: 'false',
  }
}

let packs: string
/** fixture → the tarball npm pack made of it. */
const tarballs = new Map<string, string>()

before(async () => {
  packs = await mkdtemp(join(tmpdir(), 'ks-packs-'))
  await writeFile(join(packs, 'npmrc'), '')
  for (const fixture of CASES) {
    const result = await runProgram(process.execPath, [NPM_CLI, 'pack', '--pack-destination', packs, '--silent'], {
      cwd: join(BAD, fixture),
      fullEnv: cleanEnv(npmEnv(packs)),
    })
    assert.equal(result.code, 0, `npm pack ${fixture}: ${result.stderr}`)
    tarballs.set(fixture, join(packs, result.stdout.trim().split('\n').at(-1)!))
  }
})

after(() => rm(packs, {recursive: true, force: true}))

/** A fresh data directory (and XDG directories) per test, and the CLI run against it. */
async function sandbox(): Promise<{
  dataDir: string
  /** The CLI against this data directory, run in the sandbox or in `cwd`. */
  ks: (args: string[], cwd?: string) => Promise<CliResult>
  listed: (name: string) => Promise<boolean>
  cleanup: () => Promise<void>
}> {
  const work = await mkdtemp(join(tmpdir(), 'ks-plugins-'))
  await writeFile(join(work, 'npmrc'), '')
  const dataDir = join(work, 'data')
  const env = {
    ...npmEnv(work),
    KUBE_SPAWN_DATA_DIR: dataDir,
    XDG_DATA_HOME: join(work, 'xdg-data'),
    XDG_CONFIG_HOME: join(work, 'xdg-config'),
    XDG_CACHE_HOME: join(work, 'xdg-cache'),
    OCLIF_DISABLE_LINKED_ESM_WARNING: '1',
  }
  const ks = (args: string[], cwd = work) => kubeSpawn(args, {cwd, env})
  const listed = async (name: string) => {
    const result = await ks(['plugins', '--json'])
    assert.equal(result.code, 0, result.stderr)
    return (JSON.parse(result.stdout) as Array<{name: string}>).some((p) => p.name === name)
  }
  return {dataDir, ks, listed, cleanup: () => rm(work, {recursive: true, force: true})}
}

const exists = (path: string) =>
  readdir(path).then(
    () => true,
    () =>
      readFile(path).then(
        () => true,
        () => false,
      ),
  )

/** One line on stderr, nothing on stdout, exit 2, and nothing of the plugin left behind. */
async function assertRefused(
  s: Awaited<ReturnType<typeof sandbox>>,
  result: CliResult,
  expect: string | RegExp,
  name?: string,
): Promise<void> {
  assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`)
  assert.equal(result.stdout, '', 'nothing on stdout')
  const lines = stderrLines({...result, stderr: result.stderr.trim()})
  assert.equal(lines.length, 1, `one line on stderr, got:\n${result.stderr}`)
  assert.ok(lines[0].startsWith('kube-spawn: '), lines[0])
  if (typeof expect === 'string') assert.ok(lines[0].includes(expect), `"${lines[0]}" should contain "${expect}"`)
  else assert.match(lines[0], expect)
  if (name) {
    assert.ok(lines[0].includes(name), `"${lines[0]}" names ${name}`)
    assert.equal(await exists(join(s.dataDir, 'node_modules', name)), false, `no node_modules/${name} in the data dir`)
    assert.equal(await s.listed(name), false, `plugins --json does not list ${name}`)
  }
}

interface Case {
  name: string
  args: () => string[]
  expect: string | RegExp
  /** The package that must not be left behind. */
  pkg?: string
}

const refusals: Case[] = [
  {
    name: 'install of a tarball that does not exist',
    args: () => ['plugins:install', 'file:/nonexistent/kube-spawn-test/x-0.1.0.tgz'],
    expect: 'no such file: /nonexistent/kube-spawn-test/x-0.1.0.tgz: give the path of a tarball made by npm pack, or a plugin folder',
  },
  {
    name: 'install of a path without file: that does not exist',
    args: () => ['plugins:install', '/nonexistent/kube-spawn-test/x-0.1.0.tgz'],
    expect: 'no such file: /nonexistent/kube-spawn-test/x-0.1.0.tgz',
  },
  {
    name: 'link of a folder that does not exist',
    args: () => ['plugins:link', '/nonexistent/kube-spawn-test', '--no-install'],
    expect: 'no such folder: /nonexistent/kube-spawn-test',
  },
  {
    name: 'link of a folder without package.json',
    args: () => ['plugins:link', BAD, '--no-install'],
    expect: `no package.json in ${BAD}`,
  },
  {
    name: 'install of a tarball without an oclif section',
    args: () => ['plugins:install', `file:${tarballs.get('no-oclif')}`],
    expect: 'ks-install-no-oclif 0.1.0 is not a kube-spawn plugin: its package.json has no "oclif" section',
    pkg: pkg('no-oclif'),
  },
  {
    name: 'link of a folder without an oclif section',
    args: () => ['plugins:link', join(BAD, 'no-oclif'), '--no-install'],
    expect: 'ks-install-no-oclif 0.1.0 is not a kube-spawn plugin: its package.json has no "oclif" section',
    pkg: pkg('no-oclif'),
  },
  {
    name: 'install of a plugin made for plugin API ^2.0',
    args: () => ['plugins:install', `file:${tarballs.get('future-api')}`],
    expect: `plugin ks-install-future-api 0.1.0 supports plugin API "^2.0", but this kube-spawn has plugin API ${API_VERSION}`,
    pkg: pkg('future-api'),
  },
  {
    name: 'link of a plugin made for plugin API ^2.0',
    args: () => ['plugins:link', join(BAD, 'future-api'), '--no-install'],
    expect: 'plugin ks-install-future-api 0.1.0 supports plugin API "^2.0"',
    pkg: pkg('future-api'),
  },
  {
    name: 'install of a plugin that names no plugin API',
    args: () => ['plugins:install', `file:${tarballs.get('no-api')}`],
    expect: 'plugin ks-install-no-api 0.1.0 does not say which plugin API it supports',
    pkg: pkg('no-api'),
  },
  {
    name: 'install of a plugin with a syntax error: rolled back after npm',
    args: () => ['plugins:install', `file:${tarballs.get('syntax-error')}`],
    expect: /^kube-spawn: plugin ks-install-syntax-error 0\.1\.0: syntax error in index\.js:4: /,
    pkg: pkg('syntax-error'),
  },
  {
    name: 'link of a plugin with a syntax error: unlinked again',
    args: () => ['plugins:link', join(BAD, 'syntax-error'), '--no-install'],
    expect: /^kube-spawn: plugin ks-install-syntax-error 0\.1\.0: syntax error in index\.js:4: /,
    pkg: pkg('syntax-error'),
  },
]

describe('plugins:install and plugins:link refuse what kube-spawn cannot load: one line, nothing left behind', {concurrency: 4}, () => {
  for (const c of refusals)
    it(c.name, async () => {
      const s = await sandbox()
      try {
        await assertRefused(s, await s.ks(c.args()), c.expect, c.pkg)
      } finally {
        await s.cleanup()
      }
    })

  it('a failed install leaves the data dir of an earlier one as it was', async () => {
    const s = await sandbox()
    try {
      assert.equal((await s.ks(['plugins:install', `file:${tarballs.get('good')}`])).code, 0)
      const read = (file: string) => readFile(join(s.dataDir, file), 'utf8')
      const before = {
        pjson: await read('package.json'),
        lock: await read('package-lock.json'),
        modules: await readdir(join(s.dataDir, 'node_modules')),
      }
      const result = await s.ks(['plugins:install', `file:${tarballs.get('syntax-error')}`])
      await assertRefused(s, result, 'syntax error in index.js:4', pkg('syntax-error'))
      assert.equal(await read('package.json'), before.pjson)
      assert.equal(await read('package-lock.json'), before.lock)
      assert.deepEqual(await readdir(join(s.dataDir, 'node_modules')), before.modules)
      assert.equal(await s.listed(pkg('good')), true, 'the earlier plugin is still installed')
    } finally {
      await s.cleanup()
    }
  })
})

describe('plugins:install and plugins:link of a good plugin', {concurrency: 2}, () => {
  it('installs the tarball, lists it, and uninstalls it cleanly', async () => {
    const s = await sandbox()
    try {
      const installed = await s.ks(['plugins:install', `file:${tarballs.get('good')}`])
      assert.equal(installed.code, 0, installed.stderr)
      assert.equal(installed.stdout, 'Installed ks-install-good 0.1.0\n')
      assert.equal(installed.stderr, '', "npm's and oclif's output is kept back")
      assert.equal(await exists(join(s.dataDir, 'node_modules', pkg('good'), 'package.json')), true)
      assert.equal(await s.listed(pkg('good')), true)
      const providers = await s.ks(['providers', '--json'])
      assert.ok(
        (JSON.parse(providers.stdout) as Array<{name: string; plugin: string}>).some(
          (r) => r.name === 'good-fixture' && r.plugin === pkg('good'),
        ),
        providers.stdout,
      )

      const removed = await s.ks(['plugins:uninstall', pkg('good')])
      assert.equal(removed.code, 0, removed.stderr)
      assert.equal(await exists(join(s.dataDir, 'node_modules', pkg('good'))), false)
      assert.equal(await s.listed(pkg('good')), false)
    } finally {
      await s.cleanup()
    }
  })

  it('links the folder, lists it, and unlinks it cleanly', async () => {
    const s = await sandbox()
    try {
      const folder = join(BAD, 'good')
      const linked = await s.ks(['plugins:link', folder])
      assert.equal(linked.code, 0, linked.stderr)
      assert.equal(linked.stdout, `Linked ks-install-good 0.1.0 from ${folder}\n`)
      assert.equal(linked.stderr, '')
      assert.equal(await s.listed(pkg('good')), true)

      const unlinked = await s.ks(['plugins:unlink', pkg('good')])
      assert.equal(unlinked.code, 0, unlinked.stderr)
      assert.equal(await s.listed(pkg('good')), false)
      const pjson = JSON.parse(await readFile(join(s.dataDir, 'package.json'), 'utf8')) as {oclif: {plugins: unknown[]}}
      assert.deepEqual(pjson.oclif.plugins, [])
    } finally {
      await s.cleanup()
    }
  })

  it('installs a folder given as a ./relative path (from the current directory)', async () => {
    const s = await sandbox()
    try {
      const result = await s.ks(['plugins:install', './good'], BAD)
      assert.equal(result.code, 0, result.stderr)
      assert.equal(result.stdout, 'Installed ks-install-good 0.1.0\n')
      assert.equal(await s.listed(pkg('good')), true)
    } finally {
      await s.cleanup()
    }
  })
})

describe('install-guard', () => {
  it('tells local sources from registry names and git URLs', () => {
    assert.equal(localSourcePath('file:/a/b.tgz'), '/a/b.tgz')
    assert.equal(localSourcePath('file:./b.tgz', '/work'), '/work/b.tgz')
    assert.equal(localSourcePath('./plugin', '/work'), '/work/plugin')
    assert.equal(localSourcePath('/abs/x-1.0.0.tgz'), '/abs/x-1.0.0.tgz')
    assert.equal(localSourcePath('x-1.0.0.tgz', '/work'), '/work/x-1.0.0.tgz')
    assert.equal(localSourcePath('kube-spawn-plugin-hello'), undefined)
    assert.equal(localSourcePath('@you/kube-spawn-plugin-hello@1.2.3'), undefined)
    assert.equal(localSourcePath('someuser/someplugin'), undefined)
    assert.equal(localSourcePath('https://github.com/someuser/someplugin'), undefined)
  })

  it('refuses manifests without oclif or with an API range that does not fit', () => {
    assert.match(manifestRefusal({name: 'x', version: '1.0.0'})!.line, /^x 1\.0\.0 is not a kube-spawn plugin: .*"oclif"/)
    assert.match(manifestRefusal({name: 'x', oclif: {}, 'kube-spawn': {apiVersion: '^2.0'}}, '1.0')!.line, /supports plugin API "\^2\.0"/)
    assert.equal(manifestRefusal({name: 'x', oclif: {}, 'kube-spawn': {apiVersion: '^1.0'}}, '1.3'), undefined)
  })

  it("takes npm's reason from its output, and says npm failed", () => {
    const output = [
      'npm error code E404',
      'npm error 404 Not Found - GET https://registry.npmjs.org/nope - Not found',
      'npm error A complete log of this run can be found in: /x.log',
    ].join('\n')
    assert.equal(npmFailureLine(output), '404 Not Found - GET https://registry.npmjs.org/nope - Not found')
    const error = asOneLine(new Error('/usr/bin/node npm-cli.js install nope exited with code 1'), output)
    assert.equal(error.exitCode, 1)
    assert.equal(
      error.line,
      'npm failed: 404 Not Found - GET https://registry.npmjs.org/nope - Not found: run with --verbose for npm’s output',
    )
  })
})

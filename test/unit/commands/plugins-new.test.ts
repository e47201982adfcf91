/**
 * `kube-spawn plugins:new NAME --kind K [--dir DIR]`, run as the built CLI: each kind writes a project
 * that type-checks, builds and passes its own tests as generated, with its node_modules made of links
 * to the repository's SDK, typescript and @types/node (no npm). Bad input is one line on stderr and
 * writes nothing.
 */
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {cleanEnv, runProgram} from '../../helpers/cli.ts'
import {REPO, kubeSpawn, snapshotTree, stderrLines} from '../helpers/cli.ts'
import type {CliResult} from '../helpers/cli.ts'

const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc')
const KINDS = ['workaround', 'runtime', 'image'] as const
const MINUTE = 60_000

let work = ''

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'ks-plugins-new-'))
})
after(async () => {
  await rm(work, {recursive: true, force: true})
})

/** Every file below dir, relative and sorted, node_modules and dist left out. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true, withFileTypes: true})
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .filter((path) => !/^(node_modules|dist)\//.test(path))
    .sort()
}

/** What `npm install` would give the project, as links into the repository. */
async function linkModules(project: string): Promise<void> {
  const modules = join(project, 'node_modules')
  await mkdir(join(modules, '@kube-spawn'), {recursive: true})
  await mkdir(join(modules, '@types'))
  await symlink(join(REPO, 'plugins', 'sdk'), join(modules, '@kube-spawn', 'sdk'), 'dir')
  await symlink(join(REPO, 'node_modules', 'typescript'), join(modules, 'typescript'), 'dir')
  await symlink(join(REPO, 'node_modules', '@types', 'node'), join(modules, '@types', 'node'), 'dir')
}

async function inProject(project: string, file: string, args: string[]): Promise<CliResult> {
  const result = await runProgram(file, args, {cwd: project, fullEnv: cleanEnv(), timeoutMs: 2 * MINUTE})
  assert.equal(result.code, 0, `${args.join(' ')} in ${project}:\n${result.stdout}\n${result.stderr}`)
  return result
}

function ok(result: CliResult, what: string): CliResult {
  assert.equal(result.code, 0, `${what} exited ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
  return result
}

describe('plugins:new for each kind', {concurrency: true}, () => {
  for (const kind of KINDS) {
    it(`--kind ${kind}: a project that type-checks, builds and passes its tests`, {timeout: 5 * MINUTE}, async () => {
      const name = `my-${kind}`
      const parent = join(work, kind)
      await mkdir(parent)
      const result = ok(await kubeSpawn(['plugins:new', name, '--kind', kind], {cwd: parent}), 'plugins:new')
      const project = join(parent, `kube-spawn-plugin-${name}`)
      const files = [
        '.gitignore',
        'README.md',
        'package.json',
        'src/index.ts',
        `test/${name}.test.ts`,
        'tsconfig.json',
        'tsconfig.test.json',
      ]
      assert.deepEqual(await filesBelow(project), files)

      assert.equal(result.stderr, '')
      assert.match(result.stdout, new RegExp(`^Created kube-spawn-plugin-${name} \\(${kind}\\) in ${project}:$`, 'm'))
      const steps = result.stdout.slice(result.stdout.indexOf('Next steps:')).split('\n').slice(1, 6)
      assert.deepEqual(
        steps.map((s) => s.trim()),
        [
          `cd kube-spawn-plugin-${name}`,
          'npm install',
          'npm test',
          'npm pack',
          `kube-spawn plugins:install "file:$PWD/kube-spawn-plugin-${name}-0.1.0.tgz"`,
        ],
      )

      const text = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await readFile(join(project, f), 'utf8')] as const)))
      for (const [file, content] of Object.entries(text)) {
        assert.doesNotMatch(content, /__NAME__|__DESCRIPTION__|<!-- (kind: |end -->)/, file)
      }
      const manifest = JSON.parse(text['package.json']) as Record<string, unknown> & {oclif: {hooks: Record<string, unknown>}}
      assert.equal(manifest.name, `kube-spawn-plugin-${name}`)
      assert.deepEqual(manifest.dependencies, {'@kube-spawn/sdk': '^1.0.0'})
      assert.deepEqual(manifest.bundleDependencies, ['@kube-spawn/sdk'])
      assert.deepEqual(manifest['kube-spawn'], {apiVersion: '^1.0'})
      assert.deepEqual(
        Object.keys(manifest.oclif.hooks),
        kind === 'workaround' ? ['kube-spawn:providers', 'kube-spawn:tasks'] : ['kube-spawn:providers'],
      )
      assert.ok(text['README.md'].startsWith(`# kube-spawn-plugin-${name}\n`))
      assert.ok(text['README.md'].includes(`kube-spawn plugins:install ./kube-spawn-plugin-${name}-0.1.0.tgz`))
      const says = {workaround: 'adds the workaround', runtime: 'adds the container runtime', image: 'adds the base image'}
      for (const other of KINDS) assert.equal(text['README.md'].includes(says[other]), other === kind, `README of ${kind}: ${other}`)
      assert.ok(text['src/index.ts'].includes(`'${name}'`))
      assert.doesNotMatch(text['tsconfig.json'], /"paths"/)

      await linkModules(project)
      // The build is the type check of src/ (tsc -p tsconfig.json --noEmit, plus the output the tests import).
      await inProject(project, process.execPath, [TSC, '-p', 'tsconfig.json'])
      await inProject(project, process.execPath, [TSC, '-p', 'tsconfig.test.json'])
      const tested = await inProject(project, process.execPath, ['--test', '--test-reporter=spec', 'test/**/*.test.ts'])
      assert.match(tested.stdout, /ℹ fail 0/)
      assert.doesNotMatch(tested.stdout, /ℹ pass 0/)
    })
  }

  it('--dir: into a new or an empty directory, nested paths created', async () => {
    for (const dir of [join(work, 'nested', 'deeper', 'plugin'), await mkdtemp(join(work, 'empty-'))]) {
      ok(await kubeSpawn(['plugins:new', 'hi', '--kind', 'image', '--dir', dir], {cwd: work}), 'plugins:new --dir')
      assert.ok((await filesBelow(dir)).includes('src/index.ts'), dir)
    }
  })

  it('--json: what it wrote', async () => {
    const dir = join(work, 'json')
    const result = ok(
      await kubeSpawn(['plugins:new', 'hi', '--kind', 'runtime', '--dir', dir, '--json'], {cwd: work}),
      'plugins:new --json',
    )
    const answer = JSON.parse(result.stdout) as {packageName: string; kind: string; dir: string; files: string[]}
    assert.equal(answer.packageName, 'kube-spawn-plugin-hi')
    assert.equal(answer.kind, 'runtime')
    assert.equal(answer.dir, dir)
    assert.deepEqual(answer.files, await filesBelow(dir))
  })
})

describe('plugins:new refuses, in one line, and writes nothing', () => {
  const cases: Array<{name: string; args: string[]; expect: RegExp}> = [
    {name: 'a name with upper case', args: ['Hello', '--kind', 'workaround'], expect: /^kube-spawn: plugin name "Hello" is not valid: /},
    {name: 'a name starting with a digit', args: ['1up', '--kind', 'workaround'], expect: /plugin name "1up" is not valid/},
    {name: 'a name with an underscore', args: ['my_plugin', '--kind', 'runtime'], expect: /plugin name "my_plugin" is not valid/},
    {name: 'a name with a slash', args: ['../up', '--kind', 'image'], expect: /plugin name "\.\.\/up" is not valid/},
    {
      name: 'a name with the package prefix',
      args: ['kube-spawn-plugin-x', '--kind', 'image'],
      expect: /plugin name "kube-spawn-plugin-x" repeats the package prefix: give the short name, "x"$/,
    },
    {
      name: 'an unknown kind',
      args: ['hello', '--kind', 'theme'],
      expect: /^kube-spawn: unknown plugin kind "theme": use --kind workaround, runtime or image$/,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const cwd = await mkdtemp(join(work, 'refused-'))
      const result = await kubeSpawn(['plugins:new', ...c.args], {cwd})
      assert.equal(result.code, 2, result.stderr)
      assert.equal(result.stdout, '')
      const lines = stderrLines(result)
      assert.equal(lines.length, 1, result.stderr)
      assert.match(lines[0], c.expect)
      assert.deepEqual(await readdir(cwd), [])
    })
  }

  it('a target directory that is not empty, left as it was', async () => {
    const dir = await mkdtemp(join(work, 'taken-'))
    await writeFile(join(dir, 'notes.txt'), 'mine\n')
    const before = await snapshotTree(dir)
    const refused = await kubeSpawn(['plugins:new', 'taken', '--kind', 'workaround', '--dir', dir], {cwd: work})
    assert.equal(refused.code, 2, refused.stderr)
    assert.equal(refused.stdout, '')
    assert.deepEqual(stderrLines(refused), [`kube-spawn: ${dir} exists and is not empty: choose another --dir, or remove it first`])
    assert.deepEqual(await snapshotTree(dir), before)

    // The default target, when it holds something.
    const parent = await mkdtemp(join(work, 'default-'))
    const taken = join(parent, 'kube-spawn-plugin-taken')
    await mkdir(taken)
    await writeFile(join(taken, 'package.json'), '{}\n')
    const result = await kubeSpawn(['plugins:new', 'taken', '--kind', 'runtime'], {cwd: parent})
    assert.equal(result.code, 2, result.stderr)
    assert.deepEqual(stderrLines(result), [`kube-spawn: ${taken} exists and is not empty: choose another --dir, or remove it first`])
    assert.deepEqual(await readdir(taken), ['package.json'])
  })

  it('a target that is a file', async () => {
    const file = join(work, 'a-file')
    await writeFile(file, 'x\n')
    const result = await kubeSpawn(['plugins:new', 'x', '--kind', 'runtime', '--dir', file], {cwd: work})
    assert.equal(result.code, 2, result.stderr)
    assert.deepEqual(stderrLines(result), [`kube-spawn: ${file} exists and is not a directory: choose another --dir`])
  })
})

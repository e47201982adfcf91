/**
 * The plugin templates (templates/plugin/) and the example made from them: examples/plugin-template
 * is exactly what `plugins:new hello --kind workaround` writes. test/integration/plugin-template.test.ts
 * installs, builds, tests, packs and installs a copy of it with npm, as a third party would.
 */
import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {REPO} from '../../helpers/cli.ts'
import {PLUGIN_KINDS, TEMPLATES_DIR, renderPlugin} from '../../../dist/plugins/scaffold.js'

const EXAMPLE = join(REPO, 'examples', 'plugin-template')

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

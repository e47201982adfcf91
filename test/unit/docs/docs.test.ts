/** The docs stay true to the code: every key is documented, every example is valid, every stage is named. */
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {describe, it} from 'node:test'

import {parseToml, resolveDefinition} from '../../../dist/config/definition.js'
import {definitionSpec} from '../../../dist/config/spec.js'
import type {Spec} from '../../../dist/config/spec.js'
import {STAGES} from '@kube-spawn/sdk'

const read = (name: string) => readFile(new URL(`../../../docs/${name}`, import.meta.url), 'utf8')

/** Key paths as the docs spell them: network.pod-cidr, bindmount.read-only; not inside arrays or free-form tables. */
function keyPaths(spec: Spec & {kind: 'table'}, prefix = ''): string[] {
  return Object.entries(spec.fields).flatMap(([key, field]) => {
    const path = prefix ? `${prefix}.${key}` : key
    return field.kind === 'table' && !field.freeForm ? [path, ...keyPaths(field, path)] : [path]
  })
}

describe('docs/configuration.md', () => {
  it('documents every key of kspawn.toml', async () => {
    const text = await read('configuration.md')
    const missing = keyPaths(definitionSpec).filter((path) => !text.includes(`\`${path}\``) && !text.includes(`[${path}]`))
    assert.deepEqual(missing, [])
    for (const field of ['name', 'role', 'ip', 'running']) assert.ok(text.includes(`\`${field}\``), field)
  })

  it('has only valid TOML examples', async () => {
    const text = await read('configuration.md')
    const blocks = [...text.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1].replace(/^ {2}/gm, ''))
    assert.ok(blocks.length >= 3)
    for (const block of blocks.filter((b) => !b.includes('[[rule]]'))) {
      await resolveDefinition(parseToml(block, 'example'), 'example', {}, {checkPaths: false})
    }
    const [example] = blocks
    const cluster = await resolveDefinition(parseToml(example, 'example'), 'example', {}, {checkPaths: false})
    assert.equal(cluster.clusterName, 'dev')
    assert.deepEqual(cluster.bindmount.readOnly, [{src: '/srv/datasets', dst: '/data'}])
  })
})

describe('docs/architecture.md', () => {
  it('names every stage', async () => {
    const text = await read('architecture.md')
    // In prose (`stage`) or in the excerpt of src/pipeline/pipelines.ts ('stage').
    for (const stage of STAGES) assert.ok(text.includes(`\`${stage}\``) || text.includes(`'${stage}'`), stage)
  })
})

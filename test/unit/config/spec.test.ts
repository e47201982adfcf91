import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {describe, it} from 'node:test'

import {MAX_NODES, checkAgainstSpec, definitionSpec, toJsonSchema, toRootJsonSchema} from '../../../dist/config/spec.js'
import type {Spec} from '../../../dist/config/spec.js'

const table: Spec = {
  kind: 'table',
  description: 'test table',
  fields: {
    flag: {kind: 'boolean', description: 'a flag'},
    count: {kind: 'integer', description: 'a count', min: 1, max: 5},
    color: {kind: 'string', description: 'a color', enum: ['red', 'blue']},
    name: {kind: 'string', description: 'a name'},
    items: {
      kind: 'array',
      description: 'items',
      items: {kind: 'table', description: 'an item', fields: {id: {kind: 'string', description: 'id'}}, required: ['id']},
    },
    free: {kind: 'table', description: 'free-form', fields: {}, freeForm: true},
    gates: {
      kind: 'map',
      description: 'gates',
      keys: {pattern: '^[A-Z][a-z]*$', means: 'a gate name'},
      values: {kind: 'boolean', description: 'on'},
    },
  },
}

describe('checkAgainstSpec', () => {
  it('accepts a valid value and an empty table', () => {
    assert.deepEqual(
      checkAgainstSpec({flag: true, count: 5, color: 'red', name: 'x', items: [{id: 'a'}], free: {anything: [1]}}, table, ''),
      [],
    )
    assert.deepEqual(checkAgainstSpec({}, table, ''), [])
  })

  it('names an unknown key and the known ones', () => {
    assert.deepEqual(checkAgainstSpec({colour: 'red'}, table, ''), [
      'unknown key "colour"; known keys: flag, count, color, name, items, free, gates',
    ])
    assert.deepEqual(checkAgainstSpec({items: [{id: 'a', idd: 'b'}]}, table, ''), [
      'unknown key "items[0].idd"; known keys in [items[0]]: id',
    ])
  })

  it('names a wrong type with the value it got', () => {
    assert.deepEqual(checkAgainstSpec({flag: 'yes'}, table, ''), ['flag must be true or false (got string "yes")'])
    assert.deepEqual(checkAgainstSpec({count: '3'}, table, ''), ['count must be a whole number (got string "3")'])
    assert.deepEqual(checkAgainstSpec({count: 1.5}, table, ''), ['count must be a whole number (got number 1.5)'])
    assert.deepEqual(checkAgainstSpec({name: ['a']}, table, ''), ['name must be a string (got an array)'])
    assert.deepEqual(checkAgainstSpec({items: 'a'}, table, ''), ['items must be an array of tables (got string "a")'])
    assert.deepEqual(checkAgainstSpec({items: ['a']}, table, ''), ['items[0] must be a table (got string "a")'])
    assert.deepEqual(checkAgainstSpec({free: 3}, table, ''), ['free must be a table (got number 3)'])
    assert.deepEqual(checkAgainstSpec('x', table, ''), ['the file must be a table (got string "x")'])
  })

  it('names a number out of range with the range', () => {
    assert.deepEqual(checkAgainstSpec({count: 0}, table, ''), ['count = 0 is out of range; use a whole number from 1 to 5'])
    assert.deepEqual(checkAgainstSpec({count: 6}, table, ''), ['count = 6 is out of range; use a whole number from 1 to 5'])
  })

  it('names a value outside the enum', () => {
    assert.deepEqual(checkAgainstSpec({color: 'green'}, table, ''), ['color = "green" is not one of "red", "blue"'])
  })

  it('checks the keys and values of a map', () => {
    assert.deepEqual(checkAgainstSpec({gates: {Good: true, Bad: false}}, table, ''), [])
    assert.deepEqual(checkAgainstSpec({gates: {'foo-bar': true}}, table, ''), [
      'gates has the entry "foo-bar", which is not a gate name (names match ^[A-Z][a-z]*$)',
    ])
    assert.deepEqual(checkAgainstSpec({gates: {Good: 'yes'}}, table, ''), ['gates.Good must be true or false (got string "yes")'])
    assert.deepEqual(checkAgainstSpec({gates: ['Good']}, table, ''), ['gates must be a table (got an array)'])
  })

  it('names a missing required key', () => {
    assert.deepEqual(checkAgainstSpec({items: [{}]}, table, ''), ['items[0] needs the key "id"'])
  })

  it('reports every problem, in order', () => {
    assert.equal(checkAgainstSpec({flag: 1, count: 9, bogus: true}, table, '').length, 3)
  })

  it('uses nested key paths in the definition spec', () => {
    assert.deepEqual(checkAgainstSpec({'runtime-config': {timeout: 90}}, definitionSpec, ''), [
      'runtime-config.timeout must be a string (got number 90)',
    ])
    assert.deepEqual(checkAgainstSpec({machines: [{name: 'a', role: 'boss'}]}, definitionSpec, ''), [
      'machines[0].role = "boss" is not one of "control-plane", "worker", "load-balancer", "registry"',
    ])
  })
})

describe('toJsonSchema', () => {
  it('maps each kind', () => {
    const schema = toJsonSchema(table) as {type: string; properties: Record<string, Record<string, unknown>>; additionalProperties: unknown}
    assert.equal(schema.type, 'object')
    assert.equal(schema.additionalProperties, false)
    assert.deepEqual(schema.properties.flag, {description: 'a flag', type: 'boolean'})
    assert.deepEqual(schema.properties.count, {description: 'a count', type: 'integer', minimum: 1, maximum: 5, default: undefined})
    assert.deepEqual(schema.properties.color, {description: 'a color', type: 'string', enum: ['red', 'blue']})
    assert.deepEqual(schema.properties.items, {
      description: 'items',
      type: 'array',
      items: {
        description: 'an item',
        type: 'object',
        properties: {id: {description: 'id', type: 'string'}},
        required: ['id'],
        additionalProperties: false,
      },
    })
    assert.deepEqual(schema.properties.free, {
      description: 'free-form',
      type: 'object',
      properties: {},
      additionalProperties: {type: 'object'},
    })
    assert.deepEqual(schema.properties.gates, {
      description: 'gates',
      type: 'object',
      propertyNames: {pattern: '^[A-Z][a-z]*$'},
      additionalProperties: {description: 'on', type: 'boolean'},
    })
  })

  it('describes kspawn.toml at the root', () => {
    const schema = toRootJsonSchema() as Record<string, any>
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema')
    assert.equal(schema.title, 'kspawn.toml')
    assert.equal(schema.type, 'object')
    assert.equal(schema.additionalProperties, false)
    assert.deepEqual(Object.keys(schema.properties), Object.keys(definitionSpec.fields))
    assert.deepEqual(schema.properties.nodes, {
      description: definitionSpec.fields.nodes.description,
      type: 'integer',
      minimum: 1,
      maximum: MAX_NODES,
      default: 3,
    })
    assert.deepEqual(schema.properties.cni.enum, ['bridge', 'none'])
    assert.deepEqual(schema.properties['plugin-config'].additionalProperties, {type: 'object'})
    assert.deepEqual(schema.properties.bindmount.properties['read-only'].items.required, ['src', 'dst'])
  })
})

describe('docs/kspawn.schema.json', () => {
  it('is the schema generated from the spec (run "npm run build && npm run schema" to update it)', async () => {
    const published = await readFile(new URL('../../../docs/kspawn.schema.json', import.meta.url), 'utf8')
    assert.equal(published, `${JSON.stringify(toRootJsonSchema(), null, 2)}\n`)
  })
})

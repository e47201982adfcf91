import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {applyConfigPatches, mergePatch, parseConfigPatch} from '../../../dist/kubernetes/config-patches.js'

describe('mergePatch', () => {
  it('merges maps key by key, replaces scalars and lists, deletes on null, appends new keys', () => {
    const target = {a: 1, b: {c: 2, d: [1, 2], e: 'x'}, f: 'keep'}
    assert.deepEqual(mergePatch(target, {b: {c: 3, d: [9], e: null, g: {h: true}}, a: null, z: 'new'}), {
      b: {c: 3, d: [9], g: {h: true}},
      f: 'keep',
      z: 'new',
    })
    assert.deepEqual(Object.keys(mergePatch(target, {z: 1, a: 2}) as object), ['a', 'b', 'f', 'z'])
    assert.deepEqual(target, {a: 1, b: {c: 2, d: [1, 2], e: 'x'}, f: 'keep'}, 'the target is not changed')
  })

  it('replaces a scalar with a map, leaving out the nulls inside it', () => {
    assert.deepEqual(mergePatch({a: 'x'}, {a: {b: 1, c: null}}), {a: {b: 1}})
  })
})

describe('parseConfigPatch', () => {
  it('splits off kind and apiVersion, reading YAML as kubeadm does (1.1)', () => {
    assert.deepEqual(parseConfigPatch('kind: KubeletConfiguration\nserializeImagePulls: no\n'), {
      kind: 'KubeletConfiguration',
      apiVersion: undefined,
      fields: {serializeImagePulls: false},
    })
  })

  it('gives one-line reasons', () => {
    for (const [text, reason] of [
      ['a: [', /^does not parse as YAML: [^\n]*[^:]$/],
      ['a: 1\n---\nb: 2', /^does not parse as YAML/],
      ['', /^is not a YAML map$/],
      ['a: 1', /^has no kind$/],
      ['kind: A\napiVersion: 1', /^has an apiVersion that is not a string$/],
    ] as const)
      assert.throws(() => parseConfigPatch(text), {message: reason})
  })
})

describe('applyConfigPatches', () => {
  it('applies the patches in order to the documents they select by kind, and by apiVersion when named', () => {
    const docs = [
      {apiVersion: 'x/v1', kind: 'A', v: 1},
      {apiVersion: 'x/v1', kind: 'B', v: 1},
    ]
    const patched = applyConfigPatches(docs, ['kind: A\nv: 2', 'kind: A\nv: 3\nw: 1', 'apiVersion: x/v2\nkind: B\nv: 9'])
    assert.deepEqual(patched, [
      {apiVersion: 'x/v1', kind: 'A', v: 3, w: 1},
      {apiVersion: 'x/v1', kind: 'B', v: 1},
    ])
  })
})

/** load image-archive and load image: their one-line refusals, before any node is touched. */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, snapshotTree, stderrLines} from '../helpers/cli.ts'

/** Runs a load command against the fixture cluster "keep" (stopped) and returns its one stderr line. */
async function refusal(args: (work: string) => Promise<string[]>): Promise<string> {
  const {work, root, cleanup} = await makeWorkDir()
  try {
    const before = await snapshotTree(root)
    const result = await kubeSpawn([...(await args(work)), '-c', 'keep', '--dir', root], {timeoutMs: 60_000})
    assert.notEqual(result.code, 0)
    assert.equal(result.stdout, '')
    assert.equal(stderrLines(result).length, 1, result.stderr)
    assert.deepEqual(await snapshotTree(root), before, 'nothing changed')
    return stderrLines(result)[0]
  } finally {
    await cleanup()
  }
}

const NO_HOST_SAVER = await hostSaverAnswers()

describe('load', () => {
  it('a missing file', async () => {
    const line = await refusal(async (work) => ['load', 'image-archive', join(work, 'nope.tar')])
    assert.match(line, /^kube-spawn: no such file: \/.*\/nope\.tar: give the path of an image archive/)
  })
  it('a file that is not an image archive', async () => {
    const line = await refusal(async (work) => {
      await writeFile(join(work, 'notes.txt'), 'hello\n')
      return ['load', 'image-archive', join(work, 'notes.txt')]
    })
    assert.match(line, /is not an image archive \(not a tar file\)/)
  })
  it('a cluster that does not run', async () => {
    const line = await refusal(async (work) => {
      await writeFile(join(work, 'empty.tar'), Buffer.concat([Buffer.alloc(257), Buffer.from('ustar\x0000'), Buffer.alloc(1024 - 265)]))
      return ['load', 'image-archive', join(work, 'empty.tar')]
    })
    assert.match(line, /^kube-spawn: cluster "keep" has nodes that do not run: ks-keep-cp, ks-keep-w1: start it first/)
  })
  it('a node the cluster does not have', async () => {
    const line = await refusal(async (work) => {
      await writeFile(join(work, 'empty.tar'), Buffer.concat([Buffer.alloc(257), Buffer.from('ustar\x0000'), Buffer.alloc(1024 - 265)]))
      return ['load', 'image-archive', '--nodes', 'w9', join(work, 'empty.tar')]
    })
    assert.match(line, /^kube-spawn: cluster "keep" has no node "w9": its nodes: ks-keep-cp, ks-keep-w1$/)
  })
  it('load image on a host without a docker, podman or containerd that answers', {skip: NO_HOST_SAVER}, async () => {
    const line = await refusal(async () => ['load', 'image', 'busybox:1.35'])
    assert.match(line, /^kube-spawn: this host has no docker, podman or containerd \(ctr\) that answers, to take the images from/)
  })
})

/** A reason to skip the last case where one of them does answer (then load image works instead). */
async function hostSaverAnswers(): Promise<string | false> {
  const {runProgram} = await import('../../helpers/cli.ts')
  for (const probe of [
    ['docker', 'version'],
    ['podman', 'version'],
    ['ctr', 'version'],
  ]) {
    const result = await runProgram(probe[0], probe.slice(1), {timeoutMs: 30_000}).catch(() => undefined)
    if (result?.code === 0) return `${probe[0]} answers on this host`
  }
  return false
}

/** [[port-mapping]], [registry] and control-planes at create: bad input is refused in one line, before anything is written. */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, snapshotTree, stderrLines} from '../helpers/cli.ts'

describe('[[port-mapping]]', () => {
  it('a host port already taken on this host', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen({port: 0, host: '0.0.0.0'}, resolve))
    const port = (server.address() as {port: number}).port
    const {work, root, cleanup} = await makeWorkDir()
    try {
      const config = join(work, 'kspawn.toml')
      await writeFile(config, `cluster-name = "ports"\nnodes = 2\n\n[[port-mapping]]\nhost-port = ${port}\nnode-port = 30080\n`)
      const before = await snapshotTree(root)
      for (const args of [['create', '--dry-run'], ['create']]) {
        const result = await kubeSpawn([...args, '--config', config, '--dir', root], {timeoutMs: 60_000})
        assert.notEqual(result.code, 0)
        assert.deepEqual(stderrLines(result), [
          `kube-spawn: host port ${port}/tcp of [[port-mapping]] is already taken on this host: stop what listens there, or choose another host-port`,
        ])
        assert.deepEqual(await snapshotTree(root), before, 'nothing is written')
      }
    } finally {
      server.close()
      await cleanup()
    }
  })
})

describe('HA and registry bad input at create: one line, exit 2, nothing written', () => {
  const refused = async (toml: string, extraArgs: string[], expected: string) => {
    const {work, root, cleanup} = await makeWorkDir()
    try {
      const config = join(work, 'kspawn.toml')
      await writeFile(config, toml)
      const before = await snapshotTree(root)
      for (const args of [['create', '--dry-run'], ['create']]) {
        const result = await kubeSpawn([...args, '--config', config, ...extraArgs, '--dir', root], {timeoutMs: 60_000})
        assert.equal(result.code, 2, result.stderr)
        assert.deepEqual(stderrLines(result), [expected.replace('CONFIG', config)])
        assert.deepEqual(await snapshotTree(root), before, 'nothing is written')
      }
    } finally {
      await cleanup()
    }
  }

  it('a registry port already in use on this host', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen({port: 0, host: '127.0.0.1'}, resolve))
    const port = (server.address() as {port: number}).port
    try {
      await refused(
        `cluster-name = "reg"\nnodes = 1\n\n[registry]\nenabled = true\nport = ${port}\n`,
        [],
        `kube-spawn: host port ${port}/tcp of registry.port is already taken on this host: stop what listens there, or choose another registry.port`,
      )
    } finally {
      server.close()
    }
  })

  it('control-planes that is even', () =>
    refused(
      'cluster-name = "ha"\nnodes = 4\n',
      ['--control-planes', '2'],
      'kube-spawn: CONFIG: control-planes = 2 is even: etcd needs a majority, so 2 control planes survive no more failures than 1: use 1, 3, 5 or 7',
    ))

  it('control-planes larger than nodes', () =>
    refused(
      'cluster-name = "ha"\nnodes = 2\ncontrol-planes = 3\n',
      [],
      'kube-spawn: CONFIG: control-planes = 3 is more than nodes = 2: raise nodes to at least 3 (nodes counts control planes and workers), or lower control-planes',
    ))
})

/** [[port-mapping]] at create: a host port in use is refused in one line, before anything is written. */
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

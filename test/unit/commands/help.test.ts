import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {kubeSpawn} from '../helpers/cli.ts'

describe('kube-spawn --help', () => {
  it('lists every command', async () => {
    const result = await kubeSpawn(['--help'])
    assert.equal(result.code, 0, result.stderr)
    const commands = result.stdout.slice(result.stdout.indexOf('COMMANDS'))
    for (const command of ['create', 'destroy', 'exec', 'list', 'shell', 'start', 'status', 'stop', 'up', 'plugins']) {
      assert.match(commands, new RegExp(`^  ${command}\\s`, 'm'), command)
    }
  })

  it('shows the global flags of a command', async () => {
    const result = await kubeSpawn(['create', '--help'])
    assert.equal(result.code, 0, result.stderr)
    for (const flag of ['--dir', '--cluster-name', '--verbose', '--json', '--config', '--nodes', '--dry-run'])
      assert.ok(result.stdout.includes(flag), flag)
  })
})

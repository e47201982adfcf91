import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {kubeSpawn} from '../helpers/cli.ts'

describe('kube-spawn --help', () => {
  it('lists every command', async () => {
    const result = await kubeSpawn(['--help'])
    assert.equal(result.code, 0, result.stderr)
    // Topics (export, plugins) have a section of their own, before COMMANDS.
    const commands = result.stdout.slice(result.stdout.indexOf('TOPICS'))
    for (const command of [
      'create',
      'destroy',
      'exec',
      'export',
      'host',
      'image',
      'kubeconfig',
      'list',
      'shell',
      'start',
      'status',
      'stop',
      'up',
      'plugins',
    ]) {
      assert.match(commands, new RegExp(`^  ${command}\\s`, 'm'), command)
    }
  })

  it('takes topics with a space or a colon: export logs, plugins:link', async () => {
    for (const argv of [
      ['export', 'logs', '--help'],
      ['export:logs', '--help'],
    ]) {
      const result = await kubeSpawn(argv)
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /\$ kube-spawn export logs \[DIR\]/)
    }
    const link = await kubeSpawn(['plugins:link', '--help'])
    assert.equal(link.code, 0, link.stderr)
  })

  it('shows the global flags of a command', async () => {
    const result = await kubeSpawn(['create', '--help'])
    assert.equal(result.code, 0, result.stderr)
    for (const flag of ['--dir', '--cluster-name', '--verbose', '--json', '--config', '--nodes', '--dry-run'])
      assert.ok(result.stdout.includes(flag), flag)
  })
})

import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {HostError, Interrupted, UserError, findUserError, withNote} from '../../../dist/errors.js'
import {timestampName} from '../../../dist/cluster/diagnostics.js'

describe('exit codes', () => {
  it('bad input is 2, a failure on the host 1, an interrupt 128 + the signal', () => {
    assert.equal(new UserError('malformed').exitCode, 2)
    assert.equal(new HostError('iptables exited with 4').exitCode, 1)
    assert.equal(new Interrupted('SIGINT').exitCode, 130)
    assert.equal(new Interrupted('SIGTERM').exitCode, 143)
  })
})

describe('withNote', () => {
  it('adds to the hint and keeps the message and exit code of the UserError inside', () => {
    const inner = new HostError('kubeadm exited with 1', {hint: 'command: kubeadm init'})
    const noted = withNote(new Error('wrapped', {cause: inner}), 'logs saved in /x')
    assert.equal(noted.line, 'kubeadm exited with 1: command: kubeadm init; logs saved in /x')
    assert.equal(noted.exitCode, 1)
    assert.equal(findUserError(noted.cause), inner)
  })

  it('makes a plain error a one-line failure (exit 1)', () => {
    const noted = withNote(new Error('plugin broke\nstack...'), 'the new cluster was removed')
    assert.equal(noted.line, 'plugin broke: the new cluster was removed')
    assert.equal(noted.exitCode, 1)
  })

  it("keeps an interrupt's exit code", () => {
    assert.equal(withNote(new Interrupted('SIGINT'), 'the nodes were stopped').exitCode, 130)
  })
})

describe('timestampName', () => {
  it('sorts by time and has no colons', () => {
    assert.equal(timestampName(new Date('2026-12-02T01:23:45.678Z')), '2026-12-02T01-23-45Z')
  })
})

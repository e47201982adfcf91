/** Golden files (UPDATE_GOLDEN=1 rewrites them) and a host description for tests of pure logic. */
import assert from 'node:assert/strict'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {dirname} from 'node:path'

import type {HostInfo} from '@kube-spawn/sdk'

const UPDATE = process.env.UPDATE_GOLDEN === '1'

/** Compares `actual` with the golden file at `path`, or writes it with UPDATE_GOLDEN=1. */
export async function golden(path: string, actual: string): Promise<void> {
  if (UPDATE) {
    await mkdir(dirname(path), {recursive: true})
    await writeFile(path, actual)
    return
  }
  const expected = await readFile(path, 'utf8').catch(() => {
    throw new Error(`golden file ${path} is missing; run with UPDATE_GOLDEN=1 to create it`)
  })
  assert.equal(actual, expected, `${path} differs from the renderer's output (UPDATE_GOLDEN=1 rewrites it)`)
}

/** A cgroup v2 host with systemd and machined, with what a test changes. */
export function testHost(overrides: Partial<HostInfo> = {}): HostInfo {
  return {
    machined: true,
    capSysResource: true,
    cgroupVersion: 2,
    hasLibModules: true,
    systemdPid1: true,
    systemdVersion: 252,
    kernel: '6.1.0',
    timeoutScale: 1,
    ...overrides,
  }
}

/**
 * kube-spawn host reports what preflight sees, read back against the machine itself; the timeout scale
 * can be set; and a node image that cannot boot on this host is refused before anything is made.
 */
import assert from 'node:assert/strict'
import {readFile, statfs, writeFile} from 'node:fs/promises'
import {release} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, stderrLines} from '../helpers/cli.ts'

const CGROUP2_SUPER_MAGIC = 0x63677270
const cgroupVersion = async () => ((await statfs('/sys/fs/cgroup')).type === CGROUP2_SUPER_MAGIC ? 2 : 1)

interface Examination {
  host: {cgroupVersion: number; systemdPid1: boolean; systemdVersion?: number; kernel: string; timeoutScale: number; machined: boolean}
  description: string
  failures: unknown[]
  warnings: string[]
}

describe('kube-spawn host', () => {
  it('reports the cgroup version, systemd as PID 1, machined, the systemd and kernel versions', async () => {
    const {root, cleanup} = await makeWorkDir()
    try {
      const result = await kubeSpawn(['host', '--dir', root, '--json'], {env: {KUBE_SPAWN_TIMEOUT_SCALE: '1'}})
      assert.equal(result.code, 0, result.stderr)
      const examined = JSON.parse(result.stdout) as Examination
      assert.equal(examined.host.cgroupVersion, await cgroupVersion())
      assert.equal(examined.host.systemdPid1, (await readFile('/proc/1/comm', 'utf8')).trim() === 'systemd')
      assert.equal(examined.host.kernel, release())
      assert.ok(Number.isInteger(examined.host.systemdVersion), 'the systemd-nspawn version')
      assert.equal(examined.host.timeoutScale, 1)
      assert.deepEqual(examined.failures, [])
      assert.equal(
        examined.description,
        `cgroup v${examined.host.cgroupVersion}, systemd ${examined.host.systemdVersion} ${examined.host.systemdPid1 ? 'as PID 1' : 'installed, not PID 1'}${
          examined.host.systemdPid1 ? (examined.host.machined ? ' with machined' : ' without machined') : ''
        }, kernel ${release()}, ${examined.host.machined ? 'machined' : 'standalone'} backend`,
      )
      const text = await kubeSpawn(['host', '--dir', root], {env: {KUBE_SPAWN_TIMEOUT_SCALE: '1'}})
      assert.equal(text.code, 0, text.stderr)
      assert.equal(text.stdout.split('\n')[0], `Host: ${examined.description}`)
      assert.match(text.stdout, /✔ ready for Kubernetes v1\.20\.2 clusters/)
    } finally {
      await cleanup()
    }
  })

  it('warns about Kubernetes 1.35 on a cgroup v1 host, and takes the timeout scale from the environment', async (t) => {
    const {root, cleanup} = await makeWorkDir()
    try {
      const result = await kubeSpawn(['host', '--dir', root, '--json', '--kubernetes-version', 'v1.35.0'], {
        env: {KUBE_SPAWN_TIMEOUT_SCALE: '3'},
      })
      assert.equal(result.code, 0, result.stderr)
      const examined = JSON.parse(result.stdout) as Examination
      assert.equal(examined.host.timeoutScale, 3)
      assert.match(examined.description, /, waits × 3$/)
      if ((await cgroupVersion()) === 2) t.diagnostic('a cgroup v2 host: no cgroup v1 warning expected')
      else assert.match(examined.warnings.join('\n'), /Kubernetes 1\.35 refuses cgroup v1 hosts by default/)

      const bad = await kubeSpawn(['host', '--dir', root], {env: {KUBE_SPAWN_TIMEOUT_SCALE: 'fast'}})
      assert.equal(bad.code, 2)
      assert.deepEqual(stderrLines(bad), [
        'kube-spawn: KUBE_SPAWN_TIMEOUT_SCALE=fast is not a number from 1 to 100: unset it, or give e.g. 3',
      ])
    } finally {
      await cleanup()
    }
  })

  it('create refuses Debian trixie nodes on a cgroup v1 host in one line, and makes no cluster', async (t) => {
    if ((await cgroupVersion()) === 2) return t.skip('this host has cgroup v2, where trixie nodes boot (test/vm/guest-cluster.sh)')
    const {work, root, cleanup} = await makeWorkDir()
    try {
      await writeFile(join(work, 'trixie.toml'), '[plugin-config.image-debian]\nsuite = "trixie"\n')
      const result = await kubeSpawn(['create', '--dir', root, '-c', 'tri', '--config', join(work, 'trixie.toml')], {env: {CI: 'true'}})
      assert.equal(result.code, 1, result.stderr)
      // Above it, the progress renderer marks the failed task and stage; the error itself is one line.
      const lines = stderrLines(result).filter((line) => line.startsWith('kube-spawn: '))
      assert.equal(lines.length, 1, result.stderr)
      assert.match(
        lines[0],
        /^kube-spawn: Debian trixie nodes run systemd 257, and systemd 256 and later need a cgroup v2 host: boot this host with systemd\.unified_cgroup_hierarchy=1, or use suite = "bookworm"/,
      )
      const list = await kubeSpawn(['list', '--dir', root, '--json'])
      assert.deepEqual(
        (JSON.parse(list.stdout) as Array<{name: string}>).map((c) => c.name),
        ['keep'],
      )
    } finally {
      await cleanup()
    }
  })
})

import {access, readFile, statfs} from 'node:fs/promises'

import type {HostInfo} from '../sdk/index.js'

const CAP_SYS_RESOURCE = 24n
const CGROUP2_SUPER_MAGIC = 0x63677270

/** Reads what kube-spawn needs to know about the host; no side effects. */
export async function detectHost(): Promise<HostInfo> {
  const [machined, capSysResource, cgroupVersion, hasLibModules] = await Promise.all([
    hasMachined(),
    hasCapability(CAP_SYS_RESOURCE),
    statfs('/sys/fs/cgroup').then(
      (s) => (s.type === CGROUP2_SUPER_MAGIC ? 2 : 1) as 1 | 2,
      () => 1 as const,
    ),
    access('/lib/modules').then(
      () => true,
      () => false,
    ),
  ])
  return {machined, capSysResource, cgroupVersion, hasLibModules}
}

/** machined is usable where PID 1 is systemd (it creates /run/systemd/system) and machinectl exists. */
async function hasMachined(): Promise<boolean> {
  if (process.env.KUBE_SPAWN_BACKEND) return process.env.KUBE_SPAWN_BACKEND === 'machined'
  const checks = await Promise.all(
    ['/run/systemd/system', '/usr/bin/machinectl'].map((p) =>
      access(p).then(
        () => true,
        () => false,
      ),
    ),
  )
  return checks.every(Boolean)
}

export async function hasCapability(bit: bigint): Promise<boolean> {
  const status = await readFile('/proc/self/status', 'utf8')
  const line = status.split('\n').find((l) => l.startsWith('CapBnd:'))
  if (!line) return true
  return ((BigInt(`0x${line.split(/\s+/)[1]}`) >> bit) & 1n) === 1n
}

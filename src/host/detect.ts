import {access, readFile, statfs} from 'node:fs/promises'
import {release} from 'node:os'

import type {HostInfo} from '@kube-spawn/sdk'
import {UserError} from '../errors.js'
import {run} from '../util/run.js'

const CAP_SYS_RESOURCE = 24n
const CGROUP2_SUPER_MAGIC = 0x63677270

/** Reads what kube-spawn needs to know about the host; no side effects. */
export async function detectHost(): Promise<HostInfo> {
  const [machined, capSysResource, cgroupVersion, hasLibModules, systemdPid1, systemdVersion, timeoutScale] = await Promise.all([
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
    readFile('/proc/1/comm', 'utf8').then(
      (comm) => comm.trim() === 'systemd',
      () => false,
    ),
    nspawnVersion(),
    detectTimeoutScale(),
  ])
  return {machined, capSysResource, cgroupVersion, hasLibModules, systemdPid1, systemdVersion, kernel: release(), timeoutScale}
}

/** Waits on a fully emulated CPU (QEMU's TCG, which systemd-detect-virt calls "qemu"; KVM is "kvm") last about 3 times as long. */
export const EMULATED_CPU_TIMEOUT_SCALE = 3

/** $KUBE_SPAWN_TIMEOUT_SCALE when set, else 3 under full emulation, else 1. */
async function detectTimeoutScale(): Promise<number> {
  const configured = process.env.KUBE_SPAWN_TIMEOUT_SCALE
  if (configured) {
    const scale = Number(configured)
    if (!(scale >= 1 && scale <= 100))
      throw new UserError(`KUBE_SPAWN_TIMEOUT_SCALE=${configured} is not a number from 1 to 100`, {hint: 'unset it, or give e.g. 3'})
    return scale
  }
  const virt = await run(['systemd-detect-virt', '--vm'], {allowFailure: true}).catch(() => undefined)
  return virt?.stdout.trim() === 'qemu' ? EMULATED_CPU_TIMEOUT_SCALE : 1
}

/** The systemd version of systemd-nspawn, which is what boots the nodes. */
export async function nspawnVersion(): Promise<number | undefined> {
  const result = await run(['systemd-nspawn', '--version'], {allowFailure: true}).catch(() => undefined)
  const version = Number(/systemd (\d+)/.exec(result?.stdout ?? '')?.[1])
  return result?.exitCode === 0 && version > 0 ? version : undefined
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

import type {HostInfo} from '@kube-spawn/sdk'
import {versionTraits} from '../kubernetes/versions.js'
import type {CheckFailure} from './preflight.js'

/** Kubernetes keeps cgroup v1 in maintenance mode from 1.31 and refuses it by default from 1.35. */
const CGROUP_V1_MAINTENANCE_MINOR = 31
const CGROUP_V1_REFUSED_MINOR = 35

/** One line on the host as kube-spawn sees it, e.g. "cgroup v2, systemd 252 as PID 1 with machined, kernel 6.1.0". */
export function describeHost(host: HostInfo): string {
  const systemd = host.systemdVersion === undefined ? 'systemd (version unknown)' : `systemd ${host.systemdVersion}`
  const init = host.systemdPid1
    ? `${systemd} as PID 1 ${host.machined ? 'with machined' : 'without machined'}`
    : `${systemd} installed, not PID 1`
  const waits = host.timeoutScale === 1 ? '' : `, waits × ${host.timeoutScale}`
  return `cgroup v${host.cgroupVersion}, ${init}, kernel ${host.kernel}, ${host.machined ? 'machined' : 'standalone'} backend${waits}`
}

export interface SupportVerdict {
  /** Combinations that cannot work; create refuses them. */
  refusals: CheckFailure[]
  /** Combinations that work here but that upstream no longer supports. */
  warnings: string[]
}

/** What the host and the cluster's Kubernetes version mean together; pure, so the table is unit-tested. */
export function checkSupport(host: HostInfo, kubernetesVersion: string): SupportVerdict {
  const refusals: CheckFailure[] = []
  const warnings: string[] = []
  const {minor} = versionTraits(kubernetesVersion).version
  if (host.cgroupVersion === 1 && minor >= CGROUP_V1_REFUSED_MINOR) {
    warnings.push(
      `Kubernetes 1.${minor} refuses cgroup v1 hosts by default; kube-spawn sets failCgroupV1 = false, which upstream no longer supports: boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1)`,
    )
  } else if (host.cgroupVersion === 1 && minor >= CGROUP_V1_MAINTENANCE_MINOR) {
    warnings.push(`Kubernetes 1.${minor} keeps cgroup v1 in maintenance mode: prefer a cgroup v2 host`)
  }
  if (host.cgroupVersion === 2 && !host.systemdPid1) {
    warnings.push(
      'cgroup v2 without systemd as PID 1 is not tested: nothing delegates a cgroup subtree to the nodes; a host booted with systemd is',
    )
  }
  return {refusals, warnings}
}

import {access, mkdir, readFile, statfs} from 'node:fs/promises'

import {UserError} from '../errors.js'
import type {HostInfo} from '@kube-spawn/sdk'
import {checkSupport, describeHost} from './support.js'
import {run} from '../util/run.js'

export interface CheckFailure {
  check: string
  problem: string
  fix: string
}

export const MIN_NSPAWN_VERSION = 233
const OVERLAYFS_SUPER_MAGIC = 0x794c7630
/** A node's own layer and data after kubeadm: measured about 300 MB on a 1.20 control plane. */
export const BYTES_PER_NODE = 400 * 1024 ** 2
/** A Debian base image with containerd: about 450 MB. */
export const BASE_IMAGE_BYTES = 600 * 1024 ** 2

async function kernelHasFilesystem(name: string): Promise<boolean> {
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '')
  return new RegExp(`\\t${name}$`, 'm').test(filesystems)
}

/** The host checks `create` runs; each failure names its fix. `stateRoot` is where the nodes will live. */
export async function checkHost({stateRoot, host}: {stateRoot: string; host: HostInfo}): Promise<CheckFailure[]> {
  const failures: CheckFailure[] = []
  const fail = (check: string, problem: string, fix: string) => failures.push({check, problem, fix})

  if (process.getuid?.() !== 0) fail('root', 'kube-spawn must run as root', 'run it with sudo')

  // detectHost already asked systemd-nspawn for its version.
  const version = host.systemdVersion
  if (version === undefined) fail('systemd-nspawn', 'systemd-nspawn is not installed', 'apt-get install systemd-container')
  else if (version < MIN_NSPAWN_VERSION)
    fail('systemd-nspawn', `systemd-nspawn ${version} is older than ${MIN_NSPAWN_VERSION}`, 'upgrade systemd-container')

  if (!(await kernelHasFilesystem('overlay'))) {
    // A freshly booted host may not have loaded the module yet; kube-spawn runs as root and loads it.
    await run(['modprobe', 'overlay'], {allowFailure: true}).catch(() => undefined)
    if (!(await kernelHasFilesystem('overlay'))) fail('overlayfs', 'the kernel has no overlayfs', 'modprobe overlay')
  }

  await mkdir(stateRoot, {recursive: true, mode: 0o700}).catch(() => {})
  const storage = await statfs(stateRoot).catch(() => undefined)
  if (storage?.type === OVERLAYFS_SUPER_MAGIC) {
    fail(
      'storage',
      `${stateRoot} is on overlayfs, which cannot hold the nodes' overlay layers`,
      'use --dir on a real filesystem (ext4, xfs, btrfs)',
    )
  }
  for (const tool of ['ip', 'iptables', 'nsenter']) {
    const found = await run(['sh', '-c', `command -v ${tool}`], {allowFailure: true})
    if (found.exitCode !== 0)
      fail(tool, `${tool} is not installed`, `apt-get install ${tool === 'ip' ? 'iproute2' : tool === 'nsenter' ? 'util-linux' : tool}`)
  }
  if (failures.some((f) => f.check === 'ip')) return failures

  const probe = `ksprobe${process.pid % 100000}`
  const bridge = await run(['ip', 'link', 'add', probe, 'type', 'bridge'], {allowFailure: true})
  if (bridge.exitCode === 0) await run(['ip', 'link', 'del', probe], {allowFailure: true})
  else fail('bridge', `cannot create a Linux bridge: ${bridge.stderr.trim()}`, 'modprobe bridge')
  const veth = await run(['ip', 'link', 'add', probe, 'type', 'veth', 'peer', 'name', `${probe}p`], {allowFailure: true})
  if (veth.exitCode === 0) await run(['ip', 'link', 'del', probe], {allowFailure: true})
  else fail('veth', `cannot create a veth pair: ${veth.stderr.trim()}`, 'modprobe veth')

  const cgroupV1 = await access('/sys/fs/cgroup/memory/memory.limit_in_bytes').then(
    () => true,
    () => false,
  )
  const cgroupV2 = await access('/sys/fs/cgroup/cgroup.controllers').then(
    () => true,
    () => false,
  )
  if (!cgroupV1 && !cgroupV2)
    fail('cgroups', 'no cgroup memory controller found under /sys/fs/cgroup', 'boot with cgroups mounted (v1 or v2)')

  const selinux = await readFile('/sys/fs/selinux/enforce', 'utf8').catch(() => '0')
  if (selinux.trim() === '1')
    fail(
      'selinux',
      'SELinux is enforcing; nspawn nodes cannot run kubelet under it',
      'setenforce 0 (and SELINUX=permissive in /etc/selinux/config)',
    )

  return failures
}

/**
 * Free space in the state root against the estimated need. It runs after the preflight stage, so a
 * plugin that makes room (the storage-pool workaround) does so first.
 */
export async function checkDisk({
  stateRoot,
  nodes,
  imageCached,
}: {
  stateRoot: string
  nodes: number
  imageCached: boolean
}): Promise<CheckFailure[]> {
  const storage = await statfs(stateRoot).catch(() => undefined)
  if (!storage) return []
  const need = nodes * BYTES_PER_NODE + (imageCached ? 0 : BASE_IMAGE_BYTES)
  const free = storage.bavail * storage.bsize
  return free < need
    ? [
        {
          check: 'disk',
          problem: `${stateRoot} has ${gib(free)} free, the cluster needs about ${gib(need)}`,
          fix: 'free some space or use --dir on a larger filesystem',
        },
      ]
    : []
}

/** Throws one error for the first failure, with the others counted. */
export function assertHostReady(failures: CheckFailure[]): void {
  if (failures.length === 0) return
  const [first] = failures
  const more =
    failures.length > 1
      ? ` (and ${failures.length - 1} more: ${failures
          .slice(1)
          .map((f) => f.check)
          .join(', ')})`
      : ''
  throw new UserError(`host check "${first.check}" failed: ${first.problem}${more}`, {hint: first.fix})
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`
}

export interface HostExamination {
  host: HostInfo
  /** describeHost's one line. */
  description: string
  failures: CheckFailure[]
  warnings: string[]
}

/** Everything preflight knows: the host's facts, the checks that fail, and what the Kubernetes version means here. */
export async function examineHost(
  host: HostInfo,
  {stateRoot, kubernetesVersion}: {stateRoot: string; kubernetesVersion: string},
): Promise<HostExamination> {
  const support = checkSupport(host, kubernetesVersion)
  return {
    host,
    description: describeHost(host),
    failures: [...(await checkHost({stateRoot, host})), ...support.refusals],
    warnings: support.warnings,
  }
}

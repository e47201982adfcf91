/**
 * The pure parts of the workaround-storage-pool plugin: the size estimate and growth, mountinfo and
 * loop-device parsing, the "cannot grow" message; and inspecting a real directory of this host.
 */
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {describe, it} from 'node:test'

import {
  GROW_MARGIN_BYTES,
  NODE_BYTES,
  POOL_HEADROOM_BYTES,
  cannotGrowMessage,
  formatBytes,
  growthBytes,
  inspect,
  loopDevice,
  mountOf,
  parseBackingFile,
  parseMountinfo,
  requiredBytes,
  unescapeMountField,
} from '../../../plugins/workaround-storage-pool/dist/index.js'

const MiB = 1024 ** 2
const GiB = 1024 ** 3

const MOUNTINFO = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
40 22 0:35 / /var/lib/machines rw,relatime shared:20 - btrfs /dev/loop0 rw,space_cache=v2,subvolid=5,subvol=/
41 40 0:35 /sub /var/lib/machines/my\\040pool rw,relatime - btrfs /dev/loop0 rw,subvolid=256,subvol=/sub
42 22 0:36 / /mnt rw,relatime shared:21 master:3 - tmpfs tmpfs rw,size=716800k
43 42 0:37 / /mnt rw,relatime shared:22 - btrfs /dev/loop1p1 rw
44 22 0:38 / /mnt2 rw - ext4 /dev/vdb rw
`

describe('the size estimate', () => {
  it('is NODE_BYTES per node plus headroom', () => {
    assert.equal(requiredBytes(2), 2 * NODE_BYTES + POOL_HEADROOM_BYTES)
    assert.ok(NODE_BYTES >= 400 * MiB, 'at least the host check’s 400 MiB per node')
  })
  it('grows by the shortfall plus a margin, in whole MiB, and not at all when there is room', () => {
    assert.equal(growthBytes(2 * GiB, 3 * GiB), 0)
    assert.equal(growthBytes(2 * GiB, 2 * GiB), 0)
    assert.equal(growthBytes(2 * GiB, 1 * GiB), 1 * GiB + GROW_MARGIN_BYTES)
    assert.equal(growthBytes(2 * GiB, 2 * GiB - 1) % MiB, 0)
    assert.ok(growthBytes(2 * GiB, 2 * GiB - 1) > GROW_MARGIN_BYTES)
  })
  it('formats sizes as MiB below a GiB and GiB with one decimal above', () => {
    assert.equal(formatBytes(600 * MiB), '600 MiB')
    assert.equal(formatBytes(1.25 * GiB), '1.3 GiB')
    assert.equal(formatBytes(2.5 * GiB), '2.5 GiB')
  })
})

describe('parseMountinfo', () => {
  const mounts = parseMountinfo(MOUNTINFO)
  it('reads every line, with or without optional fields', () => {
    assert.equal(mounts.length, 7)
    assert.deepEqual(mounts[2], {
      mountId: 40,
      parentId: 22,
      device: '0:35',
      root: '/',
      mountPoint: '/var/lib/machines',
      fsType: 'btrfs',
      source: '/dev/loop0',
    })
    assert.equal(mounts[4].fsType, 'tmpfs')
  })
  it('unescapes octal escapes in paths', () => {
    assert.equal(mounts[3].mountPoint, '/var/lib/machines/my pool')
    assert.equal(unescapeMountField('a\\011b\\134c'), 'a\tb\\c')
  })
  it('reads this host’s own mountinfo, with a root mount', async () => {
    const own = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'))
    assert.ok(own.some((m) => m.mountPoint === '/'))
  })
})

describe('mountOf', () => {
  const mounts = parseMountinfo(MOUNTINFO)
  const at = (path: string) => mountOf(mounts, path)?.mountId
  it('takes the longest mount point above the path', () => {
    assert.equal(at('/var/lib/machines/kube-spawn/c1'), 40)
    assert.equal(at('/var/lib/machines/my pool/x'), 41)
    assert.equal(at('/var/lib/machines'), 40)
    assert.equal(at('/var/lib'), 22)
  })
  it('does not take a mount point that only shares a prefix', () => {
    assert.equal(at('/mnt2/x'), 44)
    assert.equal(at('/mnt22'), 22)
  })
  it('takes the last of several mounts at one point (the one on top)', () => {
    assert.equal(at('/mnt/state'), 43)
  })
})

describe('loop devices', () => {
  it('knows whole loop devices only', () => {
    assert.equal(loopDevice('/dev/loop0'), 'loop0')
    assert.equal(loopDevice('/dev/loop12'), 'loop12')
    assert.equal(loopDevice('/dev/loop1p1'), undefined)
    assert.equal(loopDevice('/dev/vda'), undefined)
  })
  it('reads the backing file, and whether it was deleted', () => {
    assert.deepEqual(parseBackingFile('/var/lib/machines.raw\n'), {path: '/var/lib/machines.raw', deleted: false})
    assert.deepEqual(parseBackingFile('/tmp/pool.raw (deleted)\n'), {path: '/tmp/pool.raw', deleted: true})
  })
})

describe('messages', () => {
  it('says why the pool cannot grow and what to do', () => {
    assert.equal(
      cannotGrowMessage({image: '/x/pool.raw', grow: 1.2 * GiB, hostFree: 0.3 * GiB, hostMount: '/x'}),
      'cannot grow the storage pool /x/pool.raw by 1.2 GiB: the host has 307 MiB free on /x: free space there or use --dir on a larger file system',
    )
  })
})

describe('inspect', () => {
  it('skips a state root that is not on a btrfs loopback pool, naming its file system', async () => {
    const found = await inspect(`${tmpdir()}/kube-spawn-does-not-exist/cluster`)
    assert.ok('skip' in found)
    assert.match(found.skip, /^state root is on \S+(, not a btrfs loopback pool| on \S+, not a btrfs loopback pool)$/)
  })
})

/**
 * The developer container is a whole disk image. It is read without loop devices, which nodes and
 * many CI hosts lack: the GPT in TypeScript, the ext4 root partition with debugfs at a byte offset.
 */
import {chmod, lchown, link, lstat, open, rm} from 'node:fs/promises'
import {join} from 'node:path'

import type {ExecResult, RunOptions} from '@kube-spawn/sdk'

type Run = (argv: string[], options?: RunOptions) => Promise<ExecResult>

/** Flatcar images use 512-byte sectors. */
export const SECTOR = 512
const EXT4_MAGIC = 0xef53

export interface GptPartition {
  /** 1-based, as sfdisk and Flatcar's disk_layout.json count. */
  number: number
  /** The partition type GUID, upper case. */
  type: string
  name: string
  firstLba: number
  lastLba: number
  /** Where the partition starts and how long it is, in bytes. */
  offset: number
  size: number
}

/** A GUID as GPT stores it: the first three fields little-endian, the rest as bytes. */
function guid(b: Buffer, at: number): string {
  const hex = (start: number, end: number) => b.subarray(at + start, at + end).toString('hex')
  const le = (start: number, end: number) =>
    Buffer.from(b.subarray(at + start, at + end))
      .reverse()
      .toString('hex')
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(8, 10)}-${hex(10, 16)}`.toUpperCase()
}

/** The used entries of a GPT; `buffer` is the disk from byte 0 through the end of the entry array. */
export function parseGpt(buffer: Buffer): GptPartition[] {
  if (buffer.length < 2 * SECTOR || buffer.toString('latin1', SECTOR, SECTOR + 8) !== 'EFI PART')
    throw new Error('it has no GPT (no "EFI PART" header at byte 512)')
  const entriesAt = Number(buffer.readBigUInt64LE(SECTOR + 72)) * SECTOR
  const count = buffer.readUInt32LE(SECTOR + 80)
  const size = buffer.readUInt32LE(SECTOR + 84)
  if (size < 128 || count > 4096) throw new Error(`its GPT header is implausible (${count} entries of ${size} bytes)`)
  if (entriesAt + count * size > buffer.length) throw new Error('its GPT entries lie beyond the bytes read')
  const partitions: GptPartition[] = []
  for (let i = 0; i < count; i++) {
    const at = entriesAt + i * size
    const type = guid(buffer, at)
    if (type === '00000000-0000-0000-0000-000000000000') continue
    const firstLba = Number(buffer.readBigUInt64LE(at + 32))
    const lastLba = Number(buffer.readBigUInt64LE(at + 40))
    const name = buffer.toString('utf16le', at + 56, at + 128).replace(/\0[^]*$/, '')
    partitions.push({number: i + 1, type, name, firstLba, lastLba, offset: firstLba * SECTOR, size: (lastLba - firstLba + 1) * SECTOR})
  }
  return partitions
}

/** Reads a disk image's GPT: the header first, then as much as its entry array needs. */
export async function readGpt(path: string): Promise<GptPartition[]> {
  const file = await open(path)
  try {
    const head = Buffer.alloc(2 * SECTOR)
    await file.read(head, 0, head.length, 0)
    if (head.toString('latin1', SECTOR, SECTOR + 8) !== 'EFI PART') return parseGpt(head)
    const end = Number(head.readBigUInt64LE(SECTOR + 72)) * SECTOR + head.readUInt32LE(SECTOR + 80) * head.readUInt32LE(SECTOR + 84)
    if (end > 16 << 20) throw new Error(`its GPT entries end at byte ${end}, far beyond where they belong`)
    const buffer = Buffer.alloc(Math.max(end, head.length))
    await file.read(buffer, 0, buffer.length, 0)
    return parseGpt(buffer)
  } finally {
    await file.close()
  }
}

/** Whether an ext2/3/4 superblock starts at `offset` (its magic sits 1080 bytes in). */
export async function hasExt4Magic(path: string, offset: number): Promise<boolean> {
  const file = await open(path)
  try {
    const magic = Buffer.alloc(2)
    const {bytesRead} = await file.read(magic, 0, 2, offset + 1080)
    return bytesRead === 2 && magic.readUInt16LE(0) === EXT4_MAGIC
  } finally {
    await file.close()
  }
}

export interface Ext4Entry {
  /** Relative to the filesystem's root, without a leading slash. */
  path: string
  inode: number
  mode: number
  uid: number
  gid: number
}

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

/** A path as one debugfs argument; debugfs splits its commands at spaces and knows double quotes only. */
function debugfsArg(path: string): string {
  if (/["\n]/.test(path)) throw new Error(`debugfs cannot be given the path ${JSON.stringify(path)}`)
  return `"${path}"`
}

/**
 * Every entry of an ext4 filesystem with its inode, mode and owner, from `ls -p`: one debugfs run per
 * directory depth, since a run lists only directories named up front.
 */
export async function listExt4(run: Run, device: string): Promise<Ext4Entry[]> {
  const entries: Ext4Entry[] = []
  let dirs = ['']
  while (dirs.length > 0) {
    const listable = dirs.filter((dir) => !/["\n]/.test(dir))
    const script = listable.map((dir) => `ls -p ${debugfsArg(`/${dir}`)}\n`).join('')
    const {stdout} = await run(['debugfs', '-f', '-', device], {input: script, timeoutMs: 10 * 60_000})
    const next: string[] = []
    // debugfs echoes each command ("debugfs: ls -p …") before its listing, so the sections come in order.
    let section = -1
    for (const line of stdout.split('\n')) {
      if (line.startsWith('debugfs: ')) section++
      const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/\d*\/$/.exec(line)
      if (!m || section < 0 || m[5] === '.' || m[5] === '..') continue
      const path = listable[section] === '' ? m[5] : `${listable[section]}/${m[5]}`
      const entry = {path, inode: Number(m[1]), mode: parseInt(m[2], 8), uid: Number(m[3]), gid: Number(m[4])}
      entries.push(entry)
      if ((entry.mode & S_IFMT) === S_IFDIR) next.push(path)
    }
    dirs = next
  }
  return entries
}

/**
 * Unpacks an ext4 filesystem into `dest` with debugfs rdump and repairs what rdump (e2fsprogs 1.47)
 * gets wrong, from the listing: it chowns after it chmods, which clears setuid and setgid bits; it
 * leaves symlinks owned by root; it writes every hardlink as a separate copy. What it still drops:
 * device nodes, FIFOs and sockets (nspawn gives nodes their own /dev), and extended attributes, so
 * file capabilities are lost (node services run as root).
 */
export async function unpackExt4(run: Run, device: string, dest: string, output: (line: string) => void): Promise<void> {
  output('listing the root partition')
  const entries = await listExt4(run, device)
  output(`unpacking ${entries.length} files with debugfs rdump`)
  const {stderr} = await run(['debugfs', '-R', `rdump / ${debugfsArg(dest)}`, device], {timeoutMs: 60 * 60_000})
  const missing: string[] = []
  const firstOfInode = new Map<number, string>()
  for (const entry of entries) {
    const type = entry.mode & S_IFMT
    if (type !== S_IFDIR && type !== S_IFREG && type !== S_IFLNK) continue
    const path = join(dest, entry.path)
    const stat = await lstat(path).catch(() => undefined)
    if (!stat) {
      missing.push(entry.path)
      continue
    }
    if (type === S_IFLNK && (stat.uid !== entry.uid || stat.gid !== entry.gid)) await lchown(path, entry.uid, entry.gid)
    if (type !== S_IFLNK && (stat.mode & 0o7777) !== (entry.mode & 0o7777)) await chmod(path, entry.mode & 0o7777)
    if (type !== S_IFREG) continue
    const first = firstOfInode.get(entry.inode)
    if (first === undefined) firstOfInode.set(entry.inode, path)
    else {
      await rm(path)
      await link(first, path)
    }
  }
  if (missing.length > 0) {
    const reason = stderr.split('\n').find((line) => line.trim() && !line.startsWith('debugfs '))
    throw new Error(
      `debugfs rdump left out ${missing.length} files (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''})${reason ? `: ${reason.trim()}` : ''}`,
    )
  }
}

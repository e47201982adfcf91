/**
 * A stand-in for a Flatcar release, made from any root directory in Flatcar's own format: a GPT disk
 * image whose partition 9, "ROOT", holds the root as ext4, compressed with bzip2, with DIGESTS
 * (MD5, SHA1 and SHA512 sections) clearsigned by a throwaway key, laid out as on the release server:
 *
 *   <dir>/<version>/flatcar_developer_container.bin.bz2{,.DIGESTS,.DIGESTS.asc}
 *
 * Needs no root and no loop device (mke2fs -d, sfdisk and dd work on files), so it also works on a
 * large root such as the cached Debian node image; only the owners of the root's files need root to read.
 */
import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {mkdir, mkdtemp, rm, stat, writeFile} from 'node:fs/promises'
import {createServer} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'

const exec = promisify(execFile)
const sh = (script: string, ...args: string[]) => exec('sh', ['-c', script, 'sh', ...args], {maxBuffer: 64 << 20})

export const IMAGE_FILE = 'flatcar_developer_container.bin.bz2'
const LINUX_DATA = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
/** Where the ROOT partition starts, in 512-byte sectors (2 MiB, as aligned tools place it). */
const ROOT_START = 4096

/** A throwaway OpenPGP key in its own GNUPGHOME. */
export interface TestKey {
  home: string
  fingerprint: string
  /** The armoured public key, for [plugin-config.image-flatcar] signing-key. */
  publicKey: string
  /** gpg's --faked-system-time for signing, when the key was made in the past. */
  signTime?: string
  dispose(): Promise<void>
}

/**
 * Makes a key. With `expiredSubkey`, it is made in 2020 with a signing subkey that expired in 2021, and
 * signs as of 2020: a release signed while its subkey was valid (gpgv then says EXPKEYSIG).
 */
export async function makeTestKey(name: string, options: {expiredSubkey?: boolean} = {}): Promise<TestKey> {
  const home = await mkdtemp(join(tmpdir(), 'kube-spawn-test-gpg-'))
  const past = options.expiredSubkey ? ['--faked-system-time', '20200101T000000!'] : []
  const gpg = (...args: string[]) =>
    exec('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...past, ...args])
  const uid = `${name} <${name.toLowerCase().replace(/\W+/g, '-')}@test.invalid>`
  if (options.expiredSubkey) {
    await gpg('--quick-gen-key', uid, 'ed25519', 'cert', 'never')
  } else await gpg('--quick-gen-key', uid, 'ed25519', 'sign', 'never')
  const {stdout} = await gpg('--with-colons', '--list-keys', uid)
  const fingerprint = stdout
    .split('\n')
    .find((line) => line.startsWith('fpr:'))!
    .split(':')[9]
  if (options.expiredSubkey) await gpg('--quick-add-key', fingerprint, 'ed25519', 'sign', '1y')
  const publicKey = join(home, 'public.asc')
  await gpg('--armor', '--output', publicKey, '--export', fingerprint)
  return {
    home,
    fingerprint,
    publicKey,
    signTime: options.expiredSubkey ? '20200601T000000!' : undefined,
    dispose: async () => {
      await exec('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']).catch(() => {})
      await rm(home, {recursive: true, force: true})
    },
  }
}

/** gpg --clearsign, as Flatcar's release tooling signs its DIGESTS. */
export async function clearsign(key: TestKey, file: string, signed: string): Promise<void> {
  const time = key.signTime ? ['--faked-system-time', key.signTime] : []
  await exec('gpg', [
    '--homedir',
    key.home,
    '--batch',
    '--yes',
    ...time,
    '--local-user',
    key.fingerprint,
    '--clearsign',
    '--output',
    signed,
    file,
  ])
}

async function digest(algorithm: string, path: string): Promise<string> {
  const hash = createHash(algorithm)
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** DIGESTS in Flatcar's format (ci-automation's create_digests): one section per algorithm. */
export async function flatcarDigests(path: string, name: string): Promise<string> {
  const sections = [
    ['MD5', 'md5'],
    ['SHA1', 'sha1'],
    ['SHA512', 'sha512'],
  ]
  let text = ''
  for (const [title, algorithm] of sections) text += `# ${title} HASH\n${await digest(algorithm, path)}  ${name}\n`
  return text
}

export interface StandinOptions {
  /** The root filesystem to put into the image; it is only read. */
  root: string
  /** The release tree is written below it. */
  dir: string
  version: string
  key: TestKey
  /** The ext4 filesystem's size in mke2fs's syntax ("64M", "3G"); by default the root's size and half as much again. */
  size?: string
  /** Symlinks to add inside the image, e.g. /opt/cni/bin → /usr/lib/cni (where Flatcar nodes keep the CNI plugins). */
  symlinks?: Array<{path: string; target: string}>
}

export interface Standin {
  /** The directory that holds the three files (<dir>/<version>). */
  releaseDir: string
  image: string
  sha512: string
}

/** Builds the stand-in. The root gets /etc/os-release (ID=flatcar) and /usr/share/flatcar/release inside the image only. */
export async function buildFlatcarStandin(options: StandinOptions): Promise<Standin> {
  const releaseDir = join(options.dir, options.version)
  await mkdir(releaseDir, {recursive: true})
  const work = await mkdtemp(join(options.dir, '.standin-'))
  try {
    const size = options.size ?? `${Math.ceil((Number((await sh('du -sk -- "$1" | cut -f1', options.root)).stdout) * 1.5) / 1024) + 16}M`
    const fs = join(work, 'fs.img')
    await exec('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'ROOT', '-d', options.root, fs, size])
    // Written into the filesystem rather than the root, so that the root stays untouched.
    const osRelease = join(work, 'os-release')
    const release = join(work, 'release')
    await writeFile(
      osRelease,
      `NAME="Flatcar Container Linux by Kinvolk"\nID=flatcar\nID_LIKE=coreos\nVERSION=${options.version}\nVERSION_ID=${options.version}\nPRETTY_NAME="Flatcar Container Linux by Kinvolk ${options.version} (stand-in)"\n`,
      {mode: 0o644},
    )
    await writeFile(release, `FLATCAR_RELEASE_VERSION=${options.version}\nFLATCAR_RELEASE_BOARD=amd64-usr\n`, {mode: 0o644})
    // Errors for what exists already (mkdir /usr) or is missing (rm /etc/os-release) do not stop debugfs.
    const script = join(work, 'debugfs.script')
    await writeFile(
      script,
      ['rm /etc/os-release', `write ${osRelease} /etc/os-release`, 'mkdir /usr', 'mkdir /usr/share', 'mkdir /usr/share/flatcar']
        .concat(`write ${release} /usr/share/flatcar/release`)
        .concat(
          (options.symlinks ?? []).flatMap(({path, target}) => [...parents(path).map((p) => `mkdir ${p}`), `symlink ${path} ${target}`]),
        )
        .join('\n') + '\n',
    )
    await exec('debugfs', ['-w', '-f', script, fs])
    const {stdout: check} = await exec('debugfs', ['-R', 'cat /etc/os-release', fs])
    if (!check.includes('ID=flatcar')) throw new Error(`could not write /etc/os-release into ${fs}`)

    // A GPT disk with partition 9 named ROOT, as in Flatcar's "container" layout; partitions 1-8 stay unused.
    const fsSectors = (await stat(fs)).size / 512
    const disk = join(work, 'disk.img')
    await exec('truncate', ['-s', String((ROOT_START + fsSectors + 2048) * 512), disk])
    await sh(
      'printf "%s\\n" "label: gpt" "disk9 : start=$2, size=$3, type=$4, name=\\"ROOT\\"" | sfdisk -q "$1"',
      disk,
      String(ROOT_START),
      String(fsSectors),
      LINUX_DATA,
    )
    await exec('dd', [
      `if=${fs}`,
      `of=${disk}`,
      'bs=1M',
      `seek=${ROOT_START * 512}`,
      'oflag=seek_bytes',
      'conv=notrunc,sparse',
      'status=none',
    ])
    await rm(fs)

    const image = join(releaseDir, IMAGE_FILE)
    await sh('bzip2 -c -- "$1" >"$2"', disk, image)
    const digests = await flatcarDigests(image, IMAGE_FILE)
    await writeFile(`${image}.DIGESTS`, digests)
    await clearsign(options.key, `${image}.DIGESTS`, `${image}.DIGESTS.asc`)
    return {releaseDir, image, sha512: /# SHA512 HASH\n(\w+)/.exec(digests)![1]}
  } finally {
    await rm(work, {recursive: true, force: true})
  }
}

/** /a/b/c → [/a, /a/b]: the directories debugfs must make before c. */
function parents(path: string): string[] {
  const parts = path.split('/').filter(Boolean).slice(0, -1)
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)
}

/** Serves a directory over HTTP on 127.0.0.1 and records the paths asked for. */
export interface FileServer {
  base: string
  requests: string[]
  close(): Promise<void>
}

export async function serveDirectory(dir: string): Promise<FileServer> {
  const requests: string[] = []
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    requests.push(path)
    if (path.split('/').includes('..')) return void res.writeHead(400).end()
    const file = join(dir, path)
    stat(file).then(
      (s) => {
        if (!s.isFile()) return void res.writeHead(404).end('not found\n')
        res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': s.size})
        createReadStream(file).pipe(res)
      },
      () => res.writeHead(404).end('not found\n'),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as {port: number}
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

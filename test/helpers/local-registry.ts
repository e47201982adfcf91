/**
 * A tiny npm registry on 127.0.0.1 for tests, so that `npm install` works without the internet: it
 * serves the packages it is given and, from the repository's node_modules, every package they need at
 * run time. npm must be told to use it and nothing else:
 *
 *   npm install <name> --registry <url> --no-audit --no-fund   with npm_config_cache=<a fresh dir>
 *
 * (the fresh cache so that nothing npm once fetched from the internet is used instead).
 *
 * GET /<name> and /<@scope%2fname> (or /<@scope/name>) answer a packument, GET /-/<file>.tgz a tarball,
 * anything else 404 with a JSON body.
 */
import {createHash} from 'node:crypto'
import {realpathSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, realpath, rm, stat} from 'node:fs/promises'
import {type IncomingMessage, type ServerResponse, createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {createRequire} from 'node:module'
import {tmpdir} from 'node:os'
import {basename, dirname, join, resolve, sep} from 'node:path'
import {gunzipSync} from 'node:zlib'

import {REPO, cleanEnv, runProgram} from './cli.ts'

export interface LocalRegistry {
  /** http://127.0.0.1:PORT/, to pass to npm as --registry. */
  url: string
  /** Stops the server and removes the helper's files. */
  close(): Promise<void>
}

/** The npm that @oclif/plugin-plugins itself runs (as in test/integration/plugin-template.test.ts). */
const NPM_CLI = join(REPO, 'node_modules', 'npm', 'bin', 'npm-cli.js')
const REAL_REPO = realpathSync(REPO)
const REPO_MODULES = join(REAL_REPO, 'node_modules')

/** The semver npm itself uses (npm's own copy: the repository has no semver of its own). */
const semver = createRequire(NPM_CLI)('semver') as {
  satisfies(version: string, range: string, options?: {includePrerelease?: boolean}): boolean
  validRange(range: string): string | null
  rcompare(a: string, b: string): number
}

type Dependencies = Record<string, string>

interface Manifest {
  name: string
  version: string
  dependencies?: Dependencies
  optionalDependencies?: Dependencies
  peerDependencies?: Dependencies
  peerDependenciesMeta?: Record<string, {optional?: boolean}>
  bundleDependencies?: string[] | boolean
  bundledDependencies?: string[] | boolean
  bin?: string | Record<string, string>
  [field: string]: unknown
}

/** One package to serve: its manifest, and where it comes from (a directory to pack, or a tarball). */
interface Source {
  manifest: Manifest
  dir?: string
  tarball?: string
  /** Where its dependencies are looked for, nearest first. */
  modules: string[]
}

/** The package.json fields a packument's version carries (the "dist" is added). */
const PACKUMENT_FIELDS = [
  'name',
  'version',
  'dependencies',
  'optionalDependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'bundleDependencies',
  'bin',
  'engines',
  'os',
  'cpu',
  'libc',
  'deprecated',
]

/**
 * Serves the given packages: each a directory holding an installed or source package (with
 * package.json), or a .tgz made by npm pack. Every package's runtime "dependencies" (not dev) are
 * served too, resolved as Node would from the package's own node_modules up to the repository's (a
 * .tgz, or a directory outside the repository: from the repository's node_modules), closure and all;
 * a dependency that cannot be found, or only at a version outside its range, is an error naming it.
 * Optional dependencies and required peer dependencies are served when found, skipped otherwise.
 * The helper's files go to a fresh directory inside `workDir` (the system's temporary directory by
 * default), removed by close().
 */
export async function startLocalRegistry(packages: string[], options: {workDir?: string} = {}): Promise<LocalRegistry> {
  const work = await mkdtemp(join(options.workDir ?? tmpdir(), 'ks-local-registry-'))
  try {
    const sources = await closure(await Promise.all(packages.map((spec) => inputSource(spec))))
    const tarballs = await packAll(sources, work)
    const {server, url} = await listen(sources, tarballs)
    return {
      url,
      close: async () => {
        await new Promise<void>((done) => {
          server.close(() => done())
          server.closeAllConnections()
        })
        await rm(work, {recursive: true, force: true})
      },
    }
  } catch (error) {
    await rm(work, {recursive: true, force: true})
    throw error
  }
}

/** A package the caller named: a directory or a .tgz. */
async function inputSource(spec: string): Promise<Source> {
  const path = await realpath(resolve(spec)).catch(() => {
    throw new Error(`local registry: no such package: ${spec}`)
  })
  if ((await stat(path)).isDirectory()) return {manifest: await readManifest(path), dir: path, modules: moduleDirs(path)}
  const manifest = packageJsonOfTarball(await readFile(path), path)
  return {manifest, tarball: path, modules: [REPO_MODULES]}
}

async function readManifest(dir: string): Promise<Manifest> {
  let manifest: Manifest
  try {
    manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest
  } catch (error) {
    throw new Error(`local registry: cannot read ${join(dir, 'package.json')}: ${(error as Error).message}`, {cause: error})
  }
  checkManifest(manifest, dir)
  return manifest
}

function checkManifest(manifest: Manifest, where: string): void {
  if (typeof manifest.name !== 'string' || typeof manifest.version !== 'string')
    throw new Error(`local registry: the package.json of ${where} has no name or version`)
}

/** The node_modules directories Node would search from a package in `dir`, nearest first, ending with the repository's. */
function moduleDirs(dir: string): string[] {
  const dirs = [join(dir, 'node_modules')]
  const inRepo = (path: string) => path === REAL_REPO || path.startsWith(REAL_REPO + sep)
  if (inRepo(dir))
    for (let parent = dirname(dir); inRepo(parent); parent = dirname(parent))
      if (basename(parent) !== 'node_modules') dirs.push(join(parent, 'node_modules'))
  if (!dirs.includes(REPO_MODULES)) dirs.push(REPO_MODULES)
  return dirs
}

/** The given packages and everything they need, once per name and version. */
async function closure(inputs: Source[]): Promise<Source[]> {
  const served = new Map<string, Source>()
  const seenDirs = new Set<string>()
  const queue = [...inputs]
  for (let source = queue.shift(); source; source = queue.shift()) {
    const key = `${source.manifest.name}@${source.manifest.version}`
    if (served.has(key)) continue
    served.set(key, source)
    for (const dep of dependenciesOf(source.manifest)) {
      const dir = await findDependency(dep, source)
      if (dir === undefined || seenDirs.has(dir)) continue
      seenDirs.add(dir)
      queue.push({manifest: await readManifest(dir), dir, modules: moduleDirs(dir)})
    }
  }
  return [...served.values()]
}

interface Dependency {
  /** The name it is installed under (an alias for "npm:other@range"). */
  as: string
  /** The name and range it is fetched as. */
  name: string
  range: string
  /** Skipped when not found. */
  optional: boolean
}

/** The dependencies npm fetches from the registry when it installs this package. */
function dependenciesOf(manifest: Manifest): Dependency[] {
  const bundled = manifest.bundleDependencies ?? manifest.bundledDependencies
  const isBundled = (name: string) => bundled === true || (Array.isArray(bundled) && bundled.includes(name))
  const found = new Map<string, Dependency>()
  const add = (deps: Dependencies | undefined, optional: (name: string) => boolean) => {
    for (const [as, spec] of Object.entries(deps ?? {})) {
      if (isBundled(as) || found.has(as)) continue
      const alias = /^npm:((?:@[^/@]+\/)?[^@]+)(?:@(.*))?$/.exec(spec)
      found.set(as, {as, name: alias ? alias[1] : as, range: alias ? (alias[2] ?? '*') : spec, optional: optional(as)})
    }
  }
  add(manifest.dependencies, () => false)
  add(manifest.optionalDependencies, () => true)
  // npm installs peer dependencies too, unless they are optional; the ones not found are left to npm.
  const peers = Object.fromEntries(
    Object.entries(manifest.peerDependencies ?? {}).filter(([name]) => !manifest.peerDependenciesMeta?.[name]?.optional),
  )
  add(peers, () => true)
  // optionalDependencies are also listed in dependencies by some tools: optional wins.
  for (const name of Object.keys(manifest.optionalDependencies ?? {})) {
    const dep = found.get(name)
    if (dep) dep.optional = true
  }
  return [...found.values()]
}

/** The directory of the nearest installed copy of `dep` whose version is in its range. */
async function findDependency(dep: Dependency, from: Source): Promise<string | undefined> {
  const whose = `${from.manifest.name}@${from.manifest.version}`
  const range = dep.range === '' || dep.range === 'latest' ? '*' : dep.range
  if (semver.validRange(range) === null) {
    if (dep.optional) return undefined
    throw new Error(
      `local registry: "${dep.as}": "${dep.range}", a dependency of ${whose}, is not a version range npm could fetch from a registry`,
    )
  }
  const rejected: string[] = []
  for (const modules of from.modules) {
    const dir = await realpath(join(modules, dep.as)).catch(() => undefined)
    if (dir === undefined) continue
    const manifest = await readManifest(dir)
    if (manifest.name === dep.name && semver.satisfies(manifest.version, range, {includePrerelease: true})) return dir
    rejected.push(`${manifest.name}@${manifest.version} in ${modules}`)
  }
  if (dep.optional) return undefined
  throw new Error(
    `local registry: cannot find the dependency ${dep.name}@${dep.range} of ${whose}` +
      (rejected.length > 0 ? `; found only ${rejected.join(', ')}` : ` in ${from.modules.join(', ')}`),
  )
}

/** The tarball of every package, by name@version: the .tgz given, or one npm pack makes. */
async function packAll(sources: Source[], work: string): Promise<Map<string, {file: string; bytes: Buffer}>> {
  const destination = join(work, 'tarballs')
  await mkdir(destination)
  const tarballs = new Map<string, {file: string; bytes: Buffer}>()
  const taken = new Set<string>()
  /** npm's file name, or (when two names differ only in where the scope ends) one made unique. */
  const fileName = (manifest: Manifest) => {
    const base = `${manifest.name.replace(/^@/, '').replace('/', '-')}-${manifest.version}`
    let file = `${base}.tgz`
    for (let n = 2; taken.has(file); n++) file = `${base}-${n}.tgz`
    taken.add(file)
    return file
  }
  for (const source of sources.filter((s) => s.tarball !== undefined)) {
    const file = fileName(source.manifest)
    tarballs.set(`${source.manifest.name}@${source.manifest.version}`, {file, bytes: await readFile(source.tarball!)})
  }
  // One npm for them all, in rounds so that two packages npm would give the same file name never meet.
  let pending = sources.filter((s) => s.dir !== undefined)
  while (pending.length > 0) {
    const round: Source[] = []
    const names = new Set<string>()
    for (const source of pending) {
      const name = `${source.manifest.name.replace(/^@/, '').replace('/', '-')}-${source.manifest.version}.tgz`
      if (names.has(name)) continue
      names.add(name)
      round.push(source)
    }
    pending = pending.filter((s) => !round.includes(s))
    const packed = await npmPack(
      round.map((s) => s.dir!),
      destination,
      work,
    )
    for (const [i, source] of round.entries()) {
      const made = join(destination, packed[i].filename)
      tarballs.set(`${source.manifest.name}@${source.manifest.version}`, {file: fileName(source.manifest), bytes: await readFile(made)})
      await rm(made)
    }
  }
  return tarballs
}

/** `npm pack <dirs> --pack-destination <destination>`, offline, with a cache of its own. */
async function npmPack(dirs: string[], destination: string, work: string): Promise<Array<{filename: string}>> {
  const args = [NPM_CLI, 'pack', ...dirs, '--pack-destination', destination, '--ignore-scripts', '--json']
  const result = await runProgram(process.execPath, args, {
    cwd: work,
    fullEnv: cleanEnv({npm_config_cache: join(work, 'npm-cache'), npm_config_offline: 'true', npm_config_update_notifier: 'false'}),
    timeoutMs: 5 * 60_000,
  })
  if (result.code !== 0) throw new Error(`local registry: npm pack ${dirs.join(' ')} exited ${result.code}:\n${result.stderr}`)
  const packed = JSON.parse(result.stdout) as Array<{filename: string}>
  if (packed.length !== dirs.length) throw new Error(`local registry: npm pack made ${packed.length} tarballs of ${dirs.length} packages`)
  return packed
}

/** The package.json in a package tarball (gzip'd tar, its files under one top directory). */
function packageJsonOfTarball(gzipped: Buffer, where: string): Manifest {
  let tar: Buffer
  try {
    tar = gunzipSync(gzipped)
  } catch (error) {
    throw new Error(`local registry: ${where} is not a gzip'd tarball: ${(error as Error).message}`, {cause: error})
  }
  let longName: string | undefined
  for (let offset = 0; offset + 512 <= tar.length;) {
    const header = tar.subarray(offset, offset + 512)
    if (header.every((byte) => byte === 0)) break
    const text = (start: number, length: number) => header.toString('utf8', start, start + length).replace(/\0.*$/s, '')
    const size = parseInt(text(124, 12).trim() || '0', 8)
    const type = text(156, 1)
    const body = tar.subarray(offset + 512, offset + 512 + size)
    const prefix = header.toString('latin1', 257, 263) === 'ustar\0' ? text(345, 155) : ''
    const path = longName ?? (prefix ? `${prefix}/${text(0, 100)}` : text(0, 100))
    longName = undefined
    if (type === 'x') longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1]
    else if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '')
    else if ((type === '0' || type === '') && /^[^/]+\/package\.json$/.test(path.replace(/^\.\//, ''))) {
      const manifest = JSON.parse(body.toString('utf8')) as Manifest
      checkManifest(manifest, where)
      return manifest
    }
    offset += 512 + Math.ceil(size / 512) * 512
  }
  throw new Error(`local registry: ${where} holds no package.json`)
}

/** The packument of every name, and the server that answers with them. */
async function listen(
  sources: Source[],
  tarballs: Map<string, {file: string; bytes: Buffer}>,
): Promise<{server: ReturnType<typeof createServer>; url: string}> {
  const files = new Map([...tarballs.values()].map(({file, bytes}) => [file, bytes]))
  const packuments = new Map<string, {name: string; 'dist-tags': {latest: string}; versions: Record<string, Record<string, unknown>>}>()
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const send = (status: number, body: Buffer | string, type: string) => {
      response.writeHead(status, {'content-type': type, 'content-length': Buffer.byteLength(body)})
      response.end(request.method === 'HEAD' ? undefined : body)
    }
    const notFound = () => send(404, JSON.stringify({error: 'Not found'}), 'application/json')
    if (request.method !== 'GET' && request.method !== 'HEAD') return notFound()
    let path: string
    try {
      path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname)
    } catch {
      return notFound()
    }
    if (path.startsWith('/-/')) {
      const bytes = files.get(path.slice(3))
      return bytes ? send(200, bytes, 'application/octet-stream') : notFound()
    }
    const packument = packuments.get(path.slice(1))
    return packument ? send(200, JSON.stringify(packument), 'application/json') : notFound()
  })
  await new Promise<void>((done, fail) => {
    server.once('error', fail)
    server.listen(0, '127.0.0.1', () => done())
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`

  for (const {manifest} of sources) {
    const {file, bytes} = tarballs.get(`${manifest.name}@${manifest.version}`)!
    const version: Record<string, unknown> = {}
    for (const field of PACKUMENT_FIELDS) if (manifest[field] !== undefined) version[field] = manifest[field]
    // As npm publish writes it: a lone bin is named after the package.
    if (typeof manifest.bin === 'string') version.bin = {[manifest.name.replace(/^@[^/]+\//, '')]: manifest.bin}
    if (manifest.scripts && typeof manifest.scripts === 'object') {
      const scripts = manifest.scripts as Record<string, unknown>
      if (scripts.preinstall || scripts.install || scripts.postinstall) version.hasInstallScript = true
    }
    version.dist = {
      tarball: `${url}-/${file}`,
      integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
      shasum: createHash('sha1').update(bytes).digest('hex'),
    }
    const packument = packuments.get(manifest.name) ?? {name: manifest.name, 'dist-tags': {latest: manifest.version}, versions: {}}
    packument.versions[manifest.version] = version
    packument['dist-tags'].latest = Object.keys(packument.versions).sort(semver.rcompare)[0]
    packuments.set(manifest.name, packument)
  }
  return {server, url}
}

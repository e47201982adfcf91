/**
 * What kube-spawn's plugins:install and plugins:link add to oclif's: local sources checked before npm
 * runs, the data directory snapshotted and put back when anything fails, npm's and oclif's output kept
 * quiet, and the new plugin loaded and checked the way kube-spawn will load it (an "oclif" section, a
 * plugin API range that admits this kube-spawn's, hook files that exist and parse).
 */
import {API_VERSION} from '@kube-spawn/sdk'
import {type Config, ux} from '@oclif/core'
import {execFile} from 'node:child_process'
import {cp, lstat, mkdtemp, readdir, readFile, rename, rm, rmdir, stat, writeFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {dirname, isAbsolute, join, resolve} from 'node:path'
import {promisify} from 'node:util'

import {HostError, UserError, errorMessage, findUserError} from '../errors.js'
import {type PluginManifest, apiRefusal} from './compat.js'
import {locateSyntaxError} from './locate.js'

/** The part of a package.json these checks read. */
export interface PackageJson extends PluginManifest {
  oclif?: {hooks?: Record<string, unknown>}
  dependencies?: Record<string, string>
}

/** A plugin on disk that kube-spawn is about to install or link. */
export interface LocalSource {
  kind: 'tarball' | 'folder'
  /** Absolute. */
  path: string
  /** What to hand to npm: file:<absolute path>. */
  spec: string
  pjson: PackageJson
}

/** The loaded plugin as the checks need it (a subset of oclif's Interfaces.Plugin). */
export interface LoadedPlugin {
  name: string
  version?: string
  root: string
  valid: boolean
  pjson: unknown
  hooks: Record<string, Array<{target: string}>>
}

const SOURCE_HINT = 'give the path of a tarball made by npm pack, or a plugin folder'

/** "name 1.2.3", or the name alone. */
export function who(pjson: {name?: string; version?: string}): string {
  return `${pjson.name ?? 'the package'}${pjson.version ? ` ${pjson.version}` : ''}`
}

/**
 * The path a plugins:install argument names on this machine, or undefined for a registry name or a
 * git URL. Local are: file:PATH, absolute paths, ./ ../ and ~/ paths, and anything ending in .tgz,
 * .tar.gz or .tar (as npm reads them). Relative paths are resolved from `cwd`: oclif would hand a
 * relative file: spec to npm, which resolves it from the data directory instead.
 */
export function localSourcePath(input: string, cwd: string = process.cwd()): string | undefined {
  let path: string
  if (input.startsWith('file:')) path = input.slice('file:'.length).replace(/^\/\/(?=\/)/, '')
  else if (/^(\.{1,2}|~)?\//.test(input) || /\.(tgz|tar\.gz|tar)$/.test(input)) path = input
  else return undefined
  if (path === '~' || path.startsWith('~/')) path = join(homedir(), path.slice(1))
  return isAbsolute(path) ? resolve(path) : resolve(cwd, path)
}

/** Reads what a local plugins:install source is, before npm sees it; one-line UserErrors for bad paths. */
export async function inspectLocalSource(input: string, cwd: string = process.cwd()): Promise<LocalSource | undefined> {
  const path = localSourcePath(input, cwd)
  if (path === undefined) return undefined
  const info = await stat(path).catch(() => undefined)
  if (!info) throw new UserError(`no such file: ${path}`, {hint: SOURCE_HINT})
  if (info.isDirectory()) return {kind: 'folder', path, spec: `file:${path}`, pjson: await readFolderManifest(path)}
  return {kind: 'tarball', path, spec: `file:${path}`, pjson: await readTarballManifest(path)}
}

/** The package.json of a plugin folder given to plugins:link (or install); one-line UserErrors. */
export async function inspectPluginFolder(input: string, cwd: string = process.cwd()): Promise<{path: string; pjson: PackageJson}> {
  const path = resolve(cwd, input.startsWith('~/') ? join(homedir(), input.slice(2)) : input)
  const info = await stat(path).catch(() => undefined)
  if (!info) throw new UserError(`no such folder: ${path}`, {hint: 'give the folder that holds the plugin (its package.json)'})
  if (!info.isDirectory())
    throw new UserError(`${path} is not a folder`, {
      hint: 'plugins:link takes the folder that holds the plugin; install a tarball with plugins:install file:PATH',
    })
  return {path, pjson: await readFolderManifest(path)}
}

async function readFolderManifest(folder: string): Promise<PackageJson> {
  const file = join(folder, 'package.json')
  const text = await readFile(file, 'utf8').catch(() => undefined)
  if (text === undefined)
    throw new UserError(`no package.json in ${folder}`, {hint: 'give the folder that holds the plugin (its package.json)'})
  return parseManifest(text, file)
}

/** package/package.json of an npm pack tarball, read with tar. */
export async function readTarballManifest(tarball: string): Promise<PackageJson> {
  const text = await promisify(execFile)('tar', ['-xOzf', tarball, 'package/package.json'], {maxBuffer: 16 << 20}).then(
    (r) => r.stdout,
    () => undefined,
  )
  if (text === undefined)
    throw new UserError(`${tarball} is not a tarball made by npm pack (it holds no package/package.json)`, {hint: SOURCE_HINT})
  return parseManifest(text, `${tarball}: package/package.json`)
}

function parseManifest(text: string, where: string): PackageJson {
  let pjson: unknown
  try {
    pjson = JSON.parse(text)
  } catch (error) {
    throw new UserError(`${where} is not valid JSON: ${errorMessage(error).split('\n')[0]}`)
  }
  if (pjson === null || typeof pjson !== 'object' || typeof (pjson as {name?: unknown}).name !== 'string')
    throw new UserError(`${where} has no "name"`, {hint: 'a plugin is an npm package with a name and a version'})
  return pjson as PackageJson
}

/** Why kube-spawn refuses this package.json as a plugin, as a one-line UserError, or undefined. */
export function manifestRefusal(pjson: PackageJson, api: string = API_VERSION): UserError | undefined {
  if (pjson.oclif === undefined || pjson.oclif === null)
    return new UserError(`${who(pjson)} is not a kube-spawn plugin: its package.json has no "oclif" section`, {
      hint: 'a plugin declares its hooks there (see docs/plugins.md)',
    })
  const refusal = apiRefusal(pjson, api)
  if (refusal) return new UserError(refusal, {hint: `install a version of it made for plugin API ${api}`})
  return undefined
}

/**
 * What is wrong with a plugin oclif has loaded, as a one-line UserError, or undefined: its manifest
 * (manifestRefusal), and every hook target, which must exist and parse. `redo` says what to do after
 * fixing it ("pack it and install it again").
 */
export async function loadedPluginProblem(plugin: LoadedPlugin, redo: string): Promise<UserError | undefined> {
  const pjson = plugin.pjson as PackageJson
  const named = {name: plugin.name, version: plugin.version}
  if (!plugin.valid) return manifestRefusal({...pjson, ...named, oclif: undefined})
  const refusal = manifestRefusal({...pjson, ...named})
  if (refusal) return refusal
  const targets = [...new Set(Object.values(plugin.hooks ?? {}).flatMap((hooks) => hooks.map((hook) => hook.target)))]
  for (const target of targets) {
    const file = isAbsolute(target) ? target : join(plugin.root, target)
    const found = await Promise.any([file, `${file}.js`].map((f) => lstat(f))).catch(() => undefined)
    if (!found)
      return new UserError(`plugin ${who(named)}: its hook file ${target} does not exist`, {hint: `build the plugin, then ${redo}`})
  }
  const where = await locateSyntaxError(plugin.root, targets)
  if (where) return new UserError(`plugin ${who(named)}: syntax error in ${where}`, {hint: `fix the plugin, then ${redo}`})
  return undefined
}

/**
 * The one line of npm's output that says why it failed ("npm error 404 Not Found - GET …"), without
 * the code/errno/path and log-file lines around it.
 */
export function npmFailureLine(output: string): string | undefined {
  for (const line of output.split('\n')) {
    const match = /^\s*npm (?:error|ERR!)\s+(.*)$/.exec(line)
    if (!match) continue
    const text = match[1].trim()
    if (text === '' || /^(code|errno|syscall|path|signal|command|cwd|A complete log|Log files|\S+ This is related)\b/.test(text)) continue
    return text.replace(/\.$/, '')
  }
  return undefined
}

/**
 * Any failure of oclif's install or link as one UserError: ours as they are; npm's as npm's own reason
 * (exit 1, it may be the network), with a hint to see npm's output if `verboseHint`; oclif's with its
 * first line and exit code.
 */
export function asOneLine(error: unknown, output: string, verboseHint = true): UserError {
  const user = findUserError(error)
  if (user) return user
  const message = errorMessage(error)
  const more = verboseHint ? {hint: 'run with --verbose for npm’s output'} : {}
  if (/ exited with code \d+/.test(message)) {
    const why = npmFailureLine(output)
    return new HostError(`npm failed${why ? `: ${why}` : ` (${message.split('\n')[0].replace(/^.* (exited with code \d+)$/, '$1')})`}`, {
      ...more,
      cause: error,
    })
  }
  const exit = (error as {oclif?: {exit?: number}}).oclif?.exit
  return new UserError(firstLine(message), {exitCode: typeof exit === 'number' && exit > 0 ? exit : 1, cause: error})
}

/**
 * oclif's message as one line: its first, or, when that only announces a list ("The following errors
 * occurred:"), the list joined; without "See more help with --help" and a final full stop.
 */
export function firstLine(message: string): string {
  const lines = message
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !/^See more help with/.test(line))
  const line = lines[0]?.endsWith(':') && lines.length > 1 ? `${lines[0]} ${lines.slice(1).join('; ')}` : (lines[0] ?? '')
  return line.replace(/\.$/, '')
}

export type Captured<T> = {ok: true; value: T; output: string} | {ok: false; error: unknown; output: string}

/**
 * Runs `fn` with everything it writes to stdout and stderr (oclif's spinner, npm's output, oclif's
 * warnings) kept back and returned, unless `passThrough`.
 */
export async function captureOutput<T>(passThrough: boolean, fn: () => Promise<T>): Promise<Captured<T>> {
  if (passThrough) {
    try {
      return {ok: true, value: await fn(), output: ''}
    } catch (error) {
      if (ux.action.running) ux.action.stop('failed')
      return {ok: false, error, output: ''}
    }
  }
  const chunks: string[] = []
  const sink = (chunk: unknown, ...rest: unknown[]): boolean => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'))
    const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined
    callback?.()
    return true
  }
  const {stdout, stderr} = process
  const original = {out: stdout.write, err: stderr.write}
  stdout.write = sink as typeof stdout.write
  stderr.write = sink as typeof stderr.write
  // The spinner writes its first line through the functions it saved before it started.
  const action = ux.action as unknown as {stdmockOrigs?: {stdout: unknown; stderr: unknown}}
  const actionWrites = action.stdmockOrigs
  action.stdmockOrigs = {stdout: sink, stderr: sink}
  try {
    return {ok: true, value: await fn(), output: chunks.join('')}
  } catch (error) {
    return {ok: false, error, output: chunks.join('')}
  } finally {
    if (ux.action.running) ux.action.stop('failed')
    action.stdmockOrigs = actionWrites
    stdout.write = original.out
    stderr.write = original.err
  }
}

interface FileCopy {
  path: string
  content?: Buffer
}

/**
 * The data directory's npm state before an install or link: package.json, package-lock.json, npm's
 * hidden lockfile, which entries node_modules held, and a copy of each named plugin already there.
 * restore() puts that state back and removes whatever npm added.
 */
export class DataDirSnapshot {
  private readonly dataDir: string
  private readonly existed: boolean
  private readonly files: FileCopy[]
  private readonly entries: Set<string> | undefined
  private readonly backups: Map<string, string>
  private readonly backupDir: string | undefined

  private constructor(state: {
    dataDir: string
    existed: boolean
    files: FileCopy[]
    entries: Set<string> | undefined
    backups: Map<string, string>
    backupDir: string | undefined
  }) {
    this.dataDir = state.dataDir
    this.existed = state.existed
    this.files = state.files
    this.entries = state.entries
    this.backups = state.backups
    this.backupDir = state.backupDir
  }

  /**
   * Runs a change of the data dir (an install or a link) with a snapshot taken before it: kept when the
   * change succeeds, put back when it throws.
   */
  static async around<T>(dataDir: string, names: string[], change: (snapshot: DataDirSnapshot) => Promise<T>): Promise<T> {
    const snapshot = await DataDirSnapshot.take(dataDir, names)
    try {
      const value = await change(snapshot)
      await snapshot.discard()
      return value
    } catch (error) {
      await snapshot.restore()
      throw error
    }
  }

  static async take(dataDir: string, names: string[] = []): Promise<DataDirSnapshot> {
    const existed = (await lstat(dataDir).catch(() => undefined)) !== undefined
    const files = await Promise.all(
      ['package.json', 'package-lock.json', join('node_modules', '.package-lock.json')].map(async (name) => ({
        path: join(dataDir, name),
        content: await readFile(join(dataDir, name)).catch(() => undefined),
      })),
    )
    const entries = await moduleEntries(dataDir)
    const backups = new Map<string, string>()
    let backupDir: string | undefined
    for (const name of new Set(names)) {
      if (!entries?.has(name)) continue
      backupDir ??= await mkdtemp(join(dataDir, '.install-backup-'))
      const copy = join(backupDir, name.replace('/', '+'))
      await cp(join(dataDir, 'node_modules', name), copy, {recursive: true, verbatimSymlinks: true})
      backups.set(name, copy)
    }
    return new DataDirSnapshot({dataDir, existed, files, entries, backups, backupDir})
  }

  /** The package.json as it was. */
  get pjson(): PackageJson | undefined {
    const content = this.files[0].content
    try {
      return content ? (JSON.parse(content.toString('utf8')) as PackageJson) : undefined
    } catch {
      return undefined
    }
  }

  /** Dependencies of the data dir's package.json that npm added or changed since the snapshot. */
  async changedDependencies(): Promise<string[]> {
    const now = await readFile(join(this.dataDir, 'package.json'), 'utf8').then(
      (text) => (JSON.parse(text) as PackageJson).dependencies ?? {},
      () => ({}) as Record<string, string>,
    )
    const before = this.pjson?.dependencies ?? {}
    return Object.keys(now).filter((name) => before[name] !== now[name])
  }

  async restore(): Promise<void> {
    const now = await moduleEntries(this.dataDir)
    for (const entry of now ?? []) {
      if (this.entries?.has(entry)) continue
      await rm(join(this.dataDir, 'node_modules', entry), {recursive: true, force: true})
      // An emptied @scope or .bin directory goes too.
      if (entry.includes('/')) await rmdir(join(this.dataDir, 'node_modules', dirname(entry))).catch(() => undefined)
    }
    for (const [name, copy] of this.backups) {
      const path = join(this.dataDir, 'node_modules', name)
      await rm(path, {recursive: true, force: true})
      await rename(copy, path)
    }
    for (const file of this.files) {
      if (file.content) {
        await writeFile(file.path, file.content)
      } else await rm(file.path, {force: true})
    }
    if (!this.entries) await rmdirTree(join(this.dataDir, 'node_modules'))
    await this.discard()
    if (!this.existed) await rmdir(this.dataDir).catch(() => undefined)
  }

  /** Drops the copies kept for restore(). */
  async discard(): Promise<void> {
    if (this.backupDir) await rm(this.backupDir, {recursive: true, force: true})
  }
}

/** node_modules' entries: "x", "@scope/x", ".bin/x", ".package-lock.json"; undefined without node_modules. */
async function moduleEntries(dataDir: string): Promise<Set<string> | undefined> {
  const modules = join(dataDir, 'node_modules')
  const top = await readdir(modules).catch(() => undefined)
  if (!top) return undefined
  const out = new Set<string>()
  for (const name of top) {
    if (name.startsWith('@') || name === '.bin') {
      const inner = await readdir(join(modules, name)).catch(() => [] as string[])
      for (const child of inner) out.add(`${name}/${child}`)
      if (inner.length === 0) out.add(name)
    } else out.add(name)
  }
  return out
}

/** Removes a directory made of nothing but empty directories (npm's leftovers); leaves one with files. */
async function rmdirTree(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => undefined)
  if (!names) return
  for (const name of names) {
    const path = join(dir, name)
    if ((await lstat(path)).isDirectory()) await rmdirTree(path)
  }
  await rmdir(dir).catch(() => undefined)
}

/**
 * After oclif installed or linked `name`: the fresh Config must load it as a plugin of `type` that
 * passes the checks. Returns it, or throws the one-line reason.
 */
export async function assertLoaded(
  loaded: Config,
  name: string,
  type: 'user' | 'link',
  {verbose, redo}: {verbose: boolean; redo: string},
): Promise<LoadedPlugin> {
  const plugin = loaded.plugins.get(name) as LoadedPlugin | undefined
  if (!plugin || (plugin as {type?: string}).type !== type)
    throw new UserError(`${name} was ${type === 'user' ? 'installed' : 'linked'}, but kube-spawn cannot load it`, {
      hint: verbose ? 'see the output above' : 'run with --verbose for npm’s and oclif’s output',
    })
  const problem = await loadedPluginProblem(plugin, redo)
  if (problem) throw problem
  return plugin
}

/** The one line (or JSON) a failed plugins:install or plugins:link prints; its stack too under --verbose. Returns the exit code. */
export function reportPluginCommandFailure(error: unknown, argv: string[], json?: (value: unknown) => void): number {
  const user = findUserError(error) ?? asOneLine(error, '', false)
  const stack = (user.cause instanceof Error ? user.cause : user).stack
  if (argv.some((a) => a === '--verbose' || a === '-v') && stack) process.stderr.write(`${stack}\n`)
  if (json) json({error: {message: user.line, exitCode: user.exitCode}})
  else process.stderr.write(`kube-spawn: ${user.line}\n`)
  return user.exitCode
}

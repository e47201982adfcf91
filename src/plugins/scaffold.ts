/**
 * `kube-spawn plugins:new`: a ready plugin project from the templates in templates/plugin/.
 *
 *   common/               package.json, tsconfig.json, tsconfig.test.json, README.md, gitignore (→ .gitignore)
 *   <kind>/src/index.ts   the plugin
 *   <kind>/test/<kind>.test.ts   its unit tests (→ test/<name>.test.ts)
 *
 * In every file `__NAME__` becomes the plugin's short name and `__DESCRIPTION__` the kind's package
 * description. In README.md a block between a line `<!-- kind: K1 K2 -->` and a line `<!-- end -->`
 * stays only for those kinds (the marker lines go). package.json keeps only the hooks the kind's
 * src/index.ts exports. The workaround named "hello" is examples/plugin-template, file for file.
 */
import {lstat, mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {isAbsolute, join, relative, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {UserError} from '../errors.js'

export const PLUGIN_KINDS = ['workaround', 'runtime', 'image'] as const
export type PluginKind = (typeof PLUGIN_KINDS)[number]

/** From dist/plugins/ and src/plugins/ alike: the package's templates/plugin/. */
export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates/plugin/', import.meta.url))

const NAME_PATTERN = /^[a-z][a-z0-9-]*$/
const PACKAGE_PREFIX = 'kube-spawn-plugin-'

interface KindInfo {
  /** The package.json description; `name` is the short name. */
  description: (name: string) => string
  /** The hooks src/index.ts exports, as package.json declares them. */
  hooks: Array<'providers' | 'tasks'>
}

const KINDS: Record<PluginKind, KindInfo> = {
  workaround: {
    description: () => 'A kube-spawn workaround plugin: every node says hello after it boots.',
    hooks: ['providers', 'tasks'],
  },
  runtime: {
    description: (name) => `A kube-spawn runtime plugin: the container runtime ${name} for the nodes.`,
    hooks: ['providers'],
  },
  image: {
    description: (name) => `A kube-spawn image plugin: the base image ${name} for the nodes, built with debootstrap.`,
    hooks: ['providers'],
  },
}

/** The package name of the plugin with short name `name`. */
export function packageName(name: string): string {
  return `${PACKAGE_PREFIX}${name}`
}

/** Refuses a short name that cannot make a package name, and a kind there is no template for. */
export function checkScaffoldInput(name: string, kind: string): PluginKind {
  if (!NAME_PATTERN.test(name)) {
    throw new UserError(`plugin name ${JSON.stringify(name)} is not valid`, {
      hint: 'use lower-case letters, digits and hyphens, starting with a letter, e.g. "hello"',
    })
  }
  if (name.startsWith(PACKAGE_PREFIX)) {
    throw new UserError(`plugin name ${JSON.stringify(name)} repeats the package prefix`, {
      hint: `give the short name, "${name.slice(PACKAGE_PREFIX.length)}"`,
    })
  }
  if (!(PLUGIN_KINDS as readonly string[]).includes(kind)) {
    throw new UserError(`unknown plugin kind ${JSON.stringify(kind)}`, {
      hint: `use --kind ${PLUGIN_KINDS.slice(0, -1).join(', ')} or ${PLUGIN_KINDS.at(-1)}`,
    })
  }
  return kind as PluginKind
}

/** Every file below dir, as paths relative to it, sorted. */
async function filesBelow(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(join(dir, prefix), {withFileTypes: true})) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory()) out.push(...(await filesBelow(dir, path)))
    else if (entry.isFile()) out.push(path)
  }
  return out.sort()
}

/** Keeps the `<!-- kind: … -->` … `<!-- end -->` blocks of this kind, without their marker lines. */
function selectKindBlocks(text: string, kind: PluginKind): string {
  const out: string[] = []
  let keep = true
  for (const line of text.split('\n')) {
    const start = /^<!-- kind: ([a-z ]+) -->$/.exec(line)
    if (start) keep = start[1].split(' ').includes(kind)
    else if (line === '<!-- end -->') keep = true
    else if (keep) out.push(line)
  }
  return out.join('\n')
}

/** package.json with the kind's hooks only, in npm's own layout. */
function keepHooks(text: string, kind: PluginKind): string {
  const manifest = JSON.parse(text) as {oclif?: {hooks?: Record<string, unknown>}}
  const hooks = manifest.oclif?.hooks ?? {}
  for (const event of Object.keys(hooks)) {
    if (!KINDS[kind].hooks.some((hook) => event === `kube-spawn:${hook}`)) delete hooks[event]
  }
  return `${JSON.stringify(manifest, null, 2)}\n`
}

/** Where a template file goes in the project. */
function targetPath(path: string, name: string, kind: PluginKind): string {
  if (path === 'gitignore') return '.gitignore'
  if (path === `test/${kind}.test.ts`) return `test/${name}.test.ts`
  return path
}

/**
 * The project's files for this short name and kind, by path relative to the project, sorted. The
 * name and kind must have passed checkScaffoldInput.
 */
export async function renderPlugin(name: string, kind: PluginKind, templatesDir = TEMPLATES_DIR): Promise<Map<string, string>> {
  const files = new Map<string, string>()
  for (const part of ['common', kind]) {
    const root = join(templatesDir, part)
    for (const path of await filesBelow(root)) {
      let text = await readFile(join(root, path), 'utf8')
      if (path === 'README.md') text = selectKindBlocks(text, kind)
      text = text.replaceAll('__NAME__', name).replaceAll('__DESCRIPTION__', KINDS[kind].description(name))
      if (path === 'package.json') text = keepHooks(text, kind)
      files.set(targetPath(path, name, kind), text)
    }
  }
  return new Map([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

export interface ScaffoldResult {
  name: string
  kind: PluginKind
  packageName: string
  /** The package's version, as its package.json says. */
  version: string
  /** The project directory, absolute. */
  dir: string
  /** The files written, relative to dir. */
  files: string[]
}

/**
 * Writes the project of plugin `name` into `dir` (default: ./kube-spawn-plugin-<name>, resolved
 * from cwd). Refuses a bad name or kind and a target that exists and is not an empty directory.
 */
export async function scaffoldPlugin(options: {name: string; kind: string; dir?: string; cwd?: string}): Promise<ScaffoldResult> {
  const kind = checkScaffoldInput(options.name, options.kind)
  const dir = resolve(options.cwd ?? process.cwd(), options.dir ?? packageName(options.name))
  const existing = await lstat(dir).catch(() => undefined)
  if (existing && !existing.isDirectory()) {
    throw new UserError(`${dir} exists and is not a directory`, {hint: 'choose another --dir'})
  }
  if (existing && (await readdir(dir)).length > 0) {
    throw new UserError(`${dir} exists and is not empty`, {hint: 'choose another --dir, or remove it first'})
  }
  const files = await renderPlugin(options.name, kind)
  for (const [path, text] of files) {
    await mkdir(join(dir, path, '..'), {recursive: true})
    await writeFile(join(dir, path), text, {flag: 'wx'})
  }
  const {version} = JSON.parse(files.get('package.json') ?? '{}') as {version: string}
  return {name: options.name, kind, packageName: packageName(options.name), version, dir, files: [...files.keys()]}
}

/** A path as a shell word: relative to cwd when below it, quoted when it needs quotes. */
function shellPath(path: string, cwd: string): string {
  const rel = relative(cwd, path)
  const shown = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
  return /^[\w@%+=:,./-]+$/.test(shown) ? shown : `'${shown.replaceAll("'", `'\\''`)}'`
}

/** The commands that take the new project from source to an installed plugin. */
export function nextSteps(result: ScaffoldResult, bin: string, cwd = process.cwd()): string[] {
  return [
    `cd ${shellPath(result.dir, cwd)}`,
    'npm install',
    'npm test',
    'npm pack',
    `${bin} plugins:install "file:$PWD/${result.packageName}-${result.version}.tgz"`,
  ]
}

/** Helpers for the command tests: run the real CLI, and a state root whose every byte can be compared. */
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

export const REPO = fileURLToPath(new URL('../../../', import.meta.url))
export const FIXTURES = join(REPO, 'test', 'fixtures')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs `node bin/run.js ...args` with a clean kube-spawn environment. No shared cache: a command test
 * must not need one, and whatever a command writes to its cache lands in its own state root.
 */
export function kubeSpawn(args: string[], {cwd = REPO, env = {}}: {cwd?: string; env?: Record<string, string>} = {}): Promise<CliResult> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('KUBE_SPAWN_') && key !== 'NODE_TEST_CONTEXT'),
  )
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'run.js'), ...args], {
      cwd,
      env: {...base, ...env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

/** The lines a command wrote to stderr, without the trailing newline. */
export function stderrLines(result: CliResult): string[] {
  return result.stderr === '' ? [] : result.stderr.replace(/\n$/, '').split('\n')
}

/**
 * A temporary state root holding the cluster "keep" (test/fixtures/state-root) as kube-spawn leaves
 * it, including the .locks directory every locking command creates. Returns the work directory,
 * with the state root at <work>/root and room for config files beside it.
 */
export async function makeWorkDir(): Promise<{work: string; root: string; cleanup: () => Promise<void>}> {
  const work = await mkdtemp(join(tmpdir(), 'ks-test-'))
  const root = join(work, 'root')
  await cp(join(FIXTURES, 'state-root'), root, {recursive: true})
  await mkdir(join(root, '.locks'), {mode: 0o700})
  return {work, root, cleanup: () => rm(work, {recursive: true, force: true})}
}

/** Every entry below dir with its type, mode, size, content hash, inode and mtime (for files). */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (path: string, rel: string): Promise<void> => {
    const info = await lstat(path)
    const mode = (info.mode & 0o7777).toString(8)
    if (info.isSymbolicLink()) out[rel] = `link ${await readlink(path)}`
    else if (info.isDirectory()) {
      out[rel] = `dir ${mode}`
      for (const name of (await readdir(path)).sort()) await walk(join(path, name), rel === '.' ? name : `${rel}/${name}`)
    } else {
      const hash = createHash('sha256')
        .update(await readFile(path))
        .digest('hex')
      out[rel] = `file ${mode} ${info.size} ${hash} ino=${info.ino} mtime=${info.mtimeMs}`
    }
  }
  await walk(dir, '.')
  return out
}

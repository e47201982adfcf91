/**
 * Helpers for the command tests: the real CLI (test/helpers/cli.ts; no shared cache, so whatever a command
 * writes to its cache lands in its own state root), and a state root whose every byte can be compared.
 */
import {createHash} from 'node:crypto'
import {cp, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {REPO} from '../../helpers/cli.ts'
import type {CliResult} from '../../helpers/cli.ts'

export {type CliResult, REPO, kubeSpawn} from '../../helpers/cli.ts'
export const FIXTURES = join(REPO, 'test', 'fixtures')

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

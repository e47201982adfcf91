/** Where in a plugin's files an error comes from: "dist/index.js:4". */
import {execFile} from 'node:child_process'
import {access} from 'node:fs/promises'
import {isAbsolute, join, relative} from 'node:path'
import {promisify} from 'node:util'

/**
 * A syntax error thrown by import() carries no file or line; `node --check` reports both. Returns
 * "dist/index.js:4" relative to the plugin's root, or undefined when the files parse.
 */
export async function locateSyntaxError(root: string, targets: string[]): Promise<string | undefined> {
  for (const target of targets) {
    const file = await existing(isAbsolute(target) ? target : join(root, target))
    if (!file) continue
    const checked = await promisify(execFile)(process.execPath, ['--check', file]).then(
      () => undefined,
      (error: {stderr?: string}) => error.stderr ?? '',
    )
    const at = /^(\/[^\n]*):(\d+)$/m.exec(checked ?? '')
    if (at) return `${relative(root, at[1])}:${at[2]}`
  }
  return undefined
}

/** The first frame of the error's stack inside the plugin's files, outside its node_modules. */
export function locateThrow(root: string, error: unknown): string | undefined {
  const stack = error instanceof Error ? (error.stack ?? '') : ''
  for (const match of stack.matchAll(/(?:file:\/\/)?(\/[^\s():]+):(\d+):\d+/g)) {
    const path = relative(root, match[1])
    if (!path.startsWith('..') && !path.includes('node_modules')) return `${path}:${match[2]}`
  }
  return undefined
}

async function existing(file: string): Promise<string | undefined> {
  for (const candidate of [file, `${file}.js`]) {
    if (
      await access(candidate).then(
        () => true,
        () => false,
      )
    )
      return candidate
  }
  return undefined
}

import {execa} from 'execa'

import {UserError} from '../errors.js'
import type {ExecResult, RunOptions} from '../sdk/index.js'

/**
 * Runs a command on the host. Output goes to the task's output line when one is given. A failure is
 * an error naming the command and the last lines it printed, unless allowFailure is set.
 */
export async function run(argv: string[], options: RunOptions & {env?: Record<string, string>} = {}): Promise<ExecResult> {
  const [file, ...args] = argv
  const child = execa(file, args, {
    reject: false,
    input: options.input,
    timeout: options.timeoutMs,
    env: options.env,
    all: true,
    stdin: options.input === undefined ? 'ignore' : undefined,
  })
  if (options.task) {
    const output = options.task.stdout()
    child.all?.on('data', (chunk: Buffer) => output.write(chunk))
  }
  const result = await child
  const exitCode = result.exitCode ?? (result.timedOut ? 124 : 1)
  const outcome = {stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode}
  if (exitCode !== 0 && !options.allowFailure) {
    const tail = (outcome.stderr || outcome.stdout).trim().split('\n').slice(-3).join(' | ')
    const why = result.timedOut
      ? `timed out after ${options.timeoutMs} ms`
      : result.failed && result.exitCode === undefined
        ? String(result.shortMessage)
        : `exited with ${exitCode}`
    throw new UserError(`${file} ${why}${tail ? `: ${tail}` : ''}`, {hint: `command: ${argv.join(' ')}`})
  }
  return outcome
}
